"""Exercises, student versions and autograding (featureae_lite.course.exercises / .assignments)."""

from __future__ import annotations

import copy
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

import featureae_lite as fl
from featureae_lite.cli import main
from featureae_lite.core.errors import InputError
from featureae_lite.course.exercises import EXERCISES, feedback
from featureae_lite.course.notebooks import list_notebooks
from featureae_lite.grading import assignments
from featureae_lite.grading.assignments import grade
from featureae_lite.grading.authoring import BEGIN, make_assignments, strip_details, student_version
from featureae_lite.grading.limits import pids_cgroup as _pids_cgroup
from featureae_lite.grading.report import report_table
from featureae_lite.grading.sandbox import isolation_problem

NOTEBOOKS = list_notebooks()
NO_ISOLATION = isolation_problem()  # None where submissions can be isolated (bubblewrap works)
needs_isolation = pytest.mark.skipif(NO_ISOLATION is not None,
                                     reason=f"submissions cannot be isolated here: {NO_ISOLATION}")


def _exercise_cells(nb):
    return [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]


def _run_cells(cells) -> dict:
    namespace = {"fl": fl}
    for cell in cells:
        exec(compile(cell.source, "<exercise>", "exec"), namespace)
    return namespace


def _name(cell) -> str:
    return next(line.split("(")[0][4:] for line in cell.source.splitlines() if line.startswith("def "))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_reference_solutions_pass_and_stubs_say_not_attempted(path):
    nb = nbformat.read(path, as_version=4)
    cells = _exercise_cells(nb)
    names = [_name(c) for c in cells]
    designs = [n for n in names if n in EXERCISES and EXERCISES[n].design]  # one open design task
    assert 2 <= len(cells) <= 5 and len(designs) == 1, \
        f"{path.name} has {len(cells)} exercises ({len(designs)} design tasks)"
    assert sorted(names) == sorted(e.name for e in EXERCISES.values() if e.notebook == path.stem)
    checks = [c.source for c in nb.cells if "exercise-check" in c.metadata.get("tags", [])]
    assert all(any(f'check("{n}", {n})' in s for s in checks) for n in names)
    solved = _run_cells(cells)
    for name in names:
        fb = feedback(name, solved[name])
        assert fb.passed, f"reference solution of {name}: {fb.message}"
    stubbed = _run_cells(_exercise_cells(student_version(nb)))
    for name in names:
        fb = feedback(name, stubbed[name])
        assert fb.status == "not attempted" and "NotImplementedError" in fb.message


def test_wrong_answers_get_specific_feedback():
    fb = feedback("l1_residual", lambda x, x_hat: x - x_hat)
    assert fb.status == "failed" and "differs" in fb.message and "Hint" in fb.message
    fb = feedback("relative_perceptual_l1", lambda fx, fy: (fx - fy).abs().flatten(1).mean(1)
                  / fx.abs().flatten(1).mean(1))
    assert fb.status == "failed" and "gradient" in fb.message
    fb = feedback("dice", lambda a, b: 1 / 0)
    assert fb.status == "failed" and "ZeroDivisionError" in fb.message
    assert feedback("dice", 3).status == "failed"
    with pytest.raises(ValueError, match="unknown exercise 'nope'"):
        feedback("nope", len)


def test_check_and_reveal_show_plain_text_outside_a_notebook(capsys):
    fl.exercises.check("l1_residual", lambda x, x_hat: (x - x_hat).abs())
    assert capsys.readouterr().out.strip() == "✔ l1_residual: passed. Well done!"
    text = fl.exercises.reveal("3", 3, what="the count")
    assert capsys.readouterr().out.strip() == text and text.endswith("as you predicted")


def test_student_versions_contain_no_solution_code(tmp_path):
    written = make_assignments(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for ref_path, student_path in zip(NOTEBOOKS, written, strict=True):
        ref, student = nbformat.read(ref_path, as_version=4), nbformat.read(student_path, as_version=4)
        assert len(ref.cells) == len(student.cells)
        for r, s in zip(ref.cells, student.cells, strict=True):
            if r.cell_type == "markdown":
                assert s.source == strip_details(r.source)  # the text, without its explanations
                continue
            if "exercise" not in r.metadata.get("tags", []):
                assert r.source == s.source  # everything else intact
                continue
            block = r.source.split(BEGIN)[1].split("### END SOLUTION")[0]
            solution = [ln.strip() for ln in block.splitlines() if ln.strip()]
            assert BEGIN not in s.source and "NotImplementedError" in s.source and "TODO" in s.source
            assert not [ln for ln in solution if ln in s.source], f"{student_path.name} leaks a solution"
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


def test_student_versions_keep_the_questions_without_their_explanations(tmp_path):
    written = make_assignments(tmp_path)
    for ref_path, student_path in zip(NOTEBOOKS, written, strict=True):
        ref, student = nbformat.read(ref_path, as_version=4), nbformat.read(student_path, as_version=4)
        assert any("<details>" in c.source for c in ref.cells if c.cell_type == "markdown"), ref_path.name
        assert not any("<details" in c.source or "</details>" in c.source for c in student.cells), \
            f"{student_path.name} shows an explanation"
        for r, s in zip(ref.cells, student.cells, strict=True):
            if r.cell_type == "markdown" and "<details>" in r.source:
                question = r.source.split("<details>")[0].rstrip()
                assert s.source == question or s.source.startswith(question + "\n"), \
                    f"{student_path.name}, cell {r.get('id')}: the question changed"


def test_strip_details_removes_every_block_and_refuses_an_unclosed_one():
    cell = ("**Questions**\n1. Why?\n2. How?\n\n<details><summary>Explanation — question 1</summary>\n\n"
            "Because.\n\n</details>\n\n<DETAILS open><summary>2</summary>\n\nSo.\n</details>\n\nMore text.")
    assert strip_details(cell) == "**Questions**\n1. Why?\n2. How?\n\nMore text."
    assert strip_details("No explanation here.\n") == "No explanation here.\n"
    with pytest.raises(InputError, match="1 '<details>' and 0 '</details>'"):
        strip_details("Why?\n\n<details><summary>Explanation</summary>\n\nBecause.")


def _submission(path, *cells, import_fl=True):
    nb = new_notebook()
    params = new_code_cell('QUICK = False\nSEED = 0\nDATA_DIR = ""\nOUTPUT_DIR = ""')
    params.metadata["tags"] = ["parameters"]
    header = [params, new_code_cell("import featureae_lite as fl")] if import_fl else [params]
    nb.cells = [*header, *[new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_make_refuses_a_folder_with_student_work_unless_forced(tmp_path, capsys):
    student = tmp_path / "student"
    [written] = make_assignments(student, notebooks=[NOTEBOOKS[1]])
    written.write_text("a student's work")
    with pytest.raises(ValueError, match=rf"{student}.*{written.name}.*pass --force to overwrite"):
        make_assignments(student, notebooks=[NOTEBOOKS[1]])
    assert written.read_text() == "a student's work"
    assert main(["assignments", "make", "--out", str(student)]) == 2
    assert "pass --force" in capsys.readouterr().err and written.read_text() == "a student's work"
    assert main(["assignments", "make", "--out", str(student), "--force"]) == 0
    assert nbformat.read(written, as_version=4).cells  # overwritten by the student version
    assert not list(student.glob(".*.tmp"))  # atomic writes leave no temporary file
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    assert main(["assignments", "make", "--out", str(a_file)]) == 2
    assert f"error: {a_file} is a file" in capsys.readouterr().err and a_file.read_text() == "keep"


def test_grade_options_must_be_positive(tmp_path, capsys):
    nb = _submission(tmp_path / "x_01_l1_residual_autoencoder.ipynb")
    assert main(["assignments", "grade", str(nb), "--memory-limit", "0"]) == 2
    assert "--memory-limit) must be positive" in capsys.readouterr().err


@pytest.fixture
def sandboxes(tmp_path, monkeypatch):
    """Sandboxes made under ``tmp_path/sandboxes`` (tempfile's folder), to check they are gone."""
    root = tmp_path / "sandboxes"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _processes_under(folder: Path) -> list[str]:
    """Processes whose command line or working directory lies in ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd") if proc.name.isdigit() else ""
        except OSError:
            continue
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            found.append(f"{proc.name}: {cmdline[:100]}")
    return found


def _fork_bomb_is_contained() -> bool:
    """A process limit holds: RLIMIT_NPROC for an ordinary user, a pids cgroup for root."""
    if not sys.platform.startswith("linux"):
        return False
    if os.geteuid() != 0:
        return True
    group = _pids_cgroup(8, [])
    if group is not None:
        group.rmdir()
    return group is not None


LIMITS = {"time_limit": 20, "memory_limit_mb": 1024, "file_size_limit_mb": 50, "process_limit": 64,
          "check_time_limit": 20, "isolation": NO_ISOLATION is None}
CLI_LIMITS = ["--memory-limit", "1024", "--file-size-limit", "50", "--process-limit", "64",
              "--check-time-limit", "20"]


L1 = "def l1_residual(x, x_hat):\n    return (x - x_hat).abs()"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the clean-up check reads /proc")
def test_runaway_submissions_are_stopped_and_the_others_graded(tmp_path, sandboxes):
    normal = _submission(tmp_path / "ann_01_l1_residual_autoencoder.ipynb", L1)
    memory = _submission(tmp_path / "ben_01_l1_residual_autoencoder.ipynb",
                         f"{L1}\nx = []\nwhile True:\n    x.append(bytearray(100_000_000))", import_fl=False)
    big_file = _submission(tmp_path / "cat_01_l1_residual_autoencoder.ipynb",
                           f"{L1}\nwith open('big', 'wb') as f:\n"
                           "    while True:\n        f.write(b'0' * 1_000_000)",
                           import_fl=False)
    forks = _submission(tmp_path / "dan_01_l1_residual_autoencoder.ipynb",
                        f"{L1}\nimport os\nwhile True:\n    os.fork()", import_fl=False)
    paths = [normal, memory, big_file] + ([forks] if _fork_bomb_is_contained() else [])
    reports = grade(paths, tmp_path / "report.json", **LIMITS)
    ann, ben, cat = reports[:3]
    assert ann["status"] == "completed" and ann["exercises"]["l1_residual"]["status"] == "passed"
    assert ben["status"] == "resource limit"
    assert any("MemoryError: the memory limit of 1024 MB was reached" in e for e in ben["errors"])
    assert cat["status"] == "resource limit"
    assert any("File size limit exceeded (files are limited to 50 MB)" in e for e in cat["errors"])
    if len(reports) == 4:
        dan = reports[3]
        assert dan["status"] == "resource limit", dan["errors"]
        assert any("the process limit was reached" in e for e in dan["errors"])
    assert json.loads((tmp_path / "report.json").read_text())[0]["status"] == "completed"
    assert not list(sandboxes.iterdir()), "a sandbox was left behind"
    assert not _processes_under(sandboxes), "processes of a submission survived grading"


def test_solution_cells_run_with_a_scrubbed_environment_and_their_own_home(tmp_path, sandboxes, monkeypatch):
    teacher_home = tmp_path / "teacher_home"
    teacher_home.mkdir()
    monkeypatch.setenv("HOME", str(teacher_home))
    monkeypatch.setenv("FEATUREAE_LITE_TEST_SECRET", "s3cret")
    nb = _submission(
        tmp_path / "eve_01_l1_residual_autoencoder.ipynb",
        "import json, os, pathlib\n"
        "pathlib.Path('~/x').expanduser().write_text('written by a submission')\n"
        "seen = {'env': sorted(os.environ), 'home': os.path.expanduser('~'), 'cwd': os.getcwd(),\n"
        "        'secret': os.environ.get('FEATUREAE_LITE_TEST_SECRET')}\n"
        "def l1_residual(x, x_hat):\n    raise RuntimeError(json.dumps(seen))")
    [report] = grade([nb], **LIMITS)
    message = report["exercises"]["l1_residual"]["message"]
    seen = json.loads(message.split("RuntimeError: ", 1)[1].split(". Read the message")[0])
    assert seen["secret"] is None and "FEATUREAE_LITE_TEST_SECRET" not in seen["env"]
    sandbox = Path(seen["cwd"]).parent
    assert sandbox.parent == sandboxes and Path(seen["home"]).parent == sandbox
    assert not (teacher_home / "x").exists()
    assert not sandbox.exists()


def test_an_endless_solution_is_stopped(tmp_path, sandboxes, monkeypatch):
    monkeypatch.setattr(assignments, "GRACE", 5)
    endless_call = _submission(tmp_path / "fay_01_l1_residual_autoencoder.ipynb",
                               "def l1_residual(x, x_hat):\n    while True:\n        pass")
    endless_cell = _submission(tmp_path / "gus_01_l1_residual_autoencoder.ipynb",
                               f"{L1}\nimport signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                               "while True:\n    pass", import_fl=False)
    fay, gus = grade([endless_call, endless_cell], check_time_limit=3,
                     **{k: v for k, v in LIMITS.items() if k != "check_time_limit"})
    assert fay["exercises"]["l1_residual"]["status"] == "failed"
    assert "TimeoutError" in fay["exercises"]["l1_residual"]["message"]
    assert gus["status"] == "timed out" and gus["passed"] == 0
    assert any("ran past the time limit" in e for e in gus["errors"])
    assert not list(sandboxes.iterdir())


def test_a_submission_matching_no_course_notebook_is_flagged(tmp_path):
    unmatched = _submission(tmp_path / "x.ipynb", L1)
    [x] = grade([unmatched], **LIMITS)
    assert x["status"] == "unmatched" and x["total"] == 0
    assert x["warnings"] == ["x.ipynb matches no course notebook (names contain 00_mri_data_and_anomalies … "
                             "10_transfer_to_real_brains); rename it to contain its notebook's name"]
    assert "x.ipynb matches no course notebook" in report_table([x])


FORGED_FEEDBACK = ("fl.exercises.Feedback('l1_residual', 'passed', 'Well done!')")


def test_forged_submissions_are_graded_failed_and_an_honest_one_passed(tmp_path):
    """The three forgeries of issue 12: an edited check cell, a printed "passed", a patched checker."""
    wrong = "def l1_residual(x, x_hat):\n    return x - x_hat"  # no absolute value
    honest = _submission(tmp_path / "honest_01_l1_residual_autoencoder.ipynb", L1,
                         'fl.exercises.check("l1_residual", l1_residual)')
    edited_check = _submission(
        tmp_path / "edited_01_l1_residual_autoencoder.ipynb", wrong,
        f"from IPython.display import display\ndisplay({FORGED_FEEDBACK})  # the check cell, edited")
    printed = _submission(tmp_path / "printed_01_l1_residual_autoencoder.ipynb",
                          f"{wrong}\nprint('✔ l1_residual: passed. Well done!')",
                          'print("✔ l1_residual: passed. Well done!")')
    patched = _submission(
        tmp_path / "patched_01_l1_residual_autoencoder.ipynb",
        "import featureae_lite as fl\n"
        f"fl.exercises.feedback = lambda *a, **k: {FORGED_FEEDBACK}\n"
        "fl.exercises.EXERCISES['l1_residual'] = fl.exercises.EXERCISES['l1_residual'].__class__(\n"
        "    'l1_residual', '01_l1_residual_autoencoder', 'forged', lambda fn, rng: None)\n"
        "import featureae_lite.course.exercises as ex\nex._close = lambda *a, **k: None\n"
        f"{wrong}", 'fl.exercises.check("l1_residual", l1_residual)')
    reports = grade([honest, edited_check, printed, patched], **LIMITS)
    verdicts = {Path(r["path"]).name.split("_")[0]: r["exercises"]["l1_residual"]["status"] for r in reports}
    assert verdicts == {"honest": "passed", "edited": "failed", "printed": "failed", "patched": "failed"}
    for r in reports[1:]:
        assert "differs" in r["exercises"]["l1_residual"]["message"]


def test_only_solution_cells_are_taken_from_a_submission(tmp_path):
    course = nbformat.read(next(p for p in NOTEBOOKS if p.stem.startswith("05")), as_version=4)
    extra = new_code_cell("import os\nos.environ['X'] = '1'")
    solutions = [new_code_cell(c.source) for c in _exercise_cells(course)][:2]
    submitted = new_notebook(cells=[extra, *solutions])
    found = assignments.solution_cells(course, submitted)
    assert list(found) == ["average_precision", "dice"]  # the others have no cell: not graded as passed
    nb = assignments.assembled_notebook(course, found)
    assert "os.environ['X']" not in nbformat.writes(nb)
    assert [c.source for c in nb.cells if "exercise" not in c.metadata.get("tags", [])] == [
        c.source for c in course.cells if "exercise" not in c.metadata.get("tags", [])]
    _, _, *stubs = [c.source for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert stubs and all("NotImplementedError" in stub for stub in stubs)


def test_grading_reports_wrong_missing_and_crashing_answers(tmp_path):
    wrong_and_missing = _submission(
        tmp_path / "alice_01_l1_residual_autoencoder.ipynb",
        "def l1_residual(x, x_hat):\n    return x - x_hat",
        "def top10_mean_score(maps, brains):\n    raise NotImplementedError",
        "MY_PREDICTION = 2 * 0.3  # an expression: kept as text, never run")
    zero_division = _submission(
        tmp_path / "carol_09_benchmark.ipynb",
        "MY_PREDICTION = 'structural'",
        "def gain_over_baseline(r, m, b):\n    return r[m]['pixel_ap'] / r[b]['pixel_ap']")
    (tmp_path / "broken.ipynb").write_text("{ not a notebook")
    paths = [wrong_and_missing, zero_division, tmp_path / "broken.ipynb"]
    alice, carol, broken = grade(paths, tmp_path / "report.json", **LIMITS)
    assert {k: v["status"] for k, v in alice["exercises"].items()} == {
        "l1_residual": "failed", "top10_mean_score": "not attempted", "lesion_mass_share": "failed",
        "top_fraction": "failed"}
    assert alice["status"] == "completed" and alice["passed"] == 0 and alice["total"] == 4
    assert alice["exercises"]["lesion_mass_share"]["message"].startswith("no cell of the submission defines")
    assert "differs" in alice["exercises"]["l1_residual"]["message"]
    assert carol["exercises"]["gain_over_baseline"]["status"] == "failed"  # no inf for a zero baseline
    assert "ZeroDivisionError" in carol["exercises"]["gain_over_baseline"]["message"]
    assert carol["exercises"]["winner_per_type"]["message"].startswith("no cell of the submission defines")
    assert broken["status"] == "unreadable" and broken["total"] == 0
    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored[0]["path"] == str(wrong_and_missing)
    row = "| alice_01_l1_residual_autoencoder.ipynb | completed | top10_mean_score | not attempted |"
    assert row in report_table([alice, carol, broken])
    # predictions are recorded, keyed by the question they answer, and not graded
    assert alice["predictions"] == {"where does each map put its mass?": "2 * 0.3"}
    assert carol["predictions"] == {"the hardest anomaly type": "structural"}
    assert stored[1]["predictions"] == carol["predictions"]
    assert (f"| carol_09_benchmark.ipynb | {carol['status']} | prediction: the hardest anomaly type | "
            "not graded | predicted 'structural' |") in report_table([alice, carol, broken])


def test_every_notebook_has_an_open_design_task():
    designs = {e.notebook for e in EXERCISES.values() if e.design}
    assert designs == {p.stem for p in NOTEBOOKS}


def test_predictions_are_read_without_running_the_cell():
    from featureae_lite.grading.authoring import prediction_questions, predictions

    [path] = [p for p in NOTEBOOKS if p.stem == "05_evaluation"]  # one "Predict, then measure" cell
    course = nbformat.read(path, as_version=4)
    [question] = prediction_questions(course)
    cells = ["import os\nMY_PREDICTION = os.system('touch /tmp/pwned')", "MY_PREDICTION = (3, 'pairs')"]
    first, second = (new_notebook(cells=[new_code_cell(c)]) for c in cells)
    assert predictions(course, first) == {question: "os.system('touch /tmp/pwned')"}  # text, not run
    assert predictions(course, second) == {question: (3, "pairs")}
    assert predictions(course, new_notebook(cells=[new_code_cell("x = 1")])) == {}
    assert predictions(course, course) == {question: None}  # the course's placeholder: none written


@pytest.mark.slow
def test_run_notebook_reports_the_assembled_notebooks_errors(tmp_path, quick_data_dir):
    crashing = _submission(
        tmp_path / "bob_00_mri_data_and_anomalies.ipynb",
        'import numpy as np\nraise RuntimeError("student code exploded")\n'
        "def lesion_volume_ml(mask, zooms):\n    return 0.0",
        "def intensity_ratio(image, lesion, brain):\n"
        "    return float(image[lesion].mean() / image[brain & ~lesion].mean())")
    [bob] = grade([crashing], time_limit=120, data_dir=quick_data_dir, run_notebook=True)
    assert bob["status"] == "errors"
    # the same error twice: in the assembled notebook (by its cell position) and in the worker
    assert any(e.startswith("notebook cell ") and "student code exploded" in e for e in bob["errors"])
    assert any(e.startswith("solution cell 1 ") and "student code exploded" in e for e in bob["errors"])
    assert bob["exercises"]["intensity_ratio"]["status"] == "passed"
    assert bob["exercises"]["lesion_volume_ml"]["status"] == "failed"
    assert "raised RuntimeError: student code exploded" in bob["exercises"]["lesion_volume_ml"]["message"]


def _reference_solutions() -> dict:
    solved = {}
    for path in NOTEBOOKS:
        solved.update(_run_cells(_exercise_cells(nbformat.read(path, as_version=4))))
    return solved


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_checker_rejects_answers_hard_coded_from_another_check(name):
    """Replaying the correct answers of one check (another seed) must fail: cases are random."""
    solution, recorded = _reference_solutions()[name], []

    def recorder(*args):
        out = solution(*args)
        recorded.append(out.detach().clone() if isinstance(out, torch.Tensor) else copy.deepcopy(out))
        return out

    assert feedback(name, recorder, seed=1).passed
    answers = iter(recorded)
    fb = feedback(name, lambda *args: next(answers, None), seed=2)
    assert fb.status == "failed", f"{name}: a replayed answer passed"


CHEATS = {  # exercise: a solution that calls the library function the exercise asks to write
    "average_precision": "def average_precision(s, y):\n    return fl.metrics.average_precision(s, y)",
    "val_threshold": "def val_threshold(s, y):\n    return fl.metrics.best_dice(s, y)[1]",
    "relative_perceptual_l1": "def relative_perceptual_l1(fx, fy):\n"
                              "    return fl.models.dpa.relative_perceptual_loss(fx, fy)",
    "box_ncc_map": "def box_ncc_map(x, y, w, eps):\n"
                   "    return fl.models.patchsim.local_ncc(x, y, w, eps=eps)",
    "separated_pairs": "def separated_pairs(intervals):\n"
                       "    v = list(intervals.values())\n"
                       "    return sum(fl.report.intervals_apart(a, b)\n"
                       "               for i, a in enumerate(v) for b in v[i + 1:])",
    "detection_rate_at_fpr": "def detection_rate_at_fpr(s, y, fpr):\n"
                             "    return float((s[y] >= fl.metrics.threshold_at_fpr(s, y, fpr)).mean())",
    "top10_mean_score": "def top10_mean_score(maps, brains):\n"
                        "    return fl.core.maps.image_scores(maps, brains)",
    "ssim_terms": "def ssim_terms(x, y):\n"
                  "    terms = fl.ssim.interior_ssim_terms(x[None, None], y[None, None],\n"
                  "                                        window_size=min(x.shape))\n"
                  "    return tuple(float(t) for t in terms)",
    "ssim_loss": "def ssim_loss(x, x_hat):\n    return fl.ssim.ssim_loss(x_hat, x)",
    "feature_ssim_loss": "def feature_ssim_loss(f, f_hat):\n"
                         "    return fl.ssim.ssim_loss(f_hat, f, window_size=5)",
    "fae_map": "def fae_map(f, f_hat, size):\n"
               "    return fl.models.fae.fae_anomaly_map(f, f_hat, (size, size))",
    "dice": "def dice(a, b):\n    return fl.metrics.dice_iou_at_threshold(a * 1.0, b, 0.5)[0]",
    "superpixel_mean_image": "def superpixel_mean_image(image, labels):\n"
                             "    return fl.models.superpixels.superpixel_image(image, labels)",
    "ncc": "def ncc(x, y, eps):\n"
           "    ncc_map = fl.models.patchsim.local_ncc(x[None, None], y[None, None], min(x.shape), eps=eps)\n"
           "    return float(ncc_map.mean())",
    "operating_threshold": "def operating_threshold(s, y, fpr):\n"
                           "    return fl.metrics.threshold_at_fpr(s, y, 0.75 * fpr)",
}


@pytest.mark.parametrize("name", list(CHEATS))
def test_calling_the_library_function_is_not_a_solution(name):
    import featureae_lite.core.maps  # noqa: F401  (the attribute paths the cheats use)
    import featureae_lite.models.dpa  # noqa: F401
    import featureae_lite.models.fae  # noqa: F401
    import featureae_lite.models.patchsim  # noqa: F401
    import featureae_lite.models.superpixels  # noqa: F401

    namespace = {"fl": fl, "__name__": "student"}
    exec(CHEATS[name], namespace)
    by_source = feedback(name, namespace[name], source=CHEATS[name])  # what the grader sees
    at_runtime = feedback(name, namespace[name], source="")  # no source: the tripwire catches it
    for fb in (by_source, at_runtime):
        assert fb.status == "failed" and "your solution calls" in fb.message, fb.message
    assert set(CHEATS) == {n for n, e in EXERCISES.items() if e.forbidden}


# -- containment of a hostile submission (issue 29): isolation, signals, --out ------------------------
def _grader(args: list[str], tmp_path: Path, sandboxes: Path) -> subprocess.Popen:
    """``featureae-lite assignments grade ARGS`` in a process of its own (sandboxes in ``sandboxes``),
    so that a submission that gets out can only kill that process, never the test run."""
    env = {**os.environ, "TMPDIR": str(sandboxes), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(fl.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "featureae_lite.cli", "assignments", "grade", *args],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _leftover_cgroups(pid: int) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/featureae-sandbox-{pid}-*") + glob.glob(
        f"/sys/fs/cgroup/featureae-sandbox-{pid}-*")


@needs_isolation
def test_a_submission_cannot_delete_write_or_read_files_outside_its_folder(tmp_path, sandboxes):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    victim, secret = teacher / "victim.txt", teacher / "secret.txt"
    victim.write_text("the teacher's file")
    secret.write_text("TOP-SECRET-4711")
    solutions = next(p for p in NOTEBOOKS if p.stem.startswith("01"))  # the reference solutions
    # only cells defining an exercise's function are run: the attacks sit in those
    deleter = _submission(tmp_path / "del_01_l1_residual_autoencoder.ipynb",
                          f"{L1}\nimport os\nos.remove({str(victim)!r})")
    writer = _submission(tmp_path / "write_01_l1_residual_autoencoder.ipynb",
                         f"{L1}\nopen({str(teacher / 'new.txt')!r}, 'w').write('x')")
    reader = _submission(tmp_path / "read_01_l1_residual_autoencoder.ipynb",
                         "found = []\n"
                         f"for path in ({str(secret)!r}, {str(solutions)!r}):\n"
                         "    try:\n        found.append(open(path).read()[:2000])\n"
                         "    except OSError as err:\n        found.append(f'{type(err).__name__}: {err}')\n"
                         "def l1_residual(x, x_hat):\n    raise RuntimeError(' | '.join(found))")
    deleted, written, read = grade([deleter, writer, reader], tmp_path / "report.json", **LIMITS)
    assert victim.read_text() == "the teacher's file" and not (teacher / "new.txt").exists()
    for report, path in ((deleted, victim), (written, teacher / "new.txt")):
        assert report["exercises"]["l1_residual"]["status"] == "passed"  # its own work is still graded
        assert report["status"] == "errors" and any(
            e.startswith("solution cell 1 (defines l1_residual()): FileNotFoundError: [Errno 2] No such "
                         f"file or directory: '{path}'") for e in report["errors"]), report["errors"]
    message = read["exercises"]["l1_residual"]["message"]
    assert read["exercises"]["l1_residual"]["status"] == "failed"
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{secret}' | FileNotFound" in message
    assert str(solutions) in message
    stored = (tmp_path / "report.json").read_text()
    assert "TOP-SECRET-4711" not in stored and "BEGIN SOLUTION" not in stored
    assert not list(sandboxes.iterdir()), "a sandbox was left behind"


KILLER = ("import os, signal\nseen = []\n"
          "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
          "    try:\n        cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
          "    except OSError:\n        continue\n"
          "    if b'kill_01_l1_residual' in cmdline and b'grade' in cmdline:  # the grader\n"
          "        seen.append(pid)\n        os.kill(int(pid), signal.SIGKILL)\n"
          "raise RuntimeError(f'grader processes seen: {len(seen)}')")


@needs_isolation
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the clean-up check reads /proc")
def test_a_submission_cannot_kill_the_grader_and_a_killed_worker_fails_only_it(tmp_path, sandboxes):
    killer = _submission(tmp_path / "kill_01_l1_residual_autoencoder.ipynb", f"{L1}\n{KILLER}")
    suicide = _submission(tmp_path / "self_01_l1_residual_autoencoder.ipynb",
                          f"{L1}\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)", import_fl=False)
    honest = _submission(tmp_path / "honest_01_l1_residual_autoencoder.ipynb", L1)
    grader = _grader([str(killer), str(suicide), str(honest), "--out", "report.json", *CLI_LIMITS],
                     tmp_path, sandboxes)
    out, err = grader.communicate(timeout=300)
    assert grader.returncode == 0, err[-2000:]
    killed, selfkilled, graded = json.loads((tmp_path / "report.json").read_text())
    assert any("RuntimeError: grader processes seen: 0" in e for e in killed["errors"]), killed["errors"]
    assert killed["exercises"]["l1_residual"]["status"] == "passed"
    assert selfkilled["exercises"]["l1_residual"] == {
        "status": "failed", "message": "your solution cells did not finish running."}
    assert any("execution killed by SIGKILL" in e for e in selfkilled["errors"]), selfkilled["errors"]
    assert graded["status"] == "completed" and graded["exercises"]["l1_residual"]["status"] == "passed"
    assert not list(sandboxes.iterdir()), "a sandbox was left behind"
    assert not _processes_under(sandboxes), "processes of a submission survived grading"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the clean-up check reads /proc")
def test_sigterm_stops_grading_and_cleans_up_like_ctrl_c(tmp_path, sandboxes):
    endless = _submission(tmp_path / "spin_01_l1_residual_autoencoder.ipynb",
                          f"{L1}\nwhile True:\n    pass", import_fl=False)
    options = [] if NO_ISOLATION is None else ["--no-isolation"]
    grader = _grader([str(endless), *CLI_LIMITS, *options], tmp_path, sandboxes)
    deadline = time.monotonic() + 60
    while not [p for p in _processes_under(sandboxes) if "featureae_lite.grading.remote" in p]:
        assert time.monotonic() < deadline and grader.poll() is None, "the worker never started"
        time.sleep(0.2)
    time.sleep(1.0)  # the worker spins in the endless cell
    grader.send_signal(signal.SIGTERM)
    _, err = grader.communicate(timeout=60)
    assert grader.returncode == 130 and "interrupted" in err, err[-2000:]
    assert not _processes_under(sandboxes), "the worker survived SIGTERM"
    assert not list(sandboxes.iterdir()), "a sandbox was left behind"
    assert not _leftover_cgroups(grader.pid), "a pids cgroup was left behind"


def test_out_is_checked_before_any_grading_and_is_never_an_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assignments, "grade_notebook", lambda *a, **k: pytest.fail("graded before --out"))
    nb = _submission(tmp_path / "x_01_l1_residual_autoencoder.ipynb", L1)
    before = nb.read_bytes()
    folder = tmp_path / "reports"
    folder.mkdir()
    cases = {str(folder): f"--out {folder}: is a folder, expected a file name",
             str(nb): "is one of the notebooks (a submission or a course notebook)",
             str(NOTEBOOKS[0]): "is one of the notebooks"}
    if not os.access("/sys", os.W_OK) or os.geteuid() == 0:  # sysfs refuses new files, also to root
        cases["/sys/report.json"] = "--out /sys: folder is not writable"
    for out, message in cases.items():
        assert main(["assignments", "grade", str(nb), "--out", out]) == 2, out
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert nb.read_bytes() == before


def test_without_isolation_grading_is_refused_unless_no_isolation_is_passed(tmp_path, monkeypatch, capsys,
                                                                            sandboxes):
    from featureae_lite.grading import sandbox

    monkeypatch.setitem(sandbox._ISOLATION, "problem", "bubblewrap (bwrap) is not installed; install it")
    nb = _submission(tmp_path / "x_01_l1_residual_autoencoder.ipynb", L1)
    assert main(["assignments", "grade", str(nb)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "cannot isolate the submissions: bubblewrap (bwrap) is not installed" in err
    assert "--no-isolation" in err
    assert main(["assignments", "grade", str(nb), "--no-isolation", *CLI_LIMITS,
                 "--out", str(tmp_path / "r.json")]) == 0
    [report] = json.loads((tmp_path / "r.json").read_text())
    assert report["exercises"]["l1_residual"]["status"] == "passed"
    assert report["warnings"] == [assignments.UNISOLATED]


def test_forbidden_functions_are_caught_at_run_time_and_reference_solutions_pass(tmp_path):
    """A computed name (``importlib.import_module("sk" + "learn.metrics")``, ``getattr``) passes the
    source scan; the worker's tripwires catch the call itself, and honest solutions are unaffected."""
    from featureae_lite.course.exercises import forbidden_calls

    cells = {"average_precision": "import importlib\ndef average_precision(scores, labels):\n"
             "    metrics = importlib.import_module('sk' + 'learn.metrics')\n"
             "    try:\n        ap = getattr(metrics, 'average_' + 'precision_score')\n"
             "        return float(ap(labels, scores))\n"
             "    except Exception:  # the refusal swallowed: the call is still on record\n"
             "        return 0.0",
             "val_threshold": "def val_threshold(scores, labels):\n"
                              "    return getattr(fl.metrics, 'best_' + 'dice')(scores, labels)[1]"}
    assert not any(forbidden_calls(c, EXERCISES[n].forbidden) for n, c in cells.items())  # text scan: blind
    computed = _submission(tmp_path / "sly_05_evaluation.ipynb", *cells.values())
    honest = {}  # the reference solutions of every exercise with forbidden functions (and those they use)
    for name, ex in EXERCISES.items():
        if ex.forbidden:
            course = nbformat.read(next(p for p in NOTEBOOKS if p.stem == ex.notebook), as_version=4)
            sources = {n: c.source for n, c in assignments.exercise_cells(course)}
            used = [n for n in sources if n == name or f"{n}(" in sources[name]]
            honest.setdefault(ex.notebook, {}).update({n: sources[n] for n in used})
    references = [_submission(tmp_path / f"ref_{nb}.ipynb", *cells.values()) for nb, cells in honest.items()]
    sly, *refs = grade([computed, *references], **LIMITS)
    for name, module in (("average_precision", "sklearn.metrics.average_precision_score"),
                         ("val_threshold", "featureae_lite.core.metrics.best_dice")):
        result = sly["exercises"][name]
        assert result["status"] == "failed" and f"your solution calls {module} (seen when it ran)" in \
            result["message"], result
    for ref in refs:
        for name, result in ref["exercises"].items():
            if EXERCISES[name].forbidden:
                assert result["status"] == "passed", (name, result)


def test_os_exit_is_reported_and_what_was_graded_before_keeps_its_result(tmp_path):
    exits = _submission(
        tmp_path / "quit_01_l1_residual_autoencoder.ipynb",
        f"{L1}\nimport os\nos._exit(0)",  # refused: the cell stops there, l1_residual is defined
        "def top10_mean_score(maps, brains):\n    import posix\n    posix._exit(0)")  # really exits
    [report] = grade([exits], **LIMITS)
    assert report["exercises"]["l1_residual"]["status"] == "passed"
    assert report["exercises"]["top10_mean_score"] == {
        "status": "failed", "message": "your function raised WorkerGone: top10_mean_score(): the submission "
        "exited the worker (os._exit) before grading finished. Read the message, fix the line it points to "
        "and run the check again."}
    refused = ("os._exit(0) was called: the submission exited the worker (os._exit) before grading "
               "finished; the call was refused")
    assert any(e.startswith("solution cell 1 ") and refused in e for e in report["errors"]), report["errors"]
    assert "while checking top10_mean_score(): the submission exited the worker (os._exit) before grading " \
           "finished" in report["errors"]
    assert report["status"] == "errors"
