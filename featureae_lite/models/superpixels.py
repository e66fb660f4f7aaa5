"""Superpixel proxies and pseudo-anomalies for ProxyAno (Zhou et al., IEEE TMI 2021).

* :func:`superpixel_image` — SLIC superpixels inside the brain, every superpixel set to its mean
  intensity, background 0 (the *proxy*).
* :func:`paste_pseudo_anomaly` — paste a random square cropped from another image onto a superpixel
  image, inside the brain (the synthetic anomaly the reconstruction module must ignore).

SLIC ``compactness`` is relative to the intensity range: for slices in [0, 1] small values (0.01–1)
let superpixels follow intensity edges; 0.1 (default) gives compact but edge-aware regions.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
from skimage.segmentation import slic
from torch import Tensor

from featureae_lite.core.errors import InputError
from featureae_lite.models.patches import random_box


def superpixel_image(
    image: np.ndarray | Tensor, brain: np.ndarray | Tensor | None = None, n_segments: int = 150,
    compactness: float = 0.1,
) -> np.ndarray:
    """Superpixel image (SI): SLIC superpixels, each pixel replaced by its superpixel's mean.

    Parameters
    ----------
    image : array (H, W)
        Grey slice in [0, 1].
    brain : array (H, W), optional
        Brain mask; superpixels are computed inside it only; default ``image > 0``.
    n_segments : int
        Approximate number of superpixels (``skimage.segmentation.slic``).
    compactness : float
        SLIC compactness (see the module docstring).

    Returns
    -------
    np.ndarray
        (H, W) float32 SI: constant inside every superpixel, 0 outside the brain.
    """
    img = np.asarray(image.detach().cpu() if isinstance(image, Tensor) else image, dtype=np.float64)
    if brain is None:
        mask = img > 0
    else:
        mask = np.asarray(brain.detach().cpu() if isinstance(brain, Tensor) else brain) > 0
    if img.ndim != 2 or mask.shape != img.shape:
        raise InputError(f"image and brain must both be (H, W), got {img.shape} and {mask.shape}")
    out = np.zeros(img.shape, dtype=np.float32)
    if not mask.any():
        return out
    labels = slic(img, n_segments=n_segments, compactness=compactness, mask=mask, channel_axis=None,
                  start_label=1)
    labels = np.where(mask, labels, 0)
    sums = np.bincount(labels.ravel(), weights=img.ravel())
    counts = np.bincount(labels.ravel())
    means = sums / np.maximum(counts, 1)
    means[0] = 0.0
    out[:] = means[labels]
    return out


# Proxies of the last few batches, keyed by their content: a notebook that trains ProxyAno several
# times (ablations) computes the SLIC proxies of the training and validation slices once.
_CACHE: OrderedDict[tuple, Tensor] = OrderedDict()
_CACHE_SIZE = 4


def _digest(x: Tensor | None) -> str:
    if x is None:
        return ""
    a = np.ascontiguousarray(x.detach().cpu().numpy())
    return hashlib.sha1(a.view(np.uint8)).hexdigest() + str(a.shape) + str(a.dtype)


def superpixel_images(
    images: Tensor, brains: Tensor | None = None, n_segments: int = 150, compactness: float = 0.1
) -> Tensor:
    """:func:`superpixel_image` of a batch: images (N, 1, H, W) → SIs (N, 1, H, W).

    Results of the last few batches are kept in memory (keyed by content and parameters), so the
    same slices are not segmented twice in one session.
    """
    key = (_digest(images), _digest(brains), n_segments, compactness)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key].clone()
    sis = [
        superpixel_image(images[i, 0], None if brains is None else brains[i, 0], n_segments, compactness)
        for i in range(len(images))
    ]
    out = torch.from_numpy(np.stack(sis))[:, None] if sis else torch.zeros_like(images)
    _CACHE[key] = out.clone()
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


def paste_pseudo_anomaly(
    si: Tensor, donor: Tensor, rng: torch.Generator | None = None, brain: Tensor | None = None,
    min_size: int = 8, max_size: int = 32,
) -> tuple[Tensor, Tensor]:
    """Paste a random square cropped from ``donor`` onto ``si``, restricted to the brain.

    Parameters
    ----------
    si : Tensor
        (H, W) superpixel image of the sample.
    donor : Tensor
        (H, W) another training image (the patch source).
    rng : torch.Generator, optional
        Random generator (default: the global torch RNG).
    brain : Tensor, optional
        (H, W) brain mask of the sample; default ``si > 0``.
    min_size, max_size : int
        Side range of the square in pixels (8–32 at 128 px).

    Returns
    -------
    si_out : Tensor
        (H, W) SI with the patch pasted.
    patch_mask : Tensor
        (H, W) bool, True where the donor was pasted (square ∩ brain); outside it ``si_out == si``.
    """
    h, w = si.shape
    inside = (si > 0) if brain is None else brain > 0
    side = int(torch.randint(min_size, max_size + 1, (1,), generator=rng))
    side = min(side, h, w)
    y0, x0 = random_box(inside.nonzero(), side, side, (h, w), rng)  # on a random brain pixel
    dy0, dx0 = random_box((donor > 0).nonzero(), side, side, (h, w), rng)  # from the donor's brain
    canvas = si.clone()
    canvas[y0 : y0 + side, x0 : x0 + side] = donor[dy0 : dy0 + side, dx0 : dx0 + side]
    patch_mask = torch.zeros(h, w, dtype=torch.bool, device=si.device)
    patch_mask[y0 : y0 + side, x0 : x0 + side] = True
    patch_mask &= inside
    return torch.where(patch_mask, canvas, si), patch_mask
