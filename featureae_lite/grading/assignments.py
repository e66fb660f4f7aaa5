"""Classroom assignments: student versions of the notebooks and autograding with papermill.

* :func:`make_assignments` writes student notebooks: in every cell tagged ``exercise`` the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a TODO stub that raises
  ``NotImplementedError``; everything else is kept, outputs are cleared.
* :func:`grade` takes only the solution cells of each submission (the cells defining the exercises'
  functions) and puts them into the course notebook; nothing else of the submission is used. The
  checkers run in the grader's own process on fresh random cases and call the learner's functions in
  a worker contained by :class:`featureae_lite.grading.sandbox.Sandbox` (own temporary folder and home, a
  scrubbed environment, time, memory, file-size and process limits, and — unless ``isolation`` is
  off — namespaces where only that folder and the Python installation exist and no other process is
  visible; see :mod:`featureae_lite.grading.remote`), so a submission that edits a check cell, prints
  "passed" or patches ``fl.exercises`` gains nothing, and one that deletes or reads the teacher's
  files or kills the grader cannot. Each exercise is reported as passed / failed / not attempted with
  the checker's message. Optionally (``run_notebook``) the assembled notebook is also executed with
  papermill (QUICK) and its errors reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_output_file, write_atomic
from featureae_lite.course.exercises import EXERCISES
from featureae_lite.course.notebooks import list_notebooks
from featureae_lite.grading.remote import defined_functions
from featureae_lite.grading.sandbox import Limits, Outcome, Sandbox, isolation_problem

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
GRACE = 30  # seconds a notebook gets beyond its time limit to start and stop its kernel
UNISOLATED = ("graded without isolation (--no-isolation): the submission ran as your own user and could "
              "read, change and kill whatever you can")


def _read(path: str | os.PathLike):
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON / not a notebook
        raise InputError(f"{path} is not a readable notebook: {err}") from err


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
                raise InputError(f"{name}: nested {BEGIN}")
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# TODO: write your solution here (see the task above), then run the check.",
                    f'{indent}raise NotImplementedError("exercise {name}: not attempted yet")']
        elif stripped == END:
            if not inside:
                raise InputError(f"{name}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside or not found:
        raise InputError(f"{name}: an exercise cell needs one '{BEGIN}' … '{END}' block")
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
            names = defined_functions(cell.source)
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
        raise InputError(f"{out} is a file, expected a folder for the student notebooks")
    students = []
    for path in notebooks if notebooks is not None else list_notebooks():
        nb = _read(path)
        if any("exercise" in c.metadata.get("tags", []) for c in nb.cells):
            students.append((out / Path(path).name, student_version(nb)))
    if not students:
        raise InputError("no notebook with cells tagged 'exercise' was found")
    existing = [target.name for target, _ in students if target.exists()]
    if existing and not force:
        raise InputError(f"{out} already holds {', '.join(existing)} (a student's work?); "
                         "pass --force to overwrite")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the folder {out}: {err.strerror}") from err
    for target, nb in students:
        write_atomic(target, nbformat.writes(nb))
    return [target for target, _ in students]


def course_notebook(path: str | os.PathLike) -> Path | None:
    """The course notebook whose name the submission's file name contains (None: no match)."""
    stem = Path(path).stem
    matches = [p for p in list_notebooks() if p.stem in stem]
    return max(matches, key=lambda p: len(p.stem)) if matches else None


def exercise_cells(nb) -> list[tuple[str, Any]]:
    """``(function name, cell)`` of every cell tagged ``exercise`` of a course notebook, in order."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "exercise" in c.metadata.get("tags", [])]
    return [(defined_functions(c.source)[0], c) for c in cells]


def solution_cells(course, submitted) -> dict[str, str]:
    """The submitted source of every exercise of ``course``: the first code cell of ``submitted`` that
    defines the exercise's function (whatever its tags say); exercises without one are left out."""
    found: dict[str, str] = {}
    for cell in submitted.cells:
        if cell.cell_type == "code":
            for name in defined_functions(cell.source):
                found.setdefault(name, cell.source)
    return {name: found[name] for name, _ in exercise_cells(course) if name in found}


def assembled_notebook(course, solutions: dict[str, str]):
    """The course notebook with its exercise cells replaced by the submitted ``solutions`` (a missing
    one becomes the student stub); everything else — setup, parameters, check cells — is the
    course's."""
    nb = student_version(course)
    for name, cell in exercise_cells(nb):
        cell.source = solutions.get(name, cell.source)
    return nb


def _unmatched_warning(path: Path) -> str:
    names = sorted({e.notebook for e in EXERCISES.values()})
    return (f"{path.name} matches no course notebook (names contain {names[0]} … {names[-1]}); "
            "rename it to contain its notebook's name")


def _execute(src: str, dst: str, params: dict[str, Any], cell_timeout: int) -> None:
    """Run one notebook to the end (errors allowed, endless cells interrupted); used in a subprocess."""
    import papermill as pm

    from featureae_lite.course.notebooks import KERNEL_ARGUMENTS, _headless_environment

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
    if ename == "SubmissionExit":  # os._exit in the learner's code, refused by the worker
        return evalue, False
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


def _notebook_errors(executed, time_limit: float, limits: Limits) -> tuple[list[str], bool]:
    """The error messages of an executed notebook, and whether one of them comes from a resource limit.

    Errors name their cell by its position in the notebook (1 = first cell): the cells papermill adds
    (injected parameters, error banners) are not counted.
    """
    errors: list[str] = []
    resource_hit = False
    added = {"injected-parameters", "papermill-error-cell-tag"}
    cells = [c for c in executed.cells if not added & set(c.metadata.get("tags", []))]
    for i, cell in enumerate(cells, start=1):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if o.get("output_type") == "error":
                text, by_limit = _explain(o, time_limit, limits)
                resource_hit |= by_limit
                errors.append(f"notebook cell {i}: {text}")
    return errors, resource_hit


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
            raise InputError(f"{option} must be positive, got {value}")
    # RLIMIT_CPU counts the CPU time of all threads of a process: torch may use every core.
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    return Limits(wall_seconds=time_limit + GRACE, cpu_seconds=int(time_limit * threads) + GRACE,
                  memory_mb=int(memory_limit_mb), file_size_mb=int(file_size_limit_mb),
                  processes=int(process_limit))


def _run_notebook(box: Sandbox, nb, name: str, cohorts: list[Path], seed: int, time_limit: float,
                  limits: Limits, warnings: list[str]) -> tuple[list[str], bool]:
    """Execute the assembled notebook ``nb`` (QUICK) in ``box``: its errors and whether a limit hit."""
    import nbformat

    data, graded = box.root / "data", box.root / "graded"
    graded.mkdir()
    for folder in cohorts:
        shutil.copytree(folder, data / folder.name)  # a copy: the teacher's data stays intact
    src, dst = graded / f"assembled_{name}", graded / name
    write_atomic(src, nbformat.writes(nb))
    params = {"QUICK": True, "SEED": seed, "OUTPUT_DIR": str(box.work / "output"), "DATA_DIR": str(data)}
    code = ("import json, sys; from featureae_lite.grading.assignments import _execute; "
            "_execute(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]))")
    cmd = [sys.executable, "-c", code, str(src), str(dst), json.dumps(params), str(max(1, int(time_limit)))]
    outcome = box.run(cmd, limits, {"FEATUREAE_LITE_DATA": str(data)})
    warnings += outcome.warnings
    errors, resource_hit = [], False
    if outcome.timed_out:
        errors.append(f"the notebook did not finish within its time limit of {time_limit:.0f} s "
                      f"(stopped after {outcome.seconds:.0f} s)")
    elif outcome.returncode != 0:
        message, resource_hit = _failure(outcome, limits)
        errors.append(f"notebook: {message}")
    try:
        executed = nbformat.read(dst, as_version=4) if dst.exists() else None
    except Exception:  # cut off mid-write
        executed, errors = None, [*errors, "the executed notebook could not be read back"]
    if executed is not None:
        found, by_limit = _notebook_errors(executed, time_limit, limits)
        errors, resource_hit = errors + found, resource_hit or by_limit
    return errors, resource_hit


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
                text, by_limit = _explain(err, check_time_limit, limits)
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
        message, by_limit = _failure(outcome, limits)
        errors.append(f"while checking {name}(): {message}")
        problem = "resource limit" if by_limit else problem
    elif session.exit_reason():
        errors.append(f"while checking {name}(): {session.exit_reason()}")
    elif outcome is not None and outcome.returncode != 0:
        errors.append(f"while checking {name}(): {_failure(outcome, limits)[0]}")
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
        ``exercises`` (name → status, message), ``passed`` and ``total``.

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
                              "warnings": [], "exercises": {}, "passed": 0, "total": 0}
    try:
        nb = _read(path)
    except (FileNotFoundError, ValueError) as err:
        report.update(status="unreadable", errors=[str(err)])
        return report
    course_path = course_notebook(path)
    if course_path is None:
        report.update(status="unmatched", warnings=[_unmatched_warning(path)])
        return report
    course = _read(course_path)
    solutions = solution_cells(course, nb)
    assembled = assembled_notebook(course, solutions)
    cells = [cell.source for _, cell in exercise_cells(assembled)]
    start = time.perf_counter()
    problems: list[str] = []
    if not isolation:
        report["warnings"].append(UNISOLATED)
    with Sandbox(prefix="featureae-grade-", isolate=isolation) as box:
        if run_notebook:
            found, resource_hit = _run_notebook(
                box, assembled, path.name, cohorts if cohorts is not None else _quick_cohorts(data_dir, seed),
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


def _check_report_path(out: str | os.PathLike, paths: list[str | os.PathLike]) -> Path:
    """``out`` as a writable report file that is none of the inputs; ``ValueError`` (naming ``--out``)
    otherwise."""
    out = check_output_file(out, "--out")
    inputs = {Path(p).resolve() for p in [*paths, *list_notebooks()]}
    if out.resolve() in inputs:
        raise InputError(f"--out {out}: is one of the notebooks (a submission or a course notebook); "
                         "choose a new file name for the report, e.g. report.json")
    return out


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
    report_path = _check_report_path(out, paths) if out else None
    _isolation_error(isolation)
    reports: list[dict[str, Any]] = []
    with _terminate_as_interrupt():
        cohorts = _quick_cohorts(data_dir) if run_notebook else []
        for p in tqdm(paths, desc="grading"):
            reports.append(grade_notebook(p, time_limit, data_dir, memory_limit_mb=memory_limit_mb,
                                          file_size_limit_mb=file_size_limit_mb, process_limit=process_limit,
                                          check_time_limit=check_time_limit, run_notebook=run_notebook,
                                          cohorts=cohorts, isolation=isolation))
            if report_path is not None:
                write_atomic(report_path, json.dumps(reports, indent=2))
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
