"""Synthetic subjects on real anatomy: deformation, tissue contrast, bias field, Rician noise.

Every subject starts from the MNI152 template (:mod:`.anatomy`) and becomes an individual through
(1) a smooth random non-linear deformation plus a small affine, (2) a tissue contrast model for
T2 (default), T1 or FLAIR computed from the warped tissue fractions — partial volume kept — with
per-subject jitter and the template's fine texture, (3) an optional anomaly
(:mod:`.anomalies`, drawn from its own random stream so that the same seed with ``"healthy"`` gives
the very same subject without it), (4) a smooth multiplicative bias field and (5) Rician noise
inside the brain.
The same seed gives bit-identical volumes.

``variety`` widens the healthy population for training (issue 16): ``"standard"`` is the subject
described above (bit-identical to before the option existed); ``"wide"`` draws larger affines and
deformations, enlarges CSF spaces (atrophy), randomises tissue levels, texture and gamma
(SynthSeg-style domain randomisation, Billot et al. 2023), a stronger bias field, a thick-slice
through-plane blur and the noise level; ``"wide_geometry"`` and ``"wide_intensity"`` are its two
halves (:data:`VARIETIES`). Extra draws of a wide subject come from their own random stream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from featureae_lite.core.errors import InputError
from featureae_lite.data import anomalies
from featureae_lite.data.anatomy import load_anatomy
from featureae_lite.data.warp import identity_coords, smooth_field, warp

CONTRASTS = ("t2", "t1", "flair")
ANOMALY_TYPES = ("healthy", "tumor", "lesions", "stroke", "structural")
# relative tissue intensities (CSF, GM, WM) per contrast
TISSUE = {"t2": (1.0, 0.62, 0.45), "t1": (0.18, 0.52, 0.78), "flair": (0.08, 0.62, 0.48)}
# weight of the template T1 texture (sign follows the GM/WM contrast)
TEXTURE = {"t2": -0.6, "t1": 0.8, "flair": -0.4}


@dataclass(frozen=True)
class Variety:
    """How far one subject may be from the template (the ranges of every random draw).

    Attributes
    ----------
    rotation_sd, rotation_max : float
        Rotation about each axis ~ N(0, sd) degrees, clipped to ±max (tilt included).
    scale : (float, float)
        Per-axis scale of the sampling grid ~ U(lo, hi) (anisotropic; > 1 shrinks the brain; the grid
        is the template brain's bounding box, so a brain much larger than the template is cut).
    deformations : tuple of ((int, int, int), float)
        Smooth displacement fields (coarse grid, sd in voxels), summed.
    level_sd : float
        Multiplicative jitter of each tissue level (CSF, GM, WM) ~ N(1, sd).
    csf_growth : int
        Largest radius (voxels) by which CSF grows into GM/WM (atrophy, ventricle enlargement); 0 = off.
    texture : (float, float)
        Weight of the template texture × U(lo, hi).
    gamma_log_sd : float
        Intensity gamma = exp(N(0, sd)); 0 = off.
    bias_sd : (float, float)
        Sd of the log bias field ~ U(lo, hi) (a single value when lo == hi).
    slice_mm : (float, float)
        Thick-slice through-plane (z) box blur of U(lo, hi) mm, sampled and held at that spacing;
        (1, 1) = off.
    noise : (float, float)
        Rician noise sd, as a share of the brightest tissue level, ~ U(lo, hi).
    """

    rotation_sd: float = 2.0
    rotation_max: float = float("inf")
    scale: tuple[float, float] = (0.95, 1.05)
    deformations: tuple[tuple[tuple[int, int, int], float], ...] = (((6, 7, 6), 2.5),)
    level_sd: float = 0.04
    csf_growth: int = 0
    texture: tuple[float, float] = (1.0, 1.0)
    gamma_log_sd: float = 0.0
    bias_sd: tuple[float, float] = (0.08, 0.08)
    slice_mm: tuple[float, float] = (1.0, 1.0)
    noise: tuple[float, float] = (0.02, 0.02)


STANDARD = Variety()
_GEOMETRY = dict(rotation_sd=5.0, rotation_max=10.0, scale=(0.95, 1.15),
                 deformations=(((6, 7, 6), 4.5), ((12, 14, 12), 1.5)), csf_growth=2)
_INTENSITY = dict(level_sd=0.15, texture=(0.5, 1.5), gamma_log_sd=0.25, bias_sd=(0.0, 0.25),
                  slice_mm=(1.0, 7.0), noise=(0.01, 0.06))
VARIETY = {"standard": STANDARD, "wide": replace(STANDARD, **_GEOMETRY, **_INTENSITY),
           "wide_geometry": replace(STANDARD, **_GEOMETRY), "wide_intensity": replace(STANDARD, **_INTENSITY)}
VARIETIES = tuple(VARIETY)


@dataclass
class Subject:
    """One synthetic subject.

    Attributes
    ----------
    image : ndarray
        float32 (X, Y, Z) intensities, roughly 0–1 inside the brain, 0 outside.
    lesion_mask : ndarray
        uint8 (X, Y, Z), 1 on anomalous voxels.
    brain_mask : ndarray
        uint8 (X, Y, Z).
    affine : ndarray
        (4, 4) voxel → MNI mm.
    anomaly_type : str
        One of ``healthy, tumor, lesions, stroke, structural``.
    contrast : str
        ``t2``, ``t1`` or ``flair``.
    seed : int
        The seed that reproduces it.
    """

    image: np.ndarray
    lesion_mask: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray
    anomaly_type: str
    contrast: str
    seed: int


def check_choice(value: str, options: tuple[str, ...], what: str) -> None:
    """Raise a ValueError listing the options when ``value`` is not one of them."""
    if value not in options:
        raise InputError(f"unknown {what} {value!r}; known: {', '.join(options)}")


def subject_coords(rng: np.random.Generator, shape: tuple[int, int, int],
                   variety: Variety = STANDARD) -> torch.Tensor:
    """Sampling coordinates of a subject: affine + smooth non-linear displacement (voxels).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the rotation, scale, shift and displacement.
    shape : tuple of int
        The grid (X, Y, Z).
    variety : Variety
        Ranges of the draws (default: the standard, small ones).

    Returns
    -------
    Tensor
        (X, Y, Z, 3) voxel coordinates in the template to sample.
    """
    v = variety
    angles = np.deg2rad(np.clip(rng.normal(0, v.rotation_sd, 3), -v.rotation_max, v.rotation_max))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
    lin = torch.from_numpy((rot * rng.uniform(*v.scale, 3)).astype(np.float32))
    shift = torch.from_numpy(rng.normal(0, 1.5, 3).astype(np.float32))
    centre = (torch.tensor(shape, dtype=torch.float32) - 1) / 2
    grid = identity_coords(shape)
    coords = (grid - centre) @ lin.T + centre + shift
    for coarse, sd in v.deformations:
        coords = coords + smooth_field(rng, shape, coarse, 3, sd).permute(1, 2, 3, 0)
    return coords


@lru_cache(maxsize=1)
def template_texture() -> np.ndarray:
    """Template T1 minus its tissue-mean prediction: the fine texture kept in every subject."""
    a = load_anatomy()
    design = np.stack([a.csf[a.brain], a.gm[a.brain], a.wm[a.brain]], axis=1)
    coef, *_ = np.linalg.lstsq(design, a.t1[a.brain], rcond=None)
    tex = np.zeros_like(a.t1)
    tex[a.brain] = a.t1[a.brain] - design @ coef
    return tex


def render(tissues: np.ndarray, texture: np.ndarray, contrast: str, rng: np.random.Generator,
           level_sd: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Image (X, Y, Z) from tissue fractions (3, X, Y, Z) = (CSF, GM, WM); returns (image, levels).

    Each tissue level is the contrast's (:data:`TISSUE`) times N(1, ``level_sd``), at least half of it.
    """
    levels = np.array(TISSUE[contrast]) * rng.normal(1.0, level_sd, 3)
    if level_sd > 0.04:  # wide: keep every level positive (the standard draw is left untouched)
        levels = np.maximum(levels, 0.5 * np.array(TISSUE[contrast]))
    image = np.tensordot(levels.astype(np.float32), tissues, axes=1)
    return image + TEXTURE[contrast] * texture, levels


def draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """U(lo, hi), or lo without touching ``rng`` when lo == hi (the standard, fixed value)."""
    lo, hi = bounds
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def grow_csf(tissues: np.ndarray, brain: np.ndarray, rng: np.random.Generator, radius_max: int) -> np.ndarray:
    """Atrophy: CSF grows into GM and WM by 0–``radius_max`` voxels, by a smoothly varying share.

    CSF is grey-dilated with a ball of a random radius; a smooth random weight field (mean
    U(0.3, 1)) blends it in, so ventricles and sulci widen unevenly; GM and WM shrink in proportion
    so the fractions still sum as before.

    Parameters
    ----------
    tissues : ndarray
        float32 (3, X, Y, Z) = (CSF, GM, WM) fractions, 0 outside the brain.
    brain : ndarray
        bool (X, Y, Z).
    rng : numpy.random.Generator
        Source of the radius and the weight field.
    radius_max : int
        Largest dilation radius (voxels).

    Returns
    -------
    ndarray
        The new (3, X, Y, Z) fractions.
    """
    radius = int(rng.integers(0, radius_max + 1))
    mean = rng.uniform(0.3, 1.0)
    weight = np.clip(mean + smooth_field(rng, brain.shape, (4, 5, 4), 1, 0.3)[0].numpy(), 0, 1)
    if radius == 0:
        return tissues
    r = np.arange(-radius, radius + 1)
    ball = np.linalg.norm(np.stack(np.meshgrid(r, r, r, indexing="ij")), axis=0) <= radius
    csf, rest = tissues[0], tissues[1:]
    grown = np.maximum(csf, weight * ndimage.grey_dilation(csf, footprint=ball) + (1 - weight) * csf) * brain
    keep = np.divide(1 - grown, 1 - csf, out=np.zeros_like(csf), where=csf < 0.999)
    return np.concatenate([grown[None], rest * np.clip(keep, 0, 1)]).astype(np.float32)


def thick_slices(image: np.ndarray, rng: np.random.Generator, bounds: tuple[float, float]) -> np.ndarray:
    """Partial volume of a thick-slice acquisition: a box blur of U(lo, hi) mm along z (axial), then each
    thick slice's centre held over its width (nearest-neighbour upsampling, as a 1 mm resampling of it)."""
    k = int(round(draw(rng, bounds)))
    if k < 2:
        return image
    blurred = ndimage.uniform_filter1d(image, size=k, axis=2, mode="nearest")
    offset = int(rng.integers(0, k))
    z = np.arange(image.shape[2])
    centres = np.clip((z - offset) // k * k + offset + k // 2, 0, image.shape[2] - 1)
    return blurred[:, :, centres]


def synthesize_subject(seed: int, contrast: str = "t2", anomaly: str = "healthy",
                       variety: str = "standard") -> Subject:
    """Create one subject (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of every random choice.
    contrast : str
        ``"t2"``, ``"t1"`` or ``"flair"``.
    anomaly : str
        ``"healthy"``, ``"tumor"``, ``"lesions"``, ``"stroke"`` or ``"structural"``.
    variety : str
        ``"standard"`` (default, the notebooks' subjects), ``"wide"``, ``"wide_geometry"`` or
        ``"wide_intensity"`` (:data:`VARIETY`): how far the subject may be from the template.
    """
    check_choice(contrast, CONTRASTS, "contrast")
    check_choice(anomaly, ANOMALY_TYPES, "anomaly type")
    check_choice(variety, VARIETIES, "variety")
    v = VARIETY[variety]
    rng = np.random.default_rng(seed)
    arng = np.random.default_rng([seed, 7])  # own stream: same seed = same subject with/without anomaly
    vrng = np.random.default_rng([seed, 11])  # extra draws of a wide variety (unused by "standard")
    a = load_anatomy()
    shape = a.t1.shape
    coords = subject_coords(rng, shape, v)
    stack = np.stack([a.csf, a.gm, a.wm, template_texture(), a.brain.astype(np.float32)])
    warped = warp(stack, coords)
    tissues, texture, brain = warped[:3], warped[3], warped[4] > 0.5
    tissues *= brain
    texture *= brain
    if v.csf_growth:
        tissues = grow_csf(tissues, brain, vrng, v.csf_growth)
    if v.texture != (1.0, 1.0):
        texture = texture * np.float32(draw(vrng, v.texture))
    mask = np.zeros(shape, dtype=bool)
    if anomaly == "tumor":
        tissues, texture, centre, radius = anomalies.mass_effect(tissues, texture, brain, arng)
    image, levels = render(tissues, texture, contrast, rng, v.level_sd)
    if anomaly != "healthy":
        paint = {"tumor": lambda: anomalies.paint_tumor(image, brain, centre, radius, contrast, arng),
                 "lesions": lambda: anomalies.paint_lesions(image, tissues, brain, contrast, arng),
                 "stroke": lambda: anomalies.paint_stroke(image, tissues, brain, contrast, levels, arng),
                 "structural": lambda: anomalies.paint_structural(image, brain, arng)}[anomaly]
        image, mask = paint()
    image = acquire(image, brain, levels, rng, vrng, v)
    return Subject(image.astype(np.float32), (mask & brain).astype(np.uint8), brain.astype(np.uint8),
                   a.affine.copy(), anomaly, contrast, seed)


def acquire(image: np.ndarray, brain: np.ndarray, levels: np.ndarray, rng: np.random.Generator,
            vrng: np.random.Generator, v: Variety) -> np.ndarray:
    """The scanner's part: gamma, thick-slice blur, multiplicative bias field, Rician noise, skull strip.

    ``rng`` draws the bias field and the noise (as for every subject); ``vrng`` the extra choices of a
    wide variety (gamma, slice thickness, bias and noise strengths).
    """
    shape = image.shape
    if v.gamma_log_sd > 0:
        top = float(levels.max())
        image = top * (np.clip(image, 0, None) / top) ** np.float32(np.exp(vrng.normal(0, v.gamma_log_sd)))
    image = thick_slices(image, vrng, v.slice_mm)
    bias = np.exp(smooth_field(rng, shape, (3, 3, 3), 1, draw(vrng, v.bias_sd))[0].numpy())
    image = np.clip(image, 0, None) * bias
    sigma = draw(vrng, v.noise) * float(levels.max())
    n1, n2 = rng.normal(0, sigma, (2, *shape)).astype(np.float32)
    return np.sqrt((image + n1) ** 2 + n2**2) * brain  # Rician noise, skull-stripped
