"""Typed configuration of the ``preprocess`` (ingest and normalization) stage."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from cxrpriv.config import ConfigError, help_field
from cxrpriv.dataset import SPLITS

# Options of PS3.15 Annex E that this stage implements (names of the columns of data/annex_e.csv).
DEID_OPTIONS = (
    "retain_long_modified_dates",
    "retain_patient_characteristics",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_uids",
    "clean_descriptors",
)
# What happens to attributes the Annex E table does not list: removed unless allowlisted, or kept.
DEID_POLICIES = ("allowlist", "annex_e")
ASPECT_POLICIES = ("pad", "crop", "stretch")
INTENSITY_METHODS = ("percentile", "landmarks")
LOG_PATHS = ("relative", "keyed")
BURNED_IN_POLICIES = ("quarantine", "blank")
DTYPES = ("uint8", "uint16")


def _setting(default: Any, help: str) -> Any:
    """A field with its ``--help`` text and a default (for code that builds a config without params.yaml;
    ``load_stage_config`` still wants every key in the params file)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int = help_field("Side of the stored square images in pixels.")
    dtype: Literal["uint8", "uint16"] = help_field("Stored pixel type.")
    aspect: Literal["pad", "crop", "stretch"] = help_field(
        "Non-square images: 'pad' (fit the long side, pad the short side with black), 'crop' (centre crop "
        "to a square) or 'stretch'."
    )
    intensity: Literal["percentile", "landmarks"] = help_field(
        "Intensity standardization: 'percentile' (linear between the low and high percentiles) or "
        "'landmarks' (piecewise-linear histogram standardization onto a uniform scale)."
    )
    percentile_low: float = help_field("Low percentile (of the central region) mapped to black.")
    percentile_high: float = help_field("High percentile (of the central region) mapped to white.")
    modalities: list[str] = help_field("Modalities accepted (others are rejected).")
    views: list[str] = help_field("View positions accepted; 'UNKNOWN' also accepts images without one.")
    burned_in: Literal["quarantine", "blank"] = help_field(
        "Images flagged BurnedInAnnotation=YES or where text is detected: 'quarantine', or 'blank' the "
        "blank_regions and ingest if no text remains."
    )
    blank_regions: dict[str, list[float]] = help_field(
        "Regions blanked in 'blank' mode: name -> [top, left, bottom, right] as fractions of the image."
    )
    text_min_glyphs: int = help_field(
        "Glyphs on one line that make text (a lone side marker letter never counts)."
    )
    text_contrast: float = help_field(
        "Minimum glyph contrast against its surround (0..1) for the text detector."
    )
    deid_options: list[str] = help_field(
        f"PS3.15 Annex E options applied on top of the Basic Profile: {DEID_OPTIONS}."
    )
    max_date_shift_days: int = help_field(
        "Dates move into the past by a per-patient number of days in 1..max, derived from the key."
    )
    split_fractions: dict[str, float] = help_field("Fraction of images per split (train/validation/test).")
    split_seed: int = help_field("Seed of the patient-wise stratified split.")
    shard_size: int = help_field("Images per shard file.")
    workers: int = help_field("Worker processes (0: one per CPU core).")
    log_paths: Literal["relative", "keyed"] = help_field(
        "How logs and errors name input files: 'relative' (the path under the source) or 'keyed' "
        "(file:<HMAC of the path>, for archives whose folder or file names may carry patient names; the "
        "report's path_key column maps it back to the path)."
    )
    deid_policy: Literal["allowlist", "annex_e"] = _setting(
        "allowlist",
        "Attributes the Annex E table does not list: 'allowlist' keeps only those the image needs "
        "(cxrpriv.ingest.allowlist) and those an enabled option retains; 'annex_e' keeps every one (they "
        "may carry names: see docs/deidentification.md).",
    )
    max_frame_mib: float = _setting(
        512.0,
        "Files declaring a larger frame (Rows x Columns x Samples x Bits Allocated / 8 x Frames, MiB) are "
        "rejected before decoding.",
    )
    max_inflated_mib: float = _setting(
        640.0, "Deflated data sets that would inflate beyond this many MiB are rejected while inflating."
    )
    max_inflate_ratio: float = _setting(
        100.0,
        "Deflated data sets that would inflate to more than this many times their deflated size are "
        "rejected while inflating (never below 1 MiB inflated).",
    )

    def validate(self) -> None:
        checks = [
            (32 <= self.image_size <= 2048, "image_size must be within 32..2048"),
            (self.dtype in DTYPES, f"dtype must be one of {DTYPES}"),
            (self.aspect in ASPECT_POLICIES, f"aspect must be one of {ASPECT_POLICIES}"),
            (self.intensity in INTENSITY_METHODS, f"intensity must be one of {INTENSITY_METHODS}"),
            (
                0 <= self.percentile_low < self.percentile_high <= 100,
                "need 0 <= percentile_low < percentile_high <= 100",
            ),
            (bool(self.modalities), "modalities must not be empty"),
            (bool(self.views), "views must not be empty"),
            (self.burned_in in BURNED_IN_POLICIES, f"burned_in must be one of {BURNED_IN_POLICIES}"),
            (self.text_min_glyphs >= 2, "text_min_glyphs must be at least 2 (one glyph is a side marker)"),
            (0 < self.text_contrast < 1, "text_contrast must be within (0, 1)"),
            (1 <= self.max_date_shift_days <= 36500, "max_date_shift_days must be within 1..36500"),
            (self.shard_size >= 1, "shard_size must be at least 1"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.log_paths in LOG_PATHS, f"log_paths must be one of {LOG_PATHS}"),
            (self.deid_policy in DEID_POLICIES, f"deid_policy must be one of {DEID_POLICIES}"),
            (self.max_frame_mib > 0, "max_frame_mib must be positive"),
            (self.max_inflated_mib > 0, "max_inflated_mib must be positive"),
            (self.max_inflate_ratio >= 1, "max_inflate_ratio must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"preprocess: {message}")
        unknown = set(self.deid_options) - set(DEID_OPTIONS)
        if unknown:
            raise ConfigError(
                f"preprocess: unknown deid_options {sorted(unknown)} (known: {list(DEID_OPTIONS)})"
            )
        if set(self.split_fractions) != set(SPLITS):
            raise ConfigError(f"preprocess: split_fractions needs exactly the keys {list(SPLITS)}")
        fractions = list(self.split_fractions.values())
        if min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ConfigError("preprocess: split_fractions must be non-negative and sum to 1")
        for name, box in self.blank_regions.items():
            if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                raise ConfigError(
                    f"preprocess: blank_regions.{name} must be [top, left, bottom, right] fractions "
                    "with top < bottom and left < right"
                )
        if self.burned_in == "blank" and not self.blank_regions:
            raise ConfigError("preprocess: burned_in 'blank' needs at least one blank_regions entry")
