"""Execute the notebook sequence headless with papermill.

Each notebook has a cell tagged ``parameters`` (``QUICK``, ``SEED``, ``DATA_DIR``, ``OUTPUT_DIR`` …) and
ends by calling :func:`~featureae_lite.course.figures.record_figures`, which writes its key numbers to
``OUTPUT_DIR/<name>.json``. :func:`run_notebooks` executes the sequence into a run folder (the command
line's default: :func:`new_run_dir`, ``runs/<timestamp>/``) with an ``index.md``; the checks of the
recorded figures are in :mod:`featureae_lite.course.figures` (its names are importable from here too).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.course.figures import (  # noqa: F401  (re-exported: importable from here as before)
    EXPECTED_FILE,
    NOTEBOOK_DIR,
    UNCHECKED,
    CheckReport,
    _format_figure,
    check_figures,
    check_orderings,
    check_run,
    expected_ranges,
    record_expected,
    record_figures,
    writable_expected_file,
)
from featureae_lite.data.paths import source_checkout

log = logging.getLogger(__name__)

# Quiet kernels: ipykernel warns at every start that its loopback TCP is unencrypted and may log a
# KeyboardInterrupt at shutdown. Errors of cells still reach the executed notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


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


def new_run_dir() -> Path:
    """A new run folder's path (not created): ``runs/<timestamp>`` of the source checkout, or of the
    current folder for an installed package — the default of ``featureae-lite notebooks`` and ``main``."""
    runs = (source_checkout() or Path.cwd()) / "runs"
    return runs / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_notebooks(
    quick: bool,
    out: str | os.PathLike,
    *,
    only: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
) -> Path:
    """Execute the sequence into the folder ``out`` (e.g. :func:`new_run_dir`) and write ``index.md``.

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

    run_dir = Path(out)
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
                log.info("%s failed: %s", nb.name, errors[nb.stem])  # INFO: on stdout, as it was printed
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
