"""The course's two jobs: execute the notebook sequence (``featureae-lite notebooks``: run, check,
site, expected figures) and the main job of ``make run`` (``featureae-lite main``: cohort, course
models, then the notebooks, their check and their site).

Progress and results are logged (logger ``featureae_lite.course.jobs``: INFO the lines of the run,
WARNING the figures outside their band, ERROR failed notebooks and lessons); the command line shows
INFO on stdout and the rest on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_not_an_input, check_output_dir
from featureae_lite.course import figures, notebooks

log = logging.getLogger(__name__)


@dataclass
class NotebookRun:
    """Outcome of :func:`run_notebook_job`.

    Attributes
    ----------
    run_dir : Path
        The run folder.
    failed : list of str
        Notebooks that raised (``errors.json``).
    report : CheckReport or None
        The check of the recorded figures (None: not asked for).
    site : Path or None
        ``index.html`` of the rendered site (None: not asked for).
    """

    run_dir: Path
    failed: list[str]
    report: figures.CheckReport | None = None
    site: Path | None = None

    @property
    def ok(self) -> bool:
        """No notebook failed and no checked lesson failed (drift is only a warning)."""
        return not self.failed and not (self.report and self.report.failures)


def run_notebook_job(
    quick: bool,
    out: str | os.PathLike | None,
    *,
    only: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
    check: bool = False,
    html: str | os.PathLike | None = None,
    site_in_run: bool = False,
    record_expected: bool = False,
    record_from: Sequence[str | os.PathLike] = (),
    overwrite: bool = False,
) -> NotebookRun:
    """Execute the sequence (:func:`~featureae_lite.course.notebooks.run_notebooks`), then optionally
    check its figures, render its site and record its bands as the expected figures.

    Every input is checked before the first notebook runs.

    Parameters
    ----------
    out : path-like or None
        The run folder: empty, or an earlier run that ``overwrite`` removes first; None: a new
        ``runs/<timestamp>`` (:func:`~featureae_lite.course.notebooks.new_run_dir`).
    only : list of str, optional
        Notebook prefixes (e.g. ``["00", "04"]``); default: the whole sequence.
    check : bool
        Check the recorded figures (:func:`~featureae_lite.course.figures.check_run`).
    html : path-like, optional
        Render the executed notebooks as a site into this folder.
    site_in_run : bool
        Render the site into ``<run>/site`` (the main job's), in place of ``html``.
    record_expected : bool
        Store bands derived from this run and the ``record_from`` runs as the expected figures.
    record_from : sequence of path-like
        Earlier finished run folders to record from together with this one.
    """
    start = time.perf_counter()
    if record_expected:
        figures.writable_expected_file()  # before the run: an installed package's copy is read-only
    if out:
        from featureae_lite.data.paths import resolve_data_dir

        check_not_an_input(out, {}, {"the data folder": resolve_data_dir(data_dir)})
        check_output_dir(out)
        notebooks.clear_run_folder(out, overwrite=overwrite)
    if html:
        check_output_dir(html, "--html")
    earlier = [Path(d) for d in record_from]
    for d in earlier:
        if not (d / "index.md").is_file():
            raise InputError(f"--from {d}: not a finished notebook run folder (no index.md)")
    run_dir = notebooks.run_notebooks(quick, out or notebooks.new_run_dir(), only=only, data_dir=data_dir,
                                      seed=seed, threads=threads, device=device)
    log.info((run_dir / "index.md").read_text())
    log.info(f"executed in {time.perf_counter() - start:.0f} s → {run_dir}")
    errors = run_dir / "errors.json"
    failed = list(json.loads(errors.read_text())) if errors.exists() else []
    if failed:
        log.error(f"FAILED notebooks: {', '.join(failed)}")
    result = NotebookRun(run_dir, failed)
    if check:
        executed = list(json.loads((run_dir / "times.json").read_text()))
        result.report = report = figures.check_run(run_dir, quick, notebooks=executed)
        for line in report.drift:
            log.warning(f"WARNING drift {line}")
        for line in report.failures:
            log.error(f"FAIL {line}")
        log.info(f"check: {len(report.failures)} failure(s) (orderings the lessons rely on, missing "
                 f"figures), {len(report.drift)} figure(s) outside their measured band (warnings)")
    site = run_dir / "site" if site_in_run else html
    if site:
        from featureae_lite.course.html_report import render_run

        tick = time.perf_counter()
        result.site = render_run(run_dir, site)
        log.info(f"course site of this run rendered in {time.perf_counter() - tick:.0f} s; open it in a "
                 f"browser (works offline): {result.site.resolve().as_uri()}")
    if record_expected:
        names = figures.record_expected([*earlier, run_dir], quick)
        log.info(f"expected figures recorded from {len(earlier) + 1} run(s) for {', '.join(names)} "
                 "in notebooks/expected_figures.json")
    return result


def main_job(quick: bool, *, seed: int = 0, data_dir: str | os.PathLike | None = None,
             contrast: str = "t2", device: str = "auto") -> NotebookRun:
    """Train once, then teach: the cohort, every course model at the preset's budget (loaded by the
    notebooks), then the whole sequence into a new ``runs/<timestamp>``, its check and its site
    (``<run>/site/index.html``)."""
    from featureae_lite.core.presets import preset
    from featureae_lite.course.session import start as start_session
    from featureae_lite.course.session import train_course_models
    from featureae_lite.data import ensure_cohort
    from featureae_lite.data.cohort import cohort_summary

    if contrast != "t2":
        raise InputError(f"--contrast {contrast}: the notebooks teach on the T2 cohort; other "
                         "contrasts are for synth, train, benchmark and curves")
    p = preset(quick)
    start = time.perf_counter()
    cohort = ensure_cohort(data_dir, size=p.cohort_size, seed=seed, contrast=contrast)
    log.info(cohort_summary(cohort))
    log.info(f"cohort ready in {time.perf_counter() - start:.1f} s")
    tick = time.perf_counter()
    session = start_session(quick, seed, data_dir, contrast, device=device)
    for r in train_course_models(session):
        how = "trained" if r["trained"] else "loaded (trained earlier)"
        log.info(f"  {r['method']:<9} {r['steps']:>5} steps, {r['train_seconds']:5.0f} s of training — {how}")
    log.info(f"course models ready in {time.perf_counter() - tick:.0f} s")
    return run_notebook_job(quick, None, data_dir=data_dir, seed=seed, device=device, check=True,
                            site_in_run=True)
