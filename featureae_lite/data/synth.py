"""Synthetic subjects on real anatomy: deformation, tissue contrast, bias field, Rician noise.

Every subject starts from the MNI152 template (:mod:`.anatomy`) and becomes an individual through
(1) a smooth random non-linear deformation plus a small affine, (2) a tissue contrast model for
T2 (default), T1 or FLAIR computed from the warped tissue fractions — partial volume kept — with
per-subject jitter and the template's fine texture, (3) an optional anomaly
(:mod:`.anomalies`, drawn from its own random stream so that the same seed with ``"healthy"`` gives
the very same subject without it), (4) a smooth multiplicative bias field and (5) Rician noise
inside the brain.
The same seed gives bit-identical volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from featureae_lite.data import anomalies
from featureae_lite.data.anatomy import load_anatomy
from featureae_lite.data.warp import identity_coords, smooth_field, warp

CONTRASTS = ("t2", "t1", "flair")
ANOMALY_TYPES = ("healthy", "tumor", "lesions", "stroke", "structural")
# relative tissue intensities (CSF, GM, WM) per contrast
TISSUE = {"t2": (1.0, 0.62, 0.45), "t1": (0.18, 0.52, 0.78), "flair": (0.08, 0.62, 0.48)}
# weight of the template T1 texture (sign follows the GM/WM contrast)
TEXTURE = {"t2": -0.6, "t1": 0.8, "flair": -0.4}


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
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(options)}")


def subject_coords(rng: np.random.Generator, shape: tuple[int, int, int]) -> torch.Tensor:
    """Sampling coordinates of a subject: small affine + smooth non-linear displacement (voxels)."""
    angles = np.deg2rad(rng.normal(0, 2.0, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
    lin = torch.from_numpy((rot * rng.uniform(0.95, 1.05, 3)).astype(np.float32))
    shift = torch.from_numpy(rng.normal(0, 1.5, 3).astype(np.float32))
    centre = (torch.tensor(shape, dtype=torch.float32) - 1) / 2
    grid = identity_coords(shape)
    coords = (grid - centre) @ lin.T + centre + shift
    disp = smooth_field(rng, shape, (6, 7, 6), 3, 2.5).permute(1, 2, 3, 0)
    return coords + disp


@lru_cache(maxsize=1)
def template_texture() -> np.ndarray:
    """Template T1 minus its tissue-mean prediction: the fine texture kept in every subject."""
    a = load_anatomy()
    design = np.stack([a.csf[a.brain], a.gm[a.brain], a.wm[a.brain]], axis=1)
    coef, *_ = np.linalg.lstsq(design, a.t1[a.brain], rcond=None)
    tex = np.zeros_like(a.t1)
    tex[a.brain] = a.t1[a.brain] - design @ coef
    return tex


def render(tissues: np.ndarray, texture: np.ndarray, contrast: str,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image (X, Y, Z) from tissue fractions (3, X, Y, Z) = (CSF, GM, WM); returns (image, levels)."""
    levels = np.array(TISSUE[contrast]) * rng.normal(1.0, 0.04, 3)
    image = np.tensordot(levels.astype(np.float32), tissues, axes=1)
    return image + TEXTURE[contrast] * texture, levels


def synthesize_subject(seed: int, contrast: str = "t2", anomaly: str = "healthy") -> Subject:
    """Create one subject (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of every random choice.
    contrast : str
        ``"t2"``, ``"t1"`` or ``"flair"``.
    anomaly : str
        ``"healthy"``, ``"tumor"``, ``"lesions"``, ``"stroke"`` or ``"structural"``.
    """
    check_choice(contrast, CONTRASTS, "contrast")
    check_choice(anomaly, ANOMALY_TYPES, "anomaly type")
    rng = np.random.default_rng(seed)
    arng = np.random.default_rng([seed, 7])  # own stream: same seed = same subject with/without anomaly
    a = load_anatomy()
    shape = a.t1.shape
    coords = subject_coords(rng, shape)
    stack = np.stack([a.csf, a.gm, a.wm, template_texture(), a.brain.astype(np.float32)])
    warped = warp(stack, coords)
    tissues, texture, brain = warped[:3], warped[3], warped[4] > 0.5
    tissues *= brain
    texture *= brain
    mask = np.zeros(shape, dtype=bool)
    if anomaly == "tumor":
        tissues, texture, centre, radius = anomalies.mass_effect(tissues, texture, brain, arng)
    image, levels = render(tissues, texture, contrast, rng)
    if anomaly != "healthy":
        paint = {"tumor": lambda: anomalies.paint_tumor(image, brain, centre, radius, contrast, arng),
                 "lesions": lambda: anomalies.paint_lesions(image, tissues, brain, contrast, arng),
                 "stroke": lambda: anomalies.paint_stroke(image, tissues, brain, contrast, levels, arng),
                 "structural": lambda: anomalies.paint_structural(image, brain, arng)}[anomaly]
        image, mask = paint()
    bias = np.exp(smooth_field(rng, shape, (3, 3, 3), 1, 0.08)[0].numpy())
    image = np.clip(image, 0, None) * bias
    sigma = 0.02 * float(levels.max())
    n1, n2 = rng.normal(0, sigma, (2, *shape)).astype(np.float32)
    image = np.sqrt((image + n1) ** 2 + n2**2) * brain  # Rician noise, skull-stripped
    return Subject(image.astype(np.float32), (mask & brain).astype(np.uint8), brain.astype(np.uint8),
                   a.affine.copy(), anomaly, contrast, seed)
