"""Checkers of the exercises of notebook ``04_feature_autoencoder``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _close, _gen, _number
from featureae_lite.course.exercises.registry import Wrong, exercise


def _features(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(rng)
    shape = (int(rng.integers(1, 4)), int(rng.integers(2, 8)), int(rng.integers(8, 16)), 12)
    f = torch.randn(*shape, generator=g)
    return f, f + rng.uniform(0.1, 0.5) * torch.randn(*shape, generator=g)


@exercise("04_feature_autoencoder", "FAE's training loss: 1 − mean feature-space SSIM (5×5 window)",
          forbidden=("featureae_lite.core.ssim.ssim_loss",))
def check_feature_ssim_loss(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.ssim import ssim_loss

    f, f_hat = _features(rng)
    _number(fn(f, f_hat), float(ssim_loss(f_hat, f, window_size=5)), "feature_ssim_loss(f, f_hat)",
            "SSIM is measured per pixel and per channel, for any number of channels; FAE compares "
            "features in a 5×5 window (images use 11×11). The loss is one minus the average over "
            "every pixel, channel and slice.")


@exercise("04_feature_autoencoder", "FAE's anomaly map: channel-mean 1 − SSIM upsampled to the image",
          forbidden=("featureae_lite.models.fae.fae_anomaly_map", "featureae_lite.models.fae.ssim_distance"))
def check_fae_map(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.models.fae import fae_anomaly_map

    f, f_hat = _features(rng)
    size = 4 * f.shape[-1]
    want = fae_anomaly_map(f, f_hat, (size, size), window_size=5)
    _close(fn(f, f_hat, size), want, f"fae_map(f, f_hat, {size})",
           "the per-pixel dissimilarity is one minus feature-space SSIM in a 5×5 window; average it over "
           "the channels (keeping a channel axis of size 1), then upsample bilinearly with aligned corners.")


@exercise("04_feature_autoencoder", "the variant whose value falls furthest below the reference (or None)")
def check_largest_drop(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("compare every entry other than the reference with the reference's value; keep only those "
            "strictly below it and ignore NaN; return the name with the largest drop (ties: the first "
            "name in alphabetical order), or None when nothing is below the reference or the reference "
            "itself is NaN.")
    pool = ["MSE loss", "untrained backbone", "fewer layers", "no dropout", "smaller latent", "L1 loss",
            "no augmentation", "half the steps", "larger window", "resnet18"]

    def want(table: dict, reference: str) -> str | None:
        ref = table[reference]
        drops = {k: ref - v for k, v in table.items() if k != reference and not math.isnan(v) and v < ref}
        if math.isnan(ref) or not drops:
            return None
        return min(drops, key=lambda k: (-drops[k], k))

    for case in range(5):
        names = [str(v) for v in rng.permutation(pool)[: int(rng.integers(3, 7))]]
        reference = f"reference {int(rng.integers(100))}"
        table = {n: float(rng.uniform(0.01, 0.3)) for n in names}
        table[reference] = float(rng.uniform(0.1, 0.2))
        table = {str(k): table[k] for k in rng.permutation(list(table))}
        if case == 1:  # nothing below the reference
            table = {k: (v if k == reference else table[reference] + abs(v)) for k, v in table.items()}
        if case == 2:  # a NaN, and a tie for the largest drop listed against the alphabetical order
            later, earlier = sorted(names[:2], reverse=True)
            table = {later: 0.005, **{k: v for k, v in table.items() if k != later}}
            table[earlier] = 0.005
            table[names[2]] = float("nan")
        if case == 3:  # the reference itself was not measured
            table[reference] = float("nan")
        expected = want(table, reference)
        got = fn(dict(table), reference)
        if got != expected:
            shown = {k: round(v, 4) for k, v in table.items()}
            raise Wrong(f"for the table {shown} with reference {reference!r} expected {expected!r}, "
                        f"got {got!r}.", hint)


# -- design task: one map from two with complementary failures --------------------------------------
_GAIN_OVER_BOTH = 0.05  # the pass bar: this much above the held-out AP of the better input map
_MAP_SIDE = 32


def _two_maps(rng: np.random.Generator, n: int, isointense: float, scales: tuple[float, float],
              edges: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` slices with one lesion disk each, a share ``isointense`` of them as bright as the tissue,
    and two maps of them: an FAE-like one (coarse: it sees every lesion, blurred, among smooth blobs
    of false alarm) and an l1-like one (sharp: it sees only the bright lesions, among bright edge
    pixels), each on a scale of its own. Returns (fae, l1, masks)."""
    from featureae_lite.core.maps import gaussian_blur

    g, side = _gen(rng), _MAP_SIDE
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    bright, flat = torch.zeros(n, 1, side, side), torch.zeros(n, 1, side, side)
    kinds = rng.permutation(np.arange(n) < round(isointense * n))
    for i in range(n):
        r = float(rng.uniform(2, 5))
        cy, cx = rng.uniform(r + 2, side - r - 2, 2)
        (flat if kinds[i] else bright)[i, 0] = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float()
    masks = bright + flat
    blobs = gaussian_blur(torch.randn(n, 1, side, side, generator=g), 13, 3.0, padding="reflect")
    fae = gaussian_blur(masks, 9, 2.0, padding="reflect") + 2.2 * blobs
    edge = torch.rand(n, 1, side, side, generator=g) < edges
    edge = edge * 1.5 * torch.rand(n, 1, side, side, generator=g)
    l1 = bright + 0.15 * torch.randn(n, 1, side, side, generator=g).abs() + edge
    return scales[0] * fae, scales[1] * l1, masks


@exercise("04_feature_autoencoder", "design: one anomaly map from FAE's map and the l1 residual, calibrated "
          "on validation maps, that beats both on held-out maps", design=True)
def check_combine_maps(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.metrics import average_precision

    isointense, edges = float(rng.uniform(0.25, 0.5)), float(rng.uniform(0.01, 0.04))
    scales = (float(np.exp(rng.uniform(-3, 3))), float(np.exp(rng.uniform(-3, 3))))
    val = _two_maps(rng, 30, isointense, scales, edges)
    fae, l1, masks = _two_maps(rng, 40, isointense, scales, edges)
    got = fn(*(t.clone() for t in val), fae.clone(), l1.clone())
    hint = ("the two maps fail in different places — the l1-like map misses the lesions that are as "
            "bright as the tissue and fires on edge pixels, the FAE-like map is blurred and raises smooth "
            "false alarms — so each can correct the other. They are also on different scales: adding them as "
            "they are lets the larger one decide alone. Put both on a common scale first (measured on "
            "the validation maps, or from each map's own spread), then combine them, and choose how "
            "much each counts by the pixel AP on the validation maps.")
    if isinstance(got, np.ndarray):
        got = torch.from_numpy(got)
    if not isinstance(got, torch.Tensor) or got.shape != fae.shape or not torch.isfinite(got).all():
        shape = tuple(getattr(got, "shape", ()))
        raise Wrong(f"return one map of the held-out slices, a tensor of shape {tuple(fae.shape)} with "
                    f"finite values; got {type(got).__name__} of shape {shape}.", hint)

    def held_out_ap(m: torch.Tensor) -> float:
        return average_precision(m.detach().double().numpy(), masks.numpy() > 0)

    mine, ap_fae, ap_l1 = held_out_ap(got), held_out_ap(fae), held_out_ap(l1)
    better = max(ap_fae, ap_l1)
    if mine < better + _GAIN_OVER_BOTH:
        raise Wrong(f"your map reaches a held-out pixel AP of {mine:.3f}; the FAE-like map alone reaches "
                    f"{ap_fae:.3f}, the l1-like map {ap_l1:.3f} (pass: at least {_GAIN_OVER_BOTH} above the "
                    f"better, {better + _GAIN_OVER_BOTH:.3f}).", hint)
    return (f"held-out pixel AP {mine:.2f} against {ap_fae:.2f} for the FAE-like map and {ap_l1:.2f} for the "
            f"l1-like map ({isointense:.0%} of the lesions as bright as the tissue, the maps' scales "
            f"{max(scales) / min(scales):.3g}× apart).")
