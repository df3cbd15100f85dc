"""Typed configuration of the ``synthesize`` stage."""

from __future__ import annotations

from dataclasses import dataclass

from cxrpriv.config import ConfigError, help_field

TRANSFER_SYNTAXES = ("explicit_le", "implicit_le", "deflated_le", "j2k_lossless", "rle_lossless")
BROKEN_KINDS = ("non_chest", "rgb_secondary_capture", "multi_frame", "truncated", "missing_pixel_data")


@dataclass(frozen=True)
class SynthesizeConfig:
    seed: int = help_field("Master seed; the same seed and parameters give byte-identical files.")
    n_patients: int = help_field("Number of synthetic patients.")
    image_size: int = help_field("Stored image side in pixels (square); larger than any training size.")
    max_images_per_patient: int = help_field(
        "Cap on follow-ups per patient (the real table has a long tail up to 184)."
    )
    shift_jitter: float = help_field(
        "Per-image translation jitter, standard deviation as a fraction of width."
    )
    scale_jitter: float = help_field("Per-image scale jitter (standard deviation, relative).")
    rotation_jitter_deg: float = help_field(
        "Per-image in-plane rotation jitter (standard deviation, degrees)."
    )
    inspiration_jitter: float = help_field(
        "Per-image inspiration depth jitter (standard deviation, relative)."
    )
    anatomy_variability: float = help_field(
        "Multiplier on the between-patient spread of anatomy shape parameters (1 = calibrated)."
    )
    min_finding_prevalence: float = help_field(
        "Floor on each finding's per-image prevalence (0 = ChestX-ray14's own rates; rare findings are "
        "raised so a test split holds enough positives to measure them)."
    )
    label_noise: bool = help_field("Apply calibrated text-mining noise to the released labels.")
    reread_fraction: float = help_field("Fraction of images re-read by the simulated radiologists.")
    n_readers: int = help_field("Number of simulated radiologists in the re-read table.")
    burned_text_fraction: float = help_field("Fraction of images with burned-in text (name/ID/date).")
    burned_flag_missing_fraction: float = help_field(
        "Of the images with burned-in text, the fraction whose header does not say so."
    )
    monochrome1_fraction: float = help_field("Fraction of images stored as MONOCHROME1 (inverted).")
    transfer_syntax_mix: dict[str, float] = help_field(
        "Relative frequency of each transfer syntax (JSON on the command line)."
    )
    broken_per_kind: int = help_field(
        "Off-scope or broken files written per kind, to exercise ingest errors."
    )
    naive_attack_pairs: int = help_field("Same/different-patient pairs scored by the naive attacker metric.")
    workers: int = help_field("Worker processes (0: one per CPU core).")
    mask_shard_size: int = help_field("Images per answer-key mask shard file.")

    def validate(self) -> None:
        checks = [
            (self.n_patients >= 2, "n_patients must be at least 2"),
            (64 <= self.image_size <= 4096, "image_size must be within 64..4096"),
            (self.max_images_per_patient >= 1, "max_images_per_patient must be at least 1"),
            (0 <= self.shift_jitter <= 0.3, "shift_jitter must be within 0..0.3"),
            (0 <= self.scale_jitter <= 0.3, "scale_jitter must be within 0..0.3"),
            (0 <= self.rotation_jitter_deg <= 20, "rotation_jitter_deg must be within 0..20"),
            (0 <= self.inspiration_jitter <= 0.3, "inspiration_jitter must be within 0..0.3"),
            (0 <= self.anatomy_variability <= 3, "anatomy_variability must be within 0..3"),
            (0 <= self.min_finding_prevalence <= 0.2, "min_finding_prevalence must be within 0..0.2"),
            (0 <= self.reread_fraction <= 1, "reread_fraction must be within 0..1"),
            (self.n_readers >= 1, "n_readers must be at least 1"),
            (0 <= self.burned_text_fraction <= 1, "burned_text_fraction must be within 0..1"),
            (0 <= self.burned_flag_missing_fraction <= 1, "burned_flag_missing_fraction must be within 0..1"),
            (0 <= self.monochrome1_fraction <= 1, "monochrome1_fraction must be within 0..1"),
            (self.broken_per_kind >= 0, "broken_per_kind must be >= 0"),
            (self.naive_attack_pairs >= 10, "naive_attack_pairs must be at least 10"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.mask_shard_size >= 1, "mask_shard_size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"synthesize: {message}")
        unknown = set(self.transfer_syntax_mix) - set(TRANSFER_SYNTAXES)
        if unknown:
            raise ConfigError(
                f"synthesize: unknown transfer syntaxes {sorted(unknown)} (known: {list(TRANSFER_SYNTAXES)})"
            )
        weights = list(self.transfer_syntax_mix.values())
        if not weights or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(
                "synthesize: transfer_syntax_mix needs non-negative weights with a positive sum"
            )
