"""Checkers of the exercises of notebook ``01_l1_residual_autoencoder``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _close, _gen, _maps, _number
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("01_l1_residual_autoencoder", "the l1 residual map |x − x̂|")
def check_l1_residual(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    n, size = int(rng.integers(1, 4)), int(rng.integers(8, 24))
    x, x_hat = torch.rand(n, 1, size, size, generator=g), torch.rand(n, 1, size, size, generator=g)
    _close(fn(x, x_hat), (x - x_hat).abs(), "l1_residual(x, x_hat)",
           "the map keeps the shape (N, 1, H, W): take the absolute difference pixel by pixel.")


@exercise("01_l1_residual_autoencoder", "image score: mean of in-brain map values above the 90th percentile",
          forbidden=("featureae_lite.core.maps.image_scores",))
def check_top10_mean_score(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.maps import image_scores

    maps, brains = _maps(_gen(rng), int(rng.integers(2, 6)), int(rng.integers(12, 28)))
    _close(fn(maps, brains), image_scores(maps, brains, "top10_mean"), "top10_mean_score(maps, brains)",
           "work slice by slice and look only at the pixels inside that slice's brain: find the value "
           "that 90 % of them lie below (their 90th percentile) and average the values at or above it. "
           "Each slice gives one number, so the answer holds one score per slice.")


@exercise("01_l1_residual_autoencoder", "the share of a map's in-brain mass that lies on lesion pixels")
def check_lesion_mass_share(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("the share is a ratio of two sums over all slices together: below, the map's values over "
            "every brain pixel; above, only over the pixels that are in the brain *and* in the lesion "
            "(a lesion pixel outside the brain does not count). A map with no mass in the brain has no "
            "share: the answer is then NaN, not a division by zero.")
    g = _gen(rng)
    for _ in range(3):
        n, size = int(rng.integers(1, 5)), int(rng.integers(8, 20))
        maps, brains = _maps(g, n, size)
        maps = maps * float(rng.uniform(0.1, 5.0))
        masks = (torch.rand(n, 1, size, size, generator=g) < rng.uniform(0.02, 0.3)).float()
        masks[..., 0, :] = 1.0  # lesion pixels outside the brain box must not count
        inside = brains > 0
        want = float(maps[inside & (masks > 0)].sum() / maps[inside].sum())
        _number(fn(maps, masks, brains), want, f"the lesion share of {n} random maps of {size}×{size} px",
                hint, tol=1e-5)
    _number(fn(maps, torch.zeros_like(masks), brains), 0.0, "the share when there is no lesion pixel", hint)
    got = fn(torch.zeros_like(maps), masks, brains)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not (isinstance(got, float) and math.isnan(got)):
        raise Wrong(f"for a map that is 0 everywhere the share is undefined (0 / 0): expected NaN, "
                    f"got {got!r}.", hint)
