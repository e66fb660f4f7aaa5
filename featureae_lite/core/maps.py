"""The map-and-score toolkit every method shares: Gaussian windows and blur, feature-distance maps
back to image resolution, map post-processing and the image-score rule.

One implementation of each, so that SSIM, local NCC, map smoothing and the notebooks' blur are the
same filter, and every method turns maps into image scores the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from featureae_lite.core.errors import InputError

ScoreRule = Literal["top10_mean", "max"]
SCORE_RULES: tuple[str, ...] = get_args(ScoreRule)


def gaussian_window(window_size: int, sigma: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 1-D Gaussian of length ``window_size`` (odd), shape (window_size,)."""
    x = torch.arange(window_size, dtype=dtype) - (window_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_blur(x: Tensor, window_size: int, sigma: float, padding: str = "zeros") -> Tensor:
    """Separable Gaussian blur of every channel, (N, C, H, W) → (N, C, H, W).

    Parameters
    ----------
    x : Tensor
        (N, C, H, W).
    window_size : int
        Odd window length.
    sigma : float
        Standard deviation in pixels.
    padding : str
        ``"zeros"`` (SSIM's convention), ``"reflect"`` or ``"replicate"``.
    """
    c, pad = x.shape[1], window_size // 2
    g = gaussian_window(window_size, sigma, x.dtype).to(x.device)
    kh = g.view(1, 1, 1, -1).expand(c, 1, 1, window_size)
    kv = g.view(1, 1, -1, 1).expand(c, 1, window_size, 1)
    if padding == "zeros":
        return F.conv2d(F.conv2d(x, kh, padding=(0, pad), groups=c), kv, padding=(pad, 0), groups=c)
    x = F.pad(x, (pad,) * 4, mode=padding)
    return F.conv2d(F.conv2d(x, kh, groups=c), kv, groups=c)


def to_image_map(distance: Tensor, size: tuple[int, int]) -> Tensor:
    """Channel mean of a distance map, bilinearly upsampled: (N, C, h, w) → (N, 1, *size).

    How feature-space methods (FAE, DPA, feature cosine) return to image resolution
    (``align_corners=True``, as in the FAE reference).
    """
    amap = distance.mean(dim=1, keepdim=True)
    return F.interpolate(amap, size=tuple(size), mode="bilinear", align_corners=True)


def postprocess(maps: Tensor, brains: Tensor | None, mask_brain: bool = True,
                smooth_sigma: float = 0.0) -> Tensor:
    """Shared post-processing: optional Gaussian smoothing, then optional brain masking.

    Parameters
    ----------
    maps : Tensor
        Raw maps (N, 1, H, W).
    brains : Tensor or None
        Brain masks (N, 1, H, W); masking is skipped when None.
    mask_brain : bool
        Zero the map outside the brain.
    smooth_sigma : float
        Standard deviation of the Gaussian in pixels (window ±3σ, reflect padding); 0 disables it.
    """
    if smooth_sigma > 0:
        radius = max(1, int(round(3 * smooth_sigma)))
        maps = gaussian_blur(maps, 2 * radius + 1, smooth_sigma, padding="reflect")
    if mask_brain and brains is not None:
        maps = maps * (brains > 0)
    return maps


def image_scores(maps: Tensor, brains: Tensor | None, rule: str = "top10_mean") -> Tensor:
    """Image-level score per slice from its map: the one rule every method and metric uses.

    Parameters
    ----------
    maps : Tensor
        (N, 1, H, W) anomaly maps.
    brains : Tensor or None
        (N, 1, H, W) brain masks; without one, every pixel counts.
    rule : str
        ``"top10_mean"`` (default): mean of in-brain values above the 90th percentile (FAE
        reference); ``"max"``: in-brain maximum (UPD study). Slices with no brain pixel score 0.

    Returns
    -------
    Tensor
        (N,) scores.
    """
    if rule not in SCORE_RULES:
        raise InputError(f"score rule must be one of {SCORE_RULES}, got {rule!r}")
    flat = maps.flatten(1)
    inside = torch.ones_like(flat, dtype=torch.bool) if brains is None else brains.flatten(1) > 0
    out = torch.zeros(len(flat), dtype=maps.dtype)
    for i in range(len(flat)):
        vals = flat[i][inside[i]]
        if vals.numel() == 0:
            continue
        if rule == "max":
            out[i] = vals.max()
        else:
            q = torch.quantile(vals.float(), 0.9)
            out[i] = vals[vals >= q].mean()
    return out


def top_fraction_scores(maps: Tensor, brains: Tensor | None, fraction: float) -> Tensor:
    """Image score per slice: the mean of its highest ``fraction`` of in-brain map values.

    The family that :func:`image_scores` takes two members of: a fraction of one pixel is the
    maximum, 0.1 about the top-10 % mean, 1 the plain mean over the brain (notebook 01's design task
    chooses the fraction on validation slices).

    Parameters
    ----------
    maps : Tensor
        (N, 1, H, W) anomaly maps.
    brains : Tensor or None
        (N, 1, H, W) brain masks; without one, every pixel counts.
    fraction : float
        In (0, 1]: the share of each slice's in-brain pixels that is averaged (at least one pixel,
        ``ceil(fraction · n)`` of ``n``). Slices with no brain pixel score 0.

    Returns
    -------
    Tensor
        (N,) scores.
    """
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction}")
    flat = maps.detach().flatten(1).float()
    inside = torch.ones_like(flat, dtype=torch.bool) if brains is None else brains.flatten(1) > 0
    ranked = torch.where(inside, flat, torch.tensor(-torch.inf)).sort(dim=1, descending=True).values
    sums = torch.where(torch.isfinite(ranked), ranked, torch.zeros(())).cumsum(dim=1)
    n = inside.sum(dim=1)
    k = torch.ceil(fraction * n.double()).long().clamp(min=1, max=flat.shape[1])
    out = sums.gather(1, (k - 1)[:, None])[:, 0] / k
    return torch.where(n > 0, out, torch.zeros(())).to(maps.dtype)


def batched(fn: Callable[[int, int], Tensor], n: int, batch_size: int) -> list[Tensor]:
    """``[fn(0, b), fn(b, 2b), …]`` over ``n`` items in slices of ``batch_size``."""
    return [fn(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
