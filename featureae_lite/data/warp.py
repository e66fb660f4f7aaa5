"""Resampling helpers shared by the subject synthesiser and the anomaly generators: voxel grids,
trilinear warping of volumes and smooth random fields (deformations, bias fields, irregular shapes)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def warp(volumes: np.ndarray, coords: torch.Tensor) -> np.ndarray:
    """Trilinearly resample volumes at voxel coordinates (zero outside).

    Parameters
    ----------
    volumes : ndarray
        float32 (C, X, Y, Z).
    coords : Tensor
        (X', Y', Z', 3) voxel coordinates to sample, in (x, y, z) order.

    Returns
    -------
    ndarray
        float32 (C, X', Y', Z').
    """
    size = torch.tensor(volumes.shape[1:], dtype=torch.float32)
    norm = 2 * coords / (size - 1) - 1  # align_corners=True convention
    grid = norm.flip(-1)[None]  # grid_sample wants (w, h, d) = (z, y, x) order
    out = F.grid_sample(torch.from_numpy(np.ascontiguousarray(volumes))[None], grid, mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return out[0].numpy()


def identity_coords(shape: tuple[int, int, int]) -> torch.Tensor:
    """Voxel coordinates (X, Y, Z, 3) of a grid of the given shape."""
    axes = [torch.arange(n, dtype=torch.float32) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], coarse: tuple[int, ...],
                 channels: int, std: float) -> torch.Tensor:
    """A smooth random field: Gaussian noise on a coarse grid, trilinearly upsampled.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the noise.
    shape : tuple of int
        Output grid (X, Y, Z).
    coarse : tuple of int
        Coarse grid of the noise; fewer points give a smoother field.
    channels : int
        Number of independent fields.
    std : float
        Standard deviation of the coarse noise.

    Returns
    -------
    Tensor
        float32 (channels, X, Y, Z).
    """
    noise = torch.from_numpy(rng.normal(0, std, size=(1, channels, *coarse)).astype(np.float32))
    return F.interpolate(noise, size=shape, mode="trilinear", align_corners=True)[0]
