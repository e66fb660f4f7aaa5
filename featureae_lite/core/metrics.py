"""Pixel- and sample-level metrics for anomaly localisation, built on one sort + cumulative sums.

Conventions (used everywhere in the package):

* a pixel is predicted anomalous when its score is **≥ threshold**;
* tied scores form one threshold (as in scikit-learn), so AP and AUROC equal
  ``sklearn.metrics.average_precision_score`` / ``roc_auc_score``;
* every pixel function takes an optional ``brain`` mask of the same shape restricting the pixels
  that count (brain-masked evaluation); without it every pixel counts (background included);
* a slice is positive at sample level if any of its pixels is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from featureae_lite.core.errors import InputError


def _as_np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _prepare(scores: Any, labels: Any, brain: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Flatten, validate and (optionally) restrict to the brain; returns float scores, bool labels."""
    s, y = _as_np(scores), _as_np(labels)
    if s.shape != y.shape:
        raise InputError(f"scores shape {s.shape} does not match labels shape {y.shape}")
    if brain is not None:
        b = _as_np(brain)
        if b.shape != s.shape:
            raise InputError(f"brain mask shape {b.shape} does not match scores shape {s.shape}")
        b = b > 0
        if not b.any():
            raise InputError("the brain mask is empty: no pixel to evaluate")
        s, y = s[b], y[b]
    s, y = s.ravel(), y.ravel()
    if s.size == 0:
        raise InputError("no scores to evaluate")
    if not np.isfinite(s).all():
        raise InputError("scores contain NaN or infinite values")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise InputError("labels must be binary (0/1 or bool)")
        y = y.astype(bool)
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    return s, y


def _sort(s: np.ndarray) -> np.ndarray:
    """Indices sorting ``s`` by descending score (ties are grouped by :func:`_curve_sorted`)."""
    return torch.sort(torch.from_numpy(s), descending=True).indices.numpy()


def _curve_sorted(s_sorted: np.ndarray, y_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative TP and FP at each distinct threshold of scores sorted descending, and the thresholds."""
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tp = np.cumsum(y_sorted, dtype=np.int64)[last]
    fp = (last + 1) - tp
    return tp, fp, s_sorted[last]


def _curve(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative TP and FP at each distinct threshold (descending) and the thresholds."""
    order = _sort(s)
    return _curve_sorted(s[order], y[order])


def _ap(tp: np.ndarray, fp: np.ndarray, n_pos: int) -> float:
    """AP from a curve of :func:`_curve`: Σ (R_k − R_{k−1}) P_k."""
    return float(np.sum(np.diff(np.r_[0.0, tp / n_pos]) * (tp / (tp + fp))))


def _auroc(tp: np.ndarray, fp: np.ndarray, n_pos: int, n_neg: int) -> float:
    """Trapezoidal AUROC from a curve of :func:`_curve`."""
    tpr, fpr = np.r_[0.0, tp / n_pos], np.r_[0.0, fp / n_neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(scores: Any, labels: Any, brain: Any = None) -> float:
    """Average precision = Σ (R_k − R_{k−1}) P_k over distinct thresholds (scikit-learn's definition).

    Parameters
    ----------
    scores, labels : array-like
        Same shape; labels binary.
    brain : array-like, optional
        Boolean mask of the pixels that count.
    """
    s, y = _prepare(scores, labels, brain)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise InputError("labels contain no positive: average precision is undefined")
    tp, fp, _ = _curve(s, y)
    return _ap(tp, fp, n_pos)


def roc_auc(scores: Any, labels: Any, brain: Any = None) -> float:
    """Area under the ROC curve (trapezoidal over distinct thresholds, ties handled as sklearn)."""
    s, y = _prepare(scores, labels, brain)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InputError("AUROC needs both positive and negative labels")
    tp, fp, _ = _curve(s, y)
    return _auroc(tp, fp, n_pos, n_neg)


def best_dice(scores: Any, labels: Any, brain: Any = None,
              n_thresholds: int | None = None) -> tuple[float, float]:
    """Highest Dice over thresholds and the threshold reaching it.

    ``n_thresholds=None`` searches every distinct score exactly (Dice = 2TP / (TP + FP + P));
    an integer sweeps ``linspace(min, max, n_thresholds)`` like the reference code.

    Returns
    -------
    (dice, threshold) : tuple of float
    """
    s, y = _prepare(scores, labels, brain)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise InputError("labels contain no positive: Dice is undefined")
    if n_thresholds is None:
        tp, fp, thr = _curve(s, y)
        dice = 2 * tp / (tp + fp + n_pos)
        k = int(np.argmax(dice))
        return float(dice[k]), float(thr[k])
    best = (-1.0, float(s.min()))
    for t in np.linspace(s.min(), s.max(), n_thresholds):
        d, _ = _dice_iou(s >= t, y)
        if d > best[0]:
            best = (d, float(t))
    return best


def dice_curve(scores: Any, labels: Any, thresholds: Any = None,
               brain: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Pooled Dice of ``score ≥ t`` for many thresholds t, from one sort and cumulative sums.

    Parameters
    ----------
    scores, labels : array-like
        Same shape; labels binary, with at least one positive.
    thresholds : array-like, optional
        (T,) thresholds in any order; default every distinct score, descending.
    brain : array-like, optional
        Boolean mask of the pixels that count.

    Returns
    -------
    (thresholds, dice) : tuple of np.ndarray
        (T,) float64 each; ``dice[k]`` equals ``dice_iou_at_threshold(scores, labels, thresholds[k])[0]``
        (0 where no pixel reaches the threshold).
    """
    s, y = _prepare(scores, labels, brain)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise InputError("labels contain no positive: Dice is undefined")
    tp, fp, thr = _curve(s, y)
    dice = 2 * tp / (tp + fp + n_pos)
    if thresholds is None:
        return thr.astype(np.float64), dice.astype(np.float64)
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    # compared in the scores' precision, as ``scores >= threshold`` compares a Python float
    index = np.searchsorted(-thr, -t.astype(s.dtype), side="right") - 1  # last distinct score ≥ t
    return t, np.where(index >= 0, dice[np.maximum(index, 0)], 0.0)


def _dice_iou(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    dice = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    iou = tp / (tp + fp + fn) if (tp + fp + fn) else 1.0
    return dice, iou


def dice_iou_at_threshold(scores: Any, labels: Any, threshold: float,
                          brain: Any = None) -> tuple[float, float]:
    """Dice and IoU of ``scores ≥ threshold`` against the labels."""
    s, y = _prepare(scores, labels, brain)
    return _dice_iou(s >= threshold, y)


def threshold_at_fpr(scores: Any, labels: Any, fpr: float = 0.05, brain: Any = None) -> float:
    """Lowest threshold whose pixel false-positive rate (``score ≥ t`` on negatives) is ≤ ``fpr``."""
    _check_fpr(fpr)
    s, y = _prepare(scores, labels, brain)
    neg = s[~y]
    if neg.size == 0:
        raise InputError("labels contain no negative: FPR is undefined")
    tp, fp, thr = _curve(s, y)
    ok = np.flatnonzero(fp <= fpr * neg.size)
    if ok.size == 0:  # even the highest score gives too many false positives
        return float(np.nextafter(thr[0], np.inf))
    return float(thr[ok[-1]])


def dice_at_fpr(scores: Any, labels: Any, fpr: float = 0.05,
                brain: Any = None) -> tuple[float, float, float]:
    """Dice and IoU at the threshold giving pixel FPR ≤ ``fpr``; returns (dice, iou, threshold)."""
    t = threshold_at_fpr(scores, labels, fpr, brain)
    d, i = dice_iou_at_threshold(scores, labels, t, brain)
    return d, i, t


def sample_labels(masks: Any) -> np.ndarray:
    """(N,) bool: a slice (N, [1,] H, W) is positive if any pixel of its mask is."""
    m = _as_np(masks)
    return m.reshape(len(m), -1).any(axis=1)


def sample_auroc(scores: Any, masks: Any) -> float:
    """AUROC of image scores (N,) against slice labels from masks (N, [1,] H, W)."""
    return roc_auc(_as_np(scores).ravel(), sample_labels(masks))


def sample_ap(scores: Any, masks: Any) -> float:
    """Average precision of image scores (N,) against slice labels from masks."""
    return average_precision(_as_np(scores).ravel(), sample_labels(masks))


def per_volume(metric_fn: Callable[..., float], scores: Any, labels: Any, groups: Any,
               brain: Any = None) -> float:
    """Mean of ``metric_fn(scores, labels)`` over groups (volumes) that have a positive pixel.

    ``groups`` has the shape of ``scores`` and names the volume of every pixel.
    """
    s, y, g = _as_np(scores), _as_np(labels), _as_np(groups)
    if g.shape != s.shape:
        raise InputError(f"groups shape {g.shape} does not match scores shape {s.shape}")
    if brain is not None:
        b = _as_np(brain) > 0
        s, y, g = s[b], y[b], g[b]
    s, y, g = s.ravel(), y.ravel(), g.ravel()
    _, code = np.unique(g, return_inverse=True)  # integer group codes: one pass, not one per group
    order = np.argsort(code.ravel(), kind="stable")
    bounds = np.flatnonzero(np.diff(code.ravel()[order])) + 1
    values = [metric_fn(s[idx], y[idx]) for idx in np.split(order, bounds) if y[idx].any()]
    if not values:
        raise InputError("no volume contains a positive pixel")
    return float(np.mean(values))


def curve_metrics(scores: Any, labels: Any, brain: Any = None, fpr: float = 0.05,
                  threshold: float | None = None) -> dict[str, float]:
    """Every pixel metric from one sort: the values of :func:`average_precision`, :func:`roc_auc`,
    :func:`best_dice`, :func:`dice_at_fpr` and (given ``threshold``) :func:`dice_iou_at_threshold`.

    Returns
    -------
    dict
        ``pixel_ap``, ``pixel_auroc``, ``best_dice``, ``best_dice_threshold``, ``dice_at_{k}fpr``,
        ``iou_at_{k}fpr``, ``threshold_at_{k}fpr`` (k = round(100 fpr)) and, with a threshold,
        ``dice_at_threshold``, ``iou_at_threshold``.
    """
    _check_fpr(fpr)
    s, y = _prepare(scores, labels, brain)
    order = _sort(s)
    return _metrics_from_sorted(s[order], y[order], fpr, threshold)


def subset_curve_metrics(
    scores: Any, labels: Any, subsets: Mapping[str, tuple[Any, Any]], fpr: float = 0.05,
    thresholds: Mapping[str, float | None] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`curve_metrics` of several pixel subsets of the same maps, all from **one** sort.

    Filtering pixels sorted by score keeps them sorted, so an evaluation's overall, unmasked and
    per-anomaly-type metrics cost one sort instead of one per subset. When every subset has a pixel
    mask, only the pixels inside some mask are sorted (e.g. brain pixels only).

    Parameters
    ----------
    scores, labels : array-like
        (N, ...) maps and lesion masks of the same shape, e.g. (N, 1, H, W).
    subsets : mapping
        Name → ``(rows, pixels)``: ``rows`` an (N,) boolean vector selecting slices (None: all),
        ``pixels`` a boolean array of the shape of ``scores`` selecting pixels, e.g. the brain
        (None: all). A subset holds the selected pixels of the selected slices.
    fpr : float
        FPR of the fixed-FPR Dice.
    thresholds : mapping, optional
        Name → threshold for ``dice_at_threshold`` (subsets not named get no threshold entries).

    Returns
    -------
    dict
        Name → the dict of :func:`curve_metrics`.
    """
    _check_fpr(fpr)
    s, y = _prepare(scores, labels)
    shape = _as_np(scores).shape
    masks: dict[int, np.ndarray] = {}  # each distinct pixel mask, flattened, checked once
    for name, (_, pixels) in subsets.items():
        if pixels is not None and id(pixels) not in masks:
            p = _as_np(pixels)
            if p.shape != shape:
                raise InputError(f"subset {name!r}: pixel mask shape {p.shape} does not match {shape}")
            masks[id(pixels)] = (p > 0).ravel()
    index = None  # when every subset has a pixel mask, only pixels of some mask are sorted
    if subsets and all(pixels is not None for _, pixels in subsets.values()):
        index = np.flatnonzero(np.logical_or.reduce(list(masks.values())))
        s, y = s[index], y[index]
    order = _sort(s)
    s_sorted, y_sorted = s[order], y[order]
    position = order if index is None else index[order]  # flat position of each sorted pixel
    row_of = position // int(np.prod(shape[1:]))  # slice of each sorted pixel
    masks = {k: m[position] for k, m in masks.items()}
    out, thresholds = {}, thresholds or {}
    for name, (rows, pixels) in subsets.items():
        keep = np.ones(s_sorted.size, dtype=bool) if pixels is None else masks[id(pixels)].copy()
        if rows is not None:
            r = _as_np(rows)
            if r.shape != shape[:1]:
                raise InputError(f"subset {name!r}: rows shape {r.shape} does not match ({shape[0]},)")
            keep &= (r > 0)[row_of]
        if not keep.any():
            raise InputError(f"subset {name!r} selects no pixel")
        try:
            out[name] = _metrics_from_sorted(s_sorted[keep], y_sorted[keep], fpr, thresholds.get(name))
        except ValueError as err:
            raise InputError(f"subset {name!r}: {err}") from None
    return out


def _check_fpr(fpr: float) -> None:
    if not 0 <= fpr <= 1:
        raise InputError(f"fpr must be in [0, 1], got {fpr}")


def _metrics_from_sorted(s: np.ndarray, y: np.ndarray, fpr: float,
                         threshold: float | None) -> dict[str, float]:
    """The dict of :func:`curve_metrics` from scores sorted descending and their labels."""
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InputError("pixel metrics need both anomalous and normal pixels")
    tp, fp, thr = _curve_sorted(s, y)
    dice = 2 * tp / (tp + fp + n_pos)
    k = int(np.argmax(dice))

    def at(index: int) -> tuple[float, float]:  # Dice, IoU of "score ≥ thr[index]" (-1: nothing)
        t_p, f_p = (tp[index], fp[index]) if index >= 0 else (0, 0)
        return float(2 * t_p / (t_p + f_p + n_pos)), float(t_p / (f_p + n_pos))

    ok = np.flatnonzero(fp <= fpr * n_neg)
    d, i = at(int(ok[-1]) if ok.size else -1)
    t = float(thr[ok[-1]]) if ok.size else float(np.nextafter(thr[0], np.inf))
    tag = f"{round(fpr * 100)}fpr"
    out = {"pixel_ap": _ap(tp, fp, n_pos), "pixel_auroc": _auroc(tp, fp, n_pos, n_neg),
           "best_dice": float(dice[k]), "best_dice_threshold": float(thr[k]),
           f"dice_at_{tag}": d, f"iou_at_{tag}": i, f"threshold_at_{tag}": t}
    if threshold is not None:  # thr is descending: the last distinct threshold ≥ the given one
        index = int(np.searchsorted(-thr, -threshold, side="right")) - 1
        out["dice_at_threshold"], out["iou_at_threshold"] = at(index)
    return out


def sample_metrics(image_scores: Any, masks: Any) -> dict[str, float]:
    """``sample_auroc`` and ``sample_ap`` of image scores (N,) against slice labels from masks
    (N, [1,] H, W); NaN when the slices are all positive or all negative. Non-finite scores count
    as 0."""
    labels = sample_labels(masks)
    if labels.all() or not labels.any():
        return {"sample_auroc": float("nan"), "sample_ap": float("nan")}
    scores = _as_np(image_scores).ravel()
    scores = np.where(np.isfinite(scores), scores, 0.0)
    return {"sample_auroc": roc_auc(scores, labels), "sample_ap": average_precision(scores, labels)}


def pixel_and_sample_metrics(
    maps: Any, masks: Any, brains: Any, image_scores: Any, fpr: float = 0.05,
    threshold: float | None = None,
) -> dict[str, float]:
    """All metrics of one evaluation.

    Parameters
    ----------
    maps, masks : array-like
        (N, 1, H, W) anomaly maps and lesion masks.
    brains : array-like or None
        (N, 1, H, W) brain masks restricting the pixel metrics (None: every pixel).
    image_scores : array-like
        (N,) image scores, from the method (``AnomalyOutput.scores``; the shared rule is
        :func:`featureae_lite.core.maps.image_scores`).
    fpr : float
        FPR of the fixed-FPR Dice (key ``dice_at_{round(100 fpr)}fpr``).
    threshold : float, optional
        A threshold chosen elsewhere (validation); adds ``dice_at_threshold``, ``iou_at_threshold``.

    Returns
    -------
    dict
        ``pixel_ap``, ``pixel_auroc``, ``best_dice``, ``best_dice_threshold``, ``dice_at_5fpr``,
        ``iou_at_5fpr``, ``threshold_at_5fpr``, ``sample_auroc``, ``sample_ap`` (NaN when the
        slices are all positive or all negative) and the threshold entries.
    """
    m, y = _as_np(maps), _as_np(masks) > 0
    b = None if brains is None else _as_np(brains) > 0
    out = curve_metrics(m, y, b, fpr, threshold)
    out.update(sample_metrics(image_scores, y))
    return out
