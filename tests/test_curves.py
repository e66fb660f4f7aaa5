"""Learning-rate schedules, checkpoints during training, learning curves and the bf16 FAE."""

from __future__ import annotations

import json

import pytest
import torch

from featureae_lite.cli import main
from featureae_lite.experiments.curves import checkpoint_steps, curves_markdown
from featureae_lite.models.registry import create_detector
from featureae_lite.training import lr_factor


def test_lr_factor_constant_and_cosine():
    assert [lr_factor(s, 100) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    cos = [lr_factor(s, 100, "cosine", 0.1) for s in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)  # linear warm-up over 10
    assert cos[99] == pytest.approx(0.01)  # decays to 1 % at the last step
    assert all(a >= b for a, b in zip(cos[9:], cos[10:], strict=False))  # monotone after warm-up


def test_schedule_is_applied_and_validated():
    x = torch.rand(16, 1, 64, 64)
    det = create_detector("ae_l1", image_size=64, steps=10, batch_size=4, schedule="cosine", lr=1e-3)
    seen = []
    det.fit(x, progress=False, checkpoints=[1, 5, 10],
            on_checkpoint=lambda step, sec: seen.append((step, sec, det.training)))
    assert [s for s, _, _ in seen] == [1, 5, 10]
    assert all(not training for _, _, training in seen)  # evaluated in eval mode
    assert seen[0][1] <= seen[1][1] <= seen[2][1] <= det.history["train_seconds"] + 1e-6
    with pytest.raises(ValueError, match="schedule must be one of"):
        create_detector("ae_l1", schedule="linear")
    with pytest.raises(ValueError, match="warmup"):
        create_detector("ae_l1", warmup=1.5)


def test_checkpoint_steps():
    assert checkpoint_steps(600, 6) == [100, 200, 300, 400, 500, 600]
    assert checkpoint_steps(3, 6) == [1, 2, 3]
    with pytest.raises(ValueError):
        checkpoint_steps(0)


def test_fae_bfloat16_maps_close_to_float32():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 64, 64)
    det = create_detector("fae", image_size=64, pretrained=False)
    ref = det.predict(x).maps
    det.config.precision = "bfloat16"
    low = det.predict(x).maps
    assert not torch.equal(ref, low)  # autocast really changed the computation
    assert float((ref - low).abs().max()) < 0.02 * float(ref.abs().max())
    with pytest.raises(ValueError, match="precision"):
        create_detector("fae", precision="float16")


def test_curves_markdown_table():
    curves = {"methods": {"ae_l1": {"trainable": True, "points": [
        {"step": 10, "train_seconds": 1.5, "val_loss": 0.2, "pixel_ap": 0.1, "per_type": {"tumor": 0.3}}]}}}
    md = curves_markdown(curves)
    assert "| ae_l1 | 10 | 2 | 0.2000 | 0.100 | 0.300 |" in md


def test_curves_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["curves", "--methods", ",", "--out", str(tmp_path)]) == 2
    assert "names no method" in capsys.readouterr().err
    assert main(["curves", "--methods", "fae", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "argument --steps: must be ≥ 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_curves_cli_quick(tmp_path, quick_data_dir, capsys):
    out = tmp_path / "curves"
    assert main(["curves", "--quick", "--methods", "threshold,ae_l1", "--steps", "12", "--points", "3",
                 "--data", str(quick_data_dir), "--out", str(out)]) == 0
    curves = json.loads((out / "curves.json").read_text())
    ae = curves["methods"]["ae_l1"]["points"]
    assert [p["step"] for p in ae] == [4, 8, 12]
    assert all(0 <= p["pixel_ap"] <= 1 and p["val_loss"] > 0 for p in ae)
    assert set(ae[0]["per_type"]) == {"tumor", "lesions", "stroke", "structural"}
    assert curves["methods"]["threshold"]["points"][0]["step"] == 0
    assert (out / "curves.png").stat().st_size > 10_000
    assert "| ae_l1 | 12 |" in capsys.readouterr().out
