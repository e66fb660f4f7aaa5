"""Checkers of the exercises of notebook ``05_evaluation``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from featureae_lite.course.exercises.helpers import _METHOD_NAMES, _count, _number
from featureae_lite.course.exercises.registry import Wrong, exercise


def _scored(rng: np.random.Generator, n: int, rate: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.random(n) < rate
    labels[int(rng.integers(n))] = True  # at least one positive
    return rng.random(n) + shift * labels, labels


@exercise("05_evaluation", "average precision by hand (sort, cumulative TP/FP)",
          forbidden=("featureae_lite.core.metrics.average_precision",
                     "sklearn.metrics.average_precision_score",
                     "featureae_lite.core.metrics.curve_metrics"))
def check_average_precision(fn: Callable, rng: np.random.Generator) -> None:
    from sklearn.metrics import average_precision_score

    for n, rate in ((int(rng.integers(200, 600)), rng.uniform(0.02, 0.3)), (int(rng.integers(20, 60)), 0.0)):
        scores, labels = _scored(rng, n, rate, rng.uniform(0.0, 0.8))
        _number(fn(scores, labels), float(average_precision_score(labels, scores)),
                f"your AP for {labels.sum()} positives among {n} pixels",
                "walk down the pixels from the highest score to the lowest; each time you meet a lesion "
                "pixel, note the precision so far (the share of lesion pixels among the pixels met); AP "
                "is the average of those precisions over all lesion pixels.", tol=1e-6)


@exercise("05_evaluation", "the Dice coefficient of two binary masks",
          forbidden=("featureae_lite.core.metrics.dice_iou_at_threshold", "sklearn.metrics.f1_score"))
def check_dice(fn: Callable, rng: np.random.Generator) -> None:
    for _ in range(3):
        shape = tuple(int(v) for v in rng.integers(6, 20, size=2))
        a, b = rng.random(shape) < rng.uniform(0.1, 0.6), rng.random(shape) < rng.uniform(0.1, 0.6)
        _number(fn(a, b), 2 * (a & b).sum() / (a.sum() + b.sum()), "dice(a, b)",
                "Dice relates the overlap to the size of the two masks: the pixels that are in both, "
                "counted twice (once for each mask), out of all pixels of the two masks together.")
    _number(fn(a, a), 1.0, "dice(a, a)", "identical masks have Dice 1.")
    _number(fn(a, ~a), 0.0, "dice(a, ~a)", "disjoint masks have Dice 0.")


@exercise("05_evaluation", "choose the Dice-maximising threshold on validation scores",
          forbidden=("featureae_lite.core.metrics.best_dice",
                     "featureae_lite.core.metrics.dice_iou_at_threshold",
                     "featureae_lite.core.metrics.curve_metrics"))
def check_val_threshold(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.metrics import best_dice, dice_iou_at_threshold

    for _ in range(2):
        scores, labels = _scored(rng, int(rng.integers(300, 1200)), rng.uniform(0.02, 0.15),
                                 rng.uniform(0.2, 0.9))
        best, _ = best_dice(scores, labels)
        thr = fn(scores, labels)
        got, _ = dice_iou_at_threshold(scores, labels, float(thr))
        if got < best - 1e-6:
            raise Wrong(f"binarising at your threshold {float(thr):.4f} gives Dice {got:.4f}; the best "
                        f"possible is {best:.4f}.", "try every distinct score as the threshold (pixels ≥ "
                        "threshold are positive) and keep the one with the highest Dice.")


@exercise("05_evaluation", "predict, then count the method pairs whose 95 % intervals are apart",
          forbidden=("featureae_lite.course.report.intervals_apart",))
def check_separated_pairs(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.course.report import intervals_apart

    hint = ("two intervals are apart only when one's lower end lies above the other's upper end "
            "(touching ends overlap); leave out methods with a NaN end; count every unordered pair once.")
    cases = []
    for _ in range(3):
        names = [str(n) for n in rng.permutation(_METHOD_NAMES)[: int(rng.integers(3, 9))]]
        centres, halves = rng.uniform(0.0, 0.5, len(names)), rng.uniform(0.005, 0.12, len(names))
        intervals = {n: (float(c - h), float(c + h)) for n, c, h in zip(names, centres, halves, strict=True)}
        if rng.random() < 0.7:
            intervals[names[int(rng.integers(len(names)))]] = (float("nan"), float("nan"))
        cases.append(intervals)
    a, b = (float(v) for v in np.sort(rng.uniform(0.05, 0.3, 2)))
    step = float(rng.uniform(0.01, 0.1))  # edge case: touching intervals, a NaN end, an empty table
    cases += [{"touch_low": (a - step, a), "touch_high": (a, b), "far": (b + step, b + 2 * step),
               "unmeasured": (float("nan"), b)}, {}]
    for intervals in cases:
        valid = [(lo, hi) for lo, hi in intervals.values() if not (math.isnan(lo) or math.isnan(hi))]
        want = sum(intervals_apart(p, q) for i, p in enumerate(valid) for q in valid[i + 1:])
        _count(fn({k: tuple(v) for k, v in intervals.items()}),
               want, f"the number of separated pairs among {intervals}", hint)


def _two_maps(rng: np.random.Generator) -> Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A sampler of pixels scored by two maps with complementary strengths.

    4 % of the pixels are lesion, of two kinds (their mix drawn per draw): map ``a`` (a skewed
    background) responds strongly to the first kind and weakly to the second, map ``b`` (a symmetric
    background) the other way round. The two maps are in different units: one is 10–100 times the
    other, and each has its own offset.
    """
    share, strong, weak = rng.uniform(0.3, 0.7), rng.uniform(2.5, 4.0), rng.uniform(0.0, 0.8)
    scale_a, scale_b = 10 ** (rng.uniform(1, 2) * rng.choice([-1, 1])), 1.0
    offset_a, offset_b = rng.uniform(-1, 1) * scale_a, rng.uniform(-1, 1) * scale_b

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lesion, first = rng.random(n) < 0.04, rng.random(n) < share
        a = rng.gamma(2.0, 0.5, n) + lesion * np.where(first, strong, weak)
        b = rng.normal(0.0, 1.0, n) + lesion * np.where(first, weak, strong)
        return a * scale_a + offset_a, b * scale_b + offset_b, lesion

    return sample


def _pixel_scores(got: object, n: int, what: str, hint: str) -> np.ndarray:
    """``got`` as a float array of ``n`` finite scores, or :class:`Wrong`."""
    try:
        scores = np.asarray(got, dtype=float)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} should be an array of {n} scores, got {type(got).__name__}.", hint) from err
    if scores.shape != (n,):
        raise Wrong(f"{what} has shape {scores.shape}, expected ({n},): one score per pixel.", hint)
    if not np.isfinite(scores).all():
        raise Wrong(f"{what} contains NaN or infinite values.", hint)
    return scores


@exercise("05_evaluation", "design: combine two anomaly maps into one that beats both on held-out pixels",
          design=True)
def check_fuse_maps(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.metrics import average_precision

    hint = ("the two maps are in different units, so adding or comparing their raw values lets the "
            "larger one drown the other. What would make a value of map a comparable with a value of "
            "map b? The normal validation pixels tell you what is usual for each map. And should a "
            "pixel need to be unusual in both maps, or is one enough?")
    sample = _two_maps(rng)
    val_a, val_b, val_lesion = sample(int(rng.integers(3000, 6000)))
    a, b, lesion = sample(20000)
    got = fn(val_a.copy(), val_b.copy(), val_lesion.copy(), a.copy(), b.copy())
    combined = _pixel_scores(got, a.size, "the combined map", hint)
    ap, ap_a, ap_b = (average_precision(s, lesion) for s in (combined, a, b))
    better = "a" if ap_a >= ap_b else "b"
    if ap < max(ap_a, ap_b) + 0.02:
        raise Wrong(f"on {a.size} held-out pixels your combined map has AP {ap:.3f}; map a alone "
                    f"{ap_a:.3f}, map b alone {ap_b:.3f}. The bar: at least 0.02 above the better single "
                    "map.", hint)
    return f"held-out AP {ap:.3f} against {max(ap_a, ap_b):.3f} for the better single map ({better})."
