"""Thin ipywidgets wrappers over the pure plotting functions of :mod:`featureae_lite.viz`.

Every function draws one static figure with its initial settings when widgets cannot be used —
headless runs (papermill, CI, ``featureae-lite notebooks``) set ``FEATUREAE_LITE_STATIC=1`` — and
otherwise returns an ``ipywidgets.interact`` panel whose sliders redraw the figure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from featureae_lite import viz

STATIC_ENV = "FEATUREAE_LITE_STATIC"


def is_static() -> bool:
    """True when figures must be static (headless execution)."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0", "false", "False")


def _run(draw: Callable[..., Any], controls: Mapping[str, Any], initial: Mapping[str, Any]):
    """Draw once statically, or wire ``draw`` to ipywidgets controls."""
    import matplotlib.pyplot as plt

    if is_static():
        draw(**initial)
        plt.show()
        return None
    import ipywidgets as w

    def _draw(**kw):
        draw(**kw)
        plt.show()

    return w.interact(_draw, **controls)


def volume_browser(volumes: Mapping[str, tuple[np.ndarray, np.ndarray | None]], z: int | None = None):
    """Browse 3-D volumes: pick a volume by name and an axial slice; lesion outline in red.

    Parameters
    ----------
    volumes : mapping
        name → (image (X, Y, Z), lesion mask (X, Y, Z) or None), e.g. ``"sub-003 t2"``.
    z : int, optional
        Initial axial slice (default: the slice with the largest lesion area, else the middle).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    names = list(volumes)
    first_img, first_mask = volumes[names[0]]
    if z is None:
        z = int(np.argmax(first_mask.sum((0, 1)))) if first_mask is not None and first_mask.any() \
            else first_img.shape[2] // 2

    def draw(name: str, z: int) -> None:
        img, mask = volumes[name]
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
        viz.show_volume_views(axes, img, mask, z)
        fig.suptitle(name)

    return _run(draw, {"name": w.Dropdown(options=names),
                       "z": w.IntSlider(value=z, min=0, max=first_img.shape[2] - 1)},
                {"name": names[0], "z": z})


def slice_browser(data, panels: Mapping[str, torch.Tensor], index: int | None = None):
    """Scroll slices of a split with any number of aligned panels (reconstruction, maps, …).

    Parameters
    ----------
    data : SliceData
        Slices with masks; the first column shows the image and the ground-truth outline.
    panels : mapping
        title → tensor (N, 1, H, W) aligned with ``data``.
    index : int, optional
        Initial slice (default: the largest lesion).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    if index is None:
        index = int(data.masks.flatten(1).sum(1).argmax())

    def draw(index: int) -> None:
        fig, axes = plt.subplots(1, 1 + len(panels), figsize=(2.6 * (1 + len(panels)), 2.9))
        viz.plot_panels(axes, data, index, panels)

    return _run(draw, {"index": w.IntSlider(value=index, min=0, max=len(data) - 1)}, {"index": index})


def method_picker(data, maps: Mapping[str, torch.Tensor], index: int | None = None):
    """Pick a method and a slice: image with outline, the method's map and its 95th-percentile mask."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    names = list(maps)
    if index is None:
        index = int(data.masks.flatten(1).sum(1).argmax())

    def draw(method: str, index: int) -> None:
        fig, axes = plt.subplots(1, 3, figsize=(8, 2.9))
        m = maps[method]
        viz.plot_panels(axes[:2], data, index, {method: m})
        inside = data.brains > 0
        thr = float(torch.quantile(m[inside][:: max(1, int(inside.sum()) // 200_000)], 0.95))
        viz.show_binary(axes[2], m[index], thr, data.masks[index], "top 5 % of in-brain values")

    return _run(draw, {"method": w.Dropdown(options=names),
                       "index": w.IntSlider(value=index, min=0, max=len(data) - 1)},
                {"method": names[0], "index": index})


def channel_browser(images: torch.Tensor, features: torch.Tensor, index: int = 0):
    """Browse the channels of a feature map next to its input slice.

    Parameters
    ----------
    images : Tensor
        (N, 1, H, W) input slices.
    features : Tensor
        (N, C, h, w) feature maps of those slices.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    def draw(index: int, channel: int) -> None:
        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        viz.show_image(axes[0], images[index], "input")
        viz.show_image(axes[1], features[index, channel], f"channel {channel}", vmin=None, vmax=None,
                       cmap="viridis")

    return _run(draw, {"index": w.IntSlider(value=index, min=0, max=len(images) - 1),
                       "channel": w.IntSlider(value=0, min=0, max=features.shape[1] - 1)},
                {"index": index, "channel": 0})


def threshold_explorer(data, maps: torch.Tensor, threshold: float | None = None,
                       index: int | None = None):
    """Move a threshold: the binarised map of one slice and the pooled Dice update live.

    Parameters
    ----------
    data : SliceData
        Slices with lesion and brain masks.
    maps : Tensor
        (N, 1, H, W) anomaly maps for ``data``.
    threshold : float, optional
        Initial threshold (default: the 95th percentile of in-brain map values).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from featureae_lite.metrics import dice_iou_at_threshold

    inside = data.brains > 0
    scores, labels = maps[inside].numpy(), data.masks[inside].numpy() > 0
    lo, hi = float(np.min(scores)), float(np.max(scores))
    if threshold is None:
        threshold = float(np.quantile(scores, 0.95))
    if index is None:
        index = int(data.masks.flatten(1).sum(1).argmax())

    def draw(threshold: float, index: int) -> None:
        dice, iou = dice_iou_at_threshold(scores, labels, threshold)
        fig, axes = plt.subplots(1, 3, figsize=(9, 3))
        viz.show_map(axes[0], maps[index], "anomaly map", mask=data.masks[index])
        viz.show_binary(axes[1], maps[index], threshold, data.masks[index], f"map > {threshold:.3f}")
        viz.plot_score_histogram(axes[2], scores, labels, threshold)
        fig.suptitle(f"pooled in-brain Dice {dice:.3f}, IoU {iou:.3f}")
        fig.tight_layout()

    return _run(draw, {"threshold": w.FloatSlider(value=threshold, min=lo, max=hi, step=(hi - lo) / 200,
                                                  readout_format=".3f"),
                       "index": w.IntSlider(value=index, min=0, max=len(data) - 1)},
                {"threshold": threshold, "index": index})
