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
