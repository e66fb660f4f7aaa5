"""FAE in float32 vs bfloat16 autocast, measured in one run on one cohort.

    python benchmarks/fae_precision.py [--quick] [--seconds S] [--repeats R] [--out FILE.json]

(a) Step time: FAE training steps (batch 32) alternately in float32 and with the autoencoder under
    bfloat16 autocast (SSIM statistics in float32), ``repeats`` rounds of 5 steps each; the median
    of each and their ratio.
(b) AP at equal wall-clock: each precision trains (constant lr, as the presets) for as many steps as fit
    in ``seconds`` at its measured step time, then the test pixel AP (overall and ``structural``).
(c) Map agreement: the float32 model of (b) predicts the test split with and without autocast; the
    largest and mean absolute difference of the (N, 1, H, W) maps and the two pixel APs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from featureae_lite.core.fileio import write_atomic
from featureae_lite.core.presets import preset
from featureae_lite.data.batch import Batch
from featureae_lite.experiments.evaluation import evaluate_output
from featureae_lite.models.registry import create_detector


def _steps_time(det, inputs: Batch, n: int, gen: torch.Generator) -> float:
    opt = torch.optim.Adam(det.net.parameters(), lr=1e-4)
    det.train()
    start = time.perf_counter()
    for _ in range(n):
        loss = det.loss(inputs[torch.randint(len(inputs), (32,), generator=gen)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / n


def _ap(det, test) -> dict[str, float]:
    res = evaluate_output(det.predict(test.images, test.brains), test, unmasked=False)
    return {"pixel_ap": res["pixel_ap"], "structural": res["per_type"].get("structural", {}).get("pixel_ap")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="QUICK cohort and a short budget")
    parser.add_argument("--seconds", type=float, default=None, help="training budget per precision")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="write the results as JSON")
    parser.add_argument("--data", default=None, help="data folder (default: the package's)")
    args = parser.parse_args(argv)

    from featureae_lite.data.splits import load_cohort_splits

    p = preset(args.quick)
    seconds = args.seconds or (20.0 if args.quick else 300.0)
    splits = load_cohort_splits(args.data, p.name, 0, "t2", progress=False)
    base = {"image_size": p.image_size, "seed": 0, **p.overrides("fae")}
    dets = {prec: create_detector("fae", **{**base, "precision": prec}) for prec in ("float32", "bfloat16")}
    inputs = dets["float32"].prepare(Batch.of(splits["train"]))
    gen = torch.Generator().manual_seed(0)
    for det in dets.values():  # warm-up
        _steps_time(det, inputs, 2, gen)
    times: dict[str, list[float]] = {prec: [] for prec in dets}
    for _ in range(args.repeats):
        for prec, det in dets.items():
            times[prec].append(_steps_time(det, inputs, 5, gen))
    step = {prec: statistics.median(t) for prec, t in times.items()}
    ratio = step["float32"] / step["bfloat16"]
    print(f"(a) FAE step, batch 32: float32 {step['float32']:.3f} s, bfloat16 autocast "
          f"{step['bfloat16']:.3f} s → {ratio:.2f}× faster ({args.repeats} alternating rounds)")

    budget, models = {}, {}
    test = splits["test"]
    for prec in dets:
        n = max(10, int(seconds / step[prec]))
        det = create_detector("fae", **{**base, "precision": prec, "steps": n})
        det.fit(splits["train"], progress=False)
        models[prec] = det
        budget[prec] = {"steps": n, "train_seconds": det.history["train_seconds"], **_ap(det, test)}
        print(f"(b) {seconds:.0f} s budget, {prec}: {n} steps in {budget[prec]['train_seconds']:.0f} s → "
              f"pixel AP {budget[prec]['pixel_ap']:.4f}, structural {budget[prec]['structural']:.4f}")

    trained = models["float32"]
    fp32_out = trained.predict(test.images, test.brains)
    trained.config.precision = "bfloat16"
    bf16_out = trained.predict(test.images, test.brains)
    diff = (fp32_out.maps - bf16_out.maps).abs()
    agree = {"max_abs_map_diff": float(diff.max()), "mean_abs_map_diff": float(diff.mean()),
             "map_range": float(fp32_out.maps.max()),
             "ap_float32": evaluate_output(fp32_out, test, unmasked=False)["pixel_ap"],
             "ap_bfloat16": evaluate_output(bf16_out, test, unmasked=False)["pixel_ap"]}
    print(f"(c) the float32 model of (b) predicting with bfloat16 autocast: max |Δmap| "
          f"{agree['max_abs_map_diff']:.2e}, mean {agree['mean_abs_map_diff']:.2e} (maps up to "
          f"{agree['map_range']:.3f}); pixel AP {agree['ap_float32']:.4f} vs {agree['ap_bfloat16']:.4f}")
    result = {"step_seconds": step, "step_ratio": ratio, "map_agreement": agree, "equal_budget": budget,
              "budget_seconds": seconds, "threads": torch.get_num_threads()}
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
