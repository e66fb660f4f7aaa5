"""The speed benchmark runs (quick) and reports ratios with equal metric values."""

import pytest

from featureae_lite.ssim import ssim_map


def test_naive_reference_agrees_with_ours():
    import torch

    from bench.speed import naive_ssim

    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    torch.testing.assert_close(naive_ssim(x, y, 5), ssim_map(x, y, 5), atol=1e-5, rtol=1e-4)


def test_bench_quick_prints_ratios(tmp_path, capsys):
    from bench.speed import main

    out = main(["--quick", "--out", str(tmp_path / "speed.json")])
    assert all(r["naive/ours"] > 0 for r in out["ssim"])
    assert all(r["abs_diff"] < 1e-6 for r in out["metrics"])
    assert "sklearn" in capsys.readouterr().out and (tmp_path / "speed.json").exists()


@pytest.mark.slow
def test_fae_precision_bench_quick(tmp_path, quick_data_dir, capsys):
    from bench.fae_precision import main as precision_main

    out = precision_main(["--quick", "--seconds", "2", "--repeats", "1", "--data", str(quick_data_dir),
                          "--out", str(tmp_path / "p.json")])
    assert out["step_ratio"] > 0 and set(out["equal_budget"]) == {"float32", "bfloat16"}
    assert out["map_agreement"]["max_abs_map_diff"] < 0.1 * out["map_agreement"]["map_range"]
    assert "faster" in capsys.readouterr().out and (tmp_path / "p.json").exists()
