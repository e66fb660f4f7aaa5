"""Checkers of the exercises of notebook ``01_l1_residual_autoencoder``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _close, _gen, _maps, _number, _unwrap
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("01_l1_residual_autoencoder", "the l1 residual map |x − x̂|")
def check_l1_residual(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    n, size = int(rng.integers(1, 4)), int(rng.integers(8, 24))
    x, x_hat = torch.rand(n, 1, size, size, generator=g), torch.rand(n, 1, size, size, generator=g)
    _close(fn(x, x_hat), (x - x_hat).abs(), "l1_residual(x, x_hat)",
           "the map keeps the shape (N, 1, H, W): take the absolute difference pixel by pixel.")


@exercise("01_l1_residual_autoencoder", "image score: mean of in-brain map values above the 90th percentile",
          forbidden=("featureae_lite.core.maps.image_scores", "featureae_lite.core.maps.top_fraction_scores"))
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
    got = _unwrap(got)
    if not (isinstance(got, float) and math.isnan(got)):
        raise Wrong(f"for a map that is 0 everywhere the share is undefined (0 / 0): expected NaN, "
                    f"got {got!r}.", hint)


# -- design task: which share of the highest in-brain values should score a slice? -------------------
_FRACTIONS = tuple(float(f) for f in np.geomspace(0.002, 1.0, 10))  # the held-out best is taken over these
_AP_MARGIN = 0.04  # the pass bar: this close to the held-out AP of the best of _FRACTIONS


def _residual_toy(rng: np.random.Generator, radius: float, amplitude: float, n: int,
                  size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` residual-like maps of a round brain: half-normal noise scaled by a gain per slice (some
    slices reconstruct worse than others), 1 % of bright 'edge' pixels, and in half of the slices a
    lesion disk of about ``radius`` px raised by ``amplitude``. Returns (maps, masks, brains)."""
    g = _gen(rng)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    brain = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 2 - 2) ** 2
    inside = brain.nonzero()
    maps = 0.1 * torch.randn(n, size, size, generator=g).abs()
    maps += (torch.rand(n, size, size, generator=g) < 0.01) * 0.6 * torch.rand(n, size, size, generator=g)
    r = torch.from_numpy(radius * rng.uniform(0.8, 1.25, n // 2)).float()[:, None, None]
    cy, cx = inside[torch.from_numpy(rng.integers(len(inside), size=n // 2))].T[:, :, None, None]
    masks = torch.zeros(n, size, size)
    masks[: n // 2] = (((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & brain).float()
    gains = torch.from_numpy(rng.uniform(0.8, 1.2, n)).float()[:, None, None]
    maps = (maps + amplitude * masks) * gains * brain
    order = torch.from_numpy(rng.permutation(n))
    return maps[order, None], masks[order, None], brain.float().expand(n, 1, size, size).clone()


@exercise("01_l1_residual_autoencoder", "design: the share of the highest in-brain values whose mean "
          "scores a slice, chosen on validation slices", design=True)
def check_top_fraction(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.maps import top_fraction_scores
    from featureae_lite.core.metrics import average_precision

    radius = float(np.exp(rng.uniform(np.log(0.6), np.log(12.0))))
    amplitude = 0.65 * radius ** -0.9 * float(rng.uniform(0.85, 1.15))  # smaller lesions, brighter
    val = _residual_toy(rng, radius, amplitude, 160)
    maps, masks, brains = _residual_toy(rng, radius, amplitude, 240)
    got = fn(*(t.clone() for t in val))
    hint = ("which fraction is best depends on how much of the brain a lesion covers: a few bright "
            "pixels are found by averaging only the very highest values, a large faint lesion by "
            "averaging many (then single noisy pixels and the slice's overall level matter less). The "
            "top-10 % rule is one choice among these. Compare candidate fractions by the image AP they "
            "reach on the validation slices you are given (a slice is anomalous when its mask has a "
            "lesion pixel), or estimate from the validation masks how much of the brain the lesions "
            "cover.")
    if isinstance(got, torch.Tensor | np.ndarray) and int(np.prod(got.shape)) == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, int | float | np.number) or not 0 < float(got) <= 1:
        raise Wrong(f"return one number in (0, 1], the share of each slice's in-brain pixels to average; "
                    f"got {got!r}.", hint)
    fraction, labels = float(got), masks.flatten(1).amax(1).numpy() > 0

    def held_out_ap(f: float) -> float:
        return average_precision(top_fraction_scores(maps, brains, f).numpy(), labels)

    mine, top10, best = held_out_ap(fraction), held_out_ap(0.1), max(held_out_ap(f) for f in _FRACTIONS)
    if mine < best - _AP_MARGIN:
        raise Wrong(f"the top {fraction:.3g} of the in-brain values scores the held-out slices with an image "
                    f"AP of {mine:.3f}; the best of the fractions {_FRACTIONS[0]:g}–1 reaches {best:.3f} "
                    f"(pass: within {_AP_MARGIN}).", hint)
    share = float(masks.sum() / (masks.flatten(1).amax(1) > 0).sum() / brains[0].sum())
    return (f"held-out image AP {mine:.2f} with the top {fraction:.2%} of in-brain values, against "
            f"{top10:.2f} for the top-10 % rule and {best:.2f} for the best fraction on the held-out "
            f"slices (a lesion covered {share:.1%} of the brain).")
