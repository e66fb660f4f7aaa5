"""Checkers of the exercises of notebook ``07_proxy_bridged_reconstruction``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _close, _gen, _unwrap
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


def _memory_latents(rng: np.random.Generator
                    ) -> tuple[torch.Tensor, Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]]:
    """A memory of K prototypes (D-dim, a scale drawn per draw) and a sampler of latent vectors: normal
    ones are convex mixtures of 2–3 prototypes plus a little noise, anomalous ones are normal ones
    pushed off in a random direction."""
    dim, slots = int(rng.integers(12, 33)), int(rng.integers(8, 33))
    scale, mix = 10 ** rng.uniform(-1.5, 1.5), int(rng.integers(2, 4))
    push = scale * rng.uniform(0.3, 0.6)
    memory = rng.normal(0, scale, (slots, dim))

    def sample(n_normal: int, n_anomalous: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = n_normal + n_anomalous
        chosen = np.argsort(rng.random((n, slots)), axis=1)[:, :mix]
        z = (rng.dirichlet(np.ones(mix), n)[:, :, None] * memory[chosen]).sum(1)
        z += rng.normal(0, 0.05 * scale, (n, dim))
        z[n_normal:] += rng.normal(0, push, (n_anomalous, dim))
        return torch.from_numpy(z).float(), torch.arange(n) >= n_normal

    return torch.from_numpy(memory).float(), sample


def _readout_change(z: torch.Tensor, memory: torch.Tensor, temperature: float) -> np.ndarray:
    """How far the memory read-out moves each latent vector: ‖z − softmax(z·Mᵀ/τ)·M‖."""
    z, memory = z.double(), memory.double()
    readout = torch.softmax(z @ memory.t() / temperature, dim=1) @ memory
    return (z - readout).norm(dim=1).numpy()


@exercise("07_proxy_bridged_reconstruction", "design: a memory temperature chosen on validation latents "
          "so that the read-out changes anomalous latents more than normal ones", design=True)
def check_choose_temperature(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.metrics import average_precision

    hint = ("the temperature only means something relative to the size of the dot products z·Mᵀ, and "
            "that size changes from one memory to the next. A very low temperature snaps every latent to "
            "its nearest slot (normal mixtures of slots move too); a very high one replaces every latent "
            "by the average slot (everything moves). Measure on the validation latents what each "
            "candidate does, over a range wide enough for the scale of this memory.")
    memory, sample = _memory_latents(rng)
    val_z, val_anomalous = sample(300, 100)
    z, anomalous = sample(1000, 250)
    got = fn(memory.clone(), val_z.clone(), val_anomalous.clone())
    got = _unwrap(got)
    try:
        tau = float(got)
    except (TypeError, ValueError) as err:
        raise Wrong(f"return one temperature (a positive number), got {type(got).__name__}.", hint) from err
    if not (math.isfinite(tau) and tau > 0):
        raise Wrong(f"the temperature must be a positive, finite number, got {tau!r}.", hint)
    labels = anomalous.numpy()
    grid = 10.0 ** np.arange(-4, 5.01, 0.25)
    aps = [average_precision(_readout_change(z, memory, t), labels) for t in grid]
    change = _readout_change(z, memory, tau)
    if not np.isfinite(change).all():
        raise Wrong(f"at τ = {tau:.3g} the read-out overflows (NaN or infinite values).", hint)
    ap, best = average_precision(change, labels), int(np.argmax(aps))
    default = average_precision(_readout_change(z, memory, 1.0), labels)
    measured = (f"held-out AP of the read-out change {ap:.3f} at τ = {tau:.3g}; the best τ of a grid on the "
                f"held-out latents reaches {aps[best]:.3f} (τ = {grid[best]:.3g}), the default τ = 1 "
                f"{default:.3f}")
    if ap < aps[best] - 0.15:
        raise Wrong(f"{measured}. The bar: within 0.15 of the best.", hint)
    return measured + "."
