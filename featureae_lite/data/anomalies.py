"""Anomaly generators. Each paints an anomaly into a clean subject image and returns its exact mask.

* ``tumor`` — irregular core and surrounding edema, hyperintense on T2/FLAIR (hypointense core on
  T1), after a mass effect that pushes nearby anatomy outwards (:func:`mass_effect`).
* ``lesions`` — 3–10 small irregular white-matter hyperintensities, ~70 % periventricular (MS-like).
* ``stroke`` — a wedge from the cortex inwards with CSF-like signal (dark T1, bright T2).
* ``structural`` — isointense: a ball of anatomy replaced by rotated anatomy from elsewhere, its
  intensities matched to the mean and standard deviation of what it replaces, blended over 3 mm.
  Nothing is brighter or darker; only the structure is wrong.

All placements intersect axial slices 55–135 of the MNI grid (the default slice range).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from featureae_lite.data.anatomy import load_anatomy
from featureae_lite.data.warp import identity_coords, smooth_field, warp

Z_RANGE = (70, 121)  # centres well inside the default slice range 55–135
# (edema or lesion, core) intensities relative to the contrast's CSF/GM/WM scale
TUMOR = {"t2": (0.82, 0.92), "t1": (0.45, 0.30), "flair": (0.95, 0.80)}
LESION = {"t2": 0.85, "t1": 0.50, "flair": 0.92}


@lru_cache(maxsize=1)
def template_maps() -> dict[str, np.ndarray]:
    """Template depth (mm from the brain surface) and a periventricular band, computed once."""
    a = load_anatomy()
    depth = ndimage.distance_transform_edt(a.brain).astype(np.float32)
    ventricles = (a.csf > 0.5) & (depth > 20)
    band = ndimage.binary_dilation(ventricles, iterations=7) & ~ventricles
    return {"depth": depth, "periventricular": band}


def _z_ok(shape: tuple[int, int, int]) -> np.ndarray:
    ok = np.zeros(shape, dtype=bool)
    ok[:, :, Z_RANGE[0]:Z_RANGE[1]] = True
    return ok


def _pick(candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        raise RuntimeError("no valid location for the anomaly")
    return np.array(np.unravel_index(rng.choice(idx), candidates.shape))


def _box(centre: np.ndarray, half: float, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(0, int(c - half)), min(n, int(c + half) + 1))
                 for c, n in zip(centre, shape, strict=True))


def _irregular_distance(box: tuple[slice, ...], centre: np.ndarray, radius: float,
                        rng: np.random.Generator, roughness: float = 0.25) -> np.ndarray:
    """Distance to ``centre`` divided by a radius modulated by smooth noise (<1 inside the blob)."""
    grids = np.meshgrid(*[np.arange(s.start, s.stop) - c for s, c in zip(box, centre, strict=True)],
                        indexing="ij")
    r = np.sqrt(sum(g.astype(np.float32) ** 2 for g in grids))
    shape = tuple(s.stop - s.start for s in box)
    wobble = smooth_field(rng, shape, (4, 4, 4), 1, roughness)[0].numpy()
    return r / (radius * (1 + wobble))


def mass_effect(tissues: np.ndarray, texture: np.ndarray, brain: np.ndarray, rng: np.random.Generator):
    """Push anatomy away from a tumour centre; returns (tissues, texture, centre, radius)."""
    radius = float(rng.uniform(11, 17))
    depth = template_maps()["depth"]
    centre = _pick(brain & (depth > radius + 6) & _z_ok(brain.shape), rng)
    box = _box(centre, 2.5 * radius, brain.shape)
    coords = identity_coords(tuple(s.stop - s.start for s in box))
    local_c = torch.tensor([c - s.start for c, s in zip(centre, box, strict=True)], dtype=torch.float32)
    rel = coords - local_c
    r = rel.norm(dim=-1, keepdim=True)
    shrink = 1 - 0.45 * torch.exp(-((r / radius) ** 2))  # sample nearer the centre → content moves out
    sub = np.concatenate([tissues[(slice(None), *box)], texture[box][None]])
    moved = warp(sub, local_c + rel * shrink)
    tissues, texture = tissues.copy(), texture.copy()
    tissues[(slice(None), *box)] = moved[:3] * brain[box]
    texture[box] = moved[3] * brain[box]
    return tissues, texture, centre, radius


def _blend(image: np.ndarray, box, weight: np.ndarray, value: np.ndarray | float) -> None:
    image[box] = image[box] * (1 - weight) + value * weight


def paint_tumor(image, brain, centre, radius, contrast, rng):
    """Edema (normalised distance < 1) around an irregular, heterogeneous core (< ~0.55)."""
    image = image.copy()
    box = _box(centre, 1.6 * radius, brain.shape)
    d_edema = _irregular_distance(box, centre, radius, rng)
    d_core = _irregular_distance(box, centre, radius * rng.uniform(0.45, 0.6), rng, 0.35)
    edema_val, core_val = TUMOR[contrast]
    hetero = 1 + smooth_field(rng, d_core.shape, (5, 5, 5), 1, 0.08)[0].numpy()
    _blend(image, box, np.clip((1 - d_edema) / 0.15, 0, 1), edema_val)
    _blend(image, box, np.clip((1 - d_core) / 0.2, 0, 1), core_val * hetero)
    mask = np.zeros(brain.shape, dtype=bool)
    mask[box] = (d_edema < 1) | (d_core < 1)
    return image, mask & brain


def paint_lesions(image, tissues, brain, contrast, rng):
    """3–10 small irregular white-matter hyperintensities, mostly periventricular."""
    image, mask = image.copy(), np.zeros(brain.shape, dtype=bool)
    wm = (tissues[2] > 0.6) & brain & _z_ok(brain.shape)
    peri = wm & template_maps()["periventricular"]
    deep = wm & (template_maps()["depth"] > 12)
    for _ in range(int(rng.integers(3, 11))):
        centre = _pick(peri if (rng.random() < 0.7 and peri.any()) else deep, rng)
        radius = float(rng.uniform(2.0, 5.0))
        box = _box(centre, 2 * radius + 2, brain.shape)
        d = _irregular_distance(box, centre, radius, rng, 0.3)
        _blend(image, box, np.clip((1 - d) / 0.3, 0, 1), LESION[contrast] * rng.uniform(0.95, 1.05))
        mask[box] |= d < 1
    return image, mask & brain


def paint_stroke(image, tissues, brain, contrast, levels, rng):
    """A cone from a deep apex to the cortex, filled with CSF-like signal (partial volume kept)."""
    image = image.copy()
    depth = template_maps()["depth"]
    cortex = _pick((tissues[1] > 0.5) & (depth > 3) & (depth < 8) & _z_ok(brain.shape), rng)
    inward = np.array(brain.shape) / 2 - cortex
    inward[2] = 0
    inward /= np.linalg.norm(inward) + 1e-6
    length = float(rng.uniform(22, 36))
    apex = cortex + inward * length
    half_angle = np.deg2rad(rng.uniform(22, 32))
    box = _box((apex + cortex) / 2, length, brain.shape)
    grids = np.meshgrid(*[np.arange(s.start, s.stop) - a for s, a in zip(box, apex, strict=True)],
                        indexing="ij")
    rel = np.stack(grids, -1).astype(np.float32)
    axis = (cortex - apex) / np.linalg.norm(cortex - apex)
    along = rel @ axis.astype(np.float32)
    dist = np.linalg.norm(rel, axis=-1)
    cosang = along / np.maximum(dist, 1e-6)
    inside = (cosang > np.cos(half_angle)) & (dist < length * 1.3) & brain[box]
    weight = ndimage.gaussian_filter(inside.astype(np.float32), 1.0) * brain[box]
    csf_like = levels[0] * rng.uniform(0.85, 0.95)
    _blend(image, box, weight, csf_like)
    mask = np.zeros(brain.shape, dtype=bool)
    mask[box] = weight > 0.5
    return image, mask & brain


def paint_structural(image, brain, rng, tries: int = 200):
    """Replace a ball of anatomy by rotated anatomy from elsewhere with matched mean and std."""
    depth = template_maps()["depth"]
    radius = float(rng.uniform(9, 14))
    for _ in range(tries):
        target = _pick(brain & (depth > radius + 4) & _z_ok(brain.shape), rng)
        source = _pick(brain & (depth > radius + 4), rng)
        if np.linalg.norm(source - target) > 3 * radius:
            break
    half = int(np.ceil(radius + 3))
    tb = tuple(slice(int(c) - half, int(c) + half + 1) for c in target)
    sb = tuple(slice(int(c) - half, int(c) + half + 1) for c in source)
    block = np.rot90(image[sb], k=int(rng.integers(1, 4)), axes=(0, 1))
    if rng.random() < 0.5:
        block = block[::-1]
    grids = np.meshgrid(*[np.arange(-half, half + 1)] * 3, indexing="ij")
    r = np.sqrt(sum(g.astype(np.float32) ** 2 for g in grids))
    weight = np.clip((radius - r) / 3 + 0.5, 0, 1) * brain[tb]
    core = (r <= radius) & brain[tb]
    tgt_vals, src_vals = image[tb][core], block[core]
    matched = (block - src_vals.mean()) / (src_vals.std() + 1e-6) * tgt_vals.std() + tgt_vals.mean()
    image = image.copy()
    _blend(image, tb, weight, matched)
    mask = np.zeros(brain.shape, dtype=bool)
    mask[tb] = weight > 0.5
    return image, mask & brain
