"""Differentiable SSIM maps for any number of channels, with a separable Gaussian window.

SSIM (Wang et al. 2004) compares local means, standard deviations and covariance in a Gaussian
window. Per pixel,

    SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),

C1 = (k1 L)², C2 = (k2 L)², L the data range. As in the FAE reference the statistics use zero
padding of ``window_size // 2`` so the map has the input's shape; interior pixels equal
``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)``.
The 2-D Gaussian is applied as two 1-D depthwise convolutions (stacked over the five statistics for
images, per statistic for many-channel feature maps), and the batch is processed in chunks of
about :data:`CHUNK_ELEMENTS` values per tensor so that the ~30 element-wise intermediates of forward
and backward stay in the CPU cache, which is faster than one pass over the whole batch.

A training loss needs only the mean: :func:`ssim_loss` reduces each chunk as it goes and never
materialises the full map, which saves the full-size allocations (and their page faults) of the
map, of ``1 - map`` and of their gradients, and so shortens FAE's training step.

Measured speed-ups (``python benchmarks/speed.py``): docs/convergence.md, "SSIM and FAE step times".
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from featureae_lite.core.errors import InputError
from featureae_lite.core.maps import gaussian_blur


def _check(x: Tensor, y: Tensor, window_size: int) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise InputError(f"{name} has shape {tuple(t.shape)} but SSIM expects (N, C, H, W)")
        if not t.is_floating_point():
            raise InputError(f"{name} must be floating point, got {t.dtype}")
    if x.shape != y.shape:
        raise InputError(f"x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if window_size % 2 == 0 or window_size < 1:
        raise InputError(f"window_size must be a positive odd number, got {window_size}")
    if window_size > min(x.shape[-2:]):
        raise InputError(f"window_size {window_size} exceeds the image size {tuple(x.shape[-2:])}")
    # A sum is finite when every value is (one pass, no allocation); the element-wise test runs
    # only when it is not, so that a sum that merely overflows is not mistaken for bad input.
    for name, t in (("x", x), ("y", y)):
        if not torch.isfinite(t.detach().sum()) and not torch.isfinite(t).all():
            raise InputError(f"SSIM input {name} contains NaN or infinite values")


CHUNK_ELEMENTS = 1 << 20  # values per tensor and chunk (4 MiB in float32)
FEW_CHANNELS = 32  # below this, the five statistics are filtered in one stacked pass


def _local_stats(x: Tensor, y: Tensor, window_size: int, sigma: float) -> tuple[Tensor, ...]:
    """Gaussian-weighted μx, μy, σx², σy², σxy, each (N, C, H, W) (zero padding, same size).

    Few channels (images): the five statistics are stacked and filtered in one channels-last pass
    (groups = 5C) — per-statistic 1-channel convolutions are much slower on CPU. Many channels
    (feature maps): one depthwise pass per statistic, which is faster there (docs/convergence.md,
    "SSIM and FAE step times").
    """
    c = x.shape[1]
    if c < FEW_CHANNELS:
        stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1).contiguous(memory_format=torch.channels_last)
        mx, my, exx, eyy, exy = gaussian_blur(stacked, window_size, sigma).split(c, dim=1)
        return mx, my, exx - mx * mx, eyy - my * my, exy - mx * my

    def blur(t: Tensor) -> Tensor:
        return gaussian_blur(t, window_size, sigma)

    mx, my = blur(x), blur(y)
    return mx, my, blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my


def _chunk_maps(x: Tensor, y: Tensor, window_size: int, sigma: float, data_range: float, k1: float,
                k2: float) -> Iterator[Tensor]:
    """SSIM maps of batch chunks of about CHUNK_ELEMENTS values each, after checking the inputs.

    ``Tensor.split`` rather than indexing: the backward of a split concatenates the chunks'
    gradients once, where each indexed chunk would allocate and zero a full-size gradient.
    """
    _check(x, y, window_size)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    step = max(1, CHUNK_ELEMENTS // max(1, x[0].numel()))
    for xs, ys in zip(x.split(step), y.split(step), strict=True):
        mx, my, vx, vy, cxy = _local_stats(xs, ys, window_size, sigma)
        yield ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim_map(
    x: Tensor,
    y: Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Per-pixel, per-channel SSIM.

    Parameters
    ----------
    x, y : Tensor
        (N, C, H, W) inputs of equal shape; any C.
    window_size : int
        Odd size of the Gaussian window (11 for images, 5 in the FAE feature space).
    sigma : float
        Standard deviation of the window.
    data_range : float
        L in the constants C1 = (k1 L)², C2 = (k2 L)².

    Returns
    -------
    Tensor
        (N, C, H, W) SSIM values (1 = identical neighbourhoods), differentiable.
    """
    parts = list(_chunk_maps(x, y, window_size, sigma, data_range, k1, k2))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def ssim_loss(
    x: Tensor,
    y: Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """1 − mean SSIM over every pixel and channel: ``1 - ssim_map(x, y, ...).mean()``, computed chunk
    by chunk without the full map (see the module docstring); same arguments as :func:`ssim_map`.

    Returns
    -------
    Tensor
        A differentiable scalar.
    """
    total = sum(m.sum() for m in _chunk_maps(x, y, window_size, sigma, data_range, k1, k2))
    return 1 - total / x.numel()


def ssim_components(
    x: Tensor,
    y: Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> tuple[Tensor, Tensor, Tensor]:
    """Luminance, contrast and structure maps, each (N, C, H, W); with C3 = C2 / 2 their product
    is :func:`ssim_map`."""
    _check(x, y, window_size)
    return ssim_terms_from_stats(*_local_stats(x, y, window_size, sigma), data_range=data_range, k1=k1, k2=k2)


def ssim_terms_from_stats(
    mx: Tensor,
    my: Tensor,
    vx: Tensor,
    vy: Tensor,
    cxy: Tensor,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> tuple[Tensor, Tensor, Tensor]:
    """SSIM's luminance, contrast and structure terms from the statistics they are made of.

    Parameters
    ----------
    mx, my, vx, vy, cxy : Tensor
        Means μx, μy, variances σx², σy² and covariance σxy, all of one shape: local (Gaussian-window)
        maps as in :func:`ssim_components`, or 0-d tensors of the population statistics of two whole
        patches.
    data_range, k1, k2 : float
        C1 = (k1 L)², C2 = (k2 L)², C3 = C2 / 2.

    Returns
    -------
    tuple of Tensor
        luminance (2 μx μy + C1) / (μx² + μy² + C1), contrast (2 σx σy + C2) / (σx² + σy² + C2) and
        structure (σxy + C3) / (σx σy + C3), each of the statistics' shape.
    """
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    c3 = c2 / 2
    sx, sy = vx.clamp_min(0).sqrt(), vy.clamp_min(0).sqrt()
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    con = (2 * sx * sy + c2) / (vx + vy + c2)
    struc = (cxy + c3) / (sx * sy + c3)
    return lum, con, struc


def interior_ssim_terms(x: Tensor, y: Tensor, window_size: int = 11, data_range: float = 1.0
                        ) -> dict[str, float]:
    """Mean luminance, contrast, structure and SSIM of two patches over their interior pixels.

    The interior is the pixels whose window lies inside the patch (at the border the zero padding of
    :func:`ssim_components` would mix in statistics of the padding).

    Parameters
    ----------
    x, y : Tensor
        (H, W) patches, H, W > ``window_size``.

    Returns
    -------
    dict
        ``"luminance"``, ``"contrast"``, ``"structure"`` (means of the maps of
        :func:`ssim_components`) and ``"SSIM"`` (mean of :func:`ssim_map`), as floats.
    """
    a, b = x[None, None].float(), y[None, None].float()
    r = window_size // 2
    core = (..., slice(r, a.shape[-2] - r), slice(r, a.shape[-1] - r))
    terms = ssim_components(a, b, window_size, data_range=data_range)
    lum, con, struc = (float(t[core].mean()) for t in terms)
    return {"luminance": lum, "contrast": con, "structure": struc,
            "SSIM": float(ssim_map(a, b, window_size, data_range=data_range)[core].mean())}

