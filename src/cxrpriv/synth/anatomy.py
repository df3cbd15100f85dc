"""A patient's persistent anatomy: the identity the verifier has to learn.

All positions are in the patient frame: ``u`` across (image left to right as conventionally displayed, so
the patient's left side is at positive ``u``), ``v`` down, both spanning -1..1 over the image width before
any acquisition transform. Shape parameters vary between patients with spreads scaled by
``anatomy_variability``; the lungs come from a PCA shape model of real lung masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cxrpriv.synth.stats import LungShapeModel

N_POSTERIOR_RIBS = 10
N_ANTERIOR_RIBS = 6


@dataclass(frozen=True)
class Lung:
    radius: (
        np.ndarray
    )  # (K,) boundary radius at theta_k = 2 pi k / K (counter-clockwise, y up), box-width units
    centroid: tuple[float, float]  # in the lung box, box-width units


@dataclass(frozen=True)
class Ribs:
    top: float  # v of the first posterior rib at the spine
    spacing: float
    rise: float  # how steeply a posterior rib climbs laterally from the spine
    curvature: float  # how much it falls again toward the chest wall
    thickness: float
    jitter: np.ndarray  # (2, N_POSTERIOR_RIBS) per-rib vertical offsets, persistent
    anterior_jitter: np.ndarray  # (2, N_ANTERIOR_RIBS)


@dataclass(frozen=True)
class DistinctiveFeatures:
    clips: tuple[tuple[float, float, float], ...] = ()  # (u, v, angle) per clip
    pacemaker: tuple[float, float] | None = None  # generator position
    healed_fracture: tuple[int, int, float] | None = None  # (side, rib index, lateral position 0..1)
    sternotomy_wires: int = 0


@dataclass(frozen=True)
class PatientAnatomy:
    sex: str
    body_half_width: float
    shoulder_v: float
    neck_half_width: float
    soft_tissue: float  # overall soft-tissue density (habitus)
    breast: float  # 0 for male patients
    lung_box_center_u: float
    lung_box_top: float
    lung_box_width: float
    lung_box_aspect: float
    lungs: tuple[Lung, Lung]  # image-left (patient right), image-right (patient left)
    diaphragm_asymmetry: float  # right dome higher than the left by this much (box-width units)
    left_dome_v: float  # the left hemidiaphragm's dome at rest (v), where the heart sits
    left_dome_depth: float  # from the left lung's centroid down to that dome: how far a breath moves it
    heart_center: tuple[float, float]
    heart_radii: tuple[float, float]
    heart_angle: float
    heart_harmonics: tuple[float, float, float, float]  # cos/sin amplitudes of the 2nd and 3rd harmonic
    mediastinum_half_width: float
    aortic_knob: tuple[float, float, float]  # (u, v, radius)
    spine_u: float
    spine_half_width: float
    vertebra_period: float
    vertebra_phase: float
    clavicles: tuple[float, float, float]  # (sternal v, lateral v, lateral u)
    ribs: Ribs
    bone_density: float
    features: DistinctiveFeatures = field(default_factory=DistinctiveFeatures)


def sample_anatomy(
    rng: np.random.Generator, shape_model: LungShapeModel, sex: str, variability: float = 1.0
) -> PatientAnatomy:
    def jitter(mean: float, sd: float) -> float:
        return float(mean + variability * sd * rng.standard_normal())

    male = sex == "M"
    # Lung shapes, their centroids and the box aspect are drawn jointly: in real masks the first shape mode
    # goes with the box aspect and with the other lung's, and independent draws make implausible pairs.
    draw = shape_model.sample_joint(rng)
    mean = dict(zip(shape_model.joint_variables, shape_model.joint_mean, strict=True))
    draw = {k: float(mean[k] + variability * (v - mean[k])) for k, v in draw.items()}
    aspect = float(np.clip(draw["box_aspect"], 0.6, 1.2))
    lungs = []
    for name in ("image_left", "image_right"):
        model = getattr(shape_model, name)
        radius = np.clip(model.radius(shape_model.mode_scores(draw, name)), 0.02, None).astype(np.float32)
        # The model's centroids are box-relative (x / width, y / height); ours are in box-width units.
        centroid = (draw[f"{name}.centroid_x"], draw[f"{name}.centroid_y"] * aspect)
        lungs.append(Lung(radius=radius, centroid=centroid))
    box_width = jitter(1.52 if male else 1.44, 0.05)
    box_top = jitter(-0.80, 0.025)
    # The heart rests on the left hemidiaphragm: place it from the left lung's dome (the ray straight down,
    # theta = 3 pi / 2), not at a fixed height, so it never floats above or sinks below the lung bases.
    left = lungs[1]
    dome_depth = float(left.radius[3 * len(left.radius) // 4]) * box_width
    dome_v = box_top + left.centroid[1] * box_width + dome_depth
    heart_ry = jitter(0.20, 0.02)
    ribs = Ribs(
        top=jitter(-0.74, 0.025),
        spacing=jitter(0.118, 0.008),
        rise=jitter(0.25, 0.05),
        curvature=jitter(0.78, 0.08),
        thickness=jitter(0.030, 0.003),
        jitter=(variability * 0.010 * rng.standard_normal((2, N_POSTERIOR_RIBS))).astype(np.float32),
        anterior_jitter=(variability * 0.012 * rng.standard_normal((2, N_ANTERIOR_RIBS))).astype(np.float32),
    )
    return PatientAnatomy(
        sex=sex,
        body_half_width=jitter(0.93 if male else 0.88, 0.04),
        shoulder_v=jitter(-0.80, 0.03),
        neck_half_width=jitter(0.22 if male else 0.19, 0.02),
        soft_tissue=jitter(1.0, 0.08),
        breast=0.0 if male else float(np.clip(jitter(0.12, 0.04), 0.02, 0.25)),
        lung_box_center_u=jitter(0.0, 0.02),
        lung_box_top=box_top,
        lung_box_width=box_width,
        lung_box_aspect=aspect,
        lungs=(lungs[0], lungs[1]),
        diaphragm_asymmetry=jitter(0.025, 0.015),
        left_dome_v=dome_v,
        left_dome_depth=dome_depth,
        heart_center=(jitter(0.10, 0.035), dome_v - 0.75 * heart_ry + jitter(0.0, 0.02)),
        heart_radii=(jitter(0.27, 0.025), heart_ry),
        heart_angle=jitter(-0.45, 0.10),
        heart_harmonics=tuple(float(variability * 0.04 * x) for x in rng.standard_normal(4)),  # type: ignore[arg-type]
        mediastinum_half_width=jitter(0.10, 0.012),
        aortic_knob=(jitter(0.10, 0.02), jitter(-0.28, 0.03), jitter(0.055, 0.008)),
        spine_u=jitter(0.0, 0.012),
        spine_half_width=jitter(0.065, 0.006),
        vertebra_period=jitter(0.085, 0.006),
        vertebra_phase=float(rng.uniform(0, 1)),
        clavicles=(jitter(-0.64, 0.03), jitter(-0.74, 0.035), jitter(0.58, 0.04)),
        ribs=ribs,
        bone_density=jitter(1.0, 0.10),
        features=_sample_features(rng),
    )


def _sample_features(rng: np.random.Generator) -> DistinctiveFeatures:
    # Prevalences of visible hardware and old injuries on adult chest films (order of magnitude):
    # surgical clips ~4%, pacemaker/ICD ~2%, healed rib fracture ~3%, sternotomy wires ~2%.
    clips: tuple[tuple[float, float, float], ...] = ()
    if rng.random() < 0.04:
        u0, v0 = rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.6)
        clips = tuple(
            (float(u0 + rng.normal(0, 0.04)), float(v0 + rng.normal(0, 0.04)), float(rng.uniform(0, np.pi)))
            for _ in range(int(rng.integers(2, 6)))
        )
    pacemaker = (
        (float(rng.uniform(0.35, 0.6)), float(rng.uniform(-0.68, -0.52))) if rng.random() < 0.02 else None
    )
    fracture = None
    if rng.random() < 0.03:
        fracture = (int(rng.integers(0, 2)), int(rng.integers(3, 9)), float(rng.uniform(0.5, 0.9)))
    wires = int(rng.integers(4, 7)) if rng.random() < 0.02 else 0
    return DistinctiveFeatures(
        clips=clips, pacemaker=pacemaker, healed_fracture=fracture, sternotomy_wires=wires
    )
