"""Exercises, student versions and autograding (featureae_lite.exercises / .assignments)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import featureae_lite as fl
from featureae_lite.assignments import BEGIN, grade, make_assignments, report_table, student_version
from featureae_lite.exercises import EXERCISES, evaluate
from featureae_lite.notebooks import list_notebooks

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
        fb = evaluate(name, solved[name])
        assert fb.passed, f"reference solution of {name}: {fb.message}"
    stubbed = _run_cells(_exercise_cells(student_version(nb)))
    for name in names:
        fb = evaluate(name, stubbed[name])
        assert fb.status == "not attempted" and "NotImplementedError" in fb.message


def test_wrong_answers_get_specific_feedback():
    fb = evaluate("l1_residual", lambda x, x_hat: x - x_hat)
    assert fb.status == "failed" and "differs" in fb.message and "Hint" in fb.message
    fb = evaluate("relative_perceptual_l1", lambda fx, fy: (fx - fy).abs().flatten(1).mean(1)
                  / fx.abs().flatten(1).mean(1))
    assert fb.status == "failed" and "gradient" in fb.message
    fb = evaluate("dice", lambda a, b: 1 / 0)
    assert fb.status == "failed" and "ZeroDivisionError" in fb.message
    assert evaluate("dice", 3).status == "failed"
    with pytest.raises(ValueError, match="unknown exercise 'nope'"):
        evaluate("nope", len)


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


def _submission(path, *cells):
    nb = new_notebook()
    params = new_code_cell('QUICK = False\nSEED = 0\nDATA_DIR = ""\nOUTPUT_DIR = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell("import featureae_lite as fl"), *[new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_grading_reports_wrong_missing_crashing_and_endless(tmp_path):
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
    reports = grade(paths, tmp_path / "report.json", time_limit=20)
    alice, bob, carol, broken = reports
    assert {k: v["status"] for k, v in alice["exercises"].items()} == {
        "l1_residual": "failed", "top10_mean_score": "not attempted"}
    assert alice["status"] == "completed" and alice["passed"] == 0 and alice["total"] == 2
    assert "differs" in alice["exercises"]["l1_residual"]["message"]
    assert bob["status"] == "errors" and any("student code exploded" in e for e in bob["errors"])
    assert bob["exercises"]["ssim_loss"]["status"] == "passed"
    assert bob["exercises"]["ssim_terms"]["status"] == "failed"  # its check never ran
    assert carol["status"] in ("errors", "timed out") and carol["errors"]
    assert carol["exercises"]["gain_over_baseline"]["status"] == "failed"  # no inf for a zero baseline
    assert broken["status"] == "unreadable" and broken["total"] == 0
    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored[0]["path"] == str(wrong_and_missing)
    row = "| alice_01_l1_residual_autoencoder.ipynb | completed | top10_mean_score | not attempted |"
    assert row in report_table(reports)
