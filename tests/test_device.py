"""Device choice: ``auto`` is the CPU here and changes nothing; an absent device fails in one line;
checkpoints hold CPU tensors; the ``paper`` preset carries the references' budgets."""

from __future__ import annotations

import pytest
import torch

from featureae_lite.cli import main
from featureae_lite.core.device import resolve_device
from featureae_lite.core.presets import preset
from featureae_lite.models.registry import create_detector, load_detector

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@NO_CUDA
def test_auto_is_the_cpu_without_an_accelerator_and_absent_devices_are_clear_errors():
    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available here .*use --device auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'; choose one of auto, cpu, cuda, mps"):
        resolve_device("tpu")


@NO_CUDA
@pytest.mark.parametrize("argv", [
    ["benchmark", "--quick", "--methods", "ae_l1", "--device", "cuda", "--out", "{tmp}/b"],
    ["train", "--method", "fae", "--quick", "--device", "cuda"],
    ["notebooks", "--quick", "--device", "cuda:3", "--out", "{tmp}/run"],
])
def test_cli_on_an_absent_device_fails_before_any_work(argv, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.setenv("FEATUREAE_LITE_DATA", str(data))
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available here" in err[0]
    assert not data.exists() or not any(data.iterdir())
    assert not (tmp_path / "run" / "index.md").exists()


@pytest.mark.parametrize("method", ["ae_l1", "fae", "dpa"])
def test_training_and_maps_on_device_auto_equal_the_plain_cpu_path(method):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(12, 1, 64, 64, generator=g) * (torch.rand(12, 1, 1, 1, generator=g) > 0.1)
    cfg = {"image_size": 64, "steps": 3, "batch_size": 4, "seed": 0}
    plain = create_detector(method, **cfg).fit(images, progress=False)
    moved = create_detector(method, **cfg).to_device("auto").fit(images, progress=False)
    assert moved.device.type == resolve_device("auto").type
    for (k, a), b in zip(plain.state_dict().items(), moved.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu()), k
    assert torch.equal(plain.predict(images).maps, moved.predict(images).maps)


def test_checkpoints_hold_cpu_tensors_and_load_on_any_device(tmp_path):
    det = create_detector("ae_l1", image_size=64, steps=1).to_device("cpu")
    path = det.save(tmp_path / "ae.pt")
    ckpt = torch.load(path, weights_only=True)
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())
    assert load_detector(path).to_device("auto").device == resolve_device("auto")


def test_presets_by_name_and_the_paper_budgets():
    paper = preset("paper")
    assert paper.name == "paper" and paper.slice_step == 1 and paper.image_size == 128
    fae = paper.overrides("fae")
    assert (fae["steps"], fae["lr"], fae["batch_size"], fae["precision"]) == (10_000, 2e-4, 32, "float32")
    assert paper.overrides("ae_l1") == {"lr": 2e-4, "batch_size": 32, "steps": 10_000}
    assert [preset(n).name for n in ("quick", "classroom", "default")] == ["quick", "classroom", "default"]
    assert preset(True).name == "quick" and preset(False).name == "default"
    with pytest.raises(ValueError, match="unknown preset 'huge'; known: tiny, quick, classroom, default"):
        preset("huge")


def test_quick_and_another_preset_contradict(tmp_path, capsys):
    assert main(["train", "--method", "ae_l1", "--quick", "--preset", "paper"]) == 2
    assert "--quick and --preset paper contradict each other" in capsys.readouterr().err
