"""Speed of the core against reference implementations, measured in one run.

    python benchmarks/speed.py [--quick] [--out FILE.json]

(a) SSIM forward + backward on FAE-sized feature maps (32, 256, 32, 32), windows 5 and 11, and on
    image batches (32, 1, 128, 128), window 11:
    featureae_lite.core.ssim vs a straightforward SSIM (full 2-D Gaussian window, per-statistic depthwise
    conv2d) and vs pytorch_msssim (which uses 'valid' convolutions, so its maps are smaller).
(b) The training loss 1 − mean SSIM on FAE's (32, 176, 32, 32) efficientnet_lite0 features, window 5:
    ``ssim_loss`` (chunks reduced as they go) vs ``1 - ssim_map(...).mean()`` (the full map) vs the
    full map from indexed chunks (before ``ssim_loss``); and a whole FAE training step (bfloat16
    autoencoder, Adam) with ``ssim_loss`` vs with the indexed full map.
(c) Pixel AP and AUROC on 10^7 pixels: featureae_lite.core.metrics vs scikit-learn (values checked equal).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from featureae_lite.core import ssim as ssim_module
from featureae_lite.core.fileio import write_atomic
from featureae_lite.core.maps import gaussian_window
from featureae_lite.core.metrics import average_precision, roc_auc
from featureae_lite.core.ssim import ssim_loss, ssim_map


def naive_ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Textbook SSIM: one 2-D Gaussian conv per statistic, default memory layout."""
    c = x.shape[1]
    g = gaussian_window(window_size, sigma)
    w = (g[:, None] * g[None]).expand(c, 1, window_size, window_size).contiguous()
    blur = lambda t: F.conv2d(t, w, padding=window_size // 2, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ssim_rows(quick: bool, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    n = 8 if quick else 32
    # FAE-sized feature maps with both windows, and image batches (ae_ssim) with the image window
    cases = [((n, 256, 32, 32), 5), ((n, 256, 32, 32), 11), ((n, 1, 128, 128), 11)]
    rows = []
    for shape, win in cases:
        x = torch.rand(shape, requires_grad=True)
        y = torch.rand(shape)

        def fwd_bwd(f, x=x):
            def run():
                x.grad = None
                f().mean().backward()

            return run

        ours = best_time(fwd_bwd(lambda w=win, x=x, y=y: ssim_map(x, y, window_size=w)), repeats)
        naive = best_time(fwd_bwd(lambda w=win, x=x, y=y: naive_ssim(x, y, w)), repeats)
        row = {
            "window": win,
            "shape": list(shape),
            "ours_s": ours,
            "naive_s": naive,
            "naive/ours": naive / ours,
        }
        try:
            from pytorch_msssim import ssim as ms_ssim

            def lib_ssim(w=win, x=x, y=y):
                return ms_ssim(x, y, data_range=1.0, win_size=w, size_average=False)

            lib = best_time(fwd_bwd(lib_ssim), repeats)
            row.update({"pytorch_msssim_s": lib, "pytorch_msssim/ours": lib / ours})
        except ImportError:
            pass
        rows.append(row)
    return rows


def indexed_full_map_loss(x: torch.Tensor, y: torch.Tensor, window_size: int) -> torch.Tensor:
    """1 − mean SSIM the way it was computed before ``ssim_loss``: the full map, from chunks taken by
    indexing (each chunk's backward allocates and zeroes a full-size gradient)."""
    k = max(1, ssim_module.CHUNK_ELEMENTS // x[0].numel())
    parts = [ssim_map(x[i:i + k], y[i:i + k], window_size=window_size) for i in range(0, len(x), k)]
    return 1 - torch.cat(parts).mean()


def loss_rows(quick: bool, repeats: int) -> list[dict]:
    from featureae_lite.models.fae import FeatureAutoencoder

    torch.manual_seed(0)
    n = 8 if quick else 32
    y = (torch.randn(n, 176, 32, 32) * 4).contiguous(memory_format=torch.channels_last)
    x0 = (y + torch.randn_like(y)).contiguous(memory_format=torch.channels_last)
    variants = {
        "ssim_loss": lambda x: ssim_loss(x, y, window_size=5),
        "1 - ssim_map().mean()": lambda x: 1 - ssim_map(x, y, window_size=5).mean(),
        "indexed chunks, full map (before)": lambda x: indexed_full_map_loss(x, y, 5),
    }
    rows = []
    for name, loss in variants.items():
        x = x0.clone().requires_grad_()

        def run(x=x, loss=loss):
            x.grad = None
            loss(x).backward()

        rows.append({"what": f"loss {name}", "group": "loss", "before": "(before)" in name,
                     "shape": list(y.shape), "s": best_time(run, repeats)})
    net = FeatureAutoencoder(176).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for name in ("ssim_loss", "indexed chunks, full map (before)"):
        def step(name=name):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                rec = net(y)
            loss = variants[name](rec.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rows.append({"what": f"FAE step, {name}", "group": "step", "before": "(before)" in name,
                     "shape": list(y.shape), "s": best_time(step, repeats)})
    return rows


def metric_rows(quick: bool, repeats: int) -> list[dict]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    n = 10**6 if quick else 10**7
    rng = np.random.default_rng(0)
    labels = rng.random(n) < 0.02
    scores = (rng.random(n) + 0.5 * labels).astype(np.float32)
    rows = []
    for name, ours_fn, ref_fn in (
        ("average_precision", average_precision, average_precision_score),
        ("roc_auc", roc_auc, roc_auc_score),
    ):
        ours_val, ref_val = ours_fn(scores, labels), ref_fn(labels, scores)
        ours = best_time(lambda f=ours_fn: f(scores, labels), repeats)
        ref = best_time(lambda f=ref_fn: f(labels, scores), repeats)
        rows.append(
            {
                "metric": name,
                "pixels": n,
                "ours_s": ours,
                "sklearn_s": ref,
                "sklearn/ours": ref / ours,
                "abs_diff": abs(ours_val - ref_val),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 3
    result = {
        "torch_threads": torch.get_num_threads(),
        "ssim": ssim_rows(args.quick, repeats),
        "loss": loss_rows(args.quick, repeats),
        "metrics": metric_rows(args.quick, repeats),
    }
    print(f"SSIM forward+backward (best of {repeats}, {result['torch_threads']} threads)")
    for r in result["ssim"]:
        lib = (
            f"  pytorch_msssim {r['pytorch_msssim_s']:.3f}s (×{r['pytorch_msssim/ours']:.2f})"
            if "pytorch_msssim_s" in r
            else ""
        )
        print(
            f"  window {r['window']:>2} {tuple(r['shape'])}: ours {r['ours_s']:.3f}s  "
            f"naive 2-D {r['naive_s']:.3f}s (×{r['naive/ours']:.2f}){lib}"
        )
    print(f"The training loss on FAE features (best of {repeats})")
    before = {r["group"]: r["s"] for r in result["loss"] if r["before"]}
    for r in result["loss"]:
        print(f"  {r['what']:<45} {r['s']:.3f}s  (before / this ×{before[r['group']] / r['s']:.2f})")
    print("Metrics (best of", repeats, ")")
    for r in result["metrics"]:
        print(
            f"  {r['metric']:<17} {r['pixels']:.0e} px: ours {r['ours_s']:.2f}s  "
            f"sklearn {r['sklearn_s']:.2f}s "
            f"(×{r['sklearn/ours']:.2f})  |diff| {r['abs_diff']:.1e}"
        )
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
