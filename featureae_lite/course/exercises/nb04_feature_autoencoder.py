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
