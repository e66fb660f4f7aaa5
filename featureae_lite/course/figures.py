"""The figures the notebooks record and their checks: where the course notebooks live, the
``record_figures`` call that ends every notebook, the expected bands in ``notebooks/expected_figures.json``,
:func:`check_run` (the reproducibility check for teachers and reviewers) and :func:`record_expected`.

The runner that executes the notebooks is :mod:`featureae_lite.course.notebooks`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.paths import source_checkout


def _course_dir() -> Path:
    """``notebooks/`` of a source checkout; in an installed package the same files are the package data
    of ``featureae_lite.course.notebooks`` (pyproject.toml maps that package to the ``notebooks/``
    folder)."""
    checkout = source_checkout()
    return checkout / "notebooks" if checkout is not None else Path(__file__).resolve().parent / "notebooks"


NOTEBOOK_DIR = _course_dir()
EXPECTED_FILE = NOTEBOOK_DIR / "expected_figures.json"


def record_figures(name: str, figures: dict[str, float], output_dir: str | os.PathLike | None) -> dict:
    """Record a notebook's key figures; print them (the notebook's display of them, hence print and
    not logging), and write ``<output_dir>/<name>.json`` if given.

    Parameters
    ----------
    name : str
        Notebook stem, e.g. ``"04_feature_autoencoder"``.
    figures : dict
        Figure name → number (NaN allowed, stored as null).
    output_dir : path-like or None
        Folder of the executed notebooks; nothing is written when empty or None.
    """
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else float(v)) for k, v in figures.items()}
    for k, v in clean.items():
        print(f"{k:>28}: {v if v is None else round(v, 4)}")
    if output_dir:
        path = Path(output_dir) / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(clean, indent=2))
    return clean


def result_figures(results: dict[str, dict], metrics: tuple[str, ...] = ("pixel_ap",),
                   types: tuple[str, ...] = ("structural",)) -> dict[str, float]:
    """The standard figures of evaluated methods, for :func:`record_figures`.

    Parameters
    ----------
    results : dict
        method → result of :meth:`Session.evaluate` (keys such as ``"pixel_ap"``, ``"per_type"``).
    metrics : tuple of str
        Overall metrics to record, as ``<method>_<metric>``.
    types : tuple of str
        Anomaly types whose pixel AP to record, as ``<method>_<type>_ap`` (NaN where a result lacks it).

    Returns
    -------
    dict
        Figure name → number.
    """
    figures = {f"{m}_{k}": r[k] for m, r in results.items() for k in metrics}
    figures.update({f"{m}_{t}_ap": r["per_type"].get(t, {}).get("pixel_ap", float("nan"))
                    for t in types for m, r in results.items()})
    return figures


def _format_figure(value: float | None) -> str:
    """Whole numbers as integers, other numbers with three decimals, missing values as ``n/a``."""
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def writable_expected_file(expected_file: str | os.PathLike = EXPECTED_FILE) -> Path:
    """``expected_file`` as a Path, checked to be a file that may be rewritten.

    The expected figures of an installed package are read-only package data; record new ones in a
    source checkout (``pip install -e .``), whose ``notebooks/expected_figures.json`` is the file.

    Raises
    ------
    ValueError
        ``expected_file`` is the installed package's copy.
    """
    path = Path(expected_file).resolve()
    package = Path(__file__).resolve().parent
    if path.is_relative_to(package):
        raise InputError(f"{path}: the expected figures of an installed package are read-only package data; "
                         "record them in a source checkout (pip install -e .) or pass another file")
    return path


@dataclass
class CheckReport:
    """Outcome of :func:`check_run`.

    Attributes
    ----------
    failures : list of str
        Orderings the lessons rely on that no longer hold, and notebooks that recorded no figures:
        the course is wrong (``--check`` exits non-zero).
    drift : list of str
        Figures outside their measured band, each with how far out it is: information, a warning.
    """

    failures: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def _section(expected: dict[str, Any], quick: bool) -> dict[str, Any]:
    return expected.get("quick" if quick else "classroom", {})


def check_figures(run_dir: str | os.PathLike, quick: bool,
                  expected_file: str | os.PathLike = EXPECTED_FILE,
                  notebooks: list[str] | None = None) -> list[str]:
    """Compare a run's recorded figures with the expected bands (value drift only).

    A band is ``[lo, hi]``; a discrete figure is ``{"seen": [values]}`` and must be one of them.
    ``notebooks`` (stems) limits the check to those notebooks, e.g. the ones a ``--only`` run
    executed; by default every notebook with expected figures is checked.

    Returns
    -------
    list of str
        One message per figure that is missing or outside its band (empty = all good); a value
        outside a band says by how much, relative to the band's width.
    """
    expected = _section(json.loads(Path(expected_file).read_text()), quick)
    problems = []
    for nb, figs in expected.items():
        if nb.startswith("_") or (notebooks is not None and nb not in notebooks):
            continue
        path = Path(run_dir) / f"{nb}.json"
        if not path.exists():
            problems.append(f"{nb}: no recorded figures ({path.name} missing)")
            continue
        got = json.loads(path.read_text())
        for key, band in figs.items():
            val = got.get(key)
            if isinstance(band, dict):
                if val not in band["seen"]:
                    problems.append(f"{nb}: {key} = {val} is none of the values seen {band['seen']}")
                continue
            lo, hi = band
            if val is None or not lo <= val <= hi:
                out = "" if val is None else f" ({_how_far(val, lo, hi)})"
                problems.append(f"{nb}: {key} = {val} outside the expected range [{lo}, {hi}]{out}")
    return problems


def _how_far(val: float, lo: float, hi: float) -> str:
    width = max(hi - lo, 1e-12)
    gap = lo - val if val < lo else val - hi
    return f"{'below' if val < lo else 'above'} by {gap:.4g}, {gap / width:.1f}× the band's width"


_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b}


def check_orderings(run_dir: str | os.PathLike, quick: bool,
                    expected_file: str | os.PathLike = EXPECTED_FILE,
                    notebooks: list[str] | None = None) -> list[str]:
    """Check the orderings the lessons rely on (``"orderings"`` in the expected-figures file).

    Each ordering is ``{"notebook", "left", "op" (">", ">=", "<", "<="), "right", "factor", "lesson"}`` and
    holds when ``left op factor × right`` (``right`` a figure name or a number). With
    ``"if_recorded": true`` it is checked only when the run recorded both figures (a section that
    needs optional data, e.g. 10's transfer test without a fetched real set); otherwise a missing
    figure is a failure.

    Returns
    -------
    list of str
        One message per ordering that fails or cannot be evaluated (empty = the lessons hold).
    """
    rules = json.loads(Path(expected_file).read_text()).get("orderings", {}).get(
        "quick" if quick else "classroom", [])
    failures = []
    for rule in rules:
        nb = rule["notebook"]
        if notebooks is not None and nb not in notebooks:
            continue
        path = Path(run_dir) / f"{nb}.json"
        got = json.loads(path.read_text()) if path.exists() else {}
        left = got.get(rule["left"])
        right = rule["right"] if isinstance(rule["right"], (int, float)) else got.get(rule["right"])
        factor = rule.get("factor", 1.0)
        text = f"{rule['left']} {rule['op']} {factor:g} × {rule['right']}"
        if left is None or right is None:
            if not rule.get("if_recorded"):
                failures.append(f"{nb}: cannot check {text} (figure missing)")
        elif not _OPS[rule["op"]](left, factor * right):
            failures.append(f"{nb}: {text} does not hold ({left:.4g} vs {factor * right:.4g}); "
                            f"lesson: {rule['lesson']}")
    return failures


def check_run(run_dir: str | os.PathLike, quick: bool, expected_file: str | os.PathLike = EXPECTED_FILE,
              notebooks: list[str] | None = None) -> CheckReport:
    """Orderings and missing notebooks as failures, band violations as drift (see :class:`CheckReport`)."""
    drift = check_figures(run_dir, quick, expected_file, notebooks)
    missing = [d for d in drift if "no recorded figures" in d]
    failures = missing + check_orderings(run_dir, quick, expected_file, notebooks)
    return CheckReport(failures, [d for d in drift if d not in missing])


# Figures recorded but never checked: legitimately unstable discrete choices the text must not rely on.
UNCHECKED = {
    "chosen_latent_dim": "DPA's latent size chosen on val (notebook 06): two fresh clones chose 32 and 128",
}


def expected_ranges(runs: list[dict[str, float | None]] | dict[str, float | None], rel: float = 0.1,
                    abs_: float = 0.002) -> dict[str, Any]:
    """Bands from the figures of one or several runs of the same notebook.

    A whole-number figure (count, chosen hyperparameter) becomes ``{"seen": sorted values}``; any
    other figure the band ``[min − pad, max + pad]`` with pad = ``abs_`` + ``rel`` · max|value| +
    (max − min): the observed spread, once more on each side, plus a margin. Timings (keys ending
    in ``_seconds``), the figures of :data:`UNCHECKED` and missing values are left out.
    """
    runs = [runs] if isinstance(runs, dict) else runs
    keys = [k for k in runs[0] if not k.endswith("_seconds") and k not in UNCHECKED]
    bands: dict[str, Any] = {}
    for key in keys:
        vals = [r.get(key) for r in runs]
        if any(v is None for v in vals):
            continue
        if all(float(v).is_integer() and abs(v) >= 1 for v in vals):
            bands[key] = {"seen": sorted({float(v) for v in vals})}
            continue
        lo, hi = min(vals), max(vals)
        pad = abs_ + rel * max(abs(lo), abs(hi)) + (hi - lo)
        bands[key] = [round(lo - pad, 4), round(hi + pad, 4)]
    return bands


def record_expected(run_dirs: str | os.PathLike | list, quick: bool,
                    expected_file: str | os.PathLike = EXPECTED_FILE) -> list[str]:
    """Write bands derived from one or several runs into the expected-figures file.

    Only notebooks recorded in *every* run are replaced; the others keep their bands. The
    section's ``_derivation`` names the runs (seed, threads, machine) and the rule. Returns the
    names of the notebooks updated.

    Raises
    ------
    ValueError
        ``expected_file`` is an installed package's read-only copy (see :func:`writable_expected_file`).
    """
    dirs = [Path(d) for d in (run_dirs if isinstance(run_dirs, list) else [run_dirs])]
    expected_file = writable_expected_file(expected_file)
    expected = json.loads(expected_file.read_text()) if expected_file.exists() else {}
    section = expected.setdefault("quick" if quick else "classroom", {})
    names = sorted(set.intersection(*[{p.stem for p in d.glob("[0-9][0-9]_*.json")} for d in dirs]))
    for name in names:
        section[name] = expected_ranges([json.loads((d / f"{name}.json").read_text()) for d in dirs])
    section["_derivation"] = {
        "runs": [_run_params(d) for d in dirs],
        "rule": "whole numbers: the set of values seen; others: [min − pad, max + pad], "
                "pad = 0.002 + 10 % of max|value| + (max − min)",
        "unchecked": UNCHECKED,
    }
    write_atomic(expected_file, json.dumps(expected, indent=2) + "\n")
    return names


def _run_params(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "params.json"
    params = json.loads(path.read_text()) if path.exists() else {}
    return {"run": run_dir.name, **{k: params.get(k) for k in ("SEED", "threads", "machine", "torch")}}
