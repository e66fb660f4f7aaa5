"""The notebooks' Session: train-or-load detectors and maps shared between predict and evaluate."""

from __future__ import annotations

import pytest

import featureae_lite as fl
from featureae_lite.experiments.evaluation import METRIC_KEYS, evaluate


@pytest.mark.slow
def test_session_evaluate_reuses_maps_and_equals_evaluate(quick_data_dir):
    S = fl.start(quick=True, seed=0, data_dir=quick_data_dir, progress=False)
    res = S.evaluate("threshold")
    assert S.predict("threshold") is S.predict("threshold", "test")  # the maps evaluate used
    want = evaluate(S.detector("threshold"), S.test, S.val)
    for key in (*METRIC_KEYS, "dice_at_threshold", "val_threshold"):
        assert res[key] == pytest.approx(want[key], abs=1e-12, nan_ok=True)
    assert res["per_type"].keys() == want["per_type"].keys()
    for kind, metrics in want["per_type"].items():
        assert res["per_type"][kind] == pytest.approx(metrics, abs=1e-12, nan_ok=True)
    assert "unmasked" in want and "unmasked" not in res  # notebooks skip the all-pixel variant
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        S.predict("threshold", "tset")


@pytest.mark.slow
def test_course_models_are_trained_once_and_then_loaded_by_the_notebooks_session(quick_data_dir, tmp_path):
    from featureae_lite.course.session import train_course_models

    S = fl.start(quick=True, seed=0, data_dir=quick_data_dir, progress=False)
    S.data_dir = str(tmp_path)  # fresh checkpoints for this test
    rows = train_course_models(S, methods=("ae_l1",), progress=False)
    assert [(r["method"], r["steps"], r["trained"]) for r in rows] == [("ae_l1", 150, True)]
    assert rows[0]["train_seconds"] > 0
    # a notebook's session (a fresh process in the main job) loads the same checkpoint
    notebook = fl.start(quick=True, seed=0, data_dir=quick_data_dir, progress=False)
    notebook.data_dir = str(tmp_path)
    again = train_course_models(notebook, methods=("ae_l1",), progress=False)
    assert again[0]["trained"] is False and again[0]["train_seconds"] == rows[0]["train_seconds"]
    assert notebook.detector("ae_l1").config == S.detector("ae_l1").config


def test_presets_ablation_budgets():
    from featureae_lite.core.presets import preset

    classroom, default, quick = preset("classroom"), preset("default"), preset("quick")
    assert classroom.budgets == default.budgets  # train once, at the benchmark's budgets
    assert classroom.ablation_budget("fae") == {"steps": 450}
    assert classroom.ablation_budget("dpa") == {"steps": default.overrides("dpa")["steps"] // 3}
    assert quick.ablation_budget("fae") == {"steps": 50}
    assert preset("tiny").ablation_budget("fae") == {}  # no budget: the method's own config
