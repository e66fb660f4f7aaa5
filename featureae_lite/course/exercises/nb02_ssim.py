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


# -- design task: which window should SSIM compare neighbourhoods with? ------------------------------
_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)  # the held-out best is taken over these Gaussian windows
_SSIM_MARGIN = 0.04  # the pass bar: this close to the held-out AP of the best of those windows
_PAIR_SIZE = 40


def _window(sigma: float) -> dict:
    """ssim_map's keywords for a Gaussian window of standard deviation ``sigma`` cut at ±3σ."""
    return {"window_size": max(3, 2 * math.ceil(3 * sigma) + 1), "sigma": sigma}


def _pairs(rng: np.random.Generator, n: int, radius: float, noise: float
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` image pairs (x, x̂) and lesion masks: a smooth random texture; x̂ its blurred copy (what an
    autoencoder reconstructs); x the texture with noise and spots of about ``radius`` px in which the
    texture is replaced by another one of the same mean and spread (a change of arrangement only)."""
    from featureae_lite.core.maps import gaussian_blur

    g, size = _gen(rng), _PAIR_SIZE

    def texture() -> torch.Tensor:
        t = gaussian_blur(torch.randn(n, 1, size, size, generator=g), 11, 1.5, padding="reflect")
        return 0.5 + 0.12 * (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)

    healthy, other = texture(), texture()
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(min(12, max(1, round(60 / radius**2)))):  # about the same lesion area at every scale
            r = radius * float(rng.uniform(0.8, 1.25))
            cy, cx = rng.uniform(r + 1, size - r - 1, 2)
            masks[i, 0] = torch.maximum(masks[i, 0], (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float())
    x = healthy * (1 - masks) + other * masks + noise * torch.randn(n, 1, size, size, generator=g)
    return x, gaussian_blur(healthy, 5, 0.8, padding="reflect"), masks


@exercise("02_ssim", "design: SSIM's window (size and σ) chosen on validation pairs, graded by the held-out "
          "AP of the 1 − SSIM map", design=True)
def check_ssim_window(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.errors import InputError
    from featureae_lite.core.metrics import average_precision
    from featureae_lite.core.ssim import ssim_map

    scale = [rng.uniform(0, 0.15), rng.uniform(0.4, 0.55), rng.uniform(0.85, 1.0)][int(rng.integers(3))]
    radius, noise = float(1.5 * 8 ** scale), float(0.03 + 0.22 * scale)  # fine and clean … coarse and noisy
    val = _pairs(rng, 10, radius, noise)
    x, x_hat, masks = _pairs(rng, 10, radius, noise)
    got = fn(*(t.clone() for t in val))
    hint = ("the window sets how large a neighbourhood SSIM compares. A small window sees a change of a "
            "few pixels but also every noisy pixel; a large one averages the noise away but dilutes a "
            "small anomaly among normal pixels. The size of the anomalies and the noise differ from draw "
            "to draw: try several windows (the Gaussian's σ matters more than the cut-off size; a "
            "window about 6σ wide holds nearly all of it) and keep the one whose 1 − SSIM map reaches "
            "the highest pixel AP on the validation pairs.")
    if not isinstance(got, dict) or not got or set(got) - {"window_size", "sigma"}:
        raise Wrong(f"return a dict of ssim_map's window keywords, e.g. with the keys 'window_size' and "
                    f"'sigma'; got {got!r}.", hint)
    try:
        design = {"window_size": int(got.get("window_size", 11)), "sigma": float(got.get("sigma", 1.5))}
        if design["sigma"] <= 0 or not math.isfinite(design["sigma"]):
            raise InputError(f"sigma must be a positive number, got {design['sigma']}")
        amap = 1 - ssim_map(x_hat, x, **design)
    except (TypeError, ValueError) as err:  # InputError is a ValueError
        raise Wrong(f"ssim_map refuses the window {got!r}: {err}.", hint) from err

    def held_out_ap(m: torch.Tensor) -> float:
        return average_precision(m.numpy(), masks.numpy() > 0)

    mine, default = held_out_ap(amap), held_out_ap(1 - ssim_map(x_hat, x))
    best = max(held_out_ap(1 - ssim_map(x_hat, x, **_window(s))) for s in _SIGMAS)
    w, s = design["window_size"], design["sigma"]
    if mine < best - _SSIM_MARGIN:
        raise Wrong(f"with a {w}×{w} window (σ = {s:g}) the 1 − SSIM map reaches a pixel AP of {mine:.3f} on "
                    f"the held-out pairs; the best of the windows σ = {_SIGMAS[0]:g}–{_SIGMAS[-1]:g} reaches "
                    f"{best:.3f} (pass: within {_SSIM_MARGIN}).", hint)
    return (f"held-out pixel AP {mine:.2f} with a {w}×{w} window (σ = {s:g}), against {default:.2f} for "
            f"SSIM's default 11×11 window (σ = 1.5) and {best:.2f} for the best window on the held-out "
            f"pairs (anomalies of radius about {radius:.1f} px, noise {noise:.2f}).")
