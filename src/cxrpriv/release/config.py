"""Typed configuration of the ``release`` stage (paths, the key and a force reason are CLI options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cxrpriv.config import ConfigError, help_field


@dataclass(frozen=True)
class ReleaseConfig:
    text_min_glyphs: int = help_field(
        "Burned-in text audit of the released pixels: glyphs on one line that make text (as preprocess)."
    )
    text_contrast: float = help_field(
        "Burned-in text audit: minimum glyph contrast against its surround (0..1; as preprocess)."
    )
    on_failed_gate: Literal["error", "record"] = help_field(
        "When the release decision failed and no force reason is given: error (exit 2, nothing written) or "
        "record (nothing released; the output holds only a release manifest with status refused and the "
        "decision's reasons, and the stage succeeds: a pipeline that ends in a refusal has run)."
    )
    max_text_file_mib: float = help_field(
        "Largest copied report file (HTML, JSON, CSV, text) the audit reads as text; a larger one blocks "
        "the release rather than go unread."
    )

    def validate(self) -> None:
        checks = [
            (self.text_min_glyphs >= 2, "text_min_glyphs must be at least 2"),
            (0 < self.text_contrast < 1, "text_contrast must be within 0..1 (exclusive)"),
            (self.max_text_file_mib > 0, "max_text_file_mib must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"release: {message}")
