"""Classroom assignments: student versions of the notebooks and autograding with papermill.

* :func:`make_assignments` writes student notebooks: in every cell tagged ``exercise`` the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a TODO stub that raises
  ``NotImplementedError``; everything else is kept, outputs are cleared.
* :func:`grade` executes submissions with papermill (QUICK settings, a time limit per notebook, in a
  separate process so that a crash or an endless loop cannot take the grader down), reads the
  feedback every check cell emitted (:data:`featureae_lite.exercises.MIME`) and reports each exercise
  as passed / failed / not attempted with the checker's message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from featureae_lite.exercises import EXERCISES, MIME
from featureae_lite.notebooks import list_notebooks

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_CHECK = re.compile(r"""check\(\s*["'](\w+)["']""")


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


def make_assignments(out: str | os.PathLike, notebooks: list[Path] | None = None) -> list[Path]:
    """Write the student version of every notebook that has exercises into ``out``.

    Returns
    -------
    list of Path
        The written notebooks.
    """
    import nbformat

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks if notebooks is not None else list_notebooks():
        nb = _read(path)
        if not any("exercise" in c.metadata.get("tags", []) for c in nb.cells):
            continue
        target = out / Path(path).name
        nbformat.write(student_version(nb), target)
        written.append(target)
    if not written:
        raise ValueError("no notebook with cells tagged 'exercise' was found")
    return written


def expected_exercises(path: str | os.PathLike, nb=None) -> list[str]:
    """Exercises a submission is graded on: those of the course notebook its file name contains,
    else the names its check cells call."""
    stem = Path(path).stem
    by_notebook = [e.name for e in EXERCISES.values() if e.notebook in stem]
    if by_notebook:
        return by_notebook
    nb = nb if nb is not None else _read(path)
    return list(dict.fromkeys(n for c in nb.cells if c.cell_type == "code" for n in _CHECK.findall(c.source)))


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


def _results_from(executed, expected: list[str]) -> tuple[dict[str, dict], list[str]]:
    """Feedback per exercise and the error messages found in an executed notebook."""
    results: dict[str, dict] = {}
    errors: list[str] = []
    check_errors: dict[str, str] = {}
    for i, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        for o in cell.get("outputs", []):
            if MIME in o.get("data", {}):
                fb = o["data"][MIME]
                results[fb["exercise"]] = {"status": fb["status"], "message": fb["message"]}
            elif o.get("output_type") == "error":
                msg = f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
                errors.append(msg)
                for name in _CHECK.findall(cell.source):
                    check_errors[name] = msg
    for name in expected:
        if name not in results:
            why = (f"its check cell failed ({check_errors[name]})" if name in check_errors
                   else "its check did not run (check cell missing or never reached)")
            results[name] = {"status": "failed", "message": f"no feedback: {why}."}
    return results, errors


def grade_notebook(path: str | os.PathLike, time_limit: float = 900, data_dir: str | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Execute one submission (QUICK) and grade its exercises; never raises for broken submissions.

    Returns
    -------
    dict
        ``path``, ``status`` (``"completed"``, ``"errors"``, ``"timed out"`` or ``"unreadable"``),
        ``seconds``, ``errors`` (list of str), ``exercises`` (name → status, message),
        ``passed`` and ``total``.
    """
    import nbformat

    path = Path(path)
    report: dict[str, Any] = {"path": str(path), "status": "completed", "seconds": 0.0, "errors": []}
    try:
        nb = _read(path)
    except (FileNotFoundError, ValueError) as err:
        report.update(status="unreadable", errors=[str(err)], exercises={}, passed=0, total=0)
        return report
    expected = expected_exercises(path, nb)
    start = time.perf_counter()
    for cell in nb.cells:  # submitted outputs never count: only what the grader executes
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    with tempfile.TemporaryDirectory(prefix="featureae-grade-") as tmp:
        src, dst = Path(tmp) / f"submitted_{path.name}", Path(tmp) / path.name
        nbformat.write(nb, src)
        params = {"QUICK": True, "SEED": seed, "OUTPUT_DIR": tmp, "DATA_DIR": str(data_dir or "")}
        code = ("import json, sys; from featureae_lite.assignments import _execute; "
                "_execute(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]))")
        cmd = [sys.executable, "-c", code, str(src), str(dst), json.dumps(params),
               str(max(1, int(time_limit)))]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit + 60,
                                  cwd=path.resolve().parent)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
                report["errors"].append(f"execution failed: {last}")
        except subprocess.TimeoutExpired:
            report["status"] = "timed out"
            report["errors"].append(f"the notebook did not finish within {time_limit:.0f} s")
        executed = nbformat.read(dst, as_version=4) if dst.exists() else nb
        results, errors = _results_from(executed, expected)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["errors"] += errors
    if report["status"] == "completed" and report["errors"]:
        report["status"] = "errors"
    report["exercises"] = results
    report["passed"] = sum(r["status"] == "passed" for r in results.values())
    report["total"] = len(results)
    return report


def grade(paths: list[str | os.PathLike], out: str | os.PathLike | None = None, time_limit: float = 900,
          data_dir: str | None = None) -> list[dict[str, Any]]:
    """Grade several submissions; writes the JSON report to ``out`` when given."""
    from tqdm.auto import tqdm

    if not paths:
        raise ValueError("no submission to grade")
    reports = [grade_notebook(p, time_limit, data_dir) for p in tqdm(paths, desc="grading")]
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(reports, indent=2))
    return reports


def report_table(reports: list[dict[str, Any]]) -> str:
    """A readable markdown table: one row per submission and exercise."""
    lines = ["| submission | status | exercise | result | feedback |", "|---|---|---|---|---|"]
    for r in reports:
        name = Path(r["path"]).name
        if not r["exercises"]:
            lines.append(f"| {name} | {r['status']} | – | – | {'; '.join(r['errors'])} |")
        for ex, res in r["exercises"].items():
            lines.append(f"| {name} | {r['status']} | {ex} | {res['status']} | {res['message']} |")
        lines.append(f"| {name} | **{r['passed']}/{r['total']} passed** | | | "
                     f"{'; '.join(r['errors'][:3])} |")
    return "\n".join(lines)
