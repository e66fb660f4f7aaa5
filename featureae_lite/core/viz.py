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
    data : Batch
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


# -- the figures of the course widgets (featureae_lite.course.widgets wires controls to them) ----
def by_hand_figure(losses: Sequence[float], before: Any, after: Any, mask: Any = None):
    """The loss of a few training steps taken by hand, and one slice's anomaly map (H, W) before and
    after them, with the lesion outlined (``mask``, H × W)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    axes[0].plot(np.arange(1, len(losses) + 1), losses)
    axes[0].set(xlabel="step", ylabel="loss", title=f"{len(losses)} steps by hand")
    show_map(axes[1], before, "map before training", mask=mask)
    show_map(axes[2], after, f"map after {len(losses)} steps", mask=mask)
    return fig


def volume_figure(image: np.ndarray, mask: np.ndarray | None, z: int, title: str):
    """Axial slice ``z``, coronal and sagittal views of a volume (X, Y, Z) with its lesion outline."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    show_volume_views(axes, image, mask, min(z, image.shape[2] - 1))
    fig.suptitle(title)
    return fig


def panels_figure(data, index: int, panels: Mapping[str, Any]):
    """:func:`plot_panels` of slice ``index`` in a new figure, one column per panel (N, 1, H, W)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(2.6 * (1 + len(panels)), 2.9))
    plot_panels(axes, data, index, panels)
    return fig


def method_figure(data, index: int, method: str, maps: Any, threshold: float):
    """Slice ``index`` with its outline, the method's map (N, 1, H, W) and the map ≥ ``threshold``
    (its 95th in-brain percentile)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(8, 2.9))
    plot_panels(axes[:2], data, index, {method: maps})
    show_binary(axes[2], maps[index], threshold, data.masks[index], "top 5 % of in-brain values")
    return fig


def channel_figure(image: Any, channel_map: Any, channel: int):
    """An input slice (1, H, W) next to one channel (h, w) of its feature map."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    show_image(axes[0], image, "input")
    show_image(axes[1], channel_map, f"channel {channel}", vmin=None, vmax=None, cmap="viridis")
    return fig


def threshold_figure(data, maps: Any, index: int, scores: np.ndarray, labels: np.ndarray,
                     threshold: float, dice: float, iou: float):
    """Slice ``index`` of ``maps`` (N, 1, H, W), the map ≥ ``threshold`` and the histogram of the
    pooled in-brain ``scores`` (P,) by ``labels`` (P,) bool, titled with the pooled Dice and IoU."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    show_map(axes[0], maps[index], "anomaly map", mask=data.masks[index])
    show_binary(axes[1], maps[index], threshold, data.masks[index], f"map ≥ {threshold:.3f}")
    plot_score_histogram(axes[2], scores, labels, threshold)
    fig.suptitle(f"pooled in-brain Dice {dice:.3f}, IoU {iou:.3f}")
    fig.tight_layout()
    return fig


def ssim_terms_figure(patch: Any, altered: Any, terms: Mapping[str, float]):
    """A patch (H, W), its altered copy (H, W) and a bar chart of ``terms`` (luminance, contrast,
    structure, SSIM, l1)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    show_image(axes[0], patch, "original")
    show_image(axes[1], altered.clamp(0, 1), "altered")
    names = ["luminance", "contrast", "structure", "SSIM", "l1"]
    axes[2].bar(names, [terms[n] for n in names], color=["C0", "C1", "C2", "C3", "0.5"])
    axes[2].set_ylim(min(0.0, *(terms[n] for n in names)) - 0.05, 1.05)
    axes[2].axhline(1.0, color="k", lw=0.5)
    fig.suptitle(f"luminance {terms['luminance']:.3f} · contrast {terms['contrast']:.3f} · "
                 f"structure {terms['structure']:.3f} → SSIM {terms['SSIM']:.3f}; l1 {terms['l1']:.3f}")
    fig.tight_layout()
    return fig


def data_range_figure(amap: Any, data_range: float, spread: float, image: Any = None, mask: Any = None):
    """FAE's 1 − SSIM map (1, h, w) for SSIM's data range L, next to its slice (1, H, W) with the lesion
    outline (1, H, W) if given; ``spread`` is the features' max − min, shown in the title."""
    import matplotlib.pyplot as plt

    panels = 2 if image is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(3.5 * panels, 3.2), squeeze=False)
    if image is not None:
        show_image(axes[0, 0], image, "slice")
        if mask is not None:
            outline(axes[0, 0], mask)
    show_map(axes[0, -1], amap, f"1 − SSIM, L = {data_range:.3g}", vmin=0.0)
    fig.suptitle(f"L = {data_range:.3g} (features span {spread:.1f}): "
                 f"C2 = {(0.03 * data_range) ** 2:.2e}; mean 1 − SSIM {float(amap.mean()):.3f}")
    fig.tight_layout()
    return fig


def ncc_figure(image: Any, restored: Any, amap: Any, mask: Any, window: int, inside: float, outside: float):
    """A slice, its restoration and their 1 − NCC map, each (1, H, W), with the lesion outline ``mask``
    (1, H, W) and the map's mean ``inside`` the lesion and ``outside`` it (in the brain) in the title."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    show_image(axes[0], image, "slice")
    outline(axes[0], mask)
    show_image(axes[1], restored, "restoration")
    show_map(axes[2], amap, f"1 − NCC, window {window}", mask=mask, vmin=0.0)
    fig.suptitle(f"window {window}: mean 1 − NCC in the lesion {inside:.3f}, "
                 f"in normal brain {outside:.3f}")
    fig.tight_layout()
    return fig


def plot_budget_curve(ax, aps: Mapping[int, float], steps: Sequence[int],
                      references: Mapping[str, float] | None = None, chosen: int | None = None) -> None:
    """Test pixel AP against training steps (log axis, one tick per step of ``steps``) for the steps
    measured so far (``aps``: step → AP), each of ``references`` (label → AP) as a dashed line, and the
    ``chosen`` step ringed."""
    xs = sorted(aps)
    ax.plot(xs, [aps[s] for s in xs], "o-", color="C0", label="this model")
    for i, (label, value) in enumerate((references or {}).items(), start=1):
        ax.axhline(value, ls="--", lw=1, color=f"C{i}", label=label)
    if chosen in aps:
        ax.plot([chosen], [aps[chosen]], "o", ms=11, mfc="none", mec="k")
    ax.set_xscale("log")
    ax.set_xlim(min(steps) / 1.5, max(steps) * 1.5)
    ax.set_xticks(list(steps), [str(s) for s in steps], fontsize=7)
    ax.minorticks_off()
    ax.set_ylim(bottom=0, top=max([*aps.values(), *(references or {}).values(), 1e-3]) * 1.15)
    ax.set(xlabel="training steps", ylabel="test pixel AP")
    ax.legend(fontsize=7)


def budget_figure(image: Any, mask: Any, maps: Mapping[int, Any], aps: Mapping[int, float],
                  steps: Sequence[int], references: Mapping[str, float] | None = None,
                  restorations: Mapping[int, Any] | None = None, chosen: int | None = None,
                  title: str | None = None):
    """One slice (1, H, W) with its lesion outline (``mask``, 1 × H × W), its anomaly map (1, H, W)
    after each step count of ``maps`` (step → map), the restoration (1, H, W) at those steps in a
    second row if ``restorations`` are given, and :func:`plot_budget_curve` of ``aps`` over ``steps``.

    Each map gets its own colour window (:func:`show_map`): the panels show where a map is highest
    at each step, not how its magnitude changes."""
    import matplotlib.pyplot as plt

    shown = list(maps)
    rows = 2 if restorations else 1
    fig = plt.figure(figsize=(2.3 * (len(shown) + 1) + 4.0, 2.6 * rows + 0.5))
    grid = fig.add_gridspec(rows, len(shown) + 2, width_ratios=[1] * (len(shown) + 1) + [1.9])
    ax = fig.add_subplot(grid[0, 0])
    show_image(ax, image, "slice")
    outline(ax, mask)
    for c, step in enumerate(shown, start=1):
        after = f"{step} step{'s' if step != 1 else ''}"
        show_map(fig.add_subplot(grid[0, c]), maps[step], f"map after {after}", mask=mask)
        if restorations and restorations.get(step) is not None:
            show_image(fig.add_subplot(grid[1, c]), restorations[step], f"restoration after {after}")
    plot_budget_curve(fig.add_subplot(grid[:, -1]), aps, steps, references, chosen)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
