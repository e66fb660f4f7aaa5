"""Training-time augmentation of healthy training slices: spatial and intensity copies, equalised again.

:func:`augment` returns the slices followed by ``copies`` augmented copies of each, one of
:data:`MODES`. The augmentations are drawn a priori from the usual ranges of nnU-Net-style pipelines,
not from any real case:

* ``spatial``: rotation U(−15°, 15°), isotropic scale U(0.85, 1.15), shift U(−2.5 %, 2.5 %) of the
  slice (image bilinear, brain mask nearest);
* ``intensity``: a smooth multiplicative bias field (4 × 4 control points, log sd U(0, 0.3)), a
  Gaussian blur of sd U(0.5, 1.5) px on half of the slices, Gaussian noise of sd U(0, 0.1).

Every augmented slice is equalised again inside its brain (``preprocess.equalize``), as the inputs
are; that cancels any *monotone* intensity change (gamma, contrast, brightness), so none is drawn.
The copies are drawn once (seeded). ``benchmarks/transfer_augment.py`` measures what they do to the
transfer gap (docs/transfer.md, "Training-time augmentation").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from featureae_lite.core.errors import InputError
from featureae_lite.data.batch import Batch
from featureae_lite.data.preprocess import equalize

MODES = ("none", "intensity", "spatial", "both")


def _spatial(x: torch.Tensor, b: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    angle, scale = u(-15, 15) * math.pi / 180, u(0.85, 1.15)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, u(-0.05, 0.05)], 1),
                         torch.stack([sin, cos, u(-0.05, 0.05)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return (F.grid_sample(x, grid, align_corners=False),
            F.grid_sample(b, grid, mode="nearest", align_corners=False))


def _intensity(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter

    n, _, h, w = x.shape
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    field = torch.randn(n, 1, 4, 4, generator=g) * u(0, 0.3).view(n, 1, 1, 1)
    x = x * torch.exp(F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False))
    sigma = u(0.5, 1.5) * (torch.rand(n, generator=g) < 0.5)
    x = torch.stack([torch.from_numpy(gaussian_filter(s.numpy(), (0, float(sd), float(sd)))) if sd > 0 else s
                     for s, sd in zip(x, sigma, strict=True)])
    return x + torch.randn(x.shape, generator=g) * u(0, 0.1).view(n, 1, 1, 1)


def augment(data: Batch, mode: str, copies: int, seed: int = 0) -> Batch:
    """``data`` followed by ``copies`` augmented copies of every slice (healthy training slices only).

    Parameters
    ----------
    data : Batch
        Training slices: images and brains (N, 1, H, W).
    mode : str
        One of :data:`MODES`; ``"none"`` returns ``data``.

    Returns
    -------
    Batch
        (N × (1 + copies)) slices; the copies' subject ids end in ``_aug<k>``.
    """
    if mode not in MODES:
        raise InputError(f"augmentation mode {mode!r} is not one of {MODES}")
    if mode == "none" or copies == 0:
        return data
    g = torch.Generator().manual_seed(seed)
    parts = [data]
    for k in range(copies):
        x, b = data.images.clone(), data.brains.clone()
        if mode in ("spatial", "both"):
            x, b = _spatial(x, b, g)
        if mode in ("intensity", "both"):
            x = _intensity(x, g)
        x = torch.stack([torch.from_numpy(equalize(s[0].numpy(), s[0].numpy() > 0))[None]
                         if m.any() else torch.zeros_like(s) for s, m in zip(x * b, b > 0, strict=True)])
        parts.append(Batch(images=x, masks=torch.zeros_like(x), brains=b,
                           subject_ids=[f"{s}_aug{k}" for s in data.subject_ids],
                           anomaly_types=list(data.anomaly_types), slice_indices=list(data.slice_indices)))
    return Batch.concat(parts)
