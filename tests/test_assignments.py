"""Exercises, student versions and autograding (featureae_lite.exercises / .assignments)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import featureae_lite as fl
from featureae_lite import assignments
from featureae_lite.assignments import BEGIN, grade, make_assignments, report_table, student_version
from featureae_lite.cli import main
from featureae_lite.data.cohort import FIELDS, subject_files
from featureae_lite.exercises import EXERCISES, feedback
from featureae_lite.notebooks import list_notebooks
from featureae_lite.sandbox import _pids_cgroup

NOTEBOOKS = list_notebooks()


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
    assert 2 <= len(cells) <= 4, f"{path.name} has {len(cells)} exercises"
    names = [_name(c) for c in cells]
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


def test_student_versions_contain_no_solution_code(tmp_path):
    written = make_assignments(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for ref_path, student_path in zip(NOTEBOOKS, written, strict=True):
        ref, student = nbformat.read(ref_path, as_version=4), nbformat.read(student_path, as_version=4)
        assert len(ref.cells) == len(student.cells)
        for r, s in zip(ref.cells, student.cells, strict=True):
            if "exercise" not in r.metadata.get("tags", []):
                assert r.source == s.source  # everything else intact
                continue
            block = r.source.split(BEGIN)[1].split("### END SOLUTION")[0]
            solution = [ln.strip() for ln in block.splitlines() if ln.strip()]
            assert BEGIN not in s.source and "NotImplementedError" in s.source and "TODO" in s.source
            assert not [ln for ln in solution if ln in s.source], f"{student_path.name} leaks a solution"
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


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
def teacher_data(tmp_path):
    """A teacher's data folder with a complete QUICK cohort of stand-in files: grading copies it
    into every sandbox without synthesising anything."""
    folder = tmp_path / "teacher_data" / "synthetic_t2_quick_seed0"
    row = {"subject_id": "sub-0001", "split": "train", "anomaly_type": "healthy", "seed": "1",
           "contrast": "t2"}
    for file in subject_files(folder, "sub-0001", "t2").values():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"stand-in")
    (folder / "manifest.csv").write_text(",".join(FIELDS) + "\n" + ",".join(row[f] for f in FIELDS) + "\n")
    return folder.parent


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


LIMITS = {"time_limit": 20, "memory_limit_mb": 1024, "file_size_limit_mb": 50, "process_limit": 64}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the clean-up check reads /proc")
def test_runaway_submissions_are_stopped_and_the_others_graded(tmp_path, teacher_data, sandboxes):
    normal = _submission(tmp_path / "ann_01_l1_residual_autoencoder.ipynb",
                         "def l1_residual(x, x_hat):\n    return (x - x_hat).abs()",
                         'fl.exercises.check("l1_residual", l1_residual)')
    memory = _submission(tmp_path / "ben_01_l1_residual_autoencoder.ipynb",
                         "x = []\nwhile True:\n    x.append(bytearray(100_000_000))", import_fl=False)
    big_file = _submission(tmp_path / "cat_01_l1_residual_autoencoder.ipynb",
                           "with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * 1_000_000)",
                           import_fl=False)
    forks = _submission(tmp_path / "dan_01_l1_residual_autoencoder.ipynb",
                        "import os\nwhile True:\n    os.fork()", import_fl=False)
    paths = [normal, memory, big_file] + ([forks] if _fork_bomb_is_contained() else [])
    reports = grade(paths, tmp_path / "report.json", data_dir=teacher_data, **LIMITS)
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


def test_submission_runs_with_a_scrubbed_environment_and_its_own_home(tmp_path, teacher_data, sandboxes,
                                                                      monkeypatch):
    teacher_home = tmp_path / "teacher_home"
    teacher_home.mkdir()
    monkeypatch.setenv("HOME", str(teacher_home))
    monkeypatch.setenv("FEATUREAE_LITE_TEST_SECRET", "s3cret")
    manifest = teacher_data / "synthetic_t2_quick_seed0" / "manifest.csv"
    before = manifest.read_text()
    nb = _submission(
        tmp_path / "eve_01_l1_residual_autoencoder.ipynb",
        "import json, os, pathlib\n"
        "pathlib.Path('~/x').expanduser().write_text('written by a submission')\n"
        "data = pathlib.Path(os.environ['FEATUREAE_LITE_DATA'])\n"
        "(data / 'synthetic_t2_quick_seed0' / 'manifest.csv').write_text('tampered')\n"
        "seen = {'env': sorted(os.environ), 'home': os.path.expanduser('~'), 'cwd': os.getcwd(),\n"
        "        'data': str(data), 'secret': os.environ.get('FEATUREAE_LITE_TEST_SECRET')}\n"
        "raise RuntimeError(json.dumps(seen))")
    [report] = grade([nb], data_dir=teacher_data, **LIMITS)
    [error] = report["errors"]
    seen = json.loads(error.split("RuntimeError: ", 1)[1])
    assert seen["secret"] is None and "FEATUREAE_LITE_TEST_SECRET" not in seen["env"]
    sandbox = Path(seen["cwd"]).parent
    assert sandbox.parent == sandboxes and Path(seen["home"]).parent == sandbox
    assert Path(seen["data"]).parent == sandbox
    assert not (teacher_home / "x").exists() and manifest.read_text() == before
    assert not sandbox.exists()


def test_a_cell_past_the_time_limit_is_reported_as_such(tmp_path, teacher_data):
    nb = _submission(tmp_path / "fay_01_l1_residual_autoencoder.ipynb", "while True:\n    pass",
                     import_fl=False)
    [report] = grade([nb], data_dir=teacher_data, **{**LIMITS, "time_limit": 5})
    assert report["status"] == "errors"
    assert report["errors"] == ["cell 2: exceeded the time limit of 5 s (interrupted)"]


def test_a_notebook_past_its_time_limit_is_stopped(tmp_path, teacher_data, sandboxes, monkeypatch):
    monkeypatch.setattr(assignments, "GRACE", 5)
    nb = _submission(tmp_path / "gus_01_l1_residual_autoencoder.ipynb",
                     "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                     import_fl=False)
    [report] = grade([nb], data_dir=teacher_data, **{**LIMITS, "time_limit": 3})
    assert report["status"] == "timed out"
    assert any("did not finish within its time limit of 3 s" in e for e in report["errors"])
    assert not list(sandboxes.iterdir())


def test_a_submission_matching_no_course_notebook_is_flagged(tmp_path, teacher_data):
    unmatched = _submission(tmp_path / "x.ipynb", "print('hello')", import_fl=False)
    with_checks = _submission(tmp_path / "y.ipynb",
                              "def l1_residual(x, x_hat):\n    return (x - x_hat).abs()",
                              'fl.exercises.check("l1_residual", l1_residual)')
    x, y = grade([unmatched, with_checks], data_dir=teacher_data, **LIMITS)
    assert x["status"] == "unmatched" and x["total"] == 0
    assert x["warnings"] == ["x.ipynb matches no course notebook (names contain 00_mri_data_and_anomalies … "
                             "09_benchmark); rename it to contain its notebook's name"]
    assert y["status"] == "completed" and y["passed"] == y["total"] == 1
    assert "y.ipynb matches no course notebook" in y["warnings"][0]
    assert "x.ipynb matches no course notebook" in report_table([x, y])


@pytest.mark.slow
def test_grading_reports_wrong_missing_crashing_and_endless(tmp_path, quick_data_dir):
    wrong_and_missing = _submission(
        tmp_path / "alice_01_l1_residual_autoencoder.ipynb",
        "def l1_residual(x, x_hat):\n    return x - x_hat",
        'fl.exercises.check("l1_residual", l1_residual)',
        "def top10_mean_score(maps, brains):\n    raise NotImplementedError",
        'fl.exercises.check("top10_mean_score", top10_mean_score)')
    crashing = _submission(
        tmp_path / "bob_02_ssim.ipynb",
        'raise RuntimeError("student code exploded")',
        "from featureae_lite.ssim import ssim_map\n"
        "def ssim_loss(x, x_hat):\n    return 1 - ssim_map(x_hat, x).mean()",
        'fl.exercises.check("ssim_loss", ssim_loss)')
    endless = _submission(
        tmp_path / "carol_09_benchmark.ipynb",
        "while True:\n    pass",
        "def gain_over_baseline(r, m, b):\n    return r[m]['pixel_ap'] / r[b]['pixel_ap']",
        'fl.exercises.check("gain_over_baseline", gain_over_baseline)')
    (tmp_path / "broken.ipynb").write_text("{ not a notebook")
    paths = [wrong_and_missing, crashing, endless, tmp_path / "broken.ipynb"]
    reports = grade(paths, tmp_path / "report.json", time_limit=20, data_dir=quick_data_dir)
    alice, bob, carol, broken = reports
    assert {k: v["status"] for k, v in alice["exercises"].items()} == {
        "l1_residual": "failed", "top10_mean_score": "not attempted"}
    assert alice["status"] == "completed" and alice["passed"] == 0 and alice["total"] == 2
    assert "differs" in alice["exercises"]["l1_residual"]["message"]
    assert bob["status"] == "errors" and any("student code exploded" in e for e in bob["errors"])
    assert bob["exercises"]["ssim_loss"]["status"] == "passed"
    assert bob["exercises"]["ssim_terms"]["status"] == "failed"  # its check never ran
    assert carol["status"] == "errors" and "exceeded the time limit of 20 s" in carol["errors"][0]
    assert carol["exercises"]["gain_over_baseline"]["status"] == "failed"  # no inf for a zero baseline
    assert broken["status"] == "unreadable" and broken["total"] == 0
    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored[0]["path"] == str(wrong_and_missing)
    row = "| alice_01_l1_residual_autoencoder.ipynb | completed | top10_mean_score | not attempted |"
    assert row in report_table(reports)
