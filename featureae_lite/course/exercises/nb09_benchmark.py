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


_LEARNED = ("ae_l1", "vae", "ae_ssim", "fae", "dpa", "proxyano", "patchsim")
_TYPES = ("tumor", "structural", "stroke", "lesions", "edema", "cyst")


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _overall_winner(cases: dict[str, dict[str, list[float]]]) -> str:
    """The method with the best validation AP averaged over the types that have validation cases."""
    def macro(m: str) -> float:
        return float(np.mean([_mean(v) for v in cases[m].values() if len(v)]))

    return max(cases, key=macro)


def _per_case(rng: np.random.Generator, true: dict[str, dict[str, float]],
              counts: dict[str, int]) -> dict[str, dict[str, list[float]]]:
    """Per-case APs {method: {type: [...]}} around the true APs: a case's difficulty is shared by all
    methods, plus a little noise per method."""
    out: dict[str, dict[str, list[float]]] = {m: {} for m in true}
    for t, n in counts.items():
        difficulty = rng.normal(0, 0.1, n)
        for m, per_type in true.items():
            out[m][t] = np.clip(per_type[t] + difficulty + rng.normal(0, 0.05, n), 0, 1).tolist()
    return out


def _benchmark_cases(rng: np.random.Generator) -> tuple[list[str], dict, dict]:
    """The types, and per-case pixel APs {method: {type: [AP per case]}} of a validation set and of a
    large held-out set.

    One method is best on most types; on one or more *common* types (8–30 validation cases) another
    method is far better (by 0.12–0.2 AP). *Rare* types have 0–2 validation cases and no such
    specialist. Drawn again until the validation winner (best AP averaged over the types with
    validation cases) is the designed one.
    """
    while True:
        methods = [str(m) for m in rng.permutation(_LEARNED)[: int(rng.integers(3, 6))]]
        types = [str(t) for t in rng.permutation(_TYPES)[: int(rng.integers(4, 7))]]
        base = np.sort(rng.uniform(0.25, 0.5, len(methods)))[::-1]
        base[1:] = np.minimum(base[1:], base[0] - 0.12)
        true = {m: {t: float(b + rng.uniform(-0.02, 0.02)) for t in types}
                for m, b in zip(methods, base, strict=True)}
        n_rare = int(rng.integers(1, len(types) - 1))
        counts = {t: int(rng.integers(0, 3) if i < n_rare else rng.integers(8, 31))
                  for i, t in enumerate(types)}
        seen = [t for t in types if counts[t]]
        placed = 0
        for i, t in enumerate(types[n_rare:]):
            if i and rng.random() < 0.6:
                continue
            for m in rng.permutation(methods[1:]):  # a specialist that does not become the overall winner
                old, true[m][t] = true[m][t], true[methods[0]][t] + rng.uniform(0.12, 0.2)
                if np.mean([true[m][s] - true[methods[0]][s] for s in seen]) <= -0.04:
                    placed += 1
                    break
                true[m][t] = old
        val, held = _per_case(rng, true, counts), _per_case(rng, true, dict.fromkeys(types, 300))
        if placed and _overall_winner(val) == methods[0]:
            return types, val, held


@exercise("09_benchmark", "design: choose which method to deploy on each anomaly type from per-case "
          "validation APs, graded on held-out cases", design=True)
def check_choose_methods(fn: Callable, rng: np.random.Generator) -> str:
    hint = ("a per-type lead seen on one or two validation cases is mostly noise, and a type without "
            "validation cases gives no evidence at all; a lead repeated over many cases is real. "
            "Keep the overall winner where the evidence is thin, switch where a method's lead over "
            "it is large compared with how much the per-case differences scatter — and compare "
            "methods on the same cases.")
    types, val, held = _benchmark_cases(rng)
    got = fn({m: {t: list(v) for t, v in per.items()} for m, per in val.items()})
    if not isinstance(got, dict) or set(got) != set(types) or not all(got[t] in val for t in types):
        raise Wrong(f"return a dict {{anomaly type: method}} with one of {sorted(val)} for each of the "
                    f"types {sorted(types)}; got {got!r}.", hint)
    winner = _overall_winner(val)
    ap = {t: {m: _mean(held[m][t]) for m in held} for t in types}
    mine, always = (float(np.mean([ap[t][p[t]] for t in types])) for p in (got, dict.fromkeys(types, winner)))
    best = float(np.mean([max(ap[t].values()) for t in types]))
    worse = [t for t in types if ap[t][got[t]] < ap[t][winner] - 0.03]
    measured = (f"held-out AP averaged over {len(types)} types: {mine:.3f} for your picks, {always:.3f} for "
                f"always deploying {winner} (the overall validation winner), {best:.3f} for the best method "
                "of each type")
    if worse:
        raise Wrong(f"{measured}; on {', '.join(worse)} your pick is more than 0.03 below {winner} on the "
                    "held-out cases.", hint)
    if mine < always + 0.5 * (best - always) - 0.005:
        raise Wrong(f"{measured}. The bar: at least half of the gain of the best picks over {winner}.", hint)
    return measured + "."
