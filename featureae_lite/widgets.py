"""Thin ipywidgets wrappers over the pure plotting functions of :mod:`featureae_lite.viz`.

Every function draws one static figure with its initial settings when widgets cannot be used —
headless runs (papermill, CI, ``featureae-lite notebooks``) set ``FEATUREAE_LITE_STATIC=1`` — and
otherwise returns an ``ipywidgets.interactive`` panel whose controls redraw the figure (Jupyter
shows it when it is the last expression of a cell; else pass it to ``IPython.display.display``).
Sliders redraw when released, not on every step of a drag.

Maps and panels are checked at the boundary: each must be a tensor of shape (N, 1, H, W) aligned
with the slices it is shown on.
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
    """Draw once statically (returns None), or return a panel that wires ``draw`` to the controls.

    In the interactive panel, ``panel.result`` is the figure of the latest redraw.
    """
    import matplotlib.pyplot as plt

    if is_static():
        draw(**initial)
        plt.show()
        return None
    import ipywidgets as w

    def _draw(**kw):
        fig = draw(**kw)
        plt.show()
        return fig

    for control in controls.values():
        if hasattr(control, "continuous_update"):
            control.continuous_update = False
    return w.interactive(_draw, **controls)


def _check_maps(data, maps: Mapping[str, torch.Tensor]) -> None:
    """Raise unless every map is a NaN-free tensor shaped like ``data.images`` (N, 1, H, W)."""
    if not maps:
        raise ValueError("no maps to show: pass at least one name → (N, 1, H, W) tensor")
    want = tuple(data.images.shape)
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor):
            raise TypeError(f"{name!r}: expected a torch.Tensor of shape {want}, got {type(m).__name__}")
        if tuple(m.shape) != want:
            raise ValueError(f"{name!r}: shape {tuple(m.shape)} does not match the slices {want}")
        if torch.isnan(m).any():
            raise ValueError(f"{name!r} contains NaN values")


def _largest_lesion(data) -> int:
    """Index of the slice with the largest lesion area (the default slice of the browsers)."""
    return int(data.masks.flatten(1).sum(1).argmax())


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
    if not names:
        raise ValueError("no volumes to browse")
    first_img, first_mask = volumes[names[0]]
    for name, (img, mask) in volumes.items():
        if np.ndim(img) != 3:
            raise ValueError(f"{name!r}: expected a 3-D volume (X, Y, Z), got shape {np.shape(img)}")
        if mask is not None and np.shape(mask) != np.shape(img):
            raise ValueError(f"{name!r}: mask shape {np.shape(mask)} does not match image {np.shape(img)}")
    if z is None:
        z = int(np.argmax(first_mask.sum((0, 1)))) if first_mask is not None and first_mask.any() \
            else first_img.shape[2] // 2

    def draw(name: str, z: int):
        img, mask = volumes[name]
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
        viz.show_volume_views(axes, img, mask, min(z, img.shape[2] - 1))
        fig.suptitle(name)
        return fig

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

    _check_maps(data, panels)
    if index is None:
        index = _largest_lesion(data)

    def draw(index: int):
        fig, axes = plt.subplots(1, 1 + len(panels), figsize=(2.6 * (1 + len(panels)), 2.9))
        viz.plot_panels(axes, data, index, panels)
        return fig

    return _run(draw, {"index": w.IntSlider(value=index, min=0, max=len(data) - 1)}, {"index": index})


def method_picker(data, maps: Mapping[str, torch.Tensor], index: int | None = None):
    """Pick a method and a slice: image with outline, the method's map and its 95th-percentile mask."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    _check_maps(data, maps)
    names = list(maps)
    if index is None:
        index = _largest_lesion(data)

    def draw(method: str, index: int):
        fig, axes = plt.subplots(1, 3, figsize=(8, 2.9))
        m = maps[method]
        viz.plot_panels(axes[:2], data, index, {method: m})
        inside = data.brains > 0
        thr = float(torch.quantile(m[inside][:: max(1, int(inside.sum()) // 200_000)], 0.95))
        viz.show_binary(axes[2], m[index], thr, data.masks[index], "top 5 % of in-brain values")
        return fig

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

    if images.ndim != 4 or features.ndim != 4 or len(images) != len(features):
        raise ValueError(f"expected images (N, 1, H, W) and features (N, C, h, w) with the same N, got "
                         f"{tuple(images.shape)} and {tuple(features.shape)}")

    def draw(index: int, channel: int):
        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        viz.show_image(axes[0], images[index], "input")
        viz.show_image(axes[1], features[index, channel], f"channel {channel}", vmin=None, vmax=None,
                       cmap="viridis")
        return fig

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

    _check_maps(data, {"maps": maps})
    inside = data.brains > 0
    scores, labels = maps[inside].numpy(), data.masks[inside].numpy() > 0
    lo, hi = float(np.min(scores)), float(np.max(scores))
    if threshold is None:
        threshold = float(np.quantile(scores, 0.95))
    if index is None:
        index = _largest_lesion(data)

    def draw(threshold: float, index: int):
        dice, iou = dice_iou_at_threshold(scores, labels, threshold)
        fig, axes = plt.subplots(1, 3, figsize=(9, 3))
        viz.show_map(axes[0], maps[index], "anomaly map", mask=data.masks[index])
        viz.show_binary(axes[1], maps[index], threshold, data.masks[index], f"map ≥ {threshold:.3f}")
        viz.plot_score_histogram(axes[2], scores, labels, threshold)
        fig.suptitle(f"pooled in-brain Dice {dice:.3f}, IoU {iou:.3f}")
        fig.tight_layout()
        return fig

    return _run(draw, {"threshold": w.FloatSlider(value=threshold, min=lo, max=hi, step=(hi - lo) / 200,
                                                  readout_format=".3f"),
                       "index": w.IntSlider(value=index, min=0, max=len(data) - 1)},
                {"threshold": threshold, "index": index})
