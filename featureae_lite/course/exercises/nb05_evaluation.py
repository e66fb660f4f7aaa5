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
