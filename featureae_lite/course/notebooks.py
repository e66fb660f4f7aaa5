"""Execute the notebook sequence headless with papermill and check its recorded figures.

Each notebook has a cell tagged ``parameters`` (``QUICK``, ``SEED``, ``DATA_DIR``, ``OUTPUT_DIR`` …) and
ends by calling :func:`record_figures`, which writes its key numbers to ``OUTPUT_DIR/<name>.json``.
:func:`run_notebooks` executes the sequence into ``runs/<timestamp>/`` with an ``index.md``;
:func:`check_figures` compares the recorded numbers with the ranges in
``notebooks/expected_figures.json`` — the reproducibility check for teachers and reviewers.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
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
# Quiet kernels: ipykernel warns at every start that its loopback TCP is unencrypted and may log a
# KeyboardInterrupt at shutdown. Errors of cells still reach the executed notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


def record_figures(name: str, figures: dict[str, float], output_dir: str | os.PathLike | None) -> dict:
    """Record a notebook's key figures; print them, and write ``<output_dir>/<name>.json`` if given.

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


def list_notebooks(pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    """The numbered notebooks of the sequence, in order.

    Raises
    ------
    FileNotFoundError
        The notebooks folder is missing (an install without its package data).
    """
    if not NOTEBOOK_DIR.is_dir():
        raise FileNotFoundError(f"course notebooks not found: {NOTEBOOK_DIR} is missing "
                                "(reinstall featureae_lite, or run from a source checkout)")
    return sorted(NOTEBOOK_DIR.glob(pattern))


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


def execute_notebook(path: Path, out_dir: Path, parameters: dict[str, Any], timeout: int = 1800) -> float:
    """Run one notebook with papermill into ``out_dir``; returns the seconds it took.

    Papermill saves the notebook after every cell; it does so under a hidden ``.partial`` name that
    becomes ``out_dir / path.name`` only when the execution ended (also with a cell error, which the
    caller records), so an interrupted run never leaves a notebook that looks finished.
    """
    import papermill as pm

    start = time.perf_counter()
    partial = out_dir / f".{path.stem}.partial.ipynb"
    try:
        pm.execute_notebook(
            str(path), str(partial), parameters=parameters, kernel_name="python3",
            cwd=str(path.parent), progress_bar=False, execution_timeout=timeout,
            extra_arguments=KERNEL_ARGUMENTS,
        )
    except pm.PapermillExecutionError:
        os.replace(partial, out_dir / path.name)  # a finished execution that failed: keep it to read
        raise
    os.replace(partial, out_dir / path.name)
    return time.perf_counter() - start


@contextmanager
def _headless_environment(threads: int | None = None) -> Iterator[None]:
    """Environment the kernels inherit: static widgets, the inline matplotlib backend and, if given,
    the number of threads torch uses (``OMP_NUM_THREADS``).

    The kernel inherits ``MPLBACKEND`` from the caller; a CI setting such as ``Agg`` would make
    every ``plt.show()`` a no-op and the executed notebooks would hold no figures.
    """
    wanted = {"FEATUREAE_LITE_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if threads:
        wanted["OMP_NUM_THREADS"] = str(threads)
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# What a run writes into its folder (and Jupyter beside a notebook that is opened; ``site/`` is the
# course site ``featureae-lite main`` renders there): the files that clear_run_folder may remove
RUN_FILES = ("index.md", "params.json", "times.json", "errors.json", "site", "[0-9][0-9]_*.ipynb",
             "[0-9][0-9]_*.json", ".[0-9][0-9]_*.partial.ipynb", ".*.tmp.*", ".ipynb_checkpoints")


def clear_run_folder(folder: str | os.PathLike, overwrite: bool = False, option: str = "--out") -> Path:
    """Make ``folder`` ready for a new run: it must be empty, or hold an earlier run that ``overwrite``
    removes first, so that a run folder never mixes the notebooks of two runs.

    Parameters
    ----------
    folder : path-like
        The run folder (missing = empty).
    overwrite : bool
        Remove the files of an earlier run (:data:`RUN_FILES`); any other file is still refused.
    option : str
        Named in the messages.

    Raises
    ------
    ValueError
        The folder holds an earlier run and ``overwrite`` is False, or holds files no run writes.
    """
    import shutil
    from fnmatch import fnmatchcase

    folder = Path(folder)
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if not entries:
        return folder
    ours = [p for p in entries if any(fnmatchcase(p.name, pattern) for pattern in RUN_FILES)]
    others = [p.name for p in entries if p not in ours]
    if others:
        raise InputError(f"{option} {folder}: holds files that are not a notebook run "
                         f"({', '.join(others[:3])}{', …' if len(others) > 3 else ''}); "
                         "choose an empty folder")
    if not overwrite:
        raise InputError(f"{option} {folder}: holds an earlier run ({', '.join(p.name for p in ours[:3])}"
                         f"{', …' if len(ours) > 3 else ''}); choose an empty folder or pass --overwrite "
                         "to remove that run first")
    for path in ours:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return folder


def run_notebooks(
    quick: bool = False,
    out: str | os.PathLike | None = None,
    *,
    only: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
) -> Path:
    """Execute the sequence into ``out`` (default ``runs/<timestamp>``) and write ``index.md``.

    A notebook that fails is reported in ``index.md`` and ``errors.json`` and the sequence goes on
    (later notebooks may then fail for lack of its checkpoints); nothing is raised.

    Parameters
    ----------
    threads : int, optional
        Torch threads of the kernels (default: torch's choice, the number of cores).
    device : str
        The notebooks' ``DEVICE`` parameter: where they train (``auto``, ``cpu``, ``cuda``, ``mps``).

    Returns
    -------
    Path
        The run folder with executed notebooks, ``<name>.json`` figures, ``times.json``,
        ``params.json`` (parameters, threads, machine, torch version) and ``index.md``.
    """
    import platform

    import torch
    from tqdm.auto import tqdm

    runs = (source_checkout() or Path.cwd()) / "runs"  # installed package: runs/ in the current folder
    run_dir = Path(out) if out else runs / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    books = [p for p in list_notebooks() if not only or any(p.name.startswith(o) for o in only)]
    if not books:
        raise InputError(f"no notebook matches {only!r} in {NOTEBOOK_DIR}")
    from featureae_lite.core.device import resolve_device

    resolve_device(device)  # fails before any notebook runs on a device this machine lacks
    params = {"QUICK": bool(quick), "SEED": seed, "OUTPUT_DIR": str(run_dir.resolve()),
              "DATA_DIR": str(data_dir) if data_dir else "", "DEVICE": device}
    machine = {"threads": threads or torch.get_num_threads(), "machine": _cpu_name() or platform.machine(),
               "torch": torch.__version__}
    write_atomic(run_dir / "params.json", json.dumps({**params, **machine}, indent=2))
    times: dict[str, float] = {}
    errors: dict[str, str] = {}
    with _headless_environment(threads):
        for nb in tqdm(books, desc="notebooks"):
            start = time.perf_counter()
            try:
                times[nb.stem] = execute_notebook(nb, run_dir, params)
            except Exception as err:  # papermill's cell errors and kernel deaths alike
                times[nb.stem] = time.perf_counter() - start
                last = (str(err).strip().splitlines() or [""])[-1][:300]
                errors[nb.stem] = f"{type(err).__name__}: {last}"
                print(f"{nb.name} failed: {errors[nb.stem]}")
            write_atomic(run_dir / "times.json", json.dumps(times, indent=2))
    if errors:
        write_atomic(run_dir / "errors.json", json.dumps(errors, indent=2))
    write_index(run_dir, books, times, quick, errors)
    return run_dir


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _format_figure(value: float | None) -> str:
    """Whole numbers as integers, other numbers with three decimals, missing values as ``n/a``."""
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def write_index(run_dir: Path, books: list[Path], times: dict[str, float], quick: bool,
                errors: dict[str, str] | None = None) -> Path:
    """A markdown index of a run: notebook, run time and recorded figures (or its error)."""
    lines = [f"# featureae_lite notebook run ({'QUICK' if quick else 'classroom'} settings)", "",
             "| notebook | seconds | figures |", "|---|---|---|"]
    for nb in books:
        fig_file = run_dir / f"{nb.stem}.json"
        figs = json.loads(fig_file.read_text()) if fig_file.exists() else {}
        shown = ", ".join(f"{k} = {_format_figure(v)}" for k, v in figs.items())
        if errors and nb.stem in errors:
            shown = f"**failed**: {errors[nb.stem]}"
        lines.append(f"| [{nb.name}]({nb.name}) | {times.get(nb.stem, float('nan')):.0f} | {shown} |")
    lines.append(f"| **total** | {sum(times.values()):.0f} | |")
    path = run_dir / "index.md"
    write_atomic(path, "\n".join(lines) + "\n")
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
    needs optional data, e.g. 01's transfer test without a fetched real set); otherwise a missing
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

