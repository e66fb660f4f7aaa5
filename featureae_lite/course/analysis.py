"""Small measurements the notebooks use to explain *why* a method works or fails."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from featureae_lite.core.errors import InputError
from featureae_lite.core.maps import gaussian_blur


def lesion_contrast(values: Tensor, masks: Tensor, brains: Tensor) -> Tensor:
    """Standardised difference between lesion and normal brain, per channel.

    ``(mean inside lesions − mean in normal brain) / std in normal brain``, pooled over slices.
    For a grey image (C = 1) this says how *bright* lesions are; for feature maps (C channels)
    how strongly each channel responds to them. Feature maps are compared at their own resolution:
    the masks are area-averaged to (h, w), and each feature location counts with the fraction of its
    cell that is lesion (or normal brain) as weight.

    Parameters
    ----------
    values : Tensor
        (N, C, h, w) images or features, h and w dividing the masks' H and W.
    masks, brains : Tensor
        (N, 1, H, W) lesion and brain masks.

    Returns
    -------
    Tensor
        (C,) standardised differences (NaN if there is no lesion pixel).
    """
    n, c, h, w = values.shape
    if masks.shape[-2] % h or masks.shape[-1] % w:
        raise InputError(f"feature size {(h, w)} does not divide the mask size {tuple(masks.shape[-2:])}")
    lesion = (masks > 0).float()
    normal = ((brains > 0) & (masks == 0)).float()
    if (h, w) != tuple(masks.shape[-2:]):
        lesion, normal = F.adaptive_avg_pool2d(lesion, (h, w)), F.adaptive_avg_pool2d(normal, (h, w))
    v = values.double().transpose(0, 1).reshape(c, -1)  # (C, N·h·w)
    w_les, w_nor = lesion.double().reshape(-1), normal.double().reshape(-1)
    if not bool(w_les.sum() > 0):
        return torch.full((c,), float("nan"))
    mean_les = v @ w_les / w_les.sum()
    mean_nor = v @ w_nor / w_nor.sum()
    var_nor = ((v * v) @ w_nor / w_nor.sum() - mean_nor**2).clamp_min(0)
    return ((mean_les - mean_nor) / var_nor.sqrt().clamp_min(1e-8)).float()


def gradient_magnitude(images: Tensor) -> Tensor:
    """Sobel gradient magnitude (N, 1, H, W) of images (N, 1, H, W)."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3) / 8
    gx = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kx.transpose(2, 3))
    return (gx**2 + gy**2).sqrt()


def edge_ratio(maps: Tensor, images: Tensor, brains: Tensor, masks: Tensor | None = None,
               quantile: float = 0.9) -> float:
    """Mean map value on anatomical edges divided by the mean elsewhere, on normal brain pixels.

    Edges are the pixels whose Sobel gradient is above the ``quantile`` of in-brain gradients.
    A ratio well above 1 means the map lights up at tissue boundaries rather than at lesions.
    """
    grad = gradient_magnitude(images)
    keep = brains > 0
    if masks is not None:
        keep &= masks == 0
    g, m = grad[keep].numpy(), maps[keep].numpy()
    edge = g > np.quantile(g, quantile)
    return float(m[edge].mean() / max(m[~edge].mean(), 1e-12))


def domain_shifts(images: Tensor, brains: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """Test slices as another scanner might deliver them, after the usual preprocessing.

    Parameters
    ----------
    images, brains : Tensor
        (N, 1, H, W) preprocessed slices in [0, 1] and their brain masks.
    seed : int
        Seed of the noise.

    Returns
    -------
    dict of str to Tensor
        Name → shifted slices (N, 1, H, W), zero outside the brain, clipped to [0, 1]:
        ``"gamma 0.7"`` (another contrast, brighter mid-tones), ``"noise σ=0.05"`` (a noisier scanner)
        and ``"blur σ=1 px"`` (a lower resolution).
    """
    g = torch.Generator().manual_seed(seed)
    blurred = gaussian_blur(images, 7, 1.0, padding="replicate")
    shifted = {
        "gamma 0.7": images.clamp(0, 1) ** 0.7,
        "noise σ=0.05": images + 0.05 * torch.randn(images.shape, generator=g, dtype=images.dtype),
        "blur σ=1 px": blurred,
    }
    return {name: x.clamp(0, 1) * (brains > 0) for name, x in shifted.items()}
