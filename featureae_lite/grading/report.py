"""What a grade report says: clear messages for the errors and limits a submission met, where the
report may be written, and the readable table of the command line.

The report itself (one dict per submission) is made by :func:`featureae_lite.grading.assignments.grade`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_output_file
from featureae_lite.course.notebooks import list_notebooks
from featureae_lite.grading.limits import Limits
from featureae_lite.grading.sandbox import Outcome

if TYPE_CHECKING:
    from nbformat import NotebookNode


def explain_error(output: dict, time_limit: float, limits: Limits) -> tuple[str, bool]:
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


def notebook_errors(executed: NotebookNode, time_limit: float, limits: Limits) -> tuple[list[str], bool]:
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
                text, by_limit = explain_error(o, time_limit, limits)
                resource_hit |= by_limit
                errors.append(f"notebook cell {i}: {text}")
    return errors, resource_hit


def failure_message(outcome: Outcome, limits: Limits) -> tuple[str, bool]:
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


def check_report_path(out: str | os.PathLike, paths: list[str | os.PathLike]) -> Path:
    """``out`` as a writable report file that is none of the inputs; ``ValueError`` (naming ``--out``)
    otherwise."""
    out = check_output_file(out, "--out")
    inputs = {Path(p).resolve() for p in [*paths, *list_notebooks()]}
    if out.resolve() in inputs:
        raise InputError(f"--out {out}: is one of the notebooks (a submission or a course notebook); "
                         "choose a new file name for the report, e.g. report.json")
    return out


def report_table(reports: list[dict[str, Any]]) -> str:
    """A readable markdown table: one row per submission and exercise, one per prediction (recorded,
    not graded: its result column says so)."""
    lines = ["| submission | status | exercise | result | feedback |", "|---|---|---|---|---|"]
    for r in reports:
        name = Path(r["path"]).name
        notes = [*r.get("warnings", []), *r["errors"]]
        if not r["exercises"]:
            lines.append(f"| {name} | {r['status']} | – | – | {'; '.join(notes)} |")
        for ex, res in r["exercises"].items():
            lines.append(f"| {name} | {r['status']} | {ex} | {res['status']} | {res['message']} |")
        for question, value in r.get("predictions", {}).items():
            said = "no prediction written" if value is None else f"predicted {value!r}"
            lines.append(f"| {name} | {r['status']} | prediction: {question} | not graded | {said} |")
        lines.append(f"| {name} | **{r['passed']}/{r['total']} passed** | | | {'; '.join(notes[:3])} |")
    return "\n".join(lines)
