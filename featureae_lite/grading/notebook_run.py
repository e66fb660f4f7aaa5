"""The optional run of a submission's assembled notebook (``--run-notebook``): papermill executes it
(QUICK, on a copy of the teacher's QUICK cohort) in the submission's sandbox, and its errors are
reported; they never change a verdict.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureae_lite.core.fileio import write_atomic
from featureae_lite.grading.limits import Limits
from featureae_lite.grading.report import failure_message, notebook_errors
from featureae_lite.grading.sandbox import Sandbox

if TYPE_CHECKING:
    from nbformat import NotebookNode


def execute_notebook(src: str, dst: str, params: dict[str, Any], cell_timeout: int) -> None:
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


def quick_cohorts(data_dir: str | os.PathLike | None, seed: int = 0) -> list[Path]:
    """The QUICK cohort folders of the teacher's data folder, synthesising the t2 one if missing."""
    from featureae_lite.data import ensure_cohort
    from featureae_lite.data.cohort import cohort_dir, is_complete
    from featureae_lite.data.synth import CONTRASTS

    ensure_cohort(data_dir, size="quick", seed=seed)
    return [d for d in (cohort_dir(data_dir, "quick", seed, c) for c in CONTRASTS) if is_complete(d)]


def run_assembled(box: Sandbox, nb: NotebookNode, name: str, cohorts: list[Path], seed: int,
                  time_limit: float, limits: Limits, warnings: list[str]) -> tuple[list[str], bool]:
    """Execute the assembled notebook ``nb`` (QUICK) in ``box``: its errors and whether a limit hit."""
    import nbformat

    data, graded = box.root / "data", box.root / "graded"
    graded.mkdir()
    for folder in cohorts:
        shutil.copytree(folder, data / folder.name)  # a copy: the teacher's data stays intact
    src, dst = graded / f"assembled_{name}", graded / name
    write_atomic(src, nbformat.writes(nb))
    params = {"QUICK": True, "SEED": seed, "OUTPUT_DIR": str(box.work / "output"), "DATA_DIR": str(data)}
    code = ("import json, sys; from featureae_lite.grading.notebook_run import execute_notebook; "
            "execute_notebook(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]))")
    cmd = [sys.executable, "-c", code, str(src), str(dst), json.dumps(params), str(max(1, int(time_limit)))]
    outcome = box.run(cmd, limits, {"FEATUREAE_LITE_DATA": str(data)})
    warnings += outcome.warnings
    errors, resource_hit = [], False
    if outcome.timed_out:
        errors.append(f"the notebook did not finish within its time limit of {time_limit:.0f} s "
                      f"(stopped after {outcome.seconds:.0f} s)")
    elif outcome.returncode != 0:
        message, resource_hit = failure_message(outcome, limits)
        errors.append(f"notebook: {message}")
    try:
        executed = nbformat.read(dst, as_version=4) if dst.exists() else None
    except Exception:  # cut off mid-write
        executed, errors = None, [*errors, "the executed notebook could not be read back"]
    if executed is not None:
        found, by_limit = notebook_errors(executed, time_limit, limits)
        errors, resource_hit = errors + found, resource_hit or by_limit
    return errors, resource_hit
