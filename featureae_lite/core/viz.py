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


def plot_pr_roc(axes, scores: Any, labels: Any, brain: Any = None, label: str = "map",
                max_points: int = 2000) -> dict[str, float]:
    """The precision-recall curve (first axis) and the ROC curve (second axis) of one map, pixels pooled.

    The curves are those the metrics integrate (:mod:`featureae_lite.core.metrics`: a pixel is positive
    when its score is ≥ the threshold, tied scores form one threshold), each with the line of a random
    map: precision equal to the positive share, and the diagonal.

    Parameters
    ----------
    axes : pair of matplotlib Axes
        Where to draw the precision-recall and the ROC curve.
    scores, labels : array-like or tensor
        The map and the ground truth (binary), same shape, e.g. (N, 1, H, W).
    brain : array-like or tensor, optional
        The pixels that count (brain-masked evaluation); default every pixel.
    label : str
        The map's name in the legends.
    max_points : int
        Most points drawn per curve (evenly spaced along it); the returned AP and AUROC are exact.

    Returns
    -------
    dict
        ``"ap"`` and ``"auroc"`` of the map, ``"chance"`` the positive share (a random map's AP).
    """
    from featureae_lite.core.errors import InputError
    from featureae_lite.core.metrics import _ap, _auroc, _curve, _prepare

    s, y = _prepare(scores, labels, brain)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InputError("the curves need both positive and negative pixels")
    tp, fp, _ = _curve(s, y)
    ap, auroc, chance = _ap(tp, fp, n_pos), _auroc(tp, fp, n_pos, n_neg), n_pos / y.size
    keep = np.unique(np.linspace(0, tp.size - 1, min(max_points, tp.size)).astype(int))
    tp, fp = tp[keep].astype(float), fp[keep].astype(float)
    pr, roc = axes
    pr.step(np.r_[0.0, tp / n_pos], np.r_[1.0, tp / (tp + fp)], where="pre", label=f"{label} (AP {ap:.3f})")
    pr.axhline(chance, color="grey", ls="--", lw=1, label=f"random map (AP {chance:.4f})")
    pr.set(xlabel="recall (share of lesion pixels found)", ylabel="precision (lesion share of flagged)",
           xlim=(0, 1), ylim=(0, 1.02), title="precision-recall")
    roc.plot(np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], label=f"{label} (AUROC {auroc:.3f})")
    roc.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random map (AUROC 0.5)")
    roc.set(xlabel="false-positive rate (normal pixels flagged)", ylabel="true-positive rate (recall)",
            xlim=(0, 1), ylim=(0, 1.02), title="ROC")
    for ax in axes:
        ax.legend(fontsize=7)
    return {"ap": ap, "auroc": auroc, "chance": chance}


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


def channel_figure(image: Any, channel_map: Any, channel: int, mask: Any = None, grid_mask: Any = None,
                   contrast: float | None = None, rank: int | None = None, n_channels: int | None = None,
                   title: str = "input"):
    """An input slice (1, H, W), titled ``title``, next to one channel (h, w) of its feature map.

    With ``mask`` (1, H, W) the lesion is outlined on the slice, with ``grid_mask`` (h, w) — 1 for the
    feature cells that hold lesion, else 0 — on the channel. ``contrast`` is the channel's
    standardised lesion contrast on this slice (NaN: no lesion), ``rank`` its rank by absolute
    contrast among ``n_channels`` channels (1 = strongest); both go into the title.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    show_image(axes[0], image, title)
    show_image(axes[1], channel_map, f"channel {channel}", vmin=None, vmax=None, cmap="viridis")
    if mask is not None:
        outline(axes[0], mask)
    if grid_mask is not None:
        outline(axes[1], grid_mask, color="white")
    if contrast is not None:
        if np.isnan(contrast):
            fig.suptitle(f"channel {channel}: no lesion on this slice, no lesion contrast", fontsize=9)
        else:
            fig.suptitle(f"channel {channel}: lesion contrast {contrast:+.2f} on this slice "
                         f"(rank {rank} of {n_channels} by |contrast|)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_dice_curve(ax, thresholds: np.ndarray, dice: np.ndarray,
                    marks: Mapping[str, tuple[float, float]] | None = None,
                    threshold: float | None = None, current: float | None = None) -> None:
    """Pooled Dice (T,) against thresholds (T,), a dotted vertical line per mark (name → (threshold,
    Dice)) and a dashed black one at the current ``threshold`` (its Dice ``current``)."""
    ax.plot(thresholds, dice, color="0.3", lw=1.2)
    xs = [float(np.min(thresholds)), float(np.max(thresholds))]
    colors = ("tab:green", "tab:blue", "tab:orange", "tab:purple")
    for (name, (t, d)), color in zip((marks or {}).items(), colors, strict=False):
        ax.axvline(t, color=color, ls=":", lw=1.5, label=f"{name}: t = {t:.3f}, Dice {d:.3f}")
        xs.append(float(t))
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1,
                   label="slider" + ("" if current is None else f": t = {threshold:.3f}, Dice {current:.3f}"))
        xs.append(float(threshold))
    pad = 0.02 * (max(xs) - min(xs) or 1.0)
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(0, max(0.05, float(np.max(dice)) * 1.15))
    ax.set(xlabel="threshold (map value)", ylabel="pooled Dice")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def threshold_figure(data, maps: Any, index: int, scores: np.ndarray, labels: np.ndarray,
                     threshold: float, dice: float, iou: float,
                     curve: tuple[np.ndarray, np.ndarray] | None = None,
                     marks: Mapping[str, tuple[float, float]] | None = None):
    """Slice ``index`` of ``maps`` (N, 1, H, W), the map ≥ ``threshold``, the histogram of the pooled
    in-brain ``scores`` (P,) by ``labels`` (P,) bool and, given ``curve`` = (thresholds (T,), Dice (T,)),
    the pooled Dice against the threshold with ``marks`` (name → (threshold, Dice)); titled with the
    pooled Dice and IoU at ``threshold``."""
    import matplotlib.pyplot as plt

    n = 3 if curve is None else 4
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n + (1.6 if curve is not None else 0), 3.2))
    show_map(axes[0], maps[index], "anomaly map", mask=data.masks[index])
    show_binary(axes[1], maps[index], threshold, data.masks[index], f"map ≥ {threshold:.3f}")
    plot_score_histogram(axes[2], scores, labels, threshold)
    if curve is not None:
        plot_dice_curve(axes[3], *curve, marks=marks, threshold=threshold, current=dice)
        axes[2].set_xlim(axes[3].get_xlim())  # one threshold axis for the histogram and the curve
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


def _lesion_reading(name: str, means: tuple[float, float] | None) -> str:
    """'name lesion a vs normal b (×a/b)' from (mean in the lesion, mean in normal brain)."""
    if means is None or np.isnan(means[0]):
        return ""
    inside, outside = means
    ratio = f" (×{inside / outside:.1f})" if outside > 0 else ""
    return f"{name}: lesion {inside:.3f} vs normal brain {outside:.3f}{ratio}"


def ssim_window_figure(image: Any, reconstruction: Any, residual: Any, amap: Any, window: int, sigma: float,
                       k1: float, k2: float, mask: Any = None, ssim_means: tuple[float, float] | None = None,
                       l1_means: tuple[float, float] | None = None):
    """An image and its reconstruction, their l1 residual and their 1 − SSIM map, each (1, H, W), with the
    lesion outline ``mask`` (1, H, W) if given. ``window``, ``sigma``, ``k1``, ``k2`` are SSIM's settings;
    ``ssim_means`` and ``l1_means`` the maps' means (in the lesion, in normal brain), shown in the title."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(11, 3.1))
    show_image(axes[0], image, "image")
    if mask is not None:
        outline(axes[0], mask)
    show_image(axes[1], reconstruction, "reconstruction x̂")
    show_map(axes[2], residual, "|x − x̂|", mask=mask, vmin=0.0)
    show_map(axes[3], amap, f"1 − SSIM, window {window}", mask=mask, vmin=0.0)
    readings = [r for r in (_lesion_reading("1 − SSIM", ssim_means), _lesion_reading("l1", l1_means)) if r]
    fig.suptitle(f"window {window} (σ {sigma:.2f}), K1 {k1:.3g}, K2 {k2:.3g}"
                 + "".join(f"\n{r}" for r in readings), fontsize=9)
    fig.tight_layout()
    return fig


def superpixel_figure(image: Any, proxy: Any, error: Any, n_segments: int, compactness: float,
                      mask: Any = None, regions: int | None = None,
                      error_means: tuple[float, float] | None = None):
    """A slice (H, W), its superpixel proxy (H, W) and the in-brain error |proxy − slice| (H, W), with the
    lesion outline ``mask`` (H, W) if given; ``regions`` is the number of superpixels SLIC returned for
    ``n_segments`` asked, ``error_means`` the error's mean (in the lesion, in normal brain), both in the
    title."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(8.5, 3.1))
    show_image(axes[0], image, "slice")
    show_image(axes[1], proxy, "proxy (superpixel means)")
    show_map(axes[2], error, "|proxy − slice|", mask=mask, vmin=0.0)
    if mask is not None:
        outline(axes[0], mask)
        outline(axes[1], mask)
    found = "" if regions is None else f" → {regions} superpixels"
    reading = _lesion_reading("mean |proxy − slice|", error_means)
    fig.suptitle(f"SLIC: {n_segments} segments asked{found}, compactness {compactness:.3g}"
                 + (f"\n{reading}" if reading else ""), fontsize=9)
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
