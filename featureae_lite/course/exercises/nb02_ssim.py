"""Checkers of the exercises of notebook ``02_ssim``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _gen, _number
from featureae_lite.course.exercises.registry import Wrong, exercise


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[float, float, float]:
    """SSIM's three terms of two whole (H, W) patches: :func:`featureae_lite.core.ssim.ssim_terms_from_stats`
    of their population statistics (one window covering the patch)."""
    from featureae_lite.core.ssim import ssim_terms_from_stats

    mx, my = x.mean(), y.mean()
    stats = (mx, my, x.var(unbiased=False), y.var(unbiased=False), ((x - mx) * (y - my)).mean())
    lum, con, struc = ssim_terms_from_stats(*stats, data_range=data_range)
    return float(lum), float(con), float(struc)


@exercise("02_ssim", "SSIM's luminance, contrast and structure terms of two patches",
          forbidden=("featureae_lite.core.ssim.ssim_terms_from_stats",
                     "featureae_lite.core.ssim.ssim_components",
                     "featureae_lite.core.ssim.interior_ssim_terms"))
def check_ssim_terms(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    size = int(rng.integers(5, 12))
    x = torch.rand(size, size, generator=g)
    cases = {"a brighter, flatter copy": x * rng.uniform(0.3, 0.8) + rng.uniform(0.1, 0.4),
             "a noisy copy": x + rng.uniform(0.1, 0.4) * torch.rand(size, size, generator=g),
             "a mirrored copy": x.flip(-1), "a flat patch": torch.full((size, size), rng.uniform(0.2, 0.8))}
    for name, y in cases.items():
        got = fn(x, y)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Wrong("return a tuple (luminance, contrast, structure).")
        for label, value, want in zip(("luminance", "contrast", "structure"), got, _ssim_terms(x, y),
                                      strict=True):
            _number(value, want, f"the {label} term for {name}",
                    "the statistics describe the whole patch as a population: divide by the number of "
                    "pixels, not by one less. The three constants that keep each term finite on flat "
                    "patches are the ones the task gives, for a data range of 1.", tol=1e-4)


@exercise("02_ssim", "the SSIM loss 1 − mean SSIM of a batch and its reconstruction",
          forbidden=("featureae_lite.core.ssim.ssim_loss",))
def check_ssim_loss(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.ssim import ssim_loss

    g = _gen(rng)
    x = torch.rand(int(rng.integers(1, 4)), 1, int(rng.integers(16, 32)), 24, generator=g)
    x_hat = (x + rng.uniform(0.05, 0.3) * torch.rand(x.shape, generator=g)).clamp(0, 1)
    _number(fn(x, x_hat), float(ssim_loss(x_hat, x)), "ssim_loss(x, x_hat)",
            "SSIM is measured per pixel (a window around each one); the loss is one minus its average "
            "over every pixel of every image in the batch, so a perfect reconstruction costs 0.")


@exercise("02_ssim", "count the pairs of items two measures order in opposite directions")
def check_discordant_pairs(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("look at every unordered pair of names present in both dicts: the pair is discordant when "
            "one measure says the first is larger and the other says it is smaller. A tie in either "
            "measure, or a NaN in any of the four values, does not count.")

    def want(a: dict, b: dict) -> int:
        keys = [k for k in a if k in b and not (math.isnan(a[k]) or math.isnan(b[k]))]
        return sum((a[p] - a[q]) * (b[p] - b[q]) < 0 for i, p in enumerate(keys) for q in keys[i + 1:])

    for case in range(4):
        n = int(rng.integers(5, 12))
        names = [f"variant_{int(v)}" for v in rng.choice(100, size=n, replace=False)]
        a = {k: float(rng.uniform(0, 1)) for k in names}
        b = {k: float(0.5 * a[k] + rng.uniform(0, 1)) for k in rng.permutation(names)}
        if case == 1:  # ties: equal values in one measure are not discordant
            b[names[1]] = b[names[0]]
            a[names[3]] = a[names[2]]
        if case == 2:  # a NaN, and names only one measure has
            a[names[0]] = float("nan")
            a["only_in_a"], b["only_in_b"] = 0.5, 0.5
        _number(fn(dict(a), dict(b)), want(a, b), f"the discordant pairs of {len(a)} and {len(b)} values",
                hint, tol=0)
    _number(fn({"x": 1.0}, {"x": 2.0}), 0, "the discordant pairs of a single item", hint, tol=0)
