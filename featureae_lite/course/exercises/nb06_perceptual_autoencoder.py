"""Checkers of the exercises of notebook ``06_perceptual_autoencoder``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _close, _gen, _is_nan, _number, _unwrap, value_and_grad
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("06_perceptual_autoencoder", "the relative perceptual L1 with a detached denominator",
          forbidden=("featureae_lite.models.dpa.relative_perceptual_loss",))
def check_relative_perceptual_l1(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.models.dpa import relative_perceptual_loss

    g = _gen(rng)
    shape = (int(rng.integers(2, 5)), int(rng.integers(2, 6)), 5, int(rng.integers(3, 7)))
    fx, fy = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    got, grad = value_and_grad(fn, (fx, fy), wrt=0)
    den = fx.abs().flatten(1).mean(1)
    _close(got, relative_perceptual_loss(fx, fy).detach(), "relative_perceptual_l1(fx, fy)",
           "one value per sample: how far fy is from fx on average over all channels and positions, "
           "relative to how large fx is on average over the same.")
    if grad is None:
        raise Wrong("your loss carries no gradient with respect to fx.",
                    "build the loss from fx with differentiable tensor operations; a conversion to numpy "
                    "or to Python numbers cuts the graph, and so the gradient.")
    want = torch.sign(fx - fy) / (den.view(-1, 1, 1, 1) * fx[0].numel())
    _close(grad, want, "the gradient with respect to fx",
           "only the numerator may carry gradient: the denominator is a scale that backpropagation "
           "must treat as a constant, so take it from a copy of fx that is separated from the graph.")


@exercise("06_perceptual_autoencoder", "choose a hyperparameter from validation results only")
def check_choose_on_val(fn: Callable, rng: np.random.Generator) -> None:
    for metric, key in (("val_auroc", "latent_dim"), ("val_ap", "lr")):
        values = rng.permutation([16, 32, 64, 128, 256, 512])[: int(rng.integers(3, 7))]
        rows = [{key: int(v), metric: float(rng.uniform(0.5, 0.9)),
                 "test_auroc": float(rng.uniform(0.5, 0.9))} for v in values]
        rows[int(rng.integers(len(rows)))][metric] = float("nan")
        valid = [r for r in rows if not math.isnan(r[metric])]
        want = max(valid, key=lambda r: r[metric])
        got = fn([dict(r) for r in rows], metric)
        if not isinstance(got, dict) or got.get(key) != want[key]:
            raise Wrong(f"for metric {metric!r} expected the row with {key} {want[key]}, got {got!r}.",
                        "leave out rows whose value is NaN and return the whole row with the highest value "
                        "of the metric you are given, never a test column.")


def _detection_rate(scores: np.ndarray, anomalous: np.ndarray, fpr: float) -> float:
    keep = ~np.isnan(scores)
    normal, positive = np.sort(scores[keep & ~anomalous])[::-1], scores[keep & anomalous]
    if positive.size == 0:
        return float("nan")
    allowed = math.floor(fpr * normal.size)
    return 1.0 if allowed >= normal.size else float((positive > normal[allowed]).mean())


@exercise("06_perceptual_autoencoder",
          "predict, then measure the share of anomalous slices flagged at a fixed false-alarm rate",
          forbidden=("featureae_lite.core.metrics.threshold_at_fpr",
                     "featureae_lite.core.metrics.dice_at_fpr",
                     "sklearn.metrics.roc_curve"))
def check_detection_rate_at_fpr(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("with k = the number of normal slices you may flag (fpr × their number, rounded down), any "
            "threshold at or below the (k+1)-th highest normal score flags too many normal slices; so an "
            "anomalous slice is flagged only when it scores strictly above that normal score. Ignore NaN "
            "scores; with no anomalous slice the rate is undefined (NaN).")
    for ties, few_normal in ((False, False), (False, True), (False, False), (True, False), (True, True)):
        n = int(rng.integers(20, 120))
        anomalous = rng.random(n) < (rng.uniform(0.75, 0.9) if few_normal else rng.uniform(0.2, 0.6))
        anomalous[:2] = (True, False)
        scores = rng.normal(0, 1, n) + rng.uniform(0, 2) * anomalous
        if ties:  # edge case: many equal scores, some at the threshold
            scores = np.round(scores * 2) / 2
        scores[rng.random(n) < 0.1] = np.nan  # unscored slices
        fpr = float(rng.choice([0.0, rng.uniform(0.02, 0.3)])) if ties else float(rng.uniform(0.02, 0.3))
        what = f"the detection rate at fpr {fpr:.3g} ({int(anomalous.sum())} of {n} slices anomalous)"
        _number(fn(scores.copy(), anomalous.copy(), fpr), _detection_rate(scores, anomalous, fpr), what, hint)
    got = fn(rng.random(10), np.zeros(10, bool), 0.05)  # edge case: nothing to detect
    if not _is_nan(got):
        raise Wrong(f"with no anomalous slice the detection rate is undefined; you returned {got!r}.", hint)


Sampler = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


def _image_scores(rng: np.random.Generator) -> tuple[float, Sampler]:
    """A target false-alarm rate and a sampler of image scores (normal, then anomalous) whose location,
    scale and skew change per draw."""
    loc, scale = rng.uniform(-5, 5), 10 ** rng.uniform(-2, 2)
    skew, shift = rng.uniform(0.2, 0.8), rng.uniform(1.5, 3)
    target = float(rng.choice([0.02, 0.05, 0.1]))

    def sample(n_normal: int, n_anomalous: int) -> tuple[np.ndarray, np.ndarray]:
        z = np.r_[rng.normal(0, 1, n_normal), rng.normal(shift, 1, n_anomalous)]
        return loc + scale * np.exp(skew * z), np.r_[np.zeros(n_normal, bool), np.ones(n_anomalous, bool)]

    return target, sample


@exercise("06_perceptual_autoencoder", "design: a threshold chosen on validation scores that keeps the "
          "false-alarm rate of new slices within a target",
          forbidden=("featureae_lite.core.metrics.threshold_at_fpr",), design=True)
def check_operating_threshold(fn: Callable, rng: np.random.Generator) -> str:
    hint = ("the share of validation normals above a threshold only estimates the share of new normals "
            "above it: with n normal slices that estimate has a standard deviation of about "
            "√(target / n). Placed exactly at the target, a threshold flags too many new normals about "
            "half the time; placed far above it, it gives away detections. Where between the two would "
            "you aim, and why does the answer depend on n?")
    target, sample = _image_scores(rng)
    n_normal = int(rng.integers(300, 800) / target)  # about 300–800 normals above the target's threshold
    val_scores, val_anomalous = sample(n_normal, int(rng.integers(200, 1000)))
    scores, anomalous = sample(50000, 10000)
    got = fn(val_scores.copy(), val_anomalous.copy(), target)
    got = _unwrap(got)
    try:
        threshold = float(got)
    except (TypeError, ValueError) as err:
        raise Wrong(f"return one threshold (a number), got {type(got).__name__}.", hint) from err
    if math.isnan(threshold):
        raise Wrong("your threshold is NaN.", hint)
    fpr = float((scores[~anomalous] >= threshold).mean())
    detected = float((scores[anomalous] >= threshold).mean())
    best, half = (_detection_rate(scores, anomalous, f) for f in (target, target / 2))
    measured = (f"on {int((~anomalous).sum())} held-out normal slices {fpr:.2%} are flagged (target "
                f"{target:.0%}) and {detected:.1%} of {int(anomalous.sum())} anomalous ones")
    if fpr > target:
        raise Wrong(f"{measured}: more false alarms than the target allows.", hint)
    if detected < half:
        raise Wrong(f"{measured}; the best threshold at half the target false-alarm rate would detect "
                    f"{half:.1%}: your threshold gives away more detections than the bar allows.", hint)
    return (f"{measured}; the best threshold exactly at the target would detect {best:.1%}, one at half "
            f"the target {half:.1%}.")
