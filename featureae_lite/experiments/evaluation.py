"""Run a detector over a split and compute the metrics table, overall and per anomaly type.

Protocol (stated in every result; the choices and their pitfalls follow Meissen et al., "Unsupervised
Anomaly Localization with Structural Feature-Autoencoders", BrainLes @ MICCAI 2022, and Lagogiannis et
al., "Unsupervised Pathology Detection: A Deep Dive Into the State of the Art", IEEE TMI 2024):

* all test slices pooled (not per volume);
* pixel metrics restricted to brain pixels (``brain_masked=True``, the default) — the unmasked
  variant, background included as in the FAE reference, is reported under ``"unmasked"``
  (``unmasked=True``, the default of :func:`evaluate`);
* ``best_dice`` picks its threshold on the test set (optimistic); ``dice_at_5fpr`` uses the threshold
  giving 5 % pixel FPR on the test set; ``dice_at_threshold`` uses the best-Dice threshold chosen
  on the *validation* split — the honest variant;
* per anomaly type T: the slices of subjects of type T plus every healthy subject.

All pixel metrics of one evaluation come from a single sort
(:func:`~featureae_lite.core.metrics.subset_curve_metrics`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from featureae_lite.core.errors import InputError
from featureae_lite.core.maps import image_scores, postprocess
from featureae_lite.core.metrics import (
    best_dice,
    pixel_and_sample_metrics,
    sample_metrics,
    subset_curve_metrics,
)
from featureae_lite.core.uncertainty import bootstrap_ci, subject_histograms
from featureae_lite.models.base import AnomalyOutput, Detector

METRIC_KEYS = ("pixel_ap", "pixel_auroc", "best_dice", "dice_at_5fpr", "sample_auroc", "sample_ap")


def predict_split(detector: Detector, data, batch_size: int = 64) -> tuple[AnomalyOutput, float]:
    """Maps and scores for every slice of ``data`` and the throughput in slices per second."""
    start = time.perf_counter()
    out = detector.predict(data.images, data.brains, batch_size=batch_size)
    seconds = time.perf_counter() - start
    return out, len(data) / max(seconds, 1e-9)


def threshold_from_output(out: AnomalyOutput, val, brain_masked: bool = True) -> float | None:
    """Best-Dice threshold of the validation maps ``out`` (None if ``val`` has no anomalous pixel)."""
    if val is None or float(val.masks.sum()) == 0:
        return None
    keep = val.brains > 0 if brain_masked else torch.ones_like(val.masks, dtype=torch.bool)
    _, thr = best_dice(out.maps[keep].numpy(), val.masks[keep].numpy() > 0)
    return float(thr)


def metrics_from_output(
    out: AnomalyOutput, data, brain_masked: bool = True, threshold: float | None = None
) -> dict[str, float]:
    """Pixel and sample metrics of precomputed maps/scores against ``data``'s masks (no per-type split)."""
    res = pixel_and_sample_metrics(
        out.maps,
        data.masks,
        brains=data.brains if brain_masked else None,
        image_scores=out.scores,
        threshold=threshold,
    )
    return {k: float(v) for k, v in res.items()}


def evaluate(
    detector: Detector,
    test,
    val=None,
    *,
    brain_masked: bool = True,
    per_type: bool = True,
    unmasked: bool = True,
    ci: bool = False,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Evaluate a fitted detector on a split.

    Parameters
    ----------
    detector : Detector
        A fitted detector.
    test : Batch
        Test slices with lesion masks, brain masks and per-slice anomaly types.
    val : Batch, optional
        Validation split used only to choose the threshold for ``dice_at_threshold``.
    brain_masked : bool
        Restrict pixel metrics to brain pixels (default) or use every pixel.
    per_type : bool
        Also report each anomaly type (its subjects plus the healthy subjects).
    unmasked : bool
        Also report the overall pixel metrics on every pixel, background included (this sorts all
        pixels instead of the brain pixels only: about twice the cost).
    ci : bool
        Add 95 % subject-level bootstrap intervals ``pixel_ap_ci``, ``pixel_auroc_ci`` and
        ``best_dice_ci`` (:mod:`featureae_lite.core.uncertainty`), overall and per type (a few seconds).

    Returns
    -------
    dict
        The metric keys of :data:`METRIC_KEYS` (and more) overall, ``"per_type"`` → type → metrics,
        ``"unmasked"`` → the overall metrics with background pixels included, ``"val_threshold"``,
        ``"infer_slices_per_s"`` and ``"protocol"`` (a sentence stating the choices).
    """
    if float(test.masks.sum()) == 0:
        raise InputError("the test split has no anomalous pixel: nothing to localise")
    has_lesions = val is not None and float(val.masks.sum()) > 0  # else there is no threshold to choose
    val_out = predict_split(detector, val, batch_size)[0] if has_lesions else None
    out, speed = predict_split(detector, test, batch_size)
    return evaluate_predictions(detector, test, out, speed, val, val_out, brain_masked=brain_masked,
                                per_type=per_type, unmasked=unmasked, ci=ci)


def evaluate_predictions(
    detector: Detector, test, out: AnomalyOutput, speed: float, val=None,
    val_out: AnomalyOutput | None = None, *, brain_masked: bool = True, per_type: bool = True,
    unmasked: bool = True, ci: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate` from predictions already made (``out`` on ``test``, ``val_out`` on ``val``)
    at ``speed`` slices per second; used by :class:`featureae_lite.course.session.Session` to reuse maps."""
    threshold = threshold_from_output(val_out, val, brain_masked) if val_out is not None else None
    result = evaluate_output(out, test, threshold, brain_masked=brain_masked, per_type=per_type,
                             unmasked=unmasked, ci=ci)
    result["infer_slices_per_s"] = speed
    result["protocol"] = (
        f"slices pooled; pixel metrics {'inside the brain mask' if brain_masked else 'on all pixels'}; "
        f"maps {'brain-masked' if detector.config.mask_brain else 'unmasked'}, smoothing sigma "
        f"{detector.config.smooth_sigma}; image score {detector.config.score}; "
        "best_dice threshold chosen on test (optimistic), dice_at_threshold on val (honest)"
    )
    return result


def evaluate_output(
    out: AnomalyOutput, test, threshold: float | None = None, *, brain_masked: bool = True,
    per_type: bool = True, unmasked: bool = True, ci: bool = False,
) -> dict[str, Any]:
    """Metrics of precomputed maps and scores on ``test``: overall, unmasked and per anomaly type.

    Parameters
    ----------
    out : AnomalyOutput
        Maps (N, 1, H, W) and scores (N,) for every slice of ``test``.
    test : Batch
        The slices with lesion masks, brain masks and anomaly types.
    threshold : float, optional
        A threshold chosen elsewhere (on val) for ``dice_at_threshold``.
    brain_masked, per_type, unmasked, ci : bool
        As in :func:`evaluate`.
    """
    if float(test.masks.sum()) == 0:
        raise InputError("the test split has no anomalous pixel: nothing to localise")
    if out.maps.shape != test.masks.shape:
        raise InputError(f"maps {tuple(out.maps.shape)} do not match the split {tuple(test.masks.shape)}")
    masks = test.masks.numpy() > 0
    inside = test.brains.numpy() > 0 if brain_masked else None
    rows = {"overall": np.ones(len(test), dtype=bool)}
    if per_type:
        types = np.asarray(test.anomaly_types)
        for t in sorted(set(types) - {"healthy"}):
            selected = (types == t) | (types == "healthy")
            if masks[selected].any():
                rows[t] = selected
    subsets = {name: (r, inside) for name, r in rows.items()}
    if unmasked:
        subsets["unmasked"] = (None, None)
    pixel = subset_curve_metrics(out.maps.numpy(), masks, subsets, thresholds=dict.fromkeys(rows, threshold))
    sample = {name: sample_metrics(out.scores.numpy()[r], masks[r]) for name, r in rows.items()}
    result: dict[str, Any] = {**pixel["overall"], **sample["overall"]}
    if unmasked:
        result["unmasked"] = {**pixel["unmasked"], **sample["overall"]}
    result["val_threshold"] = threshold
    if per_type:
        result["per_type"] = {t: {**pixel[t], **sample[t]} for t in rows if t != "overall"}
    if ci:
        hist = subject_histograms(out.maps, test.masks, test.brains if brain_masked else None,
                                  list(test.subject_ids))
        for name, r in rows.items():
            target = result if name == "overall" else result["per_type"][name]
            chosen = {s for s, keep in zip(test.subject_ids, r, strict=True) if keep}
            target.update({f"{k}_ci": v for k, v in bootstrap_ci(hist.rows(chosen)).items()})
    return result


def output_from_maps(maps: Tensor, brains: Tensor | None, rule: str = "top10_mean") -> AnomalyOutput:
    """Brain-mask raw maps (N, 1, H, W) and derive image scores with the shared rule."""
    maps = postprocess(maps, brains, mask_brain=brains is not None)
    return AnomalyOutput(maps, image_scores(maps, brains, rule))


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    preset: str,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    contrast: str = "t2",
    source=None,
    device: str | None = "auto",
    out: str | os.PathLike | None = None,
    inputs: dict[str, str | os.PathLike | None] | None = None,
) -> dict[str, Any]:
    """Evaluate a saved detector on the test split of a preset's cohort (or of ``source``, a DataSource
    of real data sets), threshold chosen on val; with ``out``, also write the result as JSON there.

    Every input is checked first: the checkpoint, the device, ``out`` (a writable file name that is
    none of ``inputs`` — option → path — and lies outside the data folder) and that the checkpoint's
    image size is the preset's.
    """
    import json

    from featureae_lite.core.fileio import check_not_an_input, check_output_file, write_atomic
    from featureae_lite.core.presets import preset as get_preset
    from featureae_lite.data.paths import resolve_data_dir
    from featureae_lite.data.splits import load_cohort_splits
    from featureae_lite.models.registry import load_detector

    det = load_detector(checkpoint).to_device(device)
    if out:
        check_not_an_input(out, {"--checkpoint": checkpoint, **(inputs or {})},
                           {"the data folder": resolve_data_dir(data_dir)})
        check_output_file(out)
    size = get_preset(preset).image_size
    if det.config.image_size != size:
        raise InputError(f"{checkpoint} expects {det.config.image_size}-px slices but the "
                         f"{preset} preset gives {size} px; pass the --preset (or --quick) the model "
                         "was trained with")
    splits = load_cohort_splits(data_dir, preset, seed, contrast, source=source)
    res = evaluate(det, splits["test"], splits["val"])
    if out:
        write_atomic(out, json.dumps(res, indent=2, default=str))
    return res
