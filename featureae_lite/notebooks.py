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
from datetime import datetime
from pathlib import Path
from typing import Any

from featureae_lite.data.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
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
        path.write_text(json.dumps(clean, indent=2))
    return clean


def list_notebooks(pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    """The numbered notebooks of the sequence, in order."""
    return sorted(NOTEBOOK_DIR.glob(pattern))


def execute_notebook(path: Path, out_dir: Path, parameters: dict[str, Any], timeout: int = 1800) -> float:
    """Run one notebook with papermill into ``out_dir``; returns the seconds it took."""
    import papermill as pm

    start = time.perf_counter()
    pm.execute_notebook(
        str(path), str(out_dir / path.name), parameters=parameters, kernel_name="python3",
        cwd=str(path.parent), progress_bar=False, execution_timeout=timeout,
        extra_arguments=KERNEL_ARGUMENTS,
    )
    return time.perf_counter() - start


@contextmanager
def _headless_environment() -> Iterator[None]:
    """Environment the kernels inherit: static widgets and the inline matplotlib backend.

    The kernel inherits ``MPLBACKEND`` from the caller; a CI setting such as ``Agg`` would make
    every ``plt.show()`` a no-op and the executed notebooks would hold no figures.
    """
    wanted = {"FEATUREAE_LITE_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
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


def run_notebooks(
    quick: bool = False,
    out: str | os.PathLike | None = None,
    *,
    only: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Path:
    """Execute the sequence into ``out`` (default ``runs/<timestamp>``) and write ``index.md``.

    Returns
    -------
    Path
        The run folder with executed notebooks, ``<name>.json`` figures, ``times.json`` and
        ``index.md``.
    """
    from tqdm.auto import tqdm

    run_dir = Path(out) if out else REPO_ROOT / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    books = [p for p in list_notebooks() if not only or any(p.name.startswith(o) for o in only)]
    if not books:
        raise ValueError(f"no notebook matches {only!r} in {NOTEBOOK_DIR}")
    params = {"QUICK": bool(quick), "SEED": seed, "OUTPUT_DIR": str(run_dir.resolve()),
              "DATA_DIR": str(data_dir) if data_dir else ""}
    times: dict[str, float] = {}
    with _headless_environment():
        for nb in tqdm(books, desc="notebooks"):
            times[nb.stem] = execute_notebook(nb, run_dir, params)
            (run_dir / "times.json").write_text(json.dumps(times, indent=2))
    write_index(run_dir, books, times, quick)
    return run_dir


def _format_figure(value: float | None) -> str:
    """Whole numbers as integers, other numbers with three decimals, missing values as ``n/a``."""
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def write_index(run_dir: Path, books: list[Path], times: dict[str, float], quick: bool) -> Path:
    """A markdown index of a run: notebook, run time and recorded figures."""
    lines = [f"# featureae_lite notebook run ({'QUICK' if quick else 'classroom'} settings)", "",
             "| notebook | seconds | figures |", "|---|---|---|"]
    for nb in books:
        fig_file = run_dir / f"{nb.stem}.json"
        figs = json.loads(fig_file.read_text()) if fig_file.exists() else {}
        shown = ", ".join(f"{k} = {_format_figure(v)}" for k, v in figs.items())
        lines.append(f"| [{nb.name}]({nb.name}) | {times.get(nb.stem, float('nan')):.0f} | {shown} |")
    lines.append(f"| **total** | {sum(times.values()):.0f} | |")
    path = run_dir / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def check_figures(run_dir: str | os.PathLike, quick: bool,
                  expected_file: str | os.PathLike = EXPECTED_FILE,
                  notebooks: list[str] | None = None) -> list[str]:
    """Compare a run's recorded figures with the expected ranges.

    ``notebooks`` (stems) limits the check to those notebooks, e.g. the ones a ``--only`` run
    executed; by default every notebook with expected ranges is checked.

    Returns
    -------
    list of str
        One message per figure that is missing or outside its range (empty = all good).
    """
    expected = json.loads(Path(expected_file).read_text())["quick" if quick else "classroom"]
    problems = []
    for nb, figs in expected.items():
        if notebooks is not None and nb not in notebooks:
            continue
        path = Path(run_dir) / f"{nb}.json"
        if not path.exists():
            problems.append(f"{nb}: no recorded figures ({path.name} missing)")
            continue
        got = json.loads(path.read_text())
        for key, (lo, hi) in figs.items():
            val = got.get(key)
            if val is None or not lo <= val <= hi:
                problems.append(f"{nb}: {key} = {val} outside the expected range [{lo}, {hi}]")
    return problems


def expected_ranges(figures: dict[str, float | None], rel: float = 0.2, abs_: float = 0.005
                    ) -> dict[str, list[float]]:
    """Bands around one run's figures: exact for whole numbers, else ±(``abs_`` + ``rel`` · |value|).

    Timings (keys ending in ``_seconds``) and missing values are left out: they are not expected to
    reproduce.
    """
    bands = {}
    for key, val in figures.items():
        if val is None or key.endswith("_seconds"):
            continue
        if float(val).is_integer() and abs(val) >= 1:
            bands[key] = [float(val), float(val)]
        else:
            pad = abs_ + rel * abs(val)
            bands[key] = [round(val - pad, 4), round(val + pad, 4)]
    return bands


def record_expected(run_dir: str | os.PathLike, quick: bool,
                    expected_file: str | os.PathLike = EXPECTED_FILE) -> list[str]:
    """Write the bands of a run's recorded figures into the expected-figures file.

    Only notebooks that have a ``<name>.json`` in ``run_dir`` are replaced; the others keep their
    ranges. Returns the names of the notebooks updated.
    """
    expected_file = Path(expected_file)
    expected = json.loads(expected_file.read_text()) if expected_file.exists() else {}
    section = expected.setdefault("quick" if quick else "classroom", {})
    updated = []
    for path in sorted(Path(run_dir).glob("[0-9][0-9]_*.json")):
        section[path.stem] = expected_ranges(json.loads(path.read_text()))
        updated.append(path.stem)
    expected_file.write_text(json.dumps(expected, indent=2) + "\n")
    return updated
