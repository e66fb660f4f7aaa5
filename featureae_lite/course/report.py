"""Readings generated from a run's own numbers: the sentences a notebook says about its results.

A notebook's text must not claim an outcome its figures do not show. Where the outcome depends on
the run (the training budget, the machine, the seed), the reading is generated from the numbers
instead of written by hand::

    fl.report.compare(results, "fae", "ae_l1", on="structural")
    # **fae** is 2.7× **ae_l1** on `structural` (pixel AP 0.033 vs 0.012); 95 % intervals
    # [0.020, 0.051] vs [0.005, 0.021]: apart — this test set tells them apart.

Every function returns a :class:`Reading`, a ``str`` that Jupyter shows as Markdown when it is the
last expression of a cell (or when passed to ``display``).

Sources
-------
The functions accept the shapes the notebooks already hold:

* **results**: ``{method: result}`` as returned by :meth:`Session.evaluate` or
  :func:`featureae_lite.evaluate` — a result has ``"pixel_ap"``, optionally ``"pixel_ap_ci"`` (a
  ``(low, high)`` pair, with ``ci=True``) and ``"per_type"`` → type → the same keys;
* **values**: ``{name: number}``, or ``{name: {type: number}}`` with ``on``;
* a pandas **DataFrame** with one column per method and one row per anomaly type (``on`` picks the row).

Intervals are used when the source carries them, or when given as ``ci={name: (low, high)}``. Two
values are called *apart* only when their intervals do not overlap; otherwise the reading says that
the test set does not tell them apart, whatever the point estimates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from featureae_lite.core.errors import InputError

Interval = tuple[float, float]

_METRIC_NAMES = {"pixel_ap": "pixel AP", "pixel_auroc": "pixel AUROC", "best_dice": "best Dice",
                 "dice_at_threshold": "Dice at the val threshold", "sample_auroc": "sample AUROC",
                 "sample_ap": "sample AP"}


class Reading(str):
    """A generated Markdown sentence; Jupyter renders it as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _number(value: Any) -> float:
    """``value`` as a float; None and non-numbers become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _entry(source: Any, name: str, on: str | None) -> Any:
    """The entry of ``name`` (a number or a result dict), restricted to anomaly type ``on``."""
    if hasattr(source, "columns") and hasattr(source, "index"):  # DataFrame: methods as columns
        if name not in source.columns:
            raise KeyError(f"{name!r} is not a column of the table; columns: {list(source.columns)}")
        column = source[name]
        if on is None:
            raise InputError("a table needs `on`: the row (anomaly type) to read")
        return column[on] if on in column.index else float("nan")
    if name not in source:
        raise KeyError(f"{name!r} is not among {list(source)}")
    entry = source[name]
    if on is None or on == "overall":
        return entry
    if isinstance(entry, Mapping):
        if "per_type" in entry:
            return entry["per_type"].get(on, {})
        return entry.get(on, float("nan"))
    raise InputError(f"{name!r} holds a single number; `on={on!r}` needs per-type values")


def value_of(source: Any, name: str, on: str | None = None, metric: str = "pixel_ap") -> float:
    """The number of ``name`` in ``source`` (see the module docstring), NaN where it is missing.

    Parameters
    ----------
    source : mapping or DataFrame
        Results, values or a per-type table.
    name : str
        Method (or row) name.
    on : str, optional
        Anomaly type; None or ``"overall"`` for the overall value.
    metric : str
        Key of a result dict (ignored for plain numbers).
    """
    entry = _entry(source, name, on)
    if isinstance(entry, Mapping):
        return _number(entry.get(metric))
    return _number(entry)


def interval_of(source: Any, name: str, on: str | None = None, metric: str = "pixel_ap",
                ci: Mapping[str, Interval] | None = None) -> Interval | None:
    """The 95 % interval of ``name``: from ``ci`` if given, else ``<metric>_ci`` of its result, else None."""
    if ci is not None:
        pair = ci.get(name)
    else:
        entry = _entry(source, name, on) if not hasattr(source, "columns") else None
        pair = entry.get(f"{metric}_ci") if isinstance(entry, Mapping) else None
    if pair is None:
        return None
    lo, hi = (_number(v) for v in pair)
    return None if math.isnan(lo) or math.isnan(hi) else (lo, hi)


def intervals_apart(a: Interval, b: Interval) -> bool:
    """True when the intervals ``(low, high)`` do not overlap (touching counts as overlapping)."""
    return a[0] > b[1] or b[0] > a[1]


def fold(a: float, b: float) -> str:
    """``a / b`` as a factor, e.g. ``"2.7×"``; ``"n/a"`` when undefined."""
    if math.isnan(a) or math.isnan(b):
        return "n/a"
    if b == 0:
        return "∞×" if a > 0 else "n/a"
    r = a / b
    return f"{r:.2f}×" if r < 0.1 else f"{r:.1f}×"


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _digits(a: float, b: float) -> int:
    """Decimals (3 to 6) that show two different values as different."""
    for digits in range(3, 7):
        if math.isnan(a) or math.isnan(b) or a == b or f"{a:.{digits}f}" != f"{b:.{digits}f}":
            return digits
    return 6


def _where(on: str | None) -> str:
    return "" if on in (None, "overall") else f" on `{on}`"


def _ci_clause(ia: Interval, ib: Interval) -> str:
    return f"95 % intervals [{ia[0]:.3f}, {ia[1]:.3f}] vs [{ib[0]:.3f}, {ib[1]:.3f}]"


def compare(source: Any, a: str, b: str, on: str | None = None, metric: str = "pixel_ap",
            ci: Mapping[str, Interval] | None = None, label: str | None = None) -> Reading:
    """One sentence comparing ``a`` with ``b``: the factor, both values, and whether the test set tells
    them apart: "ahead" only where both 95 % intervals were measured and do not overlap, otherwise
    "indistinguishable" (overlapping intervals, or none measured). Values are shown with 3 decimals,
    more (up to 6) where two different values would otherwise look equal.

    Parameters
    ----------
    source : mapping or DataFrame
        Results, values or a per-type table (see the module docstring).
    a, b : str
        The two names to compare.
    on : str, optional
        Anomaly type (None or ``"overall"``: overall).
    metric : str
        Result key, e.g. ``"pixel_ap"``.
    ci : mapping, optional
        name → (low, high); default: the ``<metric>_ci`` of the results, if they carry one.
    label : str, optional
        How to call the metric in the sentence (default: from ``metric``).

    Returns
    -------
    Reading
        E.g. "**fae** is 2.7× **ae_l1** on `structural` (pixel AP 0.033 vs 0.012) — **fae** ahead; 95 %
        intervals [0.020, 0.051] vs [0.005, 0.019]: apart — this test set tells them apart."
    """
    va, vb = value_of(source, a, on, metric), value_of(source, b, on, metric)
    name = label or _METRIC_NAMES.get(metric, metric)
    digits = _digits(va, vb)
    head = f"**{a}** is {fold(va, vb)} **{b}**{_where(on)} ({name} {_fmt(va, digits)} vs {_fmt(vb, digits)})"
    ia, ib = interval_of(source, a, on, metric, ci), interval_of(source, b, on, metric, ci)
    higher = a if va > vb else b
    if math.isnan(va) or math.isnan(vb):
        verdict = " — one of them was not measured."
    elif va == vb:
        verdict = " — equal."
    elif ia is None or ib is None:
        verdict = (f" — indistinguishable: **{higher}** is higher, but no interval was measured, so "
                   "nothing says the test set tells them apart.")
    elif intervals_apart(ia, ib):
        verdict = f" — **{higher}** ahead; {_ci_clause(ia, ib)}: apart — this test set tells them apart."
    else:
        verdict = (f" — indistinguishable; {_ci_clause(ia, ib)}: overlapping — this test set does not "
                   "tell them apart.")
    return Reading(head + verdict)


def ranking(source: Any, on: str | None = None, metric: str = "pixel_ap", exclude: Iterable[str] = (),
            ci: Mapping[str, Interval] | None = None, label: str | None = None, top: int = 3) -> Reading:
    """Name the best entry and the runners-up, and say whether the best is apart from the second.

    Parameters
    ----------
    source : mapping or DataFrame
        Results, values or a per-type table (see the module docstring).
    on : str, optional
        Anomaly type (None or ``"overall"``: overall).
    exclude : iterable of str
        Names left out (e.g. the baselines).
    top : int
        How many entries the sentence lists.

    Returns
    -------
    Reading
        E.g. "Highest pixel AP on `structural`: **ae_ssim** (0.005), then ae_l1 (0.003). …"
    """
    names = list(source.columns) if hasattr(source, "columns") else list(source)
    skip = set(exclude)
    values = {n: value_of(source, n, on, metric) for n in names if n not in skip}
    order = sorted((n for n, v in values.items() if not math.isnan(v)), key=lambda n: -values[n])
    name = label or _METRIC_NAMES.get(metric, metric)
    if not order:
        return Reading(f"No {name}{_where(on)} was measured.")
    best = order[0]
    digits = _digits(values[best], values[order[1]]) if len(order) > 1 else 3
    text = f"Highest {name}{_where(on)}: **{best}** ({_fmt(values[best], digits)})"
    if len(order) > 1:
        text += ", then " + ", ".join(f"{n} ({_fmt(values[n], digits)})" for n in order[1:top])
        second = order[1]
        text += f" — {fold(values[best], values[second])} the runner-up"
        ia, ib = interval_of(source, best, on, metric, ci), interval_of(source, second, on, metric, ci)
        if ia is not None and ib is not None:
            text += (f"; its 95 % interval [{ia[0]:.3f}, {ia[1]:.3f}] is apart from {second}'s "
                     f"[{ib[0]:.3f}, {ib[1]:.3f}], so the lead holds on this test set"
                     if intervals_apart(ia, ib) else
                     f"; its 95 % interval [{ia[0]:.3f}, {ia[1]:.3f}] overlaps {second}'s "
                     f"[{ib[0]:.3f}, {ib[1]:.3f}], so this test set does not show it better")
        else:
            text += "; no interval was measured, so nothing says the lead holds"
    return Reading(text + ".")


def best(source: Any, on: str | None = None, metric: str = "pixel_ap", exclude: Iterable[str] = ()) -> str:
    """The name with the highest value (NaN ignored).

    Raises
    ------
    ValueError
        No entry has a value.
    """
    names = list(source.columns) if hasattr(source, "columns") else list(source)
    values = {n: value_of(source, n, on, metric) for n in names if n not in set(exclude)}
    valid = [n for n, v in values.items() if not math.isnan(v)]
    if not valid:
        raise InputError("no entry has a value")
    return max(valid, key=lambda n: values[n])


def lines(*readings: str) -> Reading:
    """Several readings as one Markdown bullet list."""
    return Reading("\n".join(f"- {r}" for r in readings))


def chance(source: Any, names: Iterable[str], on: str | None = None, level: float = 0.5) -> Reading:
    """One sentence per name saying whether its pixel AUROC is above chance.

    A pixel AUROC at or below ``level`` (0.5: a random map) means the map ranks lesion pixels no
    higher than healthy ones — for a trained method, a sign of a fault, not of a weak method.

    Parameters
    ----------
    source : mapping or DataFrame
        Results (see the module docstring) carrying ``"pixel_auroc"``.
    names : iterable of str
        The names to read.
    on : str, optional
        Anomaly type (None: overall).
    level : float
        The AUROC of chance.

    Returns
    -------
    Reading
        E.g. "- **proxyano_short_spatial**: pixel AUROC 0.461 — at or below chance (0.5)."
    """
    out = []
    for name in names:
        v = value_of(source, name, on, "pixel_auroc")
        verdict = ("not measured" if math.isnan(v) else
                   f"at or below chance ({level:g})" if v <= level else f"above chance ({level:g})")
        out.append(f"**{name}**: pixel AUROC{_where(on)} {_fmt(v)} — {verdict}.")
    return lines(*out)


def versus_paper(source: Any, variant: str, reference: str, paper: str, paper_lower: bool = True,
                 on: str | None = None, metric: str = "pixel_ap",
                 ci: Mapping[str, Interval] | None = None) -> Reading:
    """Compare an ablation ``variant`` with its ``reference`` and say whether this run agrees with the
    paper's ordering or reverses it.

    Parameters
    ----------
    source : mapping or DataFrame
        Results, values or a per-type table (see the module docstring).
    variant, reference : str
        The ablation and the unchanged method.
    paper : str
        What the paper reported, in words (e.g. ``"MSE ≈ 0.19 vs SSIM ≈ 0.53 AP"``).
    paper_lower : bool
        True when the paper found the variant *below* the reference.
    on, metric, ci
        As in :func:`compare`.

    Returns
    -------
    Reading
        :func:`compare`'s sentence, then "The paper: …; this run agrees / reverses the paper's order",
        and — unless the intervals are apart — that the test set does not show the difference.
    """
    head = compare(source, variant, reference, on=on, metric=metric, ci=ci)
    va, vr = value_of(source, variant, on, metric), value_of(source, reference, on, metric)
    if math.isnan(va) or math.isnan(vr) or va == vr:
        return Reading(f"{head} The paper: {paper}; this run cannot say whether it agrees.")
    agrees = (va < vr) == paper_lower
    ia, ir = interval_of(source, variant, on, metric, ci), interval_of(source, reference, on, metric, ci)
    shown = ia is not None and ir is not None and intervals_apart(ia, ir)
    order = "agrees with the paper's order" if agrees else "**reverses** the paper's order"
    caveat = ("" if shown else
              " — by the point estimates only; nothing here shows the difference is more than noise")
    return Reading(f"{head} The paper: {paper}; this run {order}{caveat}.")
