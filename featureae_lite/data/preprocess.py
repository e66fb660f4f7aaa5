"""Preprocessing as in the FAE reference: axial slices, square crop, resize, histogram equalisation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from featureae_lite.core.errors import InputError


def _square(a: np.ndarray) -> np.ndarray:
    """Centre-crop or zero-pad the last two axes of (S, H, W) to a square of side max(H, W)...

    The side is the larger dimension, so no brain is cut: the short axis is padded.
    """
    s, h, w = a.shape
    side = max(h, w)
    out = np.zeros((s, side, side), dtype=a.dtype)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[:, y0:y0 + h, x0:x0 + w] = a
    return out


def equalize(image: np.ndarray, brain: np.ndarray, nbins: int = 256) -> np.ndarray:
    """Histogram equalisation over the brain voxels (256 bins); background set to 0."""
    from skimage.exposure import equalize_hist

    if not brain.any():
        raise InputError("histogram equalisation needs a non-empty brain mask")
    out = equalize_hist(image, nbins=nbins, mask=brain).astype(np.float32)
    return out * brain


def preprocess_volume(image: np.ndarray, lesion_mask: np.ndarray | None, brain_mask: np.ndarray | None, *,
                      slice_range: tuple[int, int] = (55, 135), image_size: int = 128,
                      equalize_hist: bool = True, slice_step: int = 1
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn a volume into preprocessed axial slices.

    Parameters
    ----------
    image : ndarray
        (X, Y, Z) intensities.
    lesion_mask, brain_mask : ndarray or None
        (X, Y, Z) masks; no lesion mask = healthy, no brain mask = ``image > 0``.
    slice_range : (start, stop)
        Axial slices z in [start, stop) (FAE: 55–135 on a 1 mm grid).
    image_size : int
        Output side (128 in the reference).
    equalize_hist : bool
        Histogram equalisation inside the brain (reference default), else scaling by the 99.5th
        percentile of brain intensities.
    slice_step : int
        Keep every ``slice_step``-th slice.

    Returns
    -------
    (images, masks, brains) : tuple of ndarray
        (S, image_size, image_size): float32 in [0, 1] (0 outside the brain), bool, bool. Slices are
        rotated so anterior is up.
    """
    if image.ndim != 3:
        raise InputError(f"expected a 3-D volume, got shape {image.shape}")
    brain = image > 0 if brain_mask is None else brain_mask > 0
    lesion = np.zeros(image.shape, bool) if lesion_mask is None else lesion_mask > 0
    for name, m in (("lesion mask", lesion), ("brain mask", brain)):
        if m.shape != image.shape:
            raise InputError(f"{name} shape {m.shape} does not match image shape {image.shape}")
    start, stop = slice_range
    stop = min(stop, image.shape[2])
    if not 0 <= start < stop:
        raise InputError(f"slice range {slice_range} is empty for a volume with {image.shape[2]} slices")
    zs = np.arange(start, stop, slice_step)
    img = np.asarray(image, np.float32) * brain
    if equalize_hist:
        img = equalize(img, brain)
    else:
        img = np.clip(img / max(np.percentile(img[brain], 99.5), 1e-6), 0, 1) if brain.any() else img
    # (X, Y, Z) → slices (S, Y, X) with anterior up: rot90 of each axial slice
    to_slices = lambda v: np.ascontiguousarray(np.rot90(v[:, :, zs], k=1, axes=(0, 1)).transpose(2, 0, 1))  # noqa: E731
    stack = np.stack([_square(to_slices(v.astype(np.float32))) for v in (img, lesion, brain)], axis=1)
    t = F.interpolate(torch.from_numpy(stack), size=(image_size, image_size), mode="bilinear",
                      align_corners=False)
    images = t[:, 0].clamp(0, 1).numpy()
    masks = t[:, 1].numpy() > 0.4
    brains = t[:, 2].numpy() > 0.4
    return (images * brains).astype(np.float32), masks & brains, brains
