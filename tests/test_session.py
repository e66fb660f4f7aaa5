"""The notebooks' Session: train-or-load detectors and maps shared between predict and evaluate."""

from __future__ import annotations

import pytest

import featureae_lite as fl
from featureae_lite.evaluation import METRIC_KEYS, evaluate


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
