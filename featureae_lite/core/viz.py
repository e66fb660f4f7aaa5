"""Pure plotting functions. Each takes an ``ax`` (or returns a new figure) and draws; no state.

matplotlib is imported lazily so the core package imports fast and headless.
Images are shown in display orientation (anterior up) as produced by the preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from featureae_lite.core.fileio import atomic_path


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    return x


def show_image(ax, image, title: str | None = None, *, vmin: float | None = 0.0,
               vmax: float | None = 1.0, cmap: str = "gray", percentile: float | None = None) -> None:
    """Draw a grey slice (H, W); ``percentile`` windows to [p, 100 − p] percentiles instead."""
    img = _np(image)
    if percentile is not None:
        vmin, vmax = np.percentile(img, [percentile, 100 - percentile])
    ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def outline(ax, mask, color: str = "tab:red", linewidth: float = 1.0) -> None:
    """Draw the contour of a binary mask (H, W) on ``ax`` (nothing for an empty mask)."""
    m = _np(mask) > 0.5
    if m.any():
        ax.contour(m.astype(float), levels=[0.5], colors=color, linewidths=linewidth)


def show_map(ax, amap, title: str | None = None, *, mask=None, vmin: float | None = None,
             vmax: float | None = None, cmap: str = "inferno") -> Any:
    """Draw an anomaly map (H, W) with an optional ground-truth outline; returns the image artist.

    By default the colours span the [1, 99.9] percentiles of the map's non-zero values (maps are
    zero outside the brain), so a map whose in-brain values all sit in a narrow band, such as
    FAE's 1 − SSIM around 0.8, still shows where it is highest. Pass ``vmin``/``vmax`` to share one
    window between maps whose magnitudes should be compared.
    """
    m = _np(amap)
    values = m[m != 0] if np.any(m != 0) else m.ravel()
    lo, hi = (float(v) for v in np.percentile(values, [1, 99.9]))
    im = ax.imshow(m, cmap=cmap, vmin=lo if vmin is None else vmin, vmax=hi if vmax is None else vmax)
    if mask is not None:
        outline(ax, mask, color="cyan")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return im


def show_binary(ax, amap, threshold: float, mask=None, title: str | None = None) -> None:
    """Draw the map binarised as ``map ≥ threshold`` (white, as the metrics count it) with the
    ground-truth outline (red)."""
    ax.imshow(_np(amap) >= threshold, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if mask is not None:
        outline(ax, mask)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def pick_examples(data, per_type: int = 1) -> list[int]:
    """Indices of the slices with the largest lesion area for each anomaly type."""
    area = data.masks.flatten(1).sum(1).numpy()
    types = np.asarray(data.anomaly_types)
    picks: list[int] = []
    for t in sorted(set(types) - {"healthy"}):
        idx = np.flatnonzero(types == t)
        picks += idx[np.argsort(-area[idx], kind="stable")[:per_type]].tolist()
    return picks


def gallery_figure(maps: Mapping[str, Any], data, indices: Sequence[int] | None = None):
    """Rows = example slices, columns = image with outline + one map per method.

    Parameters
    ----------
    maps : mapping
        method name → maps (N, 1, H, W) for every slice of ``data``.
    data : SliceData
        The slices the maps belong to.
    indices : sequence of int, optional
        Which slices to show; default one per anomaly type (largest lesion).
    """
    import matplotlib.pyplot as plt

    indices = list(indices) if indices is not None else pick_examples(data)
    n_cols = 1 + len(maps)
    fig, axes = plt.subplots(len(indices), n_cols, figsize=(1.9 * n_cols, 1.9 * len(indices)),
                             squeeze=False)
    for r, i in enumerate(indices):
        show_image(axes[r, 0], data.images[i], f"{data.anomaly_types[i]} (z={data.slice_indices[i]})")
        outline(axes[r, 0], data.masks[i])
        for c, (name, m) in enumerate(maps.items(), start=1):
            show_map(axes[r, c], m[i], name if r == 0 else None, mask=data.masks[i])
    fig.tight_layout()
    return fig


def save_gallery(detectors: Mapping[str, Any], data, path: str | os.PathLike) -> None:
    """Predict with each detector on the example slices of ``data`` and save the gallery PNG."""
    import matplotlib.pyplot as plt

    idx = pick_examples(data)
    sub = data.subset(idx)
    maps = {n: d.predict(sub.images, sub.brains).maps for n, d in detectors.items()}
    fig = gallery_figure(maps, sub, list(range(len(idx))))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_per_type(ax, results: Mapping[str, Any], metric: str = "pixel_ap") -> None:
    """Seaborn bar chart of ``metric`` per anomaly type and method from benchmark results."""
    import pandas as pd
    import seaborn as sns

    rows = [{"method": m, "type": t, metric: r[metric]}
            for m, res in results.items() for t, r in res.get("per_type", {}).items()]
    sns.barplot(data=pd.DataFrame(rows), x="type", y=metric, hue="method", ax=ax)
    ax.set_xlabel("anomaly type")
    ax.legend(fontsize=7, ncol=2)


def plot_training_curve(ax, history: Mapping[str, Any], title: str | None = None) -> None:
    """Training loss (and validation loss, if any) against the step."""
    ax.plot(np.arange(1, len(history["train_loss"]) + 1), history["train_loss"], lw=0.8,
            label="train")
    if history.get("val_loss"):
        ax.plot(history["val_step"], history["val_loss"], "o-", label="val (healthy)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    if title:
        ax.set_title(title)


def show_volume_views(axes, image: np.ndarray, mask: np.ndarray | None, z: int,
                      percentile: float = 0.5) -> None:
    """Axial (slice z), coronal and sagittal views through a 3-D volume (X, Y, Z).

    Views are rotated so anterior / superior is up; the lesion outline is drawn in red. Intensities
    are windowed to the [p, 100 − p] percentiles of the brain (torchio-style).
    """
    img = np.asarray(image, dtype=np.float32)
    inside = img[img > 0]
    vmin, vmax = (np.percentile(inside, [percentile, 100 - percentile]) if inside.size else (0, 1))
    m = None if mask is None else np.asarray(mask) > 0
    if m is not None and m.any():
        cx, cy, _ = (int(v) for v in np.argwhere(m).mean(0))
    else:
        cx, cy = img.shape[0] // 2, img.shape[1] // 2
    views = [("axial", img[:, :, z], None if m is None else m[:, :, z]),
             ("coronal", img[:, cy, :], None if m is None else m[:, cy, :]),
             ("sagittal", img[cx, :, :], None if m is None else m[cx, :, :])]
    for ax, (title, sl, ms) in zip(axes, views, strict=False):
        show_image(ax, np.rot90(sl), f"{title}", vmin=vmin, vmax=vmax)
        if ms is not None:
            outline(ax, np.rot90(ms))


def plot_panels(axes, data, index: int, panels: Mapping[str, Any]) -> None:
    """Image with ground-truth outline, then one panel per entry of ``panels`` for slice ``index``.

    Panels whose title contains "recon" are drawn as grey images, the others as anomaly maps.
    """
    show_image(axes[0], data.images[index],
               f"{data.anomaly_types[index]} {data.subject_ids[index]} z={data.slice_indices[index]}")
    outline(axes[0], data.masks[index])
    for ax, (title, tensor) in zip(axes[1:], panels.items(), strict=False):
        if "recon" in title.lower():
            show_image(ax, tensor[index], title)
        else:
            show_map(ax, tensor[index], title, mask=data.masks[index])


def plot_score_histogram(ax, scores: np.ndarray, labels: np.ndarray, threshold: float | None = None,
                         bins: int = 60) -> None:
    """Histograms of map values on normal and anomalous pixels (log counts), with a threshold line."""
    edges = np.linspace(float(np.min(scores)), float(np.max(scores)) + 1e-12, bins + 1)
    ax.hist(scores[~labels], bins=edges, alpha=0.6, label="normal pixels", log=True)
    ax.hist(scores[labels], bins=edges, alpha=0.6, label="anomalous pixels", log=True)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel("map value")
    ax.legend(fontsize=7)
