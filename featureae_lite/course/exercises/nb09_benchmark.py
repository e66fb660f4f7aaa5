"""Checkers of the exercises of notebook ``09_benchmark``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from featureae_lite.course.exercises.helpers import _METHOD_NAMES, _number
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("09_benchmark", "the best method for each anomaly type")
def check_winner_per_type(fn: Callable, rng: np.random.Generator) -> None:
    methods = ["ae_l1", "fae", "dpa", "threshold", "vae", "patchsim"]
    methods = list(rng.permutation(methods)[: int(rng.integers(2, 6))])
    types = list(rng.permutation(["tumor", "structural", "stroke", "lesions"])[: int(rng.integers(1, 5))])
    table = {str(m): {str(t): float(rng.uniform(0, 0.6)) for t in types} for m in methods}
    got = fn(table)
    want = {t: max(table, key=lambda m, t=t: table[m][t]) for t in table[methods[0]]}
    if got != want:
        raise Wrong(f"for the table {table} expected {want}, got {got!r}.",
                    "for each type, compare every method's value and keep the method name with the highest.")


@exercise("09_benchmark", "how many times better than a baseline (ratio of pixel APs)")
def check_gain_over_baseline(fn: Callable, rng: np.random.Generator) -> None:
    results = {m: {"pixel_ap": float(rng.uniform(0.01, 0.4))} for m in ("threshold", "fae", "ae_l1")}
    results["random"] = {"pixel_ap": 0.0}
    for method, baseline in (("fae", "threshold"), ("ae_l1", "fae")):
        want = results[method]["pixel_ap"] / results[baseline]["pixel_ap"]
        _number(fn(results, method, baseline), want, f"gain_over_baseline(results, {method!r}, {baseline!r})",
                "the gain is a ratio: the method's pixel AP in units of the baseline's.")
    got = fn(results, "fae", "random")
    if not (isinstance(got, float) and math.isinf(got)):
        raise Wrong(f"against a baseline with AP 0 the gain should be float('inf'), got {got!r}.",
                    "a baseline that finds nothing makes any positive AP infinitely better: decide that "
                    "case before dividing.")


@exercise("09_benchmark", "predict, then find the anomaly type on which the best method is closest to chance")
def check_hardest_type(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("per type: the best finite AP over the methods divided by that type's chance AP; skip types "
            "whose chance AP is 0, NaN or missing, or that no method has a finite AP for; return the type "
            "with the smallest ratio (ties: alphabetically first), None if no type is left.")
    names = ["tumor", "structural", "stroke", "lesions", "edema", "cyst"]
    for _ in range(6):
        types = [str(t) for t in rng.permutation(names)[: int(rng.integers(2, 6))]]
        methods = [str(m) for m in rng.permutation(_METHOD_NAMES[2:])[: int(rng.integers(2, 6))]]
        table = {m: {t: float(rng.uniform(0.0, 0.4)) for t in types} for m in methods}
        chance = {t: float(rng.uniform(0.002, 0.05)) for t in types}
        table[methods[0]][types[-1]] = float("nan")  # edge cases: a method not measured on a type,
        chance[types[0]] = float(rng.choice([0.0, float("nan")]))  # a type without a usable chance AP
        lift = {t: max(v for v in (table[m][t] for m in methods) if not math.isnan(v)) / chance[t]
                for t in types if chance[t] > 0}
        want = min(sorted(lift), key=lift.get) if lift else None
        got = fn({m: dict(v) for m, v in table.items()}, dict(chance))
        if got != want:
            raise Wrong(f"for table {table} and chance {chance} expected {want!r}, got {got!r}.", hint)
    tied = {"b_type": 0.25, "a_type": 0.125}  # edge case: equal ratios (exact in binary: both 0.5)
    got = fn({"m": dict(tied)}, {"b_type": 0.5, "a_type": 0.25})
    if got != "a_type":
        raise Wrong(f"two types with the same ratio: expected the alphabetically first, 'a_type', got "
                    f"{got!r}.", hint)
    got = fn({"m": {"tumor": 0.3}}, {"tumor": 0.0})
    if got is not None:
        raise Wrong(f"with no usable chance AP no type qualifies: expected None, got {got!r}.", hint)
