"""Grading of classroom submissions (``featureae_lite assignments grade``).

:func:`grade` takes only the solution cells of each submission (the cells defining the exercises'
functions) and puts them into the course notebook; nothing else of the submission is used
(:mod:`featureae_lite.grading.authoring`). The checkers run in the grader's own process on fresh random
cases and call the learner's functions in a worker contained by
:class:`featureae_lite.grading.sandbox.Sandbox` (own temporary folder and home, a scrubbed environment,
time, memory, file-size and process limits, and — unless ``isolation`` is off — namespaces where only
that folder and the Python installation exist and no other process is visible; see
:mod:`featureae_lite.grading.remote`), so a submission that edits a check cell, prints "passed" or
patches ``fl.exercises`` gains nothing, and one that deletes or reads the teacher's files or kills the
grader cannot. Each exercise is reported as passed / failed / not attempted with the checker's message
(:mod:`featureae_lite.grading.report`). Optionally (``run_notebook``) the assembled notebook is also
executed with papermill (QUICK) and its errors reported (:mod:`featureae_lite.grading.notebook_run`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.course.exercises import EXERCISES
from featureae_lite.course.notebooks import list_notebooks
from featureae_lite.grading.authoring import (
    assembled_notebook,
    exercise_cells,
    predictions,
    read_notebook,
    solution_cells,
)
from featureae_lite.grading.limits import Limits
from featureae_lite.grading.notebook_run import quick_cohorts, run_assembled
from featureae_lite.grading.report import check_report_path, explain_error, failure_message
from featureae_lite.grading.sandbox import Sandbox, isolation_problem

GRACE = 30  # seconds a notebook gets beyond its time limit to start and stop its kernel
UNISOLATED = ("graded without isolation (--no-isolation): the submission ran as your own user and could "
              "read, change and kill whatever you can")


def course_notebook(path: str | os.PathLike) -> Path | None:
    """The course notebook whose name the submission's file name contains (None: no match)."""
    stem = Path(path).stem
    matches = [p for p in list_notebooks() if p.stem in stem]
    return max(matches, key=lambda p: len(p.stem)) if matches else None


def _unmatched_warning(path: Path) -> str:
    names = sorted({e.notebook for e in EXERCISES.values()})
    return (f"{path.name} matches no course notebook (names contain {names[0]} … {names[-1]}); "
            "rename it to contain its notebook's name")


def _limits(time_limit: float, memory_limit_mb: int, file_size_limit_mb: int,
            process_limit: int) -> Limits:
    """Sandbox limits of one submission; names the offending option when a value is not positive."""
    options = {"time_limit (--time-limit)": time_limit, "memory_limit_mb (--memory-limit)": memory_limit_mb,
               "file_size_limit_mb (--file-size-limit)": file_size_limit_mb,
               "process_limit (--process-limit)": process_limit}
    for option, value in options.items():
        if not value > 0:
            raise InputError(f"{option} must be positive, got {value}")
    # RLIMIT_CPU counts the CPU time of all threads of a process: torch may use every core.
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    return Limits(wall_seconds=time_limit + GRACE, cpu_seconds=int(time_limit * threads) + GRACE,
                  memory_mb=int(memory_limit_mb), file_size_mb=int(file_size_limit_mb),
                  processes=int(process_limit))


def _judge(box: Sandbox, name: str, cells: list[str], solutions: dict[str, str], limits: Limits,
           check_time_limit: float, warnings: list[str]) -> tuple[dict[str, str], list[str], str | None]:
    """Verdict on exercise ``name``: its checker runs here, the learner's code in a worker in ``box``.

    Returns the exercise's result (status, message), error messages of the solution cells, and
    ``"resource limit"`` / ``"timed out"`` when the worker met one (else None).
    """
    from featureae_lite.course.exercises import EXERCISES, feedback
    from featureae_lite.grading.remote import RemoteSession, WorkerGone

    if name not in solutions:
        return {"status": "failed", "message": f"no cell of the submission defines {name}()."}, [], None
    session = RemoteSession(box, cells, limits, call_timeout=check_time_limit,
                            forbidden=EXERCISES[name].forbidden)
    errors, problem = [], None
    try:
        with session:
            for err in session.cell_errors:
                text, by_limit = explain_error(err, check_time_limit, limits)
                defines = ", ".join(f"{n}()" for n in err["names"]) or "no function"
                errors.append(f"solution cell {err['cell']} (defines {defines}): {text}")
                problem = "resource limit" if by_limit else problem
            own = [e for e in session.cell_errors if name in e["names"]]
            if own and name not in session.defined:
                result = {"status": "failed", "message": f"the cell defining {name}() raised "
                          f"{own[0]['ename']}: {own[0]['evalue']}."}
            else:
                fb = feedback(name, session.function(name), seed=secrets.randbits(63), source=solutions[name])
                result = {"status": fb.status, "message": fb.message}
    except WorkerGone:
        reason = session.exit_reason()
        result = {"status": "failed",
                  "message": f"{reason}." if reason else "your solution cells did not finish running."}
    if session.forbidden_calls:  # called at run time, however the solution reached it
        result = {"status": "failed", "message": f"your solution calls {session.forbidden_calls[0]} (seen "
                  "when it ran), the function this exercise asks you to write. Hint: write the "
                  "computation yourself with numpy/torch operations."}
    outcome = session.outcome
    warnings += [w for w in (outcome.warnings if outcome else []) if w not in warnings]
    if outcome is not None and outcome.timed_out:
        errors.append(f"the solution cells ran past the time limit of {limits.wall_seconds:.0f} s while "
                      f"checking {name}() and were stopped")
        problem = problem or "timed out"
    elif outcome is not None and outcome.returncode < 0:
        message, by_limit = failure_message(outcome, limits)
        errors.append(f"while checking {name}(): {message}")
        problem = "resource limit" if by_limit else problem
    elif session.exit_reason():
        errors.append(f"while checking {name}(): {session.exit_reason()}")
    elif outcome is not None and outcome.returncode != 0:
        errors.append(f"while checking {name}(): {failure_message(outcome, limits)[0]}")
    return result, errors, problem


def _isolation_error(isolation: bool) -> None:
    """Raise ``ValueError`` (one line) when ``isolation`` is asked for and not available here."""
    problem = isolation_problem() if isolation else None
    if problem:
        raise InputError(f"cannot isolate the submissions: {problem}. Pass --no-isolation to grade them "
                         "anyway as your own user (they can then read, change and kill what you can)")


def grade_notebook(path: str | os.PathLike, time_limit: float = 900, data_dir: str | None = None,
                   seed: int = 0, *, memory_limit_mb: int = 6144, file_size_limit_mb: int = 1024,
                   process_limit: int = 256, check_time_limit: float = 60, run_notebook: bool = False,
                   cohorts: list[Path] | None = None, isolation: bool = True) -> dict[str, Any]:
    """Grade one submission; never raises for broken submissions.

    Only the submission's solution cells are used (for each exercise, the first code cell that
    defines its function); everything else comes from the course notebook its file name contains.
    For each exercise a worker in the submission's sandbox (own temporary folder and home, scrubbed
    environment, resource limits, see :mod:`featureae_lite.grading.sandbox`) executes the solution cells, and
    the exercise's checker runs *in this process* on fresh random cases, calling the learner's
    function through :mod:`featureae_lite.grading.remote`. Nothing the submission prints, displays or patches
    reaches the verdict.

    Parameters
    ----------
    time_limit : float
        Seconds per cell and, plus 30 s to start the kernel, per notebook (``run_notebook`` only).
    data_dir : path-like, optional
        The teacher's data folder, never written to by the submission (``run_notebook`` only).
    memory_limit_mb, file_size_limit_mb, process_limit : int
        Memory per process (``RLIMIT_DATA``), largest file, and processes/threads the submission may
        start.
    check_time_limit : float
        Seconds one call of the learner's function may take; the worker of an exercise lives at most
        this long plus 30 s.
    run_notebook : bool
        Also execute the assembled course notebook (QUICK) and report its errors (they never change a
        verdict).
    cohorts : list of Path, optional
        QUICK cohort folders to copy for ``run_notebook`` (default: those of ``data_dir``).
    isolation : bool
        Run the submission isolated (:func:`featureae_lite.grading.sandbox.isolation_args`: only its sandbox
        folder and the Python installation visible, the grader's processes invisible); False runs it
        as this user, with a warning in the report.

    Returns
    -------
    dict
        ``path``, ``status`` (``"completed"``, ``"errors"``, ``"timed out"``, ``"resource limit"``,
        ``"unmatched"`` or ``"unreadable"``), ``seconds``, ``errors`` and ``warnings`` (lists of str),
        ``exercises`` (name → status, message), ``passed`` and ``total``, ``predictions`` (the question
        of each "Predict, then measure" cell → the learner's ``MY_PREDICTION``, None where none was
        written; recorded, not graded).

    Raises
    ------
    ValueError
        A limit is not positive, or ``isolation`` is asked for where it is not available.
    """
    _isolation_error(isolation)
    limits = _limits(time_limit, memory_limit_mb, file_size_limit_mb, process_limit)
    check_limits = _limits(check_time_limit, memory_limit_mb, file_size_limit_mb, process_limit)
    path = Path(path)
    report: dict[str, Any] = {"path": str(path), "status": "completed", "seconds": 0.0, "errors": [],
                              "warnings": [], "exercises": {}, "passed": 0, "total": 0, "predictions": {}}
    try:
        nb = read_notebook(path)
    except (FileNotFoundError, ValueError) as err:
        report.update(status="unreadable", errors=[str(err)])
        return report
    course_path = course_notebook(path)
    if course_path is None:
        report.update(status="unmatched", warnings=[_unmatched_warning(path)])
        return report
    course = read_notebook(course_path)
    solutions = solution_cells(course, nb)
    report["predictions"] = predictions(course, nb)
    assembled = assembled_notebook(course, solutions)
    cells = [cell.source for _, cell in exercise_cells(assembled)]
    start = time.perf_counter()
    problems: list[str] = []
    if not isolation:
        report["warnings"].append(UNISOLATED)
    with Sandbox(prefix="featureae-grade-", isolate=isolation) as box:
        if run_notebook:
            found, resource_hit = run_assembled(
                box, assembled, path.name, cohorts if cohorts is not None else quick_cohorts(data_dir, seed),
                seed, time_limit, limits, report["warnings"])
            report["errors"] += found
            problems += ["resource limit"] if resource_hit else []
        for name, _ in exercise_cells(course):
            if "timed out" in problems:  # the solution cells never finish: no worker gets further
                report["exercises"][name] = {"status": "failed",
                                             "message": "your solution cells did not finish running."}
                continue
            result, errors, problem = _judge(box, name, cells, solutions, check_limits, check_time_limit,
                                             report["warnings"])
            report["exercises"][name] = result
            report["errors"] += [e for e in errors if e not in report["errors"]]
            problems += [problem] if problem else []
    report["seconds"] = round(time.perf_counter() - start, 1)
    if "resource limit" in problems:
        report["status"] = "resource limit"
    elif "timed out" in problems:
        report["status"] = "timed out"
    elif report["errors"]:
        report["status"] = "errors"
    report["passed"] = sum(r["status"] == "passed" for r in report["exercises"].values())
    report["total"] = len(report["exercises"])
    return report


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM acts as Ctrl-C (``KeyboardInterrupt``), so that the workers, their
    pids cgroups and the sandbox folders are cleaned up as on SIGINT; a second SIGTERM during that
    clean-up is ignored (SIGKILL still ends the grader; its workers then die with it). Only in the
    main thread (signal handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def grade(paths: list[str | os.PathLike], out: str | os.PathLike | None = None, time_limit: float = 900,
          data_dir: str | None = None, *, memory_limit_mb: int = 6144, file_size_limit_mb: int = 1024,
          process_limit: int = 256, check_time_limit: float = 60, run_notebook: bool = False,
          isolation: bool = True) -> list[dict[str, Any]]:
    """Grade several submissions, each in its own sandbox (see :func:`grade_notebook`); writes the JSON
    report to ``out`` when given.

    Everything is checked before any grading: the limits, that isolation is available (unless
    ``isolation`` is False) and that ``out`` can be written and is none of the notebooks. The report
    is rewritten (atomically) after every submission, so the submissions graded so far stay reported
    should the grader be stopped. SIGTERM stops grading like Ctrl-C (``KeyboardInterrupt``): every
    worker and sandbox folder is removed. With ``run_notebook`` the QUICK cohort of ``data_dir`` is
    synthesised once here if missing; every submission gets a copy and rebuilds caches and QUICK
    checkpoints inside its sandbox.

    Raises
    ------
    ValueError
        No submission, a limit that is not positive, no isolation available (and ``isolation``), or an
        ``out`` that is a folder, unwritable or one of the notebooks.
    """
    from tqdm.auto import tqdm

    if not paths:
        raise InputError("no submission to grade")
    _limits(time_limit, memory_limit_mb, file_size_limit_mb, process_limit)  # fail before any work
    if not check_time_limit > 0:
        raise InputError(f"check_time_limit (--check-time-limit) must be positive, got {check_time_limit}")
    report_path = check_report_path(out, paths) if out else None
    _isolation_error(isolation)
    reports: list[dict[str, Any]] = []
    with _terminate_as_interrupt():
        cohorts = quick_cohorts(data_dir) if run_notebook else []
        for p in tqdm(paths, desc="grading"):
            reports.append(grade_notebook(p, time_limit, data_dir, memory_limit_mb=memory_limit_mb,
                                          file_size_limit_mb=file_size_limit_mb, process_limit=process_limit,
                                          check_time_limit=check_time_limit, run_notebook=run_notebook,
                                          cohorts=cohorts, isolation=isolation))
            if report_path is not None:
                write_atomic(report_path, json.dumps(reports, indent=2))
    return reports
