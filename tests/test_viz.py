"""Pure plotting functions: colour windows and thresholds drawn as the metrics count them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from featureae_lite.core import viz


def test_show_map_windows_to_in_brain_values():
    amap = torch.zeros(32, 32)
    amap[4:28, 4:28] = 0.8 + 0.1 * torch.linspace(0, 1, 24 * 24).reshape(24, 24)  # FAE-like narrow band
    fig, axes = plt.subplots(1, 3)
    lo, hi = viz.show_map(axes[0], amap).get_clim()
    assert 0.8 < lo < 0.805 and 0.899 < hi <= 0.9  # the band, not [0, max]: background is ignored
    assert viz.show_map(axes[1], amap, vmin=0.0, vmax=2.0).get_clim() == (0.0, 2.0)
    viz.show_map(axes[2], torch.zeros(8, 8))  # an all-zero map draws without error
    plt.close(fig)


def test_show_binary_counts_ties_like_the_metrics():
    fig, ax = plt.subplots()
    amap = np.array([[0.2, 0.5], [0.5, 0.9]])
    viz.show_binary(ax, amap, 0.5)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), amap >= 0.5)
    plt.close(fig)


def test_dice_curve_axis_spans_marks_outside_the_scores():
    fig, ax = plt.subplots()
    t = np.linspace(0.2, 0.8, 7)
    viz.plot_dice_curve(ax, t, np.linspace(0.1, 0.4, 7), {"val": (1.2, 0.0)}, threshold=0.5, current=0.25)
    lo, hi = ax.get_xlim()
    assert lo < 0.2 and hi > 1.2  # a val threshold above every test score stays visible
    assert [ln.get_label() for ln in ax.get_lines()][1:] == ["val: t = 1.200, Dice 0.000",
                                                             "slider: t = 0.500, Dice 0.250"]
    plt.close(fig)


def test_lesion_readings_only_where_there_is_a_lesion():
    img = torch.rand(16, 16)
    fig = viz.superpixel_figure(img, img, torch.zeros(16, 16), 50, 0.1, regions=40)
    assert fig._suptitle.get_text() == "SLIC: 50 segments asked → 40 superpixels, compactness 0.1"
    plt.close(fig)
    fig = viz.ssim_window_figure(img, img, img, img, 5, 0.68, 0.01, 0.03, ssim_means=(0.5, 0.25),
                                 l1_means=(float("nan"), 0.1))
    assert fig._suptitle.get_text().splitlines() == ["window 5 (σ 0.68), K1 0.01, K2 0.03",
                                                     "1 − SSIM: lesion 0.500 vs normal brain 0.250 (×2.0)"]
    plt.close(fig)


def test_plot_pr_roc_draws_the_curves_the_metrics_integrate():
    from featureae_lite.core import metrics

    g = torch.Generator().manual_seed(0)
    labels = torch.rand(3, 1, 16, 16, generator=g) < 0.1
    scores = torch.rand(3, 1, 16, 16, generator=g) + 0.5 * labels
    scores = torch.round(scores * 20) / 20  # ties: one threshold each, as the metrics count them
    brain = torch.zeros_like(scores)
    brain[..., 2:14, 2:14] = 1
    fig, axes = plt.subplots(1, 2)
    got = viz.plot_pr_roc(axes, scores, labels, brain, label="toy", max_points=5)
    assert got["ap"] == metrics.average_precision(scores, labels, brain)
    assert got["auroc"] == metrics.roc_auc(scores, labels, brain)
    inside = brain > 0
    assert got["chance"] == int(labels[inside].sum()) / int(inside.sum())
    (pr_curve, chance_line), (roc_curve, _diagonal) = axes[0].lines, axes[1].lines
    assert len(pr_curve.get_xdata()) <= 6 and len(roc_curve.get_xdata()) <= 6  # max_points, plus the origin
    assert roc_curve.get_xdata()[-1] == 1.0 and roc_curve.get_ydata()[-1] == 1.0  # the last threshold
    assert chance_line.get_ydata()[0] == got["chance"]
    assert "AP" in axes[0].get_legend().get_texts()[0].get_text()
    plt.close(fig)


def test_budget_figure_maps_restorations_and_the_ap_curve():
    image, mask = torch.rand(1, 16, 16), torch.zeros(1, 16, 16)
    mask[0, 4:8, 4:8] = 1
    maps = {s: torch.rand(1, 16, 16) for s in (1, 4)}
    fig = viz.budget_figure(image, mask, maps, {1: 0.1, 4: 0.3}, [1, 2, 4, 8], {"l1": 0.2},
                            restorations={4: torch.rand(1, 16, 16)}, chosen=4, title="t")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["slice", "map after 1 step", "map after 4 steps", "restoration after 4 steps"]
    curve = fig.axes[-1]
    ys = [list(line.get_ydata()) for line in curve.lines]
    assert ys[0] == [0.1, 0.3] and ys[1] == [0.2, 0.2] and ys[2] == [0.3]  # points, l1 line, chosen ring
    assert [t.get_text() for t in curve.get_xticklabels()] == ["1", "2", "4", "8"]  # measured or not
    plt.close(fig)
