"""Random boxes on brain slices: where pseudo-anomalies (ProxyAno) and corruptions (patchsim) go."""

from __future__ import annotations

import torch
from torch import Tensor


def random_box(pixels: Tensor, height: int, width: int, shape: tuple[int, int],
               rng: torch.Generator | None = None) -> tuple[int, int]:
    """Top-left corner (y0, x0) of a ``height`` × ``width`` box centred on a random pixel.

    Parameters
    ----------
    pixels : Tensor
        (K, 2) candidate centres (e.g. ``brain.nonzero()``); the image centre when K = 0.
    height, width : int
        Box size (at most the image size).
    shape : (int, int)
        Image size (H, W); the box is shifted to lie inside it.
    rng : torch.Generator, optional
        Random generator (default: the global torch RNG); one draw when K > 0.
    """
    h, w = shape
    if len(pixels):
        cy, cx = pixels[int(torch.randint(len(pixels), (1,), generator=rng))].tolist()
    else:
        cy, cx = h // 2, w // 2
    return min(max(cy - height // 2, 0), h - height), min(max(cx - width // 2, 0), w - width)
