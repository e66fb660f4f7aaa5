"""Small measurements the notebooks use to explain *why* a method works or fails."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def lesion_contrast(values: Tensor, masks: Tensor, brains: Tensor) -> Tensor:
    """Standardised difference between lesion and normal brain, per channel.

    ``(mean inside lesions − mean in normal brain) / std in normal brain``, pooled over slices.
    For a grey image (C = 1) this says how *bright* lesions are; for feature maps (C channels,
    resized to the mask resolution) how strongly each channel responds to them.

    Parameters
    ----------
    values : Tensor
        (N, C, h, w) images or features; resized bilinearly to the masks' (H, W) if needed.
    masks, brains : Tensor
        (N, 1, H, W) lesion and brain masks.

    Returns
    -------
    Tensor
        (C,) standardised differences (NaN if there is no lesion pixel).
    """
    c = values.shape[1]
    acc = torch.zeros(5, c, dtype=torch.float64)  # Σx lesion, n lesion, Σx normal, Σx² normal, n normal
    step = max(1, (1 << 22) // max(1, c * masks.shape[-2] * masks.shape[-1]))  # bounded memory
    for i in range(0, len(values), step):
        v = values[i : i + step]
        if v.shape[-2:] != masks.shape[-2:]:
            v = F.interpolate(v, size=masks.shape[-2:], mode="bilinear", align_corners=True)
        v = v.double().transpose(0, 1).reshape(c, -1)
        les = (masks[i : i + step] > 0).reshape(1, -1).double()
        nor = ((brains[i : i + step] > 0) & (masks[i : i + step] == 0)).reshape(1, -1).double()
        acc += torch.stack([(v * les).sum(1), les.sum().expand(c), (v * nor).sum(1),
                            (v * v * nor).sum(1), nor.sum().expand(c)])
    if not bool(acc[1, 0] > 0):
        return torch.full((c,), float("nan"))
    mean_les, mean_nor = acc[0] / acc[1], acc[2] / acc[4]
    var_nor = (acc[3] / acc[4] - mean_nor**2).clamp_min(0)
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
