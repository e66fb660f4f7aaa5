"""The benchmark scripts in benchmarks/ run by path (quick) and report ratios with equal metric values;
the augmentation they measure lives in featureae_lite.data.augment."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from featureae_lite.core.ssim import ssim_map

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def script(name: str) -> dict:
    """The globals of ``benchmarks/<name>.py``, run by path as a module that is not ``__main__``."""
    return runpy.run_path(str(ROOT / "benchmarks" / f"{name}.py"))


def test_benchmarks_are_scripts_not_a_package():
    assert not (ROOT / "benchmarks" / "__init__.py").exists() and not (ROOT / "bench").exists()
    assert {p.stem for p in SCRIPTS} == {"fae_precision", "site_offline", "speed", "transfer_augment"}
    for path in SCRIPTS:
        assert 'if __name__ == "__main__":\n    main()' in path.read_text(), path.name


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_run_by_path_from_the_repository_root(path):
    """``python benchmarks/X.py --help`` from the repository root (the package importable, as after
    ``make setup``): the script's imports resolve without the repository being a package."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    res = subprocess.run([sys.executable, str(path.relative_to(ROOT)), "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage:")


def test_naive_reference_agrees_with_ours():
    import torch

    naive_ssim = script("speed")["naive_ssim"]
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    torch.testing.assert_close(naive_ssim(x, y, 5), ssim_map(x, y, 5), atol=1e-5, rtol=1e-4)


def test_bench_quick_prints_ratios(tmp_path, capsys):
    main = script("speed")["main"]
    out = main(["--quick", "--out", str(tmp_path / "speed.json")])
    assert all(r["naive/ours"] > 0 for r in out["ssim"])
    assert all(r["abs_diff"] < 1e-6 for r in out["metrics"])
    assert "sklearn" in capsys.readouterr().out and (tmp_path / "speed.json").exists()


@pytest.mark.slow
def test_fae_precision_bench_quick(tmp_path, quick_data_dir, capsys):
    precision_main = script("fae_precision")["main"]
    out = precision_main(["--quick", "--seconds", "2", "--repeats", "1", "--data", str(quick_data_dir),
                          "--out", str(tmp_path / "p.json")])
    assert out["step_ratio"] > 0 and set(out["equal_budget"]) == {"float32", "bfloat16"}
    assert out["map_agreement"]["max_abs_map_diff"] < 0.1 * out["map_agreement"]["map_range"]
    assert "faster" in capsys.readouterr().out and (tmp_path / "p.json").exists()


def test_transfer_augment_script_uses_the_library_augment():
    from featureae_lite.data import augment as augment_module

    g = script("transfer_augment")
    assert g["augment"] is augment_module.augment and g["MODES"] == augment_module.MODES


def test_augment_copies_are_equalised_brain_slices():
    """featureae_lite.data.augment: the original slices first, then `copies` augmented ones per slice,
    each equalised inside its (moved) brain mask and zero outside it; a wrong mode is refused."""
    import torch

    from featureae_lite.core.errors import InputError
    from featureae_lite.data.augment import augment
    from featureae_lite.data.batch import Batch

    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    brain = (((yy - 16) ** 2 + (xx - 16) ** 2) < 100).float()[None, None].repeat(4, 1, 1, 1)
    images = torch.rand(4, 1, 32, 32) * brain
    data = Batch(images=images, masks=torch.zeros_like(images), brains=brain, subject_ids=["s1"] * 4,
                 anomaly_types=["healthy"] * 4, slice_indices=[0, 1, 2, 3])
    assert augment(data, "none", 3) is data
    for mode in ("intensity", "spatial", "both"):
        out = augment(data, mode, 2, seed=1)
        assert len(out) == 12 and torch.equal(out.images[:4], images)
        assert out.subject_ids[4:] == ["s1_aug0"] * 4 + ["s1_aug1"] * 4
        new, inside = out.images[4:], out.brains[4:] > 0
        assert set(out.brains.unique().tolist()) <= {0.0, 1.0} and inside.any()
        assert float(new[~inside].abs().max()) == 0 and 0 <= float(new.min()) and float(new.max()) <= 1
        assert float(new[inside].mean()) == pytest.approx(0.5, abs=0.05)  # equalised: uniform in the brain
        if mode == "intensity":
            assert torch.equal(out.brains[4:], brain.repeat(2, 1, 1, 1))
            assert not torch.allclose(new[:4], images)
    with pytest.raises(InputError, match="not one of"):
        augment(data, "elastic", 1)
