"""Render one radiograph-like image of a patient: anatomy, findings and acquisition nuisance.

The image is built as a projected density (soft tissue, air in the lungs, heart and mediastinum, bone),
then passed through a film-like response, detector blur, quantum noise, collimation and a side marker.
Every structure is an analytic shape evaluated at patient-frame coordinates, so the acquisition transform
(shift, scale, rotation, magnification) costs nothing extra and nothing is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from cxrpriv.synth.acquisition import Acquisition
from cxrpriv.synth.anatomy import N_ANTERIOR_RIBS, N_POSTERIOR_RIBS, PatientAnatomy
from cxrpriv.synth.findings import FindingSites, draw_findings, finding_geometry
from cxrpriv.synth.shapes import band_along_curve, ellipse, polyline, soft_step, window

MASK_RIGHT_LUNG = 1  # the patient's right lung, image left
MASK_LEFT_LUNG = 2
MASK_HEART = 4


@dataclass
class Canvas:
    """The coordinate grids and shared masks that findings draw onto."""

    u: np.ndarray
    v: np.ndarray
    edge: float  # about one pixel in patient units
    lungs: np.ndarray  # (2, N, N) soft lung fields, heart excluded
    heart: np.ndarray
    density: np.ndarray
    markings: np.ndarray  # lung marking (vessel) texture, which some findings suppress


def render_image(
    anatomy: PatientAnatomy,
    acquisition: Acquisition,
    labels: np.ndarray,
    sites: FindingSites,
    *,
    size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (image in [0,1], float32, 1 = most attenuating) and the uint8 answer-key mask."""
    u, v = _patient_grid(size, acquisition)
    edge = 2.0 / size / acquisition.scale
    geometry = finding_geometry(labels, sites)
    aging = acquisition.years_since_first

    breath = [acquisition.inspiration * geometry.lung_height[s] * (1 + 0.004 * aging) for s in (0, 1)]
    # The heart and the gastric bubble ride on the left dome, which moves with the breath.
    dome_shift = anatomy.left_dome_depth * (breath[1] - 1)
    heart = _heart(
        anatomy,
        u,
        v,
        acq=acquisition,
        scale=geometry.heart_scale,
        aging=aging,
        dome_shift=dome_shift,
        edge=edge,
    )
    lungs = np.stack([_lung(anatomy, side, u, v, inspiration=breath[side], edge=edge) for side in (0, 1)])
    lungs *= 1.0 - heart[None]
    lung_any = np.clip(lungs.sum(0), 0, 1)

    density = _soft_tissue(anatomy, u, v, edge)
    # Air in the lungs: deeper toward the lung's center, where the x-ray crosses more lung.
    # A wide blur, so computed at quarter resolution (it is smooth) and interpolated back.
    coarse = ndimage.gaussian_filter(lung_any[::4, ::4], sigma=size * 0.05 / 4)
    depth = ndimage.zoom(coarse, 4, order=1)[:size, :size]
    density -= 0.55 * lung_any * (0.25 + 0.75 * np.clip(depth * 1.3, 0, 1)) * geometry.lucency
    density += 0.10 * heart + _mediastinum(anatomy, u, v, edge) * (1 - lung_any)
    density += _abdomen_gas(anatomy, u, v, left_lung=lungs[1], dome_shift=dome_shift, edge=edge)
    markings = _lung_markings(anatomy, u, v, size, rng) * lung_any * geometry.marking_strength
    canvas = Canvas(u=u, v=v, edge=edge, lungs=lungs, heart=heart, density=density, markings=markings)
    draw_findings(canvas, labels, sites, geometry, rng)
    canvas.density += canvas.markings
    canvas.density += anatomy.bone_density * (1 - 0.006 * aging) * _bones(anatomy, u, v, acquisition, edge)
    canvas.density += _hardware(anatomy, u, v, edge)

    image = _film(canvas.density, acquisition, size, rng)
    mask = (
        (lungs[0] > 0.5) * MASK_RIGHT_LUNG + (lungs[1] > 0.5) * MASK_LEFT_LUNG + (heart > 0.5) * MASK_HEART
    ).astype(np.uint8)
    return image, mask


def _patient_grid(size: int, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    x, y = np.meshgrid(axis, axis)
    theta = np.deg2rad(acq.rotation_deg)
    c, s = np.cos(theta), np.sin(theta)
    x, y = x - acq.shift[0], y - acq.shift[1]
    return ((c * x + s * y) / acq.scale).astype(np.float32), ((-s * x + c * y) / acq.scale).astype(np.float32)


def _lung(
    anat: PatientAnatomy, side: int, u: np.ndarray, v: np.ndarray, *, inspiration: float, edge: float
) -> np.ndarray:
    width = anat.lung_box_width
    lung = anat.lungs[side]
    out = np.zeros(u.shape, dtype=np.float32)
    center = (
        anat.lung_box_center_u - width / 2 + lung.centroid[0] * width,
        anat.lung_box_top + lung.centroid[1] * width,
    )
    r_, c_ = window(u, v, center, float(lung.radius.max()) * width * max(inspiration, 1.0) * 1.1 + edge)
    u, v = u[r_, c_], v[r_, c_]
    bx = (u - center[0]) / width
    by = (v - center[1]) / width
    # The diaphragm moves with the breath; the apex barely does. The right dome sits higher.
    below = by > 0
    stretch = inspiration * (1 - anat.diaphragm_asymmetry if side == 0 else 1.0)
    by = np.where(below, by / stretch, by)
    r = np.hypot(bx, by)
    theta = np.mod(np.arctan2(-by, bx), 2 * np.pi)  # the shape model's angles run counter-clockwise, y up
    k = len(lung.radius)
    boundary = np.interp(theta, np.arange(k + 1) * (2 * np.pi / k), np.append(lung.radius, lung.radius[0]))
    out[r_, c_] = soft_step(boundary - r, edge / width)
    return out


def _heart(
    anat: PatientAnatomy,
    u: np.ndarray,
    v: np.ndarray,
    *,
    acq: Acquisition,
    scale: float,
    aging: float,
    dome_shift: float,
    edge: float,
) -> np.ndarray:
    grow = scale * acq.heart_magnification * (1 + 0.003 * aging)
    rx, ry = anat.heart_radii[0] * grow, anat.heart_radii[1] * grow
    # An enlarged heart grows mostly to the patient's left and down.
    cx = anat.heart_center[0] + (grow - 1) * 0.5 * rx
    cy = anat.heart_center[1] + dome_shift + (grow - 1) * 0.3 * ry
    out = np.zeros(u.shape, dtype=np.float32)
    r, c_ = window(u, v, (cx, cy), 1.3 * max(rx, ry))
    du, dv = u[r, c_] - cx, v[r, c_] - cy
    c, s = np.cos(anat.heart_angle), np.sin(anat.heart_angle)
    x, y = (c * du + s * dv) / rx, (-s * du + c * dv) / ry
    phi = np.arctan2(y, x)
    a2, b2, a3, b3 = anat.heart_harmonics
    rim = 1 + a2 * np.cos(2 * phi) + b2 * np.sin(2 * phi) + a3 * np.cos(3 * phi) + b3 * np.sin(3 * phi)
    out[r, c_] = soft_step((rim - np.hypot(x, y)) * min(rx, ry), edge)
    return out


def _soft_tissue(anat: PatientAnatomy, u: np.ndarray, v: np.ndarray, edge: float) -> np.ndarray:
    shoulders = soft_step(v - anat.shoulder_v, 0.06)
    half_width = anat.neck_half_width + (anat.body_half_width - anat.neck_half_width) * shoulders
    across = np.clip(1 - (u / half_width) ** 2, 0, 1)
    body = soft_step(half_width - np.abs(u), edge * 2)
    density = 0.95 * anat.soft_tissue * body * (0.35 + 0.65 * np.sqrt(across))
    if anat.breast > 0:
        for side in (-1, 1):
            density += anat.breast * ellipse(u, v, (side * 0.5, 0.42), (0.34, 0.22), angle=0.0, edge=0.06)
    # Arms beside the chest, clipped by the frame in most films.
    for side in (-1, 1):
        density += 0.55 * ellipse(
            u, v, (side * (anat.body_half_width + 0.12), 0.0), (0.11, 0.9), angle=0.0, edge=edge * 2
        )
    return density.astype(np.float32)


def _mediastinum(anat: PatientAnatomy, u: np.ndarray, v: np.ndarray, edge: float) -> np.ndarray:
    band = soft_step(anat.mediastinum_half_width - np.abs(u - anat.spine_u), edge * 3)
    band = band * soft_step(v + 0.9, 0.05)
    knob = ellipse(
        u, v, anat.aortic_knob[:2], (anat.aortic_knob[2], anat.aortic_knob[2]), angle=0.0, edge=edge * 2
    )
    trachea = soft_step(0.028 - np.abs(u - anat.spine_u + 0.01), edge * 2) * soft_step(-0.30 - v, 0.02)
    return (0.18 * np.maximum(band, knob) - 0.18 * trachea).astype(np.float32)


def _abdomen_gas(
    anat: PatientAnatomy,
    u: np.ndarray,
    v: np.ndarray,
    *,
    left_lung: np.ndarray,
    dome_shift: float,
    edge: float,
) -> np.ndarray:
    # The gastric bubble under the left dome: an air pocket just below the left lung base.
    base = anat.left_dome_v + dome_shift
    bubble = ellipse(u, v, (0.30, base + 0.09), (0.09, 0.05), angle=0.0, edge=edge * 3) * (1 - left_lung)
    return (-0.25 * bubble).astype(np.float32)


def _lung_markings(
    anat: PatientAnatomy, u: np.ndarray, v: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    # Vessels branch from the hila and thin out toward the periphery: worm-like ridges of smooth noise,
    # denser and thicker near the hila. The fine pattern differs between films (projection, breath), so it
    # is redrawn for each image.
    # Noise is sampled in polar coordinates around each hilum, fast across angles and slow along the
    # radius, so its ridges run outward like vessels.
    field = ndimage.gaussian_filter(rng.standard_normal((2, 24, 96)).astype(np.float32), (0, 1.0, 1.2))
    field /= field.std() + 1e-6
    # Evaluated on every other pixel and interpolated back: the pattern is smooth at that scale.
    hu, hv = u[::2, ::2], v[::2, ::2]
    out = np.zeros_like(hu)
    for s, hilum_u in enumerate((-0.17, 0.17)):
        du, dv = hu - hilum_u, hv + 0.02
        radius = np.hypot(du, dv)
        angle = np.mod(np.arctan2(dv, du), 2 * np.pi)
        coords = np.stack([np.clip(radius * 22, 0, 23), angle / (2 * np.pi) * 95])
        ridges = ndimage.map_coordinates(field[s], coords.reshape(2, -1), order=1, mode="wrap")
        vessels = np.exp(-((ridges.reshape(hu.shape) / (0.25 + 0.25 * np.exp(-radius / 0.25))) ** 2))
        near = (hu < 0) if s == 0 else (hu >= 0)
        out += near * np.exp(-radius / 0.33) * (0.3 + vessels)
    full = ndimage.zoom(out, 2, order=1)[: u.shape[0], : u.shape[1]]
    return (0.15 * full).astype(np.float32)


def _rows(v: np.ndarray, lo: float, hi: float) -> slice:
    """Pixel rows whose patient-frame v can fall in [lo, hi]: thin structures are drawn only there."""
    rows = np.nonzero((v.max(axis=1) >= lo) & (v.min(axis=1) <= hi))[0]
    return slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)


def _bones(anat: PatientAnatomy, u: np.ndarray, v: np.ndarray, acq: Acquisition, edge: float) -> np.ndarray:
    ribs = anat.ribs
    out = np.zeros_like(u)
    au = u - anat.spine_u
    for s, side in enumerate((-1.0, 1.0)):
        lateral = side * au  # distance from the spine toward this side
        for i in range(N_POSTERIOR_RIBS):
            y0 = ribs.top + i * ribs.spacing + float(ribs.jitter[s, i])
            width = anat.body_half_width * (0.70 + 0.25 * min(i / 5, 1))  # upper ribs are shorter
            thickness = ribs.thickness * (1 + 0.08 * i / N_POSTERIOR_RIBS)
            apex = ribs.rise / (2 * ribs.curvature)
            lo = y0 - ribs.rise * apex + ribs.curvature * apex**2 - thickness
            hi = y0 + max(0.0, -ribs.rise * width + ribs.curvature * width**2) + thickness
            r = _rows(v, lo, hi)
            lat = lateral[r]
            curve = y0 - ribs.rise * lat + ribs.curvature * lat**2
            band = band_along_curve(v[r], curve, thickness, edge)
            out[r] += 0.11 * band * soft_step(lat - 0.035, edge) * soft_step(width - lat, 0.04)
            fracture = anat.features.healed_fracture
            if fracture is not None and fracture[0] == s and fracture[1] == i:
                fu = fracture[2] * width
                out += 0.22 * ellipse(
                    side * au,
                    v,
                    (fu, fu**2 * ribs.curvature - ribs.rise * fu + y0),
                    (0.03, ribs.thickness * 0.9),
                    angle=0.0,
                    edge=edge,
                )
        for i in range(N_ANTERIOR_RIBS):
            # Anterior ribs run from the chest wall down toward the sternum, fainter (less bone, more spread).
            y0 = ribs.top + 0.12 + i * ribs.spacing * 1.25 + float(ribs.anterior_jitter[s, i])
            r = _rows(v, y0 - 0.1, y0 + 0.25)
            lat = lateral[r]
            curve = y0 + 0.35 * (0.9 - lat) - 0.25 * (0.9 - lat) ** 2
            band = band_along_curve(v[r], curve, ribs.thickness * 1.3, edge * 3)
            out[r] += 0.06 * band * soft_step(lat - 0.25, 0.05) * soft_step(0.85 - lat, 0.05)
        # Clavicle: from the sternal end out to the shoulder; AP films project it higher.
        sternal_v, lateral_v, lateral_u = anat.clavicles
        lift = -0.05 if acq.view == "AP" else 0.0
        t = np.clip((lateral - 0.06) / (lateral_u - 0.06), 0, 1)
        curve = sternal_v + lift + (lateral_v - sternal_v) * t + 0.02 * np.sin(2 * np.pi * t)
        clavicle = band_along_curve(v, curve, 0.042, edge) * soft_step(lateral - 0.06, edge)
        out += 0.22 * clavicle * soft_step(lateral_u - lateral, edge * 2)
        # Humeral head and scapula at the top corner.
        out += 0.10 * ellipse(
            au, v, (side * (anat.body_half_width + 0.03), -0.86), (0.12, 0.13), angle=0.0, edge=edge
        )
    # Spine: vertebral bodies with end plates, seen through the mediastinum.
    spine = soft_step(anat.spine_half_width - np.abs(au), edge)
    plates = 0.5 + 0.5 * np.cos(2 * np.pi * (v / anat.vertebra_period + anat.vertebra_phase)) ** 8
    out += 0.08 * spine * (0.6 + 0.4 * plates)
    return out.astype(np.float32)


def _hardware(anat: PatientAnatomy, u: np.ndarray, v: np.ndarray, edge: float) -> np.ndarray:
    feats = anat.features
    out = np.zeros_like(u)
    for cu, cv, angle in feats.clips:
        out += 1.2 * ellipse(u, v, (cu, cv), (0.016, 0.005), angle=angle, edge=edge)
    if feats.pacemaker is not None:
        pu, pv = feats.pacemaker
        out += 1.4 * ellipse(u, v, (pu, pv), (0.075, 0.055), angle=0.2, edge=edge)
        lead = np.array(
            [
                [pu - 0.04, pv + 0.02],
                [0.2, -0.45],
                [0.05, -0.1],
                [anat.heart_center[0] - 0.05, anat.heart_center[1] + 0.1],
            ]
        )
        out += 1.0 * polyline(u, v, lead, 0.010, edge)
    for i in range(feats.sternotomy_wires):
        out += 1.0 * ellipse(u, v, (anat.spine_u, -0.45 + i * 0.11), (0.022, 0.012), angle=0.0, edge=edge)
    return out


def _film(density: np.ndarray, acq: Acquisition, size: int, rng: np.random.Generator) -> np.ndarray:
    # A film-like characteristic curve, then exposure/contrast, detector blur and quantum noise.
    signal = 1.0 - np.exp(-1.6 * np.clip(density, 0, None))
    signal = (signal - 0.18) / 0.72 * acq.exposure + acq.offset
    signal = np.clip(signal, 0, 1) ** acq.gamma
    signal = ndimage.gaussian_filter(signal, acq.blur_px * size / 320)
    noise_sd = acq.noise_sigma * np.sqrt(np.clip(1.2 - signal, 0.2, 1.2))  # fewer photons behind dense tissue
    signal = signal + noise_sd * rng.standard_normal(signal.shape).astype(np.float32)
    left, right, top, bottom = (round(f * size) for f in acq.collimation)
    if left:
        signal[:, :left] = 0.92
    if right:
        signal[:, size - right :] = 0.92
    if top:
        signal[:top, :] = 0.92
    if bottom:
        signal[size - bottom :, :] = 0.92
    _draw_marker(signal, acq.marker, acq.marker_corner)
    return np.clip(signal, 0, 1).astype(np.float32)


def _draw_marker(image: np.ndarray, letter: str, corner: str) -> None:
    size = image.shape[0]
    side = max(size // 16, 8)
    patch = Image.new("L", (side, side), 0)
    font = ImageFont.load_default(size=int(side * 0.9))
    ImageDraw.Draw(patch).text((side * 0.15, 0), letter, fill=255, font=font)
    glyph = np.asarray(patch, dtype=np.float32) / 255.0
    y0 = size // 12
    x0 = size // 12 if corner == "top_left" else size - size // 12 - side
    region = image[y0 : y0 + side, x0 : x0 + side]
    np.maximum(region, glyph * 0.98, out=region)
