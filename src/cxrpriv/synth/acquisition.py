"""Per-acquisition nuisance: how one radiograph of a patient differs from the next, identity aside."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrpriv.synth.config import SynthesizeConfig


@dataclass(frozen=True)
class Acquisition:
    view: str  # "PA" or "AP"
    shift: tuple[float, float]  # translation in frame units (-1..1 spans the width)
    scale: float  # overall scale, AP magnification included
    rotation_deg: float
    inspiration: float  # >1: deeper breath, diaphragm lower
    heart_magnification: float  # AP films magnify the heart (it is far from the detector)
    exposure: float  # multiplies the dynamic range
    offset: float
    gamma: float
    noise_sigma: float
    blur_px: float
    collimation: tuple[
        float, float, float, float
    ]  # fraction of width/height masked: left, right, top, bottom
    marker: str  # "L" or "R"
    marker_corner: str  # "top_left" or "top_right"
    years_since_first: float

    def as_record(self) -> dict[str, float | str]:
        return {
            "view": self.view,
            "shift_u": self.shift[0],
            "shift_v": self.shift[1],
            "scale": self.scale,
            "rotation_deg": self.rotation_deg,
            "inspiration": self.inspiration,
            "heart_magnification": self.heart_magnification,
            "exposure": self.exposure,
            "offset": self.offset,
            "gamma": self.gamma,
            "noise_sigma": self.noise_sigma,
            "blur_px": self.blur_px,
            "collimation_left": self.collimation[0],
            "collimation_right": self.collimation[1],
            "collimation_top": self.collimation[2],
            "collimation_bottom": self.collimation[3],
            "marker": self.marker,
            "marker_corner": self.marker_corner,
            "years_since_first": self.years_since_first,
        }


def sample_acquisition(
    rng: np.random.Generator, config: SynthesizeConfig, view: str, years_since_first: float
) -> Acquisition:
    ap = view == "AP"
    # AP films: source closer, patient often supine or sitting: more magnification, shallower breath,
    # and more variable positioning than a standing PA film.
    position_factor = 1.4 if ap else 1.0
    collimation = tuple(float(x) for x in np.where(rng.random(4) < 0.45, rng.uniform(0.0, 0.07, 4), 0.0))
    return Acquisition(
        view=view,
        shift=(
            float(rng.normal(0, config.shift_jitter * position_factor)),
            float(rng.normal(0, config.shift_jitter * position_factor)),
        ),
        scale=float((1.06 if ap else 1.0) * np.exp(rng.normal(0, config.scale_jitter))),
        rotation_deg=float(rng.normal(0, config.rotation_jitter_deg * position_factor)),
        inspiration=float(np.exp(rng.normal(-0.06 if ap else 0.0, config.inspiration_jitter))),
        heart_magnification=1.12 if ap else 1.0,
        exposure=float(np.exp(rng.normal(0, 0.10))),
        offset=float(rng.normal(0, 0.04)),
        gamma=float(np.exp(rng.normal(0, 0.12))),
        noise_sigma=float(rng.uniform(0.006, 0.022)),
        blur_px=float(rng.uniform(0.3, 0.9)),
        collimation=collimation,  # type: ignore[arg-type]
        marker="L" if rng.random() < 0.8 else "R",
        marker_corner="top_right" if rng.random() < 0.7 else "top_left",
        years_since_first=years_since_first,
    )
