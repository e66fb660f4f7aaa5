"""Metrics equal scikit-learn, best Dice equals brute force, FPR thresholds are tight, errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from featureae_lite.core import metrics as M


@pytest.mark.parametrize("ties", [False, True])
def test_ap_and_auroc_equal_sklearn(ties):
    rng = np.random.default_rng(0)
    s = rng.random(20000)
    y = rng.random(20000) < 0.05 + 0.3 * s
    if ties:
        s = np.round(s, 2)
    assert M.average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-6)
    assert M.roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    s32 = torch.tensor(s, dtype=torch.float32)
    assert M.average_precision(s32, torch.tensor(y)) == pytest.approx(
        average_precision_score(y, s32.numpy()), abs=1e-6)


def test_brain_mask_restricts_pixels():
    rng = np.random.default_rng(1)
    s, y, b = rng.random((4, 16, 16)), rng.random((4, 16, 16)) < 0.2, rng.random((4, 16, 16)) < 0.6
    assert M.average_precision(s, y, b) == pytest.approx(average_precision_score(y[b], s[b]), abs=1e-6)
    assert M.roc_auc(s, y, b) == pytest.approx(roc_auc_score(y[b], s[b]), abs=1e-6)


def test_best_dice_equals_brute_force():
    rng = np.random.default_rng(2)
    s, y = np.round(rng.random(400), 2), rng.random(400) < 0.3
    brute = max((2 * np.sum((s >= t) & y) / (np.sum(s >= t) + y.sum()), t) for t in np.unique(s))
    dice, thr = M.best_dice(s, y)
    assert dice == pytest.approx(brute[0]) and thr == pytest.approx(brute[1])
    coarse, _ = M.best_dice(s, y, n_thresholds=100)
    assert coarse <= dice + 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dice_curve_equals_the_dice_at_each_threshold(dtype):
    rng = np.random.default_rng(3)
    s = np.round(rng.random(3000), 2).astype(dtype)  # ties
    y = rng.random(3000) < 0.1 + 0.5 * s
    grid = np.r_[np.linspace(-0.1, 1.1, 57), s[:20], np.nextafter(s[:5], 2)]  # outside, on, just past scores
    t, dice = M.dice_curve(s, y, grid)
    np.testing.assert_array_equal(t, grid)
    want = [M.dice_iou_at_threshold(s, y, float(v))[0] for v in grid]
    np.testing.assert_allclose(dice, want, rtol=1e-12, atol=0)
    thr, every = M.dice_curve(s, y)  # every distinct score, descending: its maximum is best_dice
    assert np.all(np.diff(thr) < 0) and len(thr) == len(np.unique(s))
    assert (every.max(), thr[every.argmax()]) == pytest.approx(M.best_dice(s, y))
    with pytest.raises(ValueError, match="no positive"):
        M.dice_curve(s, np.zeros_like(y))


def test_threshold_at_fpr_is_tight():
    rng = np.random.default_rng(3)
    s, y = rng.random(5000), rng.random(5000) < 0.1
    t = M.threshold_at_fpr(s, y, 0.05)
    fpr = np.mean(s[~y] >= t)
    assert fpr <= 0.05
    below = np.max(s[s < t])  # the next lower threshold exceeds the FPR
    assert np.mean(s[~y] >= below) > 0.05
    d, i, t2 = M.dice_at_fpr(s, y, 0.05)
    assert t2 == t and (d, i) == M.dice_iou_at_threshold(s, y, t)


def test_perfect_scores():
    y = np.zeros((3, 8, 8), bool)
    y[0, 2:4, 2:4] = True
    s = y.astype(float)
    assert M.average_precision(s, y) == 1 and M.roc_auc(s, y) == 1
    assert M.best_dice(s, y)[0] == 1


def test_sample_level_and_summary():
    rng = np.random.default_rng(4)
    masks = np.zeros((6, 1, 8, 8))
    masks[:3, 0, 2:5, 2:5] = 1
    maps = rng.random((6, 1, 8, 8)) + masks
    labels = M.sample_labels(masks)
    assert labels.tolist() == [True] * 3 + [False] * 3
    scores = maps.reshape(6, -1).max(1)
    out = M.pixel_and_sample_metrics(maps, masks, np.ones_like(masks), scores, threshold=1.0)
    assert set(out) >= {"pixel_ap", "pixel_auroc", "best_dice", "dice_at_5fpr", "iou_at_5fpr", "sample_auroc",
                        "sample_ap", "dice_at_threshold"}
    assert out["sample_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    only_pos = M.pixel_and_sample_metrics(maps[:3], masks[:3], None, scores[:3])
    assert np.isnan(only_pos["sample_auroc"])


def test_per_volume_mean():
    s = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.7])
    y = np.array([1, 0, 0, 1, 0, 0], bool)
    g = np.array(["a", "a", "b", "b", "c", "c"])
    expected = np.mean([average_precision_score(y[:2], s[:2]), average_precision_score(y[2:4], s[2:4])])
    assert M.per_volume(M.average_precision, s, y, g) == pytest.approx(expected)
    # interleaved groups and a brain mask give the same as selecting each group directly
    rng = np.random.default_rng(3)
    s, y = rng.random((4, 1, 6, 6)), rng.random((4, 1, 6, 6)) < 0.3
    g, b = rng.choice(["p", "q", "r"], size=s.shape), rng.random(s.shape) < 0.8
    want = [average_precision_score(y[b & (g == k)], s[b & (g == k)]) for k in "pqr"]
    assert M.per_volume(M.average_precision, s, y, g, b) == pytest.approx(np.mean(want))


def test_errors():
    s, y = np.random.default_rng(0).random(10), np.zeros(10)
    with pytest.raises(ValueError, match="no positive"):
        M.average_precision(s, y)
    with pytest.raises(ValueError, match="both positive and negative"):
        M.roc_auc(s, np.ones(10))
    with pytest.raises(ValueError, match=r"scores shape \(10,\) does not match labels shape \(9,\)"):
        M.average_precision(s, y[:9])
    bad = s.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.roc_auc(bad, np.r_[1, np.zeros(9)])
    with pytest.raises(ValueError, match="binary"):
        M.average_precision(s, np.full(10, 2))
    with pytest.raises(ValueError, match="brain mask is empty"):
        M.average_precision(s, np.r_[1, np.zeros(9)], np.zeros(10))


def test_curve_metrics_equal_the_single_metric_functions():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(50, 2000))
        s = np.round(rng.random(n), int(rng.integers(1, 4)))  # many ties
        y = rng.random(n) < rng.uniform(0.05, 0.5)
        b = rng.random(n) < 0.8
        if y[b].all() or not y[b].any():
            continue
        thr = float(rng.random())
        got = M.curve_metrics(s, y, b, 0.05, thr)
        best, best_t = M.best_dice(s, y, b)
        d5, i5, t5 = M.dice_at_fpr(s, y, 0.05, b)
        dt, it = M.dice_iou_at_threshold(s, y, thr, b)
        want = {"pixel_ap": M.average_precision(s, y, b), "pixel_auroc": M.roc_auc(s, y, b),
                "best_dice": best, "best_dice_threshold": best_t, "dice_at_5fpr": d5, "iou_at_5fpr": i5,
                "threshold_at_5fpr": t5, "dice_at_threshold": dt, "iou_at_threshold": it}
        assert got == pytest.approx(want, abs=1e-12)


def test_subset_curve_metrics_equal_curve_metrics_of_each_subset():
    rng = np.random.default_rng(7)
    s = np.round(rng.random((6, 1, 8, 8)), 2)  # ties
    y = rng.random(s.shape) < 0.2
    brain = rng.random(s.shape) < 0.7
    rows = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    subsets = {"all": (None, None), "brain": (None, brain), "rows": (rows, brain)}
    got = M.subset_curve_metrics(s, y, subsets, thresholds={"rows": 0.5})
    for name, keep in (("all", None), ("brain", brain), ("rows", brain & rows[:, None, None, None])):
        thr = 0.5 if name == "rows" else None
        assert got[name] == pytest.approx(M.curve_metrics(s, y, keep, 0.05, thr), abs=1e-12)
    assert "dice_at_threshold" not in got["all"]
    with pytest.raises(ValueError, match="subset 'none' selects no pixel"):
        M.subset_curve_metrics(s, y, {"none": (np.zeros(6, dtype=bool), None)})
    with pytest.raises(ValueError, match="subset 'neg'.*both anomalous and normal"):
        M.subset_curve_metrics(s, y, {"neg": (None, ~y)})
    with pytest.raises(ValueError, match="rows shape"):
        M.subset_curve_metrics(s, y, {"bad": (np.ones(5, dtype=bool), None)})
