"""Classroom assignments: student versions of the notebooks and autograding with papermill.

* :func:`make_assignments` writes student notebooks: in every cell tagged ``exercise`` the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a TODO stub that raises
  ``NotImplementedError``; everything else is kept, outputs are cleared.
* :func:`grade` executes submissions with papermill (QUICK settings), each contained by
  :class:`featureae_lite.sandbox.Sandbox` (own temporary folder, home and copy of the QUICK cohort, a
  scrubbed environment, time, memory, file-size and process limits), reads the feedback every check
  cell emitted (:data:`featureae_lite.exercises.MIME`) and reports each exercise as passed / failed /
  not attempted with the checker's message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from featureae_lite.exercises import EXERCISES, MIME
from featureae_lite.fileio import write_atomic
from featureae_lite.notebooks import list_notebooks
from featureae_lite.sandbox import Limits, Outcome, Sandbox

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_CHECK = re.compile(r"""check\(\s*["'](\w+)["']""")
GRACE = 30  # seconds a notebook gets beyond its time limit to start and stop its kernel


def _read(path: str | os.PathLike):
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON / not a notebook
        raise ValueError(f"{path} is not a readable notebook: {err}") from err


def stub_solution(source: str, name: str = "exercise") -> str:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block by a TODO stub.

    The stub keeps the indentation of the ``BEGIN`` marker and raises ``NotImplementedError``.

    Raises
    ------
    ValueError
        When the cell has no complete marker pair.
    """
    lines, out, inside = source.splitlines(), [], False
    found = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{name}: nested {BEGIN}")
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# TODO: write your solution here (see the task above), then run the check.",
                    f'{indent}raise NotImplementedError("exercise {name}: not attempted yet")']
        elif stripped == END:
            if not inside:
                raise ValueError(f"{name}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside or not found:
        raise ValueError(f"{name}: an exercise cell needs one '{BEGIN}' … '{END}' block")
    return "\n".join(out)


def student_version(nb):
    """A copy of notebook ``nb`` with solutions stubbed and every output cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if "exercise" in cell.metadata.get("tags", []):
            names = re.findall(r"^def (\w+)\(", cell.source, flags=re.M)
            cell.source = stub_solution(cell.source, names[0] if names else f"cell {i}")
    return nb


def make_assignments(out: str | os.PathLike, notebooks: list[Path] | None = None,
                     force: bool = False) -> list[Path]:
    """Write the student version of every notebook that has exercises into ``out``.

    Nothing is written when ``out`` already holds one of the student notebooks (a student's work)
    unless ``force``; each notebook is written atomically.

    Returns
    -------
    list of Path
        The written notebooks.

    Raises
    ------
    ValueError
        ``out`` is a file, cannot be created, already holds student notebooks (without ``force``),
        or no notebook has exercises.
    """
    import nbformat

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, expected a folder for the student notebooks")
    students = []
    for path in notebooks if notebooks is not None else list_notebooks():
        nb = _read(path)
        if any("exercise" in c.metadata.get("tags", []) for c in nb.cells):
            students.append((out / Path(path).name, student_version(nb)))
    if not students:
        raise ValueError("no notebook with cells tagged 'exercise' was found")
    existing = [target.name for target, _ in students if target.exists()]
    if existing and not force:
        raise ValueError(f"{out} already holds {', '.join(existing)} (a student's work?); "
                         "pass --force to overwrite")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the folder {out}: {err.strerror}") from err
    for target, nb in students:
        write_atomic(target, nbformat.writes(nb))
    return [target for target, _ in students]


def _course_exercises(path: str | os.PathLike) -> list[str]:
    """Exercises of the course notebook whose name the file name contains (empty: no match)."""
    stem = Path(path).stem
    return [e.name for e in EXERCISES.values() if e.notebook in stem]


def expected_exercises(path: str | os.PathLike, nb=None) -> list[str]:
    """Exercises a submission is graded on: those of the course notebook its file name contains,
    else the names its check cells call."""
    by_notebook = _course_exercises(path)
    if by_notebook:
        return by_notebook
    nb = nb if nb is not None else _read(path)
    return list(dict.fromkeys(n for c in nb.cells if c.cell_type == "code" for n in _CHECK.findall(c.source)))


def _unmatched_warning(path: Path) -> str:
    names = sorted({e.notebook for e in EXERCISES.values()})
    return (f"{path.name} matches no course notebook (names contain {names[0]} … {names[-1]}); "
            "rename it to contain its notebook's name")


def _execute(src: str, dst: str, params: dict[str, Any], cell_timeout: int) -> None:
    """Run one notebook to the end (errors allowed, endless cells interrupted); used in a subprocess."""
    import papermill as pm

    from featureae_lite.notebooks import KERNEL_ARGUMENTS, _headless_environment

    with _headless_environment():
        try:
            pm.execute_notebook(src, dst, parameters=params, kernel_name="python3", progress_bar=False,
                                cwd=os.getcwd(), execution_timeout=cell_timeout,
                                allow_errors=True, interrupt_on_timeout=True,
                                extra_arguments=KERNEL_ARGUMENTS)
        except pm.PapermillExecutionError:
            pass  # errors are read back from the executed notebook


def _explain(output: dict, time_limit: float, limits: Limits) -> tuple[str, bool]:
    """A clear message for an error output of a cell, and whether a resource limit caused it."""
    ename, evalue = output.get("ename", ""), output.get("evalue", "")
    trace = "\n".join(output.get("traceback", []))
    if ename == "KeyboardInterrupt":  # papermill interrupts a cell that runs past the time limit
        return f"exceeded the time limit of {time_limit:.0f} s (interrupted)", False
    if ename == "MemoryError":
        return f"MemoryError: the memory limit of {limits.memory_mb} MB was reached", True
    if "[Errno 27]" in evalue or "File too large" in evalue:
        return (f"{ename}: {evalue}: File size limit exceeded (files are limited to "
                f"{limits.file_size_mb} MB)"), True
    if "can't start new thread" in evalue or (
            "[Errno 11]" in evalue and re.search(r"fork|Popen|spawn|Pool|Thread", trace)):
        return (f"{ename}: {evalue}: the process limit was reached (a fork or new thread failed; "
                f"{limits.processes} processes and threads allowed)"), True
    return f"{ename}: {evalue}", False


def _results_from(executed, expected: list[str], time_limit: float,
                  limits: Limits) -> tuple[dict[str, dict], list[str], bool]:
    """Feedback per exercise, the error messages found in an executed notebook and whether one of them
    comes from a resource limit.

    Errors name their cell by its position in the submitted notebook (1 = first cell): the cells
    papermill adds (injected parameters, error banners) are not counted.
    """
    results: dict[str, dict] = {}
    errors: list[str] = []
    check_errors: dict[str, str] = {}
    resource_hit = False
    added = {"injected-parameters", "papermill-error-cell-tag"}
    cells = [c for c in executed.cells if not added & set(c.metadata.get("tags", []))]
    for i, cell in enumerate(cells, start=1):
        if cell.cell_type != "code":
            continue
        for o in cell.get("outputs", []):
            if MIME in o.get("data", {}):
                fb = o["data"][MIME]
                results[fb["exercise"]] = {"status": fb["status"], "message": fb["message"]}
            elif o.get("output_type") == "error":
                text, by_limit = _explain(o, time_limit, limits)
                resource_hit |= by_limit
                msg = f"cell {i}: {text}"
                errors.append(msg)
                for name in _CHECK.findall(cell.source):
                    check_errors[name] = msg
    for name in expected:
        if name not in results:
            why = (f"its check cell failed ({check_errors[name]})" if name in check_errors
                   else "its check did not run (check cell missing or never reached)")
            results[name] = {"status": "failed", "message": f"no feedback: {why}."}
    return results, errors, resource_hit


def _failure(outcome: Outcome, limits: Limits) -> tuple[str, bool]:
    """Why the execution process ended badly, and whether a resource limit caused it."""
    sig = outcome.signal_name
    if sig == "SIGXCPU":
        return f"stopped by the CPU-time limit ({limits.cpu_seconds} s of CPU per process)", True
    if sig == "SIGXFSZ":
        return f"File size limit exceeded (SIGXFSZ; files are limited to {limits.file_size_mb} MB)", True
    if sig:
        hint = " (e.g. by the system's out-of-memory killer)" if sig == "SIGKILL" else ""
        return f"execution killed by {sig}{hint}", sig == "SIGKILL"
    last = (outcome.stderr.strip().splitlines() or ["no message"])[-1]
    if "DeadKernelError" in outcome.stderr or "Kernel died" in outcome.stderr:
        return (f"the kernel died ({last}): a crash, or a resource limit (memory {limits.memory_mb} MB, "
                f"CPU time, processes)"), False
    return f"execution failed: {last}", False


def _quick_cohorts(data_dir: str | os.PathLike | None, seed: int = 0) -> list[Path]:
    """The QUICK cohort folders of the teacher's data folder, synthesising the t2 one if missing."""
    from featureae_lite.data import ensure_cohort
    from featureae_lite.data.cohort import cohort_dir, is_complete
    from featureae_lite.data.synth import CONTRASTS

    ensure_cohort(data_dir, size="quick", seed=seed)
    return [d for d in (cohort_dir(data_dir, "quick", seed, c) for c in CONTRASTS) if is_complete(d)]


def _limits(time_limit: float, memory_limit_mb: int, file_size_limit_mb: int,
            process_limit: int) -> Limits:
    """Sandbox limits of one submission; names the offending option when a value is not positive."""
    options = {"time_limit (--time-limit)": time_limit, "memory_limit_mb (--memory-limit)": memory_limit_mb,
               "file_size_limit_mb (--file-size-limit)": file_size_limit_mb,
               "process_limit (--process-limit)": process_limit}
    for option, value in options.items():
        if not value > 0:
            raise ValueError(f"{option} must be positive, got {value}")
    # RLIMIT_CPU counts the CPU time of all threads of a process: torch may use every core.
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    return Limits(wall_seconds=time_limit + GRACE, cpu_seconds=int(time_limit * threads) + GRACE,
                  memory_mb=int(memory_limit_mb), file_size_mb=int(file_size_limit_mb),
                  processes=int(process_limit))


def grade_notebook(path: str | os.PathLike, time_limit: float = 900, data_dir: str | None = None,
                   seed: int = 0, *, memory_limit_mb: int = 6144, file_size_limit_mb: int = 1024,
                   process_limit: int = 256, cohorts: list[Path] | None = None) -> dict[str, Any]:
    """Execute one submission (QUICK) in a sandbox and grade its exercises; never raises for broken
    submissions.

    The submission runs in its own temporary folder (home, caches and a copy of the QUICK cohorts of
    ``data_dir`` inside; removed afterwards) with a scrubbed environment and resource limits, see
    :mod:`featureae_lite.sandbox`.

    Parameters
    ----------
    time_limit : float
        Seconds per cell and, plus 30 s to start the kernel, per notebook.
    data_dir : path-like, optional
        The teacher's data folder, never written to by the submission.
    memory_limit_mb, file_size_limit_mb, process_limit : int
        Memory per process (``RLIMIT_DATA``), largest file, and processes/threads the submission may
        start.
    cohorts : list of Path, optional
        QUICK cohort folders to copy (default: those of ``data_dir``, synthesised if missing).

    Returns
    -------
    dict
        ``path``, ``status`` (``"completed"``, ``"errors"``, ``"timed out"``, ``"resource limit"``,
        ``"unmatched"`` or ``"unreadable"``), ``seconds``, ``errors`` and ``warnings`` (lists of str),
        ``exercises`` (name → status, message), ``passed`` and ``total``.
    """
    import nbformat

    limits = _limits(time_limit, memory_limit_mb, file_size_limit_mb, process_limit)
    path = Path(path)
    report: dict[str, Any] = {"path": str(path), "status": "completed", "seconds": 0.0, "errors": [],
                              "warnings": []}
    try:
        nb = _read(path)
    except (FileNotFoundError, ValueError) as err:
        report.update(status="unreadable", errors=[str(err)], exercises={}, passed=0, total=0)
        return report
    expected = expected_exercises(path, nb)
    if not _course_exercises(path):
        report["warnings"].append(_unmatched_warning(path))
        if not expected:  # nothing to grade: do not run it
            report.update(status="unmatched", exercises={}, passed=0, total=0)
            return report
    start = time.perf_counter()
    for cell in nb.cells:  # submitted outputs never count: only what the grader executes
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    with Sandbox(prefix="featureae-grade-") as box:
        data, graded = box.root / "data", box.root / "graded"
        graded.mkdir()
        for folder in cohorts if cohorts is not None else _quick_cohorts(data_dir, seed):
            shutil.copytree(folder, data / folder.name)  # a copy: the teacher's data stays intact
        src, dst = graded / f"submitted_{path.name}", graded / path.name
        write_atomic(src, nbformat.writes(nb))
        params = {"QUICK": True, "SEED": seed, "OUTPUT_DIR": str(box.work / "output"), "DATA_DIR": str(data)}
        code = ("import json, sys; from featureae_lite.assignments import _execute; "
                "_execute(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]))")
        cmd = [sys.executable, "-c", code, str(src), str(dst), json.dumps(params),
               str(max(1, int(time_limit)))]
        outcome = box.run(cmd, limits, {"FEATUREAE_LITE_DATA": str(data)})
        try:
            executed = nbformat.read(dst, as_version=4) if dst.exists() else nb
        except Exception:  # cut off mid-write
            executed = nb
            report["errors"].append("the executed notebook could not be read back")
        results, errors, resource_hit = _results_from(executed, expected, time_limit, limits)
    report["warnings"] += outcome.warnings
    if outcome.timed_out:
        report["errors"].append(f"the notebook did not finish within its time limit of {time_limit:.0f} s "
                                f"(stopped after {outcome.seconds:.0f} s)")
    elif outcome.returncode != 0:
        message, by_limit = _failure(outcome, limits)
        report["errors"].append(message)
        resource_hit |= by_limit
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["errors"] += errors
    if resource_hit:
        report["status"] = "resource limit"
    elif outcome.timed_out:
        report["status"] = "timed out"
    elif report["errors"]:
        report["status"] = "errors"
    report["exercises"] = results
    report["passed"] = sum(r["status"] == "passed" for r in results.values())
    report["total"] = len(results)
    return report


def grade(paths: list[str | os.PathLike], out: str | os.PathLike | None = None, time_limit: float = 900,
          data_dir: str | None = None, *, memory_limit_mb: int = 6144, file_size_limit_mb: int = 1024,
          process_limit: int = 256) -> list[dict[str, Any]]:
    """Grade several submissions, each in its own sandbox (see :func:`grade_notebook`); writes the JSON
    report to ``out`` when given.

    The QUICK cohort of ``data_dir`` is synthesised once here if missing; every submission gets a
    copy and rebuilds caches and QUICK checkpoints inside its sandbox.
    """
    from tqdm.auto import tqdm

    if not paths:
        raise ValueError("no submission to grade")
    _limits(time_limit, memory_limit_mb, file_size_limit_mb, process_limit)  # fail before any work
    cohorts = _quick_cohorts(data_dir)
    reports = [grade_notebook(p, time_limit, data_dir, memory_limit_mb=memory_limit_mb,
                              file_size_limit_mb=file_size_limit_mb, process_limit=process_limit,
                              cohorts=cohorts)
               for p in tqdm(paths, desc="grading")]
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(reports, indent=2))
    return reports


def report_table(reports: list[dict[str, Any]]) -> str:
    """A readable markdown table: one row per submission and exercise."""
    lines = ["| submission | status | exercise | result | feedback |", "|---|---|---|---|---|"]
    for r in reports:
        name = Path(r["path"]).name
        notes = [*r.get("warnings", []), *r["errors"]]
        if not r["exercises"]:
            lines.append(f"| {name} | {r['status']} | – | – | {'; '.join(notes)} |")
        for ex, res in r["exercises"].items():
            lines.append(f"| {name} | {r['status']} | {ex} | {res['status']} | {res['message']} |")
        lines.append(f"| {name} | **{r['passed']}/{r['total']} passed** | | | {'; '.join(notes[:3])} |")
    return "\n".join(lines)
