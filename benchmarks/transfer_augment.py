"""Training-time augmentation and the transfer gap (issue 16), measured in one run.

    python -m bench.transfer_augment [--methods dpa,ae_l1] [--modes none,intensity,spatial,both]
                                     [--copies 3] [--quick] [--data DIR] [--real DIR] [--out FILE.json]

Each method trains (same preset budget, same seed) on the T1 cohort's training slices plus ``copies``
augmented copies of each, one run per mode, and is evaluated by ``featureae-lite transfer``'s
:func:`~featureae_lite.experiments.transfer.transfer_test` (its ``train_transform``): pixel AP on the cohort's
validation split (the only figure to choose on), its synthetic test split and the real held-out set.
The augmentations are drawn a priori from the usual ranges of nnU-Net-style
pipelines, not from the real cases:

* ``spatial``: rotation U(−15°, 15°), isotropic scale U(0.85, 1.15), shift U(−2.5 %, 2.5 %) of the
  slice (image bilinear, brain mask nearest);
* ``intensity``: a smooth multiplicative bias field (4 × 4 control points, log sd U(0, 0.3)), a
  Gaussian blur of sd U(0.5, 1.5) px on half of the slices, Gaussian noise of sd U(0, 0.1).

Every augmented slice is equalised again inside its brain (``preprocess.equalize``), as the inputs
are; that cancels any *monotone* intensity change (gamma, contrast, brightness), so none is drawn.
The copies are drawn once (seeded). The budget (steps, batch) stays the preset's, but a method that
caches backbone features per slice (DPA, FAE) caches 1 + ``copies`` times as many, which its
``train_seconds`` include. Findings (2026-11-26, default preset): docs/transfer.md,
"Training-time augmentation".
"""

from __future__ import annotations

import argparse
import json
import math
from functools import partial

import torch
import torch.nn.functional as F

from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.dataset import SliceData
from featureae_lite.data.preprocess import equalize

MODES = ("none", "intensity", "spatial", "both")


def _spatial(x: torch.Tensor, b: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    angle, scale = u(-15, 15) * math.pi / 180, u(0.85, 1.15)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, u(-0.05, 0.05)], 1),
                         torch.stack([sin, cos, u(-0.05, 0.05)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return (F.grid_sample(x, grid, align_corners=False),
            F.grid_sample(b, grid, mode="nearest", align_corners=False))


def _intensity(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter

    n, _, h, w = x.shape
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    field = torch.randn(n, 1, 4, 4, generator=g) * u(0, 0.3).view(n, 1, 1, 1)
    x = x * torch.exp(F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False))
    sigma = u(0.5, 1.5) * (torch.rand(n, generator=g) < 0.5)
    x = torch.stack([torch.from_numpy(gaussian_filter(s.numpy(), (0, float(sd), float(sd)))) if sd > 0 else s
                     for s, sd in zip(x, sigma, strict=True)])
    return x + torch.randn(x.shape, generator=g) * u(0, 0.1).view(n, 1, 1, 1)


def augment(data: SliceData, mode: str, copies: int, seed: int = 0) -> SliceData:
    """``data`` followed by ``copies`` augmented copies of every slice (healthy training slices only).

    Parameters
    ----------
    data : SliceData
        Training slices: images and brains (N, 1, H, W).
    mode : str
        One of :data:`MODES`; ``"none"`` returns ``data``.

    Returns
    -------
    SliceData
        (N × (1 + copies)) slices; the copies' subject ids end in ``_aug<k>``.
    """
    if mode not in MODES:
        raise ValueError(f"--modes: {mode!r} is not one of {MODES}")
    if mode == "none" or copies == 0:
        return data
    g = torch.Generator().manual_seed(seed)
    parts = [data]
    for k in range(copies):
        x, b = data.images.clone(), data.brains.clone()
        if mode in ("spatial", "both"):
            x, b = _spatial(x, b, g)
        if mode in ("intensity", "both"):
            x = _intensity(x, g)
        x = torch.stack([torch.from_numpy(equalize(s[0].numpy(), s[0].numpy() > 0))[None]
                         if m.any() else torch.zeros_like(s) for s, m in zip(x * b, b > 0, strict=True)])
        parts.append(SliceData(x, torch.zeros_like(x), b, [f"{s}_aug{k}" for s in data.subject_ids],
                               list(data.anomaly_types), list(data.slice_indices)))
    return SliceData.concat(parts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="dpa,ae_l1", help="comma-separated methods")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    parser.add_argument("--copies", type=int, default=3, help="augmented copies of each training slice")
    parser.add_argument("--quick", action="store_true", help="QUICK cohort and budgets")
    parser.add_argument("--data", default=None, help="data folder (default: the package's)")
    parser.add_argument("--real", default=None, help="real held-out set (default: <data>/real)")
    parser.add_argument("--out", default=None, help="write the results as JSON")
    args = parser.parse_args(argv)

    from featureae_lite.experiments.transfer import find_real_data, transfer_test

    modes = args.modes.split(",")
    if set(modes) - set(MODES):
        parser.error(f"--modes: {sorted(set(modes) - set(MODES))} not among {MODES}")
    real_dir = find_real_data(args.real, args.data)
    if real_dir is None:
        parser.error("no real held-out set: run `featureae-lite fetch-real` or pass --real")
    results: dict = {"runs": []}
    for mode in modes:
        test = transfer_test(args.methods.split(","), real_dir, preset="quick" if args.quick else "default",
                             data_dir=args.data, progress=False,
                             train_transform=partial(augment, mode=mode, copies=args.copies))
        results["real_random_ap"] = test.meta["lesion_pixel_share"]["real"]
        for method, r in test.results.items():
            row = {"method": method, "mode": mode, "copies": args.copies if mode != "none" else 0,
                   "train_seconds": r["train_seconds"],
                   **{name: {k: round(r[name][k], 4) for k in ("pixel_ap", "pixel_auroc")}
                      for name in ("validation", "synthetic", "real")}}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        write_atomic(args.out, json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
