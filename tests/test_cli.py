"""The command line end to end (QUICK) and its errors."""

from __future__ import annotations

import json

import pytest

from featureae_lite.cli import main


def test_assignments_make_writes_student_notebooks(tmp_path, capsys):
    assert main(["assignments", "make", "--out", str(tmp_path)]) == 0
    assert "student notebooks written" in capsys.readouterr().out
    from featureae_lite.course.notebooks import list_notebooks

    written = sorted(p.name for p in tmp_path.glob("[0-9][0-9]_*.ipynb"))
    assert written == [p.name for p in list_notebooks()]  # every course notebook has exercises


def test_unknown_method_lists_known_ones(tmp_path, capsys):
    assert main(["benchmark", "--quick", "--methods", "ae_l1,magic", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'magic'" in err and "fae" in err


def test_main_job_refuses_a_contrast_the_notebooks_do_not_use(tmp_path, capsys):
    assert main(["main", "--quick", "--contrast", "t1", "--data", str(tmp_path)]) == 2
    assert "--contrast t1: the notebooks teach on the T2 cohort" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.slow
def test_synth_train_evaluate_benchmark_quick(tmp_path, quick_data_dir, capsys):
    data = str(quick_data_dir)
    assert main(["synth", "--size", "quick", "--out", data]) == 0
    assert "test" in capsys.readouterr().out
    ckpt = tmp_path / "ae.pt"
    assert main(["train", "--method", "ae_l1", "--quick", "--steps", "20", "--data", data,
                 "--out", str(ckpt)]) == 0
    assert ckpt.exists()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--quick", "--data", data,
                 "--out", str(tmp_path / "m.json")]) == 0
    assert 0 <= json.loads((tmp_path / "m.json").read_text())["pixel_ap"] <= 1
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", data]) != 0  # 64-px model, 128-px preset
    out = tmp_path / "bench"
    assert main(["benchmark", "--quick", "--methods", "random,threshold,ae_l1,fae", "--data", data,
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "meta.json").read_text())["preset"] == "quick"
    assert list(results) == ["random", "threshold", "ae_l1", "fae"]
    for r in results.values():
        assert {"pixel_ap", "pixel_auroc", "best_dice", "dice_at_5fpr", "sample_auroc", "sample_ap",
                "train_seconds", "infer_slices_per_s"} <= set(r)
        assert set(r["per_type"]) == {"tumor", "lesions", "stroke", "structural"}
        low, high = r["pixel_ap_ci"]  # subject-level bootstrap interval, overall and per type
        assert 0 <= low <= high <= 1 and len(r["per_type"]["tumor"]["pixel_ap_ci"]) == 2
    assert (out / "results.md").read_text().startswith("| method |")
    assert (out / "gallery.png").stat().st_size > 10_000

