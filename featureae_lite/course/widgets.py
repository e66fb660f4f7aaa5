"""Thin ipywidgets wrappers over the pure plotting functions of :mod:`featureae_lite.core.viz`.

Every function draws one static figure with its initial settings when widgets cannot be used —
headless runs (papermill, CI, ``featureae-lite notebooks``) set ``FEATUREAE_LITE_STATIC=1`` — and
otherwise returns an ``ipywidgets.interactive`` panel whose controls redraw the figure (Jupyter
shows it when it is the last expression of a cell; else pass it to ``IPython.display.display``).
Sliders redraw when released, not on every step of a drag.

Maps and panels are checked at the boundary: each must be a tensor of shape (N, 1, H, W) aligned
with the slices it is shown on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featureae_lite.core import viz
from featureae_lite.core.errors import InputError

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
        raise InputError("no maps to show: pass at least one name → (N, 1, H, W) tensor")
    want = tuple(data.images.shape)
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor):
            raise TypeError(f"{name!r}: expected a torch.Tensor of shape {want}, got {type(m).__name__}")
        if tuple(m.shape) != want:
            raise InputError(f"{name!r}: shape {tuple(m.shape)} does not match the slices {want}")
        if torch.isnan(m).any():
            raise InputError(f"{name!r} contains NaN values")


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

    names = list(volumes)
    if not names:
        raise InputError("no volumes to browse")
    first_img, first_mask = volumes[names[0]]
    for name, (img, mask) in volumes.items():
        if np.ndim(img) != 3:
            raise InputError(f"{name!r}: expected a 3-D volume (X, Y, Z), got shape {np.shape(img)}")
        if mask is not None and np.shape(mask) != np.shape(img):
            raise InputError(f"{name!r}: mask shape {np.shape(mask)} does not match image {np.shape(img)}")
    if z is None:
        z = int(np.argmax(first_mask.sum((0, 1)))) if first_mask is not None and first_mask.any() \
            else first_img.shape[2] // 2

    def draw(name: str, z: int):
        return viz.volume_figure(*volumes[name], z, name)

    return _run(draw, {"name": w.Dropdown(options=names),
                       "z": w.IntSlider(value=z, min=0, max=first_img.shape[2] - 1)},
                {"name": names[0], "z": z})


def slice_browser(data, panels: Mapping[str, torch.Tensor], index: int | None = None):
    """Scroll slices of a split with any number of aligned panels (reconstruction, maps, …).

    Parameters
    ----------
    data : Batch
        Slices with masks; the first column shows the image and the ground-truth outline.
    panels : mapping
        title → tensor (N, 1, H, W) aligned with ``data``.
    index : int, optional
        Initial slice (default: the largest lesion).
    """
    import ipywidgets as w

    _check_maps(data, panels)
    if index is None:
        index = _largest_lesion(data)

    def draw(index: int):
        return viz.panels_figure(data, index, panels)

    return _run(draw, {"index": w.IntSlider(value=index, min=0, max=len(data) - 1)}, {"index": index})


def method_picker(data, maps: Mapping[str, torch.Tensor], index: int | None = None):
    """Pick a method and a slice: image with outline, the method's map and its 95th-percentile mask."""
    import ipywidgets as w

    _check_maps(data, maps)
    names = list(maps)
    if index is None:
        index = _largest_lesion(data)

    def draw(method: str, index: int):
        m = maps[method]
        inside = data.brains > 0
        thr = float(torch.quantile(m[inside][:: max(1, int(inside.sum()) // 200_000)], 0.95))
        return viz.method_figure(data, index, method, m, thr)

    return _run(draw, {"method": w.Dropdown(options=names),
                       "index": w.IntSlider(value=index, min=0, max=len(data) - 1)},
                {"method": names[0], "index": index})


def channel_browser(images, features: torch.Tensor, index: int = 0):
    """Browse the channels of a feature map next to its input slice.

    Given a :class:`~featureae_lite.data.batch.Batch` with lesion masks, the lesion is outlined and the
    title gives the shown channel's lesion contrast on the shown slice — (mean on the lesion − mean on
    normal brain) / std on normal brain, :func:`featureae_lite.course.analysis.lesion_contrast` — and
    its rank among the channels by absolute contrast.

    Parameters
    ----------
    images : Tensor or Batch
        (N, 1, H, W) input slices, or a Batch of them (its masks, brains and anomaly types are used).
    features : Tensor
        (N, C, h, w) feature maps of those slices; with masks, h and w divide H and W.
    index : int
        Initial slice.
    """
    import ipywidgets as w

    from featureae_lite.data.batch import Batch

    data = Batch.of(images)
    images, masks = data.images, data.masks
    if images.ndim != 4 or features.ndim != 4 or len(images) != len(features):
        raise InputError(f"expected images (N, 1, H, W) and features (N, C, h, w) with the same N, got "
                         f"{tuple(images.shape)} and {tuple(features.shape)}")
    if masks is not None and (images.shape[-2] % features.shape[-2] or images.shape[-1] % features.shape[-1]):
        raise InputError(f"feature size {tuple(features.shape[-2:])} does not divide the slice size "
                         f"{tuple(images.shape[-2:])}")

    @functools.cache
    def contrasts(index: int) -> np.ndarray:  # every channel's lesion contrast on one slice, (C,)
        from featureae_lite.course.analysis import lesion_contrast

        sl = slice(index, index + 1)
        return lesion_contrast(features[sl], masks[sl], data.brains[sl]).numpy()

    def draw(index: int, channel: int):
        title = "input" if data.anomaly_types is None else f"input ({data.anomaly_types[index]})"
        if masks is None:
            return viz.channel_figure(images[index], features[index, channel], channel, title=title)
        c = contrasts(index)
        rank = int((np.abs(c) > abs(c[channel])).sum()) + 1
        grid = F.adaptive_max_pool2d((masks[index] > 0).float(), features.shape[-2:])[0]  # cells with lesion
        return viz.channel_figure(images[index], features[index, channel], channel, masks[index], grid,
                                  float(c[channel]), rank, len(c), title=title)

    return _run(draw, {"index": w.IntSlider(value=index, min=0, max=len(images) - 1),
                       "channel": w.IntSlider(value=0, min=0, max=features.shape[1] - 1)},
                {"index": index, "channel": 0})


def threshold_explorer(data, maps: torch.Tensor, threshold: float | None = None,
                       index: int | None = None, val_threshold: float | None = None, fpr: float = 0.05):
    """Move a threshold: the binarised map of one slice, the pooled Dice against the threshold and
    the histogram of in-brain map values update live.

    The Dice curve is computed once over a grid of thresholds (:func:`~featureae_lite.core.metrics.
    dice_curve`, one sort); vertical marks show the best-Dice threshold of the test maps
    (:func:`~featureae_lite.core.metrics.best_dice`), the threshold at ``fpr``
    (:func:`~featureae_lite.core.metrics.dice_at_fpr`), ``val_threshold`` if given, and the slider's.

    Parameters
    ----------
    data : Batch
        Slices with lesion and brain masks (at least one lesion pixel in the brain).
    maps : Tensor
        (N, 1, H, W) anomaly maps for ``data``.
    threshold : float, optional
        Initial threshold (default: ``val_threshold``, else the 95th percentile of in-brain map values).
    index : int, optional
        Initial slice (default: the largest lesion).
    val_threshold : float, optional
        A threshold chosen on the validation split, marked on the Dice curve.
    fpr : float
        The false-positive rate of the fixed-FPR mark.
    """
    import ipywidgets as w

    from featureae_lite.core.metrics import best_dice, dice_at_fpr, dice_curve, dice_iou_at_threshold

    _check_maps(data, {"maps": maps})
    inside = data.brains > 0
    scores, labels = maps[inside].numpy(), data.masks[inside].numpy() > 0
    if not labels.any():
        raise InputError("no lesion pixel inside the brain: the Dice is undefined")
    lo, hi = float(np.min(scores)), float(np.max(scores))
    best, best_thr = best_dice(scores, labels)
    at_fpr, _, fpr_thr = dice_at_fpr(scores, labels, fpr)
    marks = {"best (test)": (best_thr, best)}
    if val_threshold is not None:
        marks["val"] = (float(val_threshold), dice_iou_at_threshold(scores, labels, val_threshold)[0])
    marks[f"{fpr:.0%} FPR"] = (fpr_thr, at_fpr)
    grid = np.union1d(np.linspace(lo, hi, 401), [t for t, _ in marks.values()])
    curve = dice_curve(scores, labels, grid)
    if threshold is None:
        threshold = float(val_threshold) if val_threshold is not None else float(np.quantile(scores, 0.95))
    if index is None:
        index = _largest_lesion(data)

    def draw(threshold: float, index: int):
        dice, iou = dice_iou_at_threshold(scores, labels, threshold)
        return viz.threshold_figure(data, maps, index, scores, labels, threshold, dice, iou, curve, marks)

    return _run(draw, {"threshold": w.FloatSlider(value=threshold, min=lo, max=hi, step=(hi - lo) / 200,
                                                  readout_format=".3f"),
                       "index": w.IntSlider(value=index, min=0, max=len(data) - 1)},
                {"threshold": threshold, "index": index})


def toy_patch(size: int = 48, seed: int = 0) -> torch.Tensor:
    """The textured toy patch of notebook 02, (size, size) in about [0.28, 0.72]: a product of sines
    plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 6.28, size), torch.linspace(0, 6.28, size), indexing="ij")
    return 0.5 + 0.2 * torch.sin(2 * xx) * torch.cos(3 * yy) + 0.02 * torch.randn(size, size, generator=g)


def altered_patch(patch: torch.Tensor, brightness: float = 0.0, contrast: float = 1.0, noise: float = 0.0,
                  seed: int = 1) -> torch.Tensor:
    """``patch`` (H, W) with its contrast scaled about its mean, shifted in brightness and with Gaussian
    noise of standard deviation ``noise`` added (a fixed noise pattern per ``seed``), (H, W)."""
    g = torch.Generator().manual_seed(seed)
    mean = patch.mean()
    return mean + contrast * (patch - mean) + brightness + noise * torch.randn(patch.shape, generator=g)


def ssim_terms(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean luminance, contrast and structure terms, SSIM (window 11, data range 1) and l1 of two
    (H, W) patches, H, W > 11.

    The terms are :func:`featureae_lite.core.ssim.interior_ssim_terms`: the per-pixel maps of
    :func:`~featureae_lite.core.ssim.ssim_components` and :func:`~featureae_lite.core.ssim.ssim_map`,
    averaged over the interior pixels whose 11×11 window lies inside the patch.
    """
    from featureae_lite.core.ssim import interior_ssim_terms

    return {**interior_ssim_terms(x, y), "l1": float((x.float() - y.float()).abs().mean())}


def ssim_terms_explorer(patch: torch.Tensor | None = None, brightness: float = 0.0, contrast: float = 1.0,
                        noise: float = 0.0):
    """Alter a toy patch with sliders and watch SSIM's three terms (notebook 02).

    Parameters
    ----------
    patch : Tensor, optional
        (H, W) patch in [0, 1], H, W > 11 (default: :func:`toy_patch`).
    brightness, contrast, noise : float
        Initial brightness shift, contrast scale (about the patch mean) and noise standard deviation.
    """
    import ipywidgets as w

    patch = toy_patch() if patch is None else torch.as_tensor(patch, dtype=torch.float32)
    if patch.ndim != 2 or min(patch.shape) < 12:
        raise InputError(f"expected a 2-D patch larger than 11×11 pixels, got shape {tuple(patch.shape)}")

    def draw(brightness: float, contrast: float, noise: float):
        y = altered_patch(patch, brightness, contrast, noise)
        return viz.ssim_terms_figure(patch, y, ssim_terms(patch, y))

    return _run(draw, {"brightness": w.FloatSlider(value=brightness, min=-0.4, max=0.4, step=0.02),
                       "contrast": w.FloatSlider(value=contrast, min=0.0, max=2.0, step=0.05),
                       "noise": w.FloatSlider(value=noise, min=0.0, max=0.3, step=0.01)},
                {"brightness": brightness, "contrast": contrast, "noise": noise})


def _plane(x: Any, name: str) -> torch.Tensor:
    """``x`` as a float (H, W) tensor; leading dimensions of size 1 are dropped, e.g. (1, H, W)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().float().cpu()
    while t.ndim > 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise InputError(f"{name}: expected one slice (H, W) or (1, H, W), got shape {tuple(np.shape(x))}")
    return t


def _lesion_means(values: torch.Tensor, mask: torch.Tensor | None,
                  brain: torch.Tensor) -> tuple[float, float] | None:
    """Mean of ``values`` (H, W) on the lesion and on normal brain; None without a lesion in the brain."""
    if mask is None:
        return None
    lesion, normal = (mask > 0) & brain, ~(mask > 0) & brain
    if not lesion.any() or not normal.any():
        return None
    return float(values[lesion].mean()), float(values[normal].mean())


def ssim_window_map(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, k1: float = 0.01,
                    k2: float = 0.03) -> torch.Tensor:
    """1 − SSIM of two slices (H, W) with a Gaussian window of ``window_size`` pixels, (H, W).

    The window's standard deviation grows with its size, σ = 1.5 · window_size / 11 (the standard
    11-pixel window has σ = 1.5), so that a larger window averages over more pixels rather than
    padding the same Gaussian with zeros. Data range 1: C1 = k1², C2 = k2²
    (:func:`featureae_lite.core.ssim.ssim_map`).
    """
    from featureae_lite.core.ssim import ssim_map

    with torch.no_grad():
        sigma = 1.5 * window_size / 11
        return 1 - ssim_map(x[None, None], y[None, None], window_size, sigma, 1.0, k1, k2)[0, 0]


def ssim_window_explorer(image: Any, reconstruction: Any, mask: Any = None, brain: Any = None,
                         window_size: int = 11, k1: float = 0.01, k2: float = 0.03):
    """Change SSIM's window and constants and watch the 1 − SSIM map of a slice and its
    reconstruction next to their l1 residual (notebook 02).

    A small window follows the residual closely but is noisy; a large one is smoother and spreads a
    difference over a wider area. Larger K1, K2 flatten the map where the local statistics are small.

    Parameters
    ----------
    image, reconstruction : array-like
        (H, W) or (1, H, W) slice in [0, 1] and its reconstruction.
    mask, brain : array-like, optional
        (H, W) or (1, H, W) lesion and brain masks: the lesion is outlined, both maps are set to 0
        outside the brain and the title gives their mean on the lesion and on normal brain.
    window_size : int
        Initial odd window size, 3 to 15 (:func:`ssim_window_map`).
    k1, k2 : float
        Initial constants, C1 = k1², C2 = k2² (data range 1).
    """
    import ipywidgets as w

    x, y = _plane(image, "image"), _plane(reconstruction, "reconstruction")
    if x.shape != y.shape:
        raise InputError(f"image {tuple(x.shape)} and reconstruction {tuple(y.shape)} differ in shape")
    m = None if mask is None else _plane(mask, "mask")
    b = torch.ones_like(x, dtype=torch.bool) if brain is None else _plane(brain, "brain") > 0
    for name, t in (("mask", m), ("brain", b)):
        if t is not None and t.shape != x.shape:
            raise InputError(f"{name} {tuple(t.shape)} does not match the image {tuple(x.shape)}")
    top = min(15, min(x.shape) - (1 - min(x.shape) % 2))
    if window_size % 2 == 0 or not 3 <= window_size <= top:
        raise InputError(f"window_size must be odd and between 3 and {top}, got {window_size}")
    residual = (x - y).abs() * b

    def draw(window_size: int, k1: float, k2: float):
        window_size += 1 - window_size % 2  # the Gaussian window is odd
        amap = ssim_window_map(x, y, window_size, k1, k2) * b
        return viz.ssim_window_figure(x, y, residual, amap, window_size, 1.5 * window_size / 11, k1, k2, m,
                                      _lesion_means(amap, m, b), _lesion_means(residual, m, b))

    return _run(draw, {"window_size": w.IntSlider(value=window_size, min=3, max=top, step=2),
                       "k1": w.FloatLogSlider(value=k1, base=10, min=-4, max=0, step=0.25),
                       "k2": w.FloatLogSlider(value=k2, base=10, min=-4, max=0, step=0.25)},
                {"window_size": window_size, "k1": k1, "k2": k2})


def feature_ssim_anomaly_map(features: torch.Tensor, reconstruction: torch.Tensor, data_range: float,
                             window_size: int = 5) -> torch.Tensor:
    """FAE's map on the feature grid with SSIM's data range ``data_range``: channel mean of
    1 − SSIM(reconstruction, features), (N, C, h, w) → (N, 1, h, w), without gradient
    (:func:`featureae_lite.models.fae.fae_anomaly_map`)."""
    from featureae_lite.models.fae import fae_anomaly_map

    with torch.no_grad():
        return fae_anomaly_map(features, reconstruction, window_size=window_size, data_range=data_range)


def data_range_explorer(features: torch.Tensor, reconstruction: torch.Tensor,
                        images: torch.Tensor | None = None, masks: torch.Tensor | None = None,
                        data_range: float = 1.0, index: int = 0, window_size: int = 5):
    """Change SSIM's data range L on feature maps and watch FAE's anomaly map (notebook 04).

    C1 = (0.01 L)² and C2 = (0.03 L)²: a small L leaves SSIM a pure correlation of the local
    statistics, a large L drowns them and pushes SSIM towards 1 everywhere.

    Parameters
    ----------
    features, reconstruction : Tensor
        (N, C, h, w) feature maps and the autoencoder's reconstruction of them.
    images : Tensor, optional
        (N, 1, H, W) input slices, shown next to the map.
    masks : Tensor, optional
        (N, 1, H, W) lesion masks, outlined on the slice.
    data_range : float
        Initial L (> 0).
    """
    import ipywidgets as w

    if features.ndim != 4 or features.shape != reconstruction.shape:
        raise InputError(f"expected features and reconstruction of one (N, C, h, w) shape, got "
                         f"{tuple(features.shape)} and {tuple(reconstruction.shape)}")
    if images is not None and (images.ndim != 4 or len(images) != len(features)):
        raise InputError(f"images must be (N, 1, H, W) with N = {len(features)}, got {tuple(images.shape)}")
    if data_range <= 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    spread = float(features.amax() - features.amin())

    def draw(data_range: float, index: int):
        amap = feature_ssim_anomaly_map(features[index:index + 1], reconstruction[index:index + 1],
                                        data_range, window_size)[0]
        return viz.data_range_figure(amap, data_range, spread, None if images is None else images[index],
                                     None if images is None or masks is None else masks[index])

    lo, hi = -2.0, float(np.log10(max(10 * spread, 10.0)))
    return _run(draw, {"data_range": w.FloatLogSlider(value=data_range, base=10, min=lo, max=hi, step=0.1),
                       "index": w.IntSlider(value=index, min=0, max=len(features) - 1)},
                {"data_range": data_range, "index": index})


def ncc_window_explorer(data, restored: torch.Tensor, window: int = 11, index: int | None = None):
    """Change the window of the local NCC between slices and their restoration (notebook 08).

    Parameters
    ----------
    data : Batch
        Slices with lesion and brain masks.
    restored : Tensor
        (N, 1, H, W) restorations aligned with ``data``.
    window : int
        Initial odd window size of :func:`featureae_lite.models.patchsim.local_ncc`.
    index : int, optional
        Initial slice (default: the largest lesion).
    """
    import ipywidgets as w

    from featureae_lite.models.patchsim import patch_similarity_map

    _check_maps(data, {"restored": restored})
    size = min(data.images.shape[-2:])
    if window % 2 == 0 or not 3 <= window <= size:
        raise InputError(f"window must be odd and between 3 and {size}, got {window}")
    if index is None:
        index = _largest_lesion(data)

    def draw(window: int, index: int):
        window += 1 - window % 2  # the Gaussian window is odd
        x, y = data.images[index:index + 1], restored[index:index + 1]
        amap = patch_similarity_map(x, y, window=window, similarity="ncc")[0] * data.brains[index]
        lesion, brain = data.masks[index] > 0, data.brains[index] > 0
        inside = float(amap[lesion].mean()) if lesion.any() else float("nan")
        outside = float(amap[brain & ~lesion].mean()) if (brain & ~lesion).any() else float("nan")
        return viz.ncc_figure(x[0], y[0], amap, data.masks[index], window, inside, outside)

    top = size if size % 2 else size - 1
    return _run(draw, {"window": w.IntSlider(value=window, min=3, max=min(top, 41), step=2),
                       "index": w.IntSlider(value=index, min=0, max=len(data) - 1)},
                {"window": window, "index": index})


def superpixel_explorer(image: Any, brain: Any, mask: Any = None, n_segments: int = 150,
                        compactness: float = 0.1):
    """Change the number of SLIC superpixels (and their compactness) and watch ProxyAno's proxy of a
    slice: the slice, the proxy and |proxy − slice| with the lesion outline (notebook 07).

    Each setting is segmented once (:func:`featureae_lite.models.superpixels.superpixel_image`) and kept,
    so moving back to a setting already seen redraws at once.

    Parameters
    ----------
    image, brain : array-like
        (H, W) or (1, H, W) slice in [0, 1] and its brain mask.
    mask : array-like, optional
        (H, W) or (1, H, W) lesion mask: outlined, and the title gives the mean |proxy − slice| on the
        lesion and on normal brain.
    n_segments : int
        Initial number of superpixels asked of SLIC (10 to 600).
    compactness : float
        Initial SLIC compactness (small: superpixels follow intensity edges).
    """
    import ipywidgets as w

    from featureae_lite.models.superpixels import superpixel_image

    x, b = _plane(image, "image"), _plane(brain, "brain") > 0
    m = None if mask is None else _plane(mask, "mask")
    for name, t in (("brain", b), ("mask", m)):
        if t is not None and t.shape != x.shape:
            raise InputError(f"{name} {tuple(t.shape)} does not match the image {tuple(x.shape)}")
    if not b.any():
        raise InputError("the brain mask is empty: nothing to segment")
    if not 10 <= n_segments <= 600 or compactness <= 0:
        raise InputError(f"n_segments must be in [10, 600] and compactness positive, got {n_segments}, "
                         f"{compactness}")

    @functools.cache
    def proxy(n_segments: int, compactness: float) -> torch.Tensor:
        return torch.from_numpy(superpixel_image(x, b, n_segments=n_segments, compactness=compactness))

    def draw(n_segments: int, compactness: float):
        p = proxy(n_segments, compactness)
        error = (p - x).abs() * b
        regions = int(torch.unique(p[b]).numel())
        return viz.superpixel_figure(x, p, error, n_segments, compactness, m, regions,
                                     _lesion_means(error, m, b))

    return _run(draw, {"n_segments": w.IntSlider(value=n_segments, min=10, max=600, step=10),
                       "compactness": w.FloatLogSlider(value=compactness, base=10, min=-2.5, max=1,
                                                       step=0.25)},
                {"n_segments": n_segments, "compactness": compactness})


def budget_explorer(session, method: str, references: Mapping[str, float] | None = None,
                    index: int | None = None, **overrides: Any):
    """Slide along the training budget of a course model (notebooks 04 and 08).

    The one training of a course model (the main job's, or a notebook's when it trains the model
    itself) saved its weights at 1/12, 1/6, 1/3 and 2/3 of its budget next to its checkpoint
    (:data:`featureae_lite.experiments.checkpoints.SNAPSHOT_FRACTIONS`). For the step on the slider the
    panel shows one test slice with its lesion outline, the map of the weights at that step (and the
    restoration, for patchsim) and the brain-masked test pixel AP of those weights — measured when the
    step is first shown (one prediction over the test split, cached in the session) — on a curve of
    AP against steps that grows with every step measured, ``references`` as dashed lines. A checkpoint
    without snapshots (trained before they were saved) still loads: the panel says so and how to get
    them, and shows the final model only.

    Headless (papermill, ``featureae-lite notebooks``): one figure with the maps at every step and the
    whole curve, i.e. one prediction over the test split per snapshot (the budget's maps are the
    session's). At QUICK that is a few seconds per snapshot; at classroom settings (1440 test slices at
    128 px, the inference speeds of docs/benchmark.md) an estimated ~10–15 s per FAE snapshot and
    ~5–10 s per patchsim snapshot, about a minute for the four snapshots of FAE.

    Parameters
    ----------
    session : Session
        The notebook's session (:func:`featureae_lite.course.session.start`).
    method : str
        A trainable method; its model is ``session.detector(method, **overrides)`` (trained with
        snapshots if its checkpoint does not exist yet).
    references : mapping, optional
        Label → test pixel AP drawn as horizontal lines, e.g. ``{"l1 residual (ae_l1)": 0.02}``.
    index : int, optional
        The test slice shown (default: the one with the largest lesion).
    """
    import ipywidgets as w

    from featureae_lite.course.budget import BudgetSnapshots

    snaps = BudgetSnapshots.of(session, method, **overrides)
    if snaps.missing:
        print(snaps.missing)
    data = session.test
    index = _largest_lesion(data) if index is None else index
    if not 0 <= index < len(data):
        raise InputError(f"index must be between 0 and {len(data) - 1}, got {index}")
    refs = dict(references or {})
    note = " (no snapshots: the final model only)" if snaps.missing else ""

    def draw(step: int | None):
        shown = snaps.steps if step is None else [step]  # None: every step (the static figure)
        for s in shown:
            snaps.pixel_ap(s, index)
        pairs = {s: snaps.slice_maps(s, index) for s in shown}
        aps = snaps.measured()
        if step is None:
            title = (f"{method}, {snaps.budget}-step training{note}: test pixel AP by step "
                     + " · ".join(f"{s} → {aps[s]:.3f}" for s in shown))
        else:
            title = f"{method} after {step} of {snaps.budget} steps{note}: test pixel AP {aps[step]:.3f}"
        if refs:
            title += "; " + ", ".join(f"{label} {value:.3f}" for label, value in refs.items())
        restorations = {s: r for s, (_, r) in pairs.items() if r is not None} or None
        return viz.budget_figure(data.images[index], data.masks[index], {s: m for s, (m, _) in pairs.items()},
                                 aps, snaps.steps, refs, restorations, step, title)

    return _run(draw, {"step": w.SelectionSlider(options=snaps.steps, value=snaps.steps[0])}, {"step": None})
