"""Subject-level bootstrap intervals: the histogram shortcut equals a direct resampling loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from featureae_lite.core import metrics
from featureae_lite.core.uncertainty import bootstrap_ci, metrics_from_counts, subject_histograms


def _maps(n_subjects=6, slices=3, side=8, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_subjects * slices, 1, side, side))
    for i in range(0, n_subjects * slices, 2):
        masks[i, 0, 2:5, 2:5] = 1
    maps = rng.random(masks.shape) + 0.8 * masks * rng.random(masks.shape)
    brains = np.ones_like(masks)
    brains[:, :, 0] = 0
    subjects = [f"s{i // slices}" for i in range(n_subjects * slices)]
    return maps, masks, brains, subjects


def test_metrics_from_counts_equal_sklearn_on_the_binned_scores():
    maps, masks, brains, subjects = _maps()
    hist = subject_histograms(maps, masks, brains, subjects, bins=16)
    got = metrics_from_counts(hist.positives.sum(0), hist.negatives.sum(0))
    inside = brains > 0
    edges = np.unique(np.quantile(maps[inside], np.linspace(0, 1, 17)[1:-1]))
    binned, y = np.searchsorted(edges, maps[inside], side="right"), masks[inside] > 0
    assert got["pixel_ap"] == pytest.approx(average_precision_score(y, binned), abs=1e-12)
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(y, binned), abs=1e-12)
    assert got["best_dice"] == pytest.approx(metrics.best_dice(binned, y)[0], abs=1e-12)
    fine_hist = subject_histograms(maps, masks, brains, subjects, bins=2048)
    fine = metrics_from_counts(fine_hist.positives.sum(0), fine_hist.negatives.sum(0))
    assert fine["pixel_ap"] == pytest.approx(metrics.average_precision(maps, masks, brains), abs=0.01)


def test_bootstrap_interval_equals_a_direct_subject_resampling_loop():
    maps, masks, brains, subjects = _maps()
    hist = subject_histograms(maps, masks, brains, subjects, bins=16)
    ci = bootstrap_ci(hist, n_boot=60, seed=3)
    inside = brains > 0
    edges = np.unique(np.quantile(maps[inside], np.linspace(0, 1, 17)[1:-1]))
    by_subject = {s: [i for i, t in enumerate(subjects) if t == s] for s in hist.subjects}
    draws = np.random.default_rng(3).integers(0, len(hist.subjects), size=(60, len(hist.subjects)))
    aps = []
    for draw in draws:  # the slow, obvious way: pool the pixels of the drawn subjects
        rows = [i for d in draw for i in by_subject[hist.subjects[d]]]
        scores = np.searchsorted(edges, maps[rows][inside[rows]], side="right")
        aps.append(average_precision_score(masks[rows][inside[rows]] > 0, scores))
    assert ci["pixel_ap"] == pytest.approx([np.quantile(aps, 0.025), np.quantile(aps, 0.975)], abs=1e-12)
    assert ci["pixel_ap"][0] < metrics_from_counts(hist.positives.sum(0), hist.negatives.sum(0))["pixel_ap"]
    one = bootstrap_ci(hist.rows({"s0"}), n_boot=20)
    assert all(np.isnan(v).all() for v in one.values())  # one subject: no interval
    with pytest.raises(ValueError, match="3 subject ids for 18 slices"):
        subject_histograms(maps, masks, brains, subjects[:3])
