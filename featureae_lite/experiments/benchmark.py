"""Train and evaluate several methods on the synthetic cohort under one protocol.

``run_benchmark`` writes ``results.json`` (method → metrics with 95 % subject-level bootstrap
intervals ``pixel_ap_ci``, ``pixel_auroc_ci``, ``best_dice_ci``, ``per_type`` → type → metrics,
``train_seconds``, ``infer_slices_per_s``), ``results.md`` (markdown tables) and ``gallery.png``
(example maps per anomaly type) to the output folder.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featureae_lite.core import presets
from featureae_lite.core.device import describe, resolve_device
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.splits import DataSource, load_cohort_splits
from featureae_lite.experiments.checkpoints import config_json, train_or_load
from featureae_lite.experiments.evaluation import METRIC_KEYS, evaluate
from featureae_lite.models.registry import available_methods, create_detector, get_method, preset_config

log = logging.getLogger(__name__)

# Every registered method, in the registry's order (that of the tables): the benchmark's and the CLI's default
DEFAULT_METHODS = tuple(available_methods())


def run_benchmark(
    methods: list[str] | tuple[str, ...],
    out_dir: str | os.PathLike,
    *,
    preset: str = "default",
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    contrast: str = "t2",
    retrain: bool = True,
    progress: bool = True,
    device: str | None = "auto",
    source: DataSource | None = None,
    overrides: dict[str, Any] | None = None,
    variety: str = "standard",
) -> dict[str, Any]:
    """Train each method on the healthy train split and evaluate it on the test split.

    Parameters
    ----------
    methods : sequence of str
        Registered method names (unknown names raise before any work starts).
    out_dir : path-like
        Folder for ``results.json``, ``meta.json`` (preset, seed, cohort), ``results.md`` and ``gallery.png``.
    preset : str
        Preset name (:data:`featureae_lite.core.presets.PRESETS`: sizes and budgets).
    seed : int
        Seed of the cohort and of every model.
    retrain : bool
        Train from scratch (True, so ``train_seconds`` is measured) or reuse matching checkpoints.
    device : str
        Where the models train and predict (:func:`featureae_lite.core.device.resolve_device`); the
        device is recorded in ``meta.json``.
    source : DataSource, optional
        Real data sets to train and test on (default: the synthetic cohort); recorded in ``meta.json``.
    overrides : dict, optional
        Config options given to every method that has them (e.g. ``{"backbone": "resnet18"}``).
    variety : str
        Variety of the synthetic cohort's training subjects (``"standard"`` or e.g. ``"wide"``).

    Returns
    -------
    dict
        method → evaluation result (see :func:`featureae_lite.experiments.evaluation.evaluate`).
    """
    known = available_methods()
    if not methods:
        raise InputError("no method to benchmark; name at least one of " + ", ".join(known))
    for m in methods:
        get_method(m)  # raises a clear error listing the known methods
    where = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = presets.preset(preset)
    began = time.perf_counter()
    splits = load_cohort_splits(data_dir, preset, seed, contrast, progress, source=source, variety=variety)
    results: dict[str, Any] = {}
    detectors = {}
    ckpt_dir = out_dir / "checkpoints"
    for m in methods:
        cfg = preset_config(p, m, seed, overrides)
        start = time.perf_counter()
        if retrain:
            det = create_detector(m, **cfg).to_device(where).fit(splits["train"], splits["val"],
                                                                 progress=progress)
            if det.trainable:
                det.save(ckpt_dir / f"{m}.pt")
        else:
            det = train_or_load(m, splits["train"], splits["val"], progress=progress,
                                checkpoint_dir=ckpt_dir, device=where, **cfg)
        wall = time.perf_counter() - start
        res = evaluate(det, splits["test"], splits["val"], ci=True)
        res["train_seconds"] = float(det.history.get("train_seconds", wall)) if det.trainable else 0.0
        res["config"] = config_json(det.config)
        results[m] = res
        detectors[m] = det
        if progress:
            log.info("%10s: pixel AP %.3f  best Dice %.3f  train %.0fs  infer %.0f slices/s", m,
                     res["pixel_ap"], res["best_dice"], res["train_seconds"], res["infer_slices_per_s"])
    meta = {"preset": p.name, "seed": seed, "contrast": contrast, "variety": variety,
            "cohort": str(splits["cohort"]), "data": splits["source"], "n_test_slices": len(splits["test"]),
            "n_train_slices": len(splits["train"]), "known_methods": known,
            "wall_seconds": round(time.perf_counter() - began, 1), "torch_threads": torch.get_num_threads(),
            "device": describe(where)}
    write_atomic(out_dir / "results.json", json.dumps(results, indent=2, default=_nan_safe))
    write_atomic(out_dir / "meta.json", json.dumps(meta, indent=2))
    write_atomic(out_dir / "results.md", results_markdown(results))
    from featureae_lite.core.viz import save_gallery

    save_gallery(detectors, splits["test"], out_dir / "gallery.png")
    return results


def _nan_safe(x):
    return None if isinstance(x, float) and np.isnan(x) else str(x)


def results_markdown(results: dict[str, Any]) -> str:
    """Markdown tables: overall metrics, then pixel AP per anomaly type."""
    lines = ["| method | " + " | ".join(METRIC_KEYS) + " | pixel AP 95 % CI | dice@val-thr | steps | train s "
             "| slices/s |", "|---" * (len(METRIC_KEYS) + 6) + "|"]
    for m, r in results.items():
        vals = " | ".join(f"{r[k]:.3f}" for k in METRIC_KEYS)
        lo, hi = r.get("pixel_ap_ci", [float("nan")] * 2)
        vals += f" | {lo:.3f}–{hi:.3f}"
        dv = r.get("dice_at_threshold", float("nan"))
        steps = r.get("config", {}).get("steps", 0) if r["train_seconds"] else 0
        lines.append(f"| {m} | {vals} | {dv:.3f} | {steps} | {r['train_seconds']:.0f} | "
                     f"{r['infer_slices_per_s']:.0f} |")
    types = sorted({t for r in results.values() for t in r.get("per_type", {})})
    if types:
        lines += ["", "Pixel AP per anomaly type (brain-masked, pooled slices):", "",
                  "| method | " + " | ".join(types) + " |", "|---" * (len(types) + 1) + "|"]
        for m, r in results.items():
            cells = " | ".join(f"{r['per_type'].get(t, {}).get('pixel_ap', float('nan')):.3f}"
                               for t in types)
            lines.append(f"| {m} | {cells} |")
    return "\n".join(lines) + "\n"
