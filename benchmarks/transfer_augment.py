"""Training-time augmentation and the transfer gap (issue 16), measured in one run.

    python benchmarks/transfer_augment.py [--methods dpa,ae_l1] [--modes none,intensity,spatial,both]
                                          [--copies 3] [--quick] [--data DIR] [--real DIR] [--out FILE.json]

Each method trains (same preset budget, same seed) on the T1 cohort's training slices plus ``copies``
augmented copies of each (:func:`featureae_lite.data.augment.augment`: what the modes draw), one run
per mode, and is evaluated by ``featureae-lite transfer``'s
:func:`~featureae_lite.experiments.transfer.transfer_test` (its ``train_transform``): pixel AP on the cohort's
validation split (the only figure to choose on), its synthetic test split and the real held-out set.
The budget (steps, batch) stays the preset's, but a method that
caches backbone features per slice (DPA, FAE) caches 1 + ``copies`` times as many, which its
``train_seconds`` include. Findings (2026-11-26, default preset): docs/transfer.md,
"Training-time augmentation".
"""

from __future__ import annotations

import argparse
import json
from functools import partial

from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.augment import MODES, augment


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
