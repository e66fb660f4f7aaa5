"""Checkers of the exercises of notebook ``07_proxy_bridged_reconstruction``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _close, _gen
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("07_proxy_bridged_reconstruction", "superpixel image: every region set to its mean intensity",
          forbidden=("featureae_lite.models.superpixels.superpixel_image",
                     "featureae_lite.models.superpixels.superpixel_images"))
def check_superpixel_mean_image(fn: Callable, rng: np.random.Generator) -> None:
    h, w = (int(v) for v in rng.integers(8, 20, size=2))
    image = rng.random((h, w))
    labels = rng.integers(0, int(rng.integers(2, 7)), size=(h, w))
    want = np.zeros_like(image)
    for k in np.unique(labels[labels > 0]):
        want[labels == k] = image[labels == k].mean()
    _close(fn(image, labels), torch.from_numpy(want), "superpixel_mean_image(image, labels)",
           "label 0 is background and stays 0; every pixel of region k gets the mean intensity of region k.")


@exercise("07_proxy_bridged_reconstruction", "the memory read-out softmax(z·Mᵀ/τ)·M")
def check_memory_readout(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    k, m, d = (int(v) for v in rng.integers(2, 9, size=3))
    z, memory = torch.randn(k, d, generator=g), torch.randn(m, d, generator=g)
    tau = float(rng.uniform(0.1, 2.0))
    want = torch.softmax(z @ memory.t() / tau, dim=1) @ memory
    _close(fn(z, memory, tau), want, f"memory_readout(z, memory, {tau:.3g})",
           "each latent vector's similarities to the slots (dot products, divided by the temperature) "
           "become weights by a softmax over the slots; the read-out is the weighted sum of the slots, "
           "shape (K, D).")


@exercise("07_proxy_bridged_reconstruction", "predict, then tally per-type wins, ties and losses of an "
          "ablation")
def check_wins_ties_losses(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("compare only the types that both dicts hold with a finite value in both; a difference "
            "whose size is at most tol (tol itself included) is a tie; return three whole numbers.")
    types = ["tumor", "structural", "stroke", "lesions", "edema", "cyst", "bleed"]
    quarter = 0.25  # edge case: differences of exactly tol (exact in binary) are ties
    cases = [({"tumor": quarter + quarter / 2, "stroke": quarter, "lesions": float("nan")},
              {"tumor": quarter, "stroke": quarter + quarter / 2, "lesions": 0.1, "only_in_b": 0.3},
              quarter / 2), ({}, {}, 0.0)]
    for _ in range(3):
        chosen = [str(t) for t in rng.permutation(types)[: int(rng.integers(3, 8))]]
        a = {t: float(rng.uniform(0, 0.1)) for t in chosen}
        b = {t: v + float(rng.normal(0, 0.01)) for t, v in a.items()}
        if rng.random() < 0.6:
            b[chosen[int(rng.integers(len(chosen)))]] = float("nan")
        del b[chosen[0]]  # a type the other model was not measured on
        cases.append((a, b, float(rng.uniform(0, 0.01))))
    for a, b, tol in cases:
        diffs = [a[t] - b[t] for t in a if t in b and math.isfinite(a[t]) and math.isfinite(b[t])]
        want = (sum(d > tol for d in diffs), sum(abs(d) <= tol for d in diffs), sum(d < -tol for d in diffs))
        got = fn(dict(a), dict(b), tol)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Wrong(f"return a tuple (wins, ties, losses), got {got!r}.", hint)
        if tuple(int(v) for v in got) != want:
            raise Wrong(f"for a = {a}, b = {b}, tol = {tol:.4g} expected (wins, ties, losses) = {want}, "
                        f"got {tuple(got)}.", hint)
