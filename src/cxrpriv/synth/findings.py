"""How the 14 ChestX-ray14 findings look, drawn onto a patient's rendered anatomy.

A finding's site (side, zone, size) is drawn once per patient and kept across follow-ups, as a nodule stays
where it is; its severity and fine texture vary per film. Appearances follow the radiological signs:

- Atelectasis: plate-like basal opacity with volume loss (raised diaphragm).
- Cardiomegaly: heart enlarged to a cardiothoracic ratio above 0.5.
- Effusion: dependent fluid at the base with a meniscus rising laterally; blunted costophrenic angle.
- Infiltration: patchy ill-defined opacities.
- Mass: large (>3 cm) lobulated dense opacity. Nodule: small round well-defined opacity.
- Pneumonia: ill-defined airspace opacity in one zone with patchy margins.
- Consolidation: dense homogeneous lobar opacity with a sharp fissural border.
- Edema: bilateral perihilar (bat-wing) haze, Kerley B lines at the bases.
- Emphysema: hyperinflated lungs (low diaphragm), a narrow heart, sparse vessels, upper zones more lucent than
  the bases and thin-walled apical bullae. Local contrasts on purpose: ingest standardizes each image's
  histogram, which removes a uniform darkening of the lungs.
- Fibrosis: coarse peripheral and basal reticulation with volume loss.
- Pleural thickening: a band along the lateral chest wall and an apical cap.
- Pneumothorax: a lateral-apical rim without lung markings behind a thin visceral pleural line.
- Hernia: retrocardiac round density with an air-fluid level (hiatal hernia).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from cxrpriv.synth.shapes import ellipse, soft_step
from cxrpriv.synth.stats import FINDINGS

if TYPE_CHECKING:
    from cxrpriv.synth.render import Canvas

F = {name: i for i, name in enumerate(FINDINGS)}


@dataclass(frozen=True)
class FindingSites:
    """Per-patient, persistent: for each finding, side (0 image-left, 1 image-right, 2 both) and a site."""

    side: dict[str, int]
    site: dict[str, tuple[float, float]]  # (lateral 0..1 from the midline side, vertical -1 top..1 bottom)
    size: dict[str, float]


@dataclass
class FindingGeometry:
    heart_scale: float = 1.0
    lung_height: list[float] = field(default_factory=lambda: [1.0, 1.0])
    lucency: float = 1.0
    marking_strength: float = 1.0


def sample_sites(rng: np.random.Generator) -> FindingSites:
    side = {f: int(rng.integers(0, 2)) for f in FINDINGS}
    for name, p_both in (("Effusion", 0.35), ("Infiltration", 0.4), ("Pleural_Thickening", 0.3)):
        if rng.random() < p_both:
            side[name] = 2
    zones = {  # vertical range of plausible sites, -1 apex .. 1 base
        "Atelectasis": (0.3, 0.7),
        "Infiltration": (-0.3, 0.6),
        "Mass": (-0.6, 0.5),
        "Nodule": (-0.7, 0.6),
        "Pneumonia": (0.0, 0.6),
        "Consolidation": (-0.2, 0.4),
    }
    site = {
        f: (float(rng.uniform(0.25, 0.75)), float(rng.uniform(*zones.get(f, (-0.5, 0.5))))) for f in FINDINGS
    }
    size = {
        "Mass": float(rng.uniform(0.07, 0.12)),
        "Nodule": float(rng.uniform(0.045, 0.06)),  # 3-4 px radius at 128 px: 1.5-2 cm, under 3 cm
        "Effusion": float(rng.uniform(0.10, 0.24)),
        "Cardiomegaly": float(rng.uniform(1.22, 1.4)),
        "Pneumothorax": float(rng.uniform(0.09, 0.16)),
        "Hernia": float(rng.uniform(0.085, 0.12)),
        "Consolidation": float(rng.uniform(-0.25, 0.25)),  # tilt of the fissural border
    }
    return FindingSites(side=side, site=site, size=size)


def finding_geometry(labels: np.ndarray, sites: FindingSites) -> FindingGeometry:
    """The shape changes a finding makes before anything is drawn (heart size, lung height, lucency)."""
    geom = FindingGeometry()
    if labels[F["Emphysema"]]:
        geom.heart_scale = 0.9  # the long narrow heart of hyperinflated lungs
        geom.lung_height = [1.15, 1.15]
        geom.lucency = 1.22
        geom.marking_strength = 0.35
    if labels[F["Cardiomegaly"]]:
        geom.heart_scale = sites.size["Cardiomegaly"]
    for name, factor in (("Atelectasis", 0.93), ("Fibrosis", 0.9)):
        if labels[F[name]]:
            for s in _sides(sites.side[name]):
                geom.lung_height[s] *= factor
    if labels[F["Edema"]]:
        geom.marking_strength *= 1.4  # vascular congestion
    return geom


def draw_findings(
    canvas: Canvas,
    labels: np.ndarray,
    sites: FindingSites,
    geometry: FindingGeometry,
    rng: np.random.Generator,
) -> None:
    for name in FINDINGS:
        if labels[F[name]] and name in _DRAWERS:
            severity = float(rng.uniform(0.8, 1.2))
            _DRAWERS[name](canvas, sites, severity, rng)


def _sides(side: int) -> tuple[int, ...]:
    return (0, 1) if side == 2 else (side,)


@dataclass(frozen=True)
class LungFrame:
    """Centroid (uc, vc) and extent (u0..u1, v0..v1) of one rendered lung field, in patient units."""

    uc: float
    vc: float
    u0: float
    u1: float
    v0: float
    v1: float


def _lung_frame(canvas: Canvas, s: int) -> LungFrame:
    lung = canvas.lungs[s] > 0.5
    if not lung.any():
        return LungFrame(0.0, 0.0, -0.1, 0.1, -0.1, 0.1)
    us, vs = canvas.u[lung], canvas.v[lung]
    return LungFrame(
        float(us.mean()), float(vs.mean()), float(us.min()), float(us.max()), float(vs.min()), float(vs.max())
    )


def _site_point(canvas: Canvas, s: int, site: tuple[float, float]) -> tuple[float, float]:
    f = _lung_frame(canvas, s)
    # Lateral 0 = medial edge, 1 = chest wall; image-left lung (patient right) has its wall at small u.
    lat, vert = site
    u = f.u1 - lat * (f.u1 - f.u0) if s == 0 else f.u0 + lat * (f.u1 - f.u0)
    v = f.vc + vert * 0.5 * (f.v1 - f.v0)
    return u, v


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / (noise.std() + 1e-6)


def _atelectasis(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    for s in _sides(sites.side["Atelectasis"]):
        u, v = _site_point(c, s, sites.site["Atelectasis"])
        tilt = -0.25 if s == 0 else 0.25
        plate = ellipse(c.u, c.v, (u, v), (0.17, 0.022), angle=tilt, edge=c.edge * 3)
        c.density += 0.5 * sev * plate * c.lungs[s]


def _effusion(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    for s in _sides(sites.side["Effusion"]):
        f = _lung_frame(c, s)
        depth = sites.size["Effusion"] * sev
        lateral = (f.uc - c.u) / max(f.uc - f.u0, 1e-3) if s == 0 else (c.u - f.uc) / max(f.u1 - f.uc, 1e-3)
        level = f.v1 - depth - 0.6 * depth * np.clip(lateral, 0, 1.2) ** 2  # meniscus rises laterally
        fluid = soft_step(c.v - level, 0.03)
        c.density += 0.7 * fluid * c.lungs[s]
        c.markings *= 1 - fluid * c.lungs[s]


def _infiltration(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    patches = _smooth_noise(c.u.shape, c.u.shape[0] * 0.02, rng)
    for s in _sides(sites.side["Infiltration"]):
        u, v = _site_point(c, s, sites.site["Infiltration"])
        zone = ellipse(c.u, c.v, (u, v), (0.22, 0.28), angle=0.0, edge=0.08)
        c.density += 0.26 * sev * zone * np.clip(patches + 0.3, 0, 2.0) * c.lungs[s]


def _mass(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    s = sites.side["Mass"] % 2
    u, v = _site_point(c, s, sites.site["Mass"])
    r = sites.size["Mass"] * (0.9 + 0.1 * sev)
    lobes = np.maximum(
        ellipse(c.u, c.v, (u, v), (r, r * 0.9), angle=0.3, edge=c.edge * 4),
        ellipse(c.u, c.v, (u + 0.4 * r, v - 0.3 * r), (0.7 * r, 0.6 * r), angle=0.0, edge=c.edge * 4),
    )
    c.density += 0.7 * lobes * np.maximum(c.lungs[s], 0.5)


def _nodule(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    s = sites.side["Nodule"] % 2
    u, v = _site_point(c, s, sites.site["Nodule"])
    r = sites.size["Nodule"]
    c.density += (
        0.75 * ellipse(c.u, c.v, (u, v), (r, r), angle=0.0, edge=c.edge) * np.maximum(c.lungs[s], 0.5)
    )


def _pneumonia(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    s = sites.side["Pneumonia"] % 2
    u, v = _site_point(c, s, sites.site["Pneumonia"])
    texture = np.clip(0.75 + 0.35 * _smooth_noise(c.u.shape, c.u.shape[0] * 0.012, rng), 0, 1.5)
    zone = ellipse(c.u, c.v, (u, v), (0.19, 0.15), angle=0.2, edge=0.05)
    c.density += 0.42 * sev * zone * texture * c.lungs[s]


def _consolidation(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    s = sites.side["Consolidation"] % 2
    uc = _lung_frame(c, s).uc
    _, v = _site_point(c, s, sites.site["Consolidation"])
    tilt = sites.size["Consolidation"]
    fissure = v + tilt * (c.u - uc)  # the lobe below a fissure fills homogeneously, sharply bordered
    lobe = soft_step(c.v - fissure, c.edge * 1.5)
    c.density += 0.48 * (0.9 + 0.1 * sev) * lobe * c.lungs[s]
    c.markings *= 1 - 0.8 * lobe * c.lungs[s]


def _edema(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    lungs = c.lungs.sum(0)
    hila = np.minimum(np.hypot(c.u + 0.2, c.v - 0.0), np.hypot(c.u - 0.2, c.v - 0.0))
    c.density += 0.38 * sev * np.exp(-hila / 0.22) * lungs
    for s in (0, 1):
        f = _lung_frame(c, s)
        wall = f.u0 if s == 0 else f.u1
        inward = 1 if s == 0 else -1
        lines = np.zeros_like(c.u)
        for k in range(6):  # Kerley B: short horizontal lines reaching the pleura at the bases
            vk = f.v1 - 0.05 - k * 0.028
            lines = np.maximum(
                lines, ellipse(c.u, c.v, (wall + inward * 0.035, vk), (0.04, 0.0045), angle=0.0, edge=c.edge)
            )
        c.density += 0.2 * lines * c.lungs[s]


def _emphysema(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    lat, _ = sites.site["Emphysema"]
    for s in (0, 1):
        f = _lung_frame(c, s)
        height = max(f.v1 - f.v0, 1e-3)
        # Upper-lobe predominant destruction: lucency falls off from apex to base within each lung.
        upper = np.clip((f.v1 - c.v) / height, 0, 1) ** 1.5
        c.density -= 0.14 * sev * upper * c.lungs[s]
        for k, (along, down, radius) in enumerate(((lat, 0.10, 0.075), (1 - lat, 0.22, 0.055))):
            u = f.u1 - along * (f.u1 - f.u0) if s == 0 else f.u0 + along * (f.u1 - f.u0)
            centre = (u, f.v0 + down * height)
            # The left lung's lower bulla smaller: the two sides should not mirror each other.
            r = radius * (0.9 + 0.1 * sev) * (1 if k == 0 or s == 0 else 0.8)
            bulla = ellipse(c.u, c.v, centre, (r, r * 0.85), angle=0.0, edge=c.edge * 1.5)
            wall = ellipse(c.u, c.v, centre, (r * 1.12, r * 0.97), angle=0.0, edge=c.edge * 1.5) - bulla
            c.density += (0.16 * wall - 0.2 * bulla) * c.lungs[s]
            c.markings *= 1 - bulla


def _fibrosis(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    n = c.u.shape[0]
    # Scale chosen to survive the default 128 px training size (the lines are ~2 px wide there).
    coarse = _smooth_noise(c.u.shape, n * 0.012, rng)
    reticulation = np.exp(-((coarse / 0.4) ** 2))  # bright lines along the noise's zero crossings
    for s in (0, 1):
        f = _lung_frame(c, s)
        lateral = np.abs(c.u - f.uc) / max((f.u1 - f.u0) / 2, 1e-3)
        basal = np.clip((c.v - f.v0) / max(f.v1 - f.v0, 1e-3), 0, 1)
        weight = np.clip(0.15 + 0.85 * lateral, 0, 1) * (0.2 + 0.8 * basal)
        c.density += 0.5 * sev * reticulation * weight * c.lungs[s]


def _pleural_thickening(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    n = c.u.shape[0]
    for s in _sides(sites.side["Pleural_Thickening"]):
        rim = _rim(c.lungs[s], n * 0.026)
        f = _lung_frame(c, s)
        lateral = soft_step((f.uc - c.u) if s == 0 else (c.u - f.uc), 0.05)
        c.density += 0.6 * sev * rim * np.maximum(lateral, soft_step(f.vc - 0.25 - c.v, 0.05))


def _pneumothorax(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    n = c.u.shape[0]
    s = sites.side["Pneumothorax"] % 2
    f = _lung_frame(c, s)
    width_px = sites.size["Pneumothorax"] * sev * n / 2
    lung = c.lungs[s]
    inner = ndimage.gaussian_filter(lung, width_px)
    sector = soft_step((f.uc - c.u) if s == 0 else (c.u - f.uc), 0.05) * soft_step(f.vc + 0.3 - c.v, 0.08)
    collapsed = soft_step(0.72 - inner, 0.02) * lung * sector
    c.markings *= 1 - collapsed
    c.density -= 0.22 * collapsed
    c.density += 0.1 * (1 - collapsed) * lung * sector  # the collapsed lung is denser
    pleural_line = np.exp(-(((inner - 0.72) / 0.035) ** 2)) * lung * sector
    c.density += 0.32 * pleural_line


def _hernia(c: Canvas, sites: FindingSites, sev: float, rng: np.random.Generator) -> None:
    r = sites.size["Hernia"]
    heart = c.heart > 0.5
    vc = float(c.v[heart].mean()) + 0.08 if heart.any() else 0.3
    uc = float(c.u[heart].mean()) - 0.05 if heart.any() else 0.05
    sac = ellipse(c.u, c.v, (uc, vc), (r * 1.2, r), angle=0.0, edge=c.edge * 2)
    wall = ellipse(c.u, c.v, (uc, vc), (r * 1.32, r * 1.1), angle=0.0, edge=c.edge * 2) - sac
    level = soft_step(c.v - (vc + 0.1 * r), c.edge)
    # The gas cap must stand out against the dense heart shadow it projects onto.
    c.density += sac * (0.2 * level - 0.55 * (1 - level)) + 0.2 * wall


def _rim(lung: np.ndarray, width_px: float) -> np.ndarray:
    inner = ndimage.gaussian_filter(lung, width_px)
    return lung * soft_step(0.7 - inner, 0.05)


_DRAWERS = {
    "Atelectasis": _atelectasis,
    "Effusion": _effusion,
    "Infiltration": _infiltration,
    "Mass": _mass,
    "Nodule": _nodule,
    "Pneumonia": _pneumonia,
    "Consolidation": _consolidation,
    "Edema": _edema,
    "Emphysema": _emphysema,
    "Fibrosis": _fibrosis,
    "Pleural_Thickening": _pleural_thickening,
    "Pneumothorax": _pneumothorax,
    "Hernia": _hernia,
}
