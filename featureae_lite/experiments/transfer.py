"""The transfer gap: models trained on the synthetic cohort, tested on its test split and on real scans.

``run_transfer`` trains each method on the synthetic cohort of the real set's contrast (or loads the
matching train-or-load checkpoint), evaluates it on the cohort's test split and on *every* subject
of a real held-out folder (none is used for training, validation or thresholds: the threshold of
``dice_at_threshold`` comes from the cohort's validation split; the validation split's own AP and
loss are reported too, the only figures to choose settings on), and writes ``transfer.json``,
``transfer.md`` and ``meta.json``. The transfer ratio is real pixel AP / synthetic pixel AP.
:func:`transfer_test` does the same without writing files and keeps the trained detectors and the
real slices (notebook 10 draws its maps); :func:`find_real_data` locates a fetched real set.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from featureae_lite.core import presets
from featureae_lite.core.device import describe, resolve_device
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.batch import Batch
from featureae_lite.data.dataset import load_split
from featureae_lite.data.layouts import discover_subjects
from featureae_lite.data.splits import TEST_LAYOUTS, load_cohort_splits
from featureae_lite.data.synth import CONTRASTS, check_choice
from featureae_lite.experiments.checkpoints import config_json, train_or_load
from featureae_lite.experiments.evaluation import evaluate_output, predict_split, threshold_from_output
from featureae_lite.models.base import Detector
from featureae_lite.models.registry import get_method, preset_config

log = logging.getLogger(__name__)
# Layouts of a real held-out set (the test layouts but the synthetic one)
REAL_LAYOUTS = tuple(t for t in TEST_LAYOUTS if t != "synthetic")

KEYS = ("pixel_ap", "pixel_auroc", "best_dice")
REAL_SUBFOLDER = "real"


def real_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data folder>/real``: where ``featureae-lite fetch-real`` (run by ``make setup``) puts the
    real held-out set and where notebook 10's transfer test looks for it."""
    from featureae_lite.data.paths import resolve_data_dir

    return resolve_data_dir(data_dir) / REAL_SUBFOLDER


def find_real_data(real_data: str | os.PathLike | None = None,
                   data_dir: str | os.PathLike | None = None) -> Path | None:
    """The real held-out set to test on: ``real_data`` if given, else ``<data folder>/real`` when it
    holds a fetched set (``provenance.json`` and at least one subject folder), else None.

    Raises
    ------
    ValueError
        ``real_data`` is given but is not a folder (the message names it).
    """
    if real_data:
        root = Path(real_data)
        if not root.is_dir():
            raise InputError(f"real data {root}: folder not found (featureae-lite fetch-real --out {root})")
        return root
    root = real_data_dir(data_dir)
    fetched = (root / "provenance.json").is_file() and any(d.is_dir() and not d.name.startswith(".")
                                                          for d in root.iterdir())
    return root if fetched else None


@dataclass
class TransferTest:
    """What :func:`transfer_test` measured.

    Attributes
    ----------
    results : dict
        method → ``{"synthetic": metrics, "real": metrics, "ratio", "validation", "train_seconds", ...}``.
    meta : dict
        Sizes, lesion shares (the AP of a random map), the real subjects, device, timings.
    real : Batch
        The real set's slices (images, masks, brains: (S, 1, H, W)).
    detectors : dict
        method → the trained (or loaded) detector.
    synthetic : Batch or None
        The synthetic test split the models were tested on (same layout as ``real``).
    """

    results: dict[str, Any]
    meta: dict[str, Any]
    real: Batch
    detectors: dict[str, Detector]
    synthetic: Batch | None = None

    def table(self):
        """A pandas DataFrame, one row per method: AP synthetic / real, their ratio, AUROC real."""
        import pandas as pd

        rows = {m: {"AP synthetic test": r["synthetic"]["pixel_ap"], "AP real": r["real"]["pixel_ap"],
                    "ratio real/synthetic": r["ratio"], "AUROC real": r["real"]["pixel_auroc"]}
                for m, r in self.results.items()}
        return pd.DataFrame.from_dict(rows, orient="index")


def load_real_test(real_data: str | os.PathLike, layout: str = "brats", modality: str = "t1", *,
                   data_dir: str | os.PathLike | None = None, preset: str = "default",
                   progress: bool = True):
    """All subjects of a real lesion data set as one test split, preprocessed like the cohort.

    Raises
    ------
    ValueError
        The folder is missing or holds no subject, a subject has no lesion mask, or no lesion pixel
        falls in the preset's slices (the message names the folder).
    """
    if real_data is None or str(real_data) == "":
        raise InputError("no real data folder given: run `featureae-lite fetch-real`, then pass its folder "
                         "(or find it with featureae_lite.experiments.transfer.find_real_data)")
    root = Path(real_data)
    if not root.is_dir():
        raise InputError(f"--real-data {root}: folder not found")
    check_choice(layout, REAL_LAYOUTS, "real-data layout")
    records = discover_subjects(root, layout, modality, "test")
    missing = [r.subject_id for r in records if r.mask_path is None]
    if missing:
        raise InputError(f"--real-data {root}: subject(s) {missing} have no lesion mask (layout {layout!r})")
    p = presets.preset(preset)
    data = load_split(data_dir, "test", cohort=root, layout=layout, modality=modality,
                      image_size=p.image_size, slice_range=p.slice_range, slice_step=p.slice_step,
                      progress=progress)
    if float(data.masks.sum()) == 0:
        raise InputError(f"--real-data {root}: no lesion pixel inside the brain in slices "
                         f"{p.slice_range[0]}–{p.slice_range[1]} (step {p.slice_step})")
    return data


def run_transfer(methods: list[str] | tuple[str, ...], real_data: str | os.PathLike,
                 out_dir: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """:func:`transfer_test`, written to ``out_dir`` as ``transfer.json``, ``transfer.md`` and
    ``meta.json``; returns its ``results`` (``options``: those of :func:`transfer_test`)."""
    test = transfer_test(methods, real_data, **options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "transfer.json", json.dumps(test.results, indent=2, default=str))
    write_atomic(out_dir / "meta.json", json.dumps(test.meta, indent=2))
    write_atomic(out_dir / "transfer.md", transfer_markdown(test.results, test.meta))
    return test.results


def transfer_test(
    methods: list[str] | tuple[str, ...],
    real_data: str | os.PathLike,
    *,
    real_layout: str = "brats",
    modality: str = "t1",
    preset: str = "default",
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    device: str | None = "auto",
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    variety: str = "standard",
    train_transform: Callable[[Any], Any] | None = None,
) -> TransferTest:
    """Pixel AP (and AUROC, best Dice) per method on the synthetic test split and on a real set.

    Parameters
    ----------
    methods : sequence of str
        Registered method names.
    real_data : path-like
        Folder of real lesion subjects (e.g. ``featureae-lite fetch-real --out DIR``).
    real_layout, modality : str
        Layout of the real folder and its contrast; the synthetic cohort is synthesised (or reused)
        in this contrast, so models see the real set's contrast in training.
    preset : str
        Preset name (:data:`featureae_lite.core.presets.PRESETS`: sizes and budgets).
    checkpoint_dir : path-like, optional
        Train-or-load folder (default ``<data_dir>/checkpoints``): a model trained before with the
        same method, config, data and code is loaded, not retrained.
    variety : str
        Variety of the cohort's healthy training subjects (``"standard"``, ``"wide"``, ...,
        :data:`featureae_lite.data.synth.VARIETY`); val and test subjects are the standard ones.
    train_transform : callable, optional
        Applied to the training split (a Batch, images (N, 1, H, W)) before training, e.g.
        augmented copies of its slices (:func:`featureae_lite.data.augment.augment`); the checkpoint
        key follows the transformed data.

    Returns
    -------
    TransferTest
        ``results``: method → ``{"synthetic": metrics, "real": metrics, "ratio": real AP / synthetic
        AP, ...}``; ``meta``; the real slices; the detectors; the synthetic test slices.
    """
    if not methods:
        raise InputError("no method given")
    for m in methods:
        get_method(m)
    check_choice(modality, CONTRASTS, "modality")
    where = resolve_device(device)
    began = time.perf_counter()
    p = presets.preset(preset)
    real = load_real_test(real_data, real_layout, modality, data_dir=data_dir, preset=preset,
                          progress=progress)
    splits = load_cohort_splits(data_dir, preset, seed, modality, progress, variety=variety)
    train = splits["train"] if train_transform is None else train_transform(splits["train"])
    if checkpoint_dir is None:
        from featureae_lite.data.paths import resolve_data_dir

        checkpoint_dir = resolve_data_dir(data_dir) / "checkpoints"
    results: dict[str, Any] = {}
    detectors: dict[str, Detector] = {}
    for m in methods:
        cfg = preset_config(p, m, seed, overrides)
        start = time.perf_counter()
        det = train_or_load(m, train, splits["val"], checkpoint_dir=checkpoint_dir,
                            progress=progress, device=where, **cfg)
        fit_s = time.perf_counter() - start
        val_out = predict_split(det, splits["val"])[0]  # predicted once: threshold and validation AP
        threshold = threshold_from_output(val_out, splits["val"])
        syn, rl = (evaluate_output(predict_split(det, data)[0], data, threshold, per_type=False,
                                   unmasked=False) for data in (splits["test"], real))
        val = evaluate_output(val_out, splits["val"], threshold, per_type=False, unmasked=False)
        val_loss = det.history.get("val_loss") or [float("nan")]
        row = {"synthetic": {k: syn[k] for k in (*KEYS, "dice_at_threshold")},
               "real": {k: rl[k] for k in (*KEYS, "dice_at_threshold")},
               "ratio": rl["pixel_ap"] / syn["pixel_ap"] if syn["pixel_ap"] > 0 else float("nan"),
               "validation": {"pixel_ap": val["pixel_ap"], "pixel_auroc": val["pixel_auroc"],
                              "last_val_loss": float(val_loss[-1])},
               "train_seconds": round(float(det.history.get("train_seconds", 0.0)), 1),
               "train_or_load_seconds": round(fit_s, 1), "config": config_json(det.config)}
        results[m], detectors[m] = row, det
        if progress:
            log.info("%10s: pixel AP synthetic %.3f  real %.3f  ratio %.2f", m, syn["pixel_ap"],
                     rl["pixel_ap"], row["ratio"])
    real_pos = float(real.masks.sum()) / max(float(real.brains.sum()), 1.0)
    syn_pos = float(splits["test"].masks.sum()) / max(float(splits["test"].brains.sum()), 1.0)
    meta = {"preset": p.name, "seed": seed, "modality": modality, "variety": variety,
            "cohort": str(splits["cohort"]),
            "real_data": str(Path(real_data).resolve()), "real_layout": real_layout,
            "real_subjects": sorted(set(real.subject_ids)), "n_real_slices": len(real),
            "n_synthetic_test_slices": len(splits["test"]),
            "lesion_pixel_share": {"synthetic_test": round(syn_pos, 5), "real": round(real_pos, 5)},
            "checkpoints": str(checkpoint_dir), "wall_seconds": round(time.perf_counter() - began, 1),
            "torch_threads": torch.get_num_threads(), "device": describe(where)}
    provenance = Path(real_data) / "provenance.json"
    if provenance.is_file():
        meta["real_provenance"] = json.loads(provenance.read_text()).get("source")
    return TransferTest(results, meta, real, detectors, splits["test"])


def transfer_markdown(results: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
    """A markdown table: pixel AP on the synthetic test split and on the real set, and their ratio."""
    lines = []
    if meta:
        share = meta["lesion_pixel_share"]
        lines += [f"Preset {meta['preset']}, modality {meta['modality']}, seed {meta['seed']}, training "
                  f"variety {meta.get('variety', 'standard')}; real set "
                  f"{', '.join(meta['real_subjects'])} ({meta['n_real_slices']} slices). Lesion share of "
                  f"brain pixels (the AP of a random map): synthetic {share['synthetic_test']:.4f}, real "
                  f"{share['real']:.4f}.", ""]
    lines += ["| method | pixel AP synthetic | pixel AP real | ratio real/synthetic | AUROC synthetic "
              "| AUROC real | best Dice synthetic | best Dice real | pixel AP val | train s |",
              "|---" * 10 + "|"]
    for m, r in results.items():
        s, q = r["synthetic"], r["real"]
        lines.append(f"| {m} | {s['pixel_ap']:.3f} | {q['pixel_ap']:.3f} | {r['ratio']:.2f} | "
                     f"{s['pixel_auroc']:.3f} | {q['pixel_auroc']:.3f} | {s['best_dice']:.3f} | "
                     f"{q['best_dice']:.3f} | {r['validation']['pixel_ap']:.3f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"
