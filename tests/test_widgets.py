"""Widgets: a static figure in headless runs, live controls otherwise, clear errors for bad maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from featureae_lite.core.metrics import dice_iou_at_threshold
from featureae_lite.course import widgets
from featureae_lite.data.batch import Batch


@pytest.fixture
def data() -> Batch:
    """Six 32-px slices: a square brain, a lesion on slices 1, 2 and 4 (largest on 2)."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 1, 32, 32, generator=g)
    brains = torch.zeros(6, 1, 32, 32)
    brains[..., 4:28, 4:28] = 1
    masks = torch.zeros(6, 1, 32, 32)
    masks[1, :, 10:14, 10:14] = 1
    masks[2, :, 8:18, 8:18] = 1
    masks[4, :, 20:24, 6:10] = 1
    types = ["healthy", "tumor", "tumor", "healthy", "lesions", "healthy"]
    return Batch(images=images, masks=masks, brains=brains, subject_ids=[f"s{i // 2}" for i in range(6)],
                 anomaly_types=types, slice_indices=list(range(6)))


@pytest.fixture
def maps(data) -> torch.Tensor:
    """A map that is the lesion mask plus noise: informative, but not perfect."""
    g = torch.Generator().manual_seed(1)
    return (data.masks + 0.6 * torch.rand(data.masks.shape, generator=g)) * data.brains


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.delenv(widgets.STATIC_ENV, raising=False)


@pytest.fixture
def static(monkeypatch):
    monkeypatch.setenv(widgets.STATIC_ENV, "1")


def _suptitle(fig) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def test_static_mode_draws_one_figure_and_returns_nothing(static, data, maps):
    assert widgets.is_static()
    assert widgets.slice_browser(data, {"map": maps}) is None
    fig = plt.gcf()
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title().startswith("tumor s1 z=2")  # default slice: the largest lesion


def test_threshold_explorer_updates_dice_live(interactive, data, maps):
    panel = widgets.threshold_explorer(data, maps, threshold=0.5)
    controls = {c.description: c for c in panel.children if hasattr(c, "description")}
    assert set(controls) >= {"threshold", "index"}
    assert not controls["threshold"].continuous_update  # redraw on release, not on every drag step
    inside = data.brains > 0
    for thr in (0.5, 0.9):
        controls["threshold"].value = thr
        thr = controls["threshold"].value  # the slider snaps to its step
        dice, _ = dice_iou_at_threshold(maps[inside], data.masks[inside], thr)
        assert _suptitle(panel.result).startswith(f"pooled in-brain Dice {dice:.3f}")
        binary = panel.result.axes[1].images[0].get_array()
        np.testing.assert_array_equal(np.asarray(binary), (maps[2, 0] >= thr).numpy())
    assert dice_iou_at_threshold(maps[inside], data.masks[inside], 0.5)[0] != pytest.approx(
        dice_iou_at_threshold(maps[inside], data.masks[inside], controls["threshold"].value)[0])


def test_method_picker_switches_method_and_slice(interactive, data, maps):
    panel = widgets.method_picker(data, {"noisy": maps, "flat": torch.zeros_like(maps)})
    method, index = (c for c in panel.children if hasattr(c, "description") and c.description)
    assert panel.result.axes[1].get_title() == "noisy"
    method.value = "flat"
    index.value = 4
    assert panel.result.axes[1].get_title() == "flat"
    assert panel.result.axes[0].get_title().startswith("lesions s2 z=4")


def test_channel_and_volume_browsers(interactive, data):
    feats = torch.randn(6, 5, 8, 8)
    panel = widgets.channel_browser(data.images, feats)
    channel = next(c for c in panel.children if getattr(c, "description", "") == "channel")
    assert channel.max == 4
    channel.value = 3
    assert panel.result.axes[1].get_title() == "channel 3"
    vol = np.random.default_rng(0).random((12, 14, 10))
    mask = np.zeros_like(vol)
    mask[4:7, 5:8, 6] = 1
    panel = widgets.volume_browser({"a": (vol, mask), "b": (vol, None)})
    z = next(c for c in panel.children if getattr(c, "description", "") == "z")
    assert z.value == 6 and z.max == 9  # starts on the slice with the most lesion


def test_bad_maps_are_refused_at_the_boundary(static, data, maps):
    with pytest.raises(ValueError, match=r"'map': shape \(6, 1, 16, 16\) does not match the slices"):
        widgets.slice_browser(data, {"map": maps[..., :16, :16]})
    with pytest.raises(ValueError, match="no maps to show"):
        widgets.method_picker(data, {})
    nan_maps = maps.clone()
    nan_maps[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="contains NaN"):
        widgets.threshold_explorer(data, nan_maps)
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        widgets.slice_browser(data, {"map": maps.numpy()})
    with pytest.raises(ValueError, match="same N"):
        widgets.channel_browser(data.images, torch.zeros(5, 3, 8, 8))
    with pytest.raises(ValueError, match=r"mask shape \(3, 3, 3\) does not match image"):
        widgets.volume_browser({"v": (np.zeros((4, 4, 4)), np.zeros((3, 3, 3)))})
    assert plt.get_fignums() == []  # nothing was drawn for refused input


def _controls(panel) -> dict:
    return {c.description: c for c in panel.children if getattr(c, "description", "")}


def test_ssim_terms_explorer_separates_brightness_contrast_and_structure(interactive):
    panel = widgets.ssim_terms_explorer()
    controls = _controls(panel)
    assert set(controls) == {"brightness", "contrast", "noise"}
    assert _suptitle(panel.result).startswith(
        "luminance 1.000 · contrast 1.000 · structure 1.000 → SSIM 1.000")
    patch = widgets.toy_patch()
    controls["brightness"].value = 0.2
    terms = widgets.ssim_terms(patch, widgets.altered_patch(patch, brightness=0.2))
    assert terms["luminance"] < 0.99  # a brightness shift moves the luminance term only
    assert terms["structure"] == pytest.approx(1.0, abs=1e-4)
    assert _suptitle(panel.result).startswith(f"luminance {terms['luminance']:.3f} · contrast 1.000")
    controls["brightness"].value, controls["contrast"].value = 0.0, 0.5
    terms = widgets.ssim_terms(patch, widgets.altered_patch(patch, contrast=0.5))
    assert terms["contrast"] < 0.9 and terms["structure"] == pytest.approx(1.0, abs=1e-4)  # contrast: c only
    controls["contrast"].value, controls["noise"].value = 1.0, 0.2
    terms = widgets.ssim_terms(patch, widgets.altered_patch(patch, noise=0.2))
    assert terms["structure"] < 0.7  # noise destroys structure
    assert f"structure {terms['structure']:.3f}" in _suptitle(panel.result)


def test_data_range_explorer_recomputes_the_feature_ssim_map(interactive, data):
    g = torch.Generator().manual_seed(2)
    feats = 5 * torch.randn(6, 4, 8, 8, generator=g)
    rec = feats + torch.randn(6, 4, 8, 8, generator=g)
    panel = widgets.data_range_explorer(feats, rec, images=data.images, masks=data.masks)
    controls = _controls(panel)
    assert set(controls) == {"data_range", "index"}
    means = {}
    for L in (0.01, 1.0, 100.0):
        controls["data_range"].value = L
        L = controls["data_range"].value
        want = widgets.feature_ssim_anomaly_map(feats[:1], rec[:1], L)
        np.testing.assert_allclose(np.asarray(panel.result.axes[1].images[0].get_array()), want[0, 0].numpy(),
                                   rtol=1e-5)
        means[L] = float(want.mean())
        assert f"mean 1 − SSIM {means[L]:.3f}" in _suptitle(panel.result)
    small, _, large = sorted(means)
    assert means[large] < means[small]  # a large L swamps the statistics: SSIM → 1, the map fades
    with pytest.raises(ValueError, match="one \\(N, C, h, w\\) shape"):
        widgets.data_range_explorer(feats, rec[:, :2])


def test_ncc_window_explorer_uses_the_package_ncc(interactive, data):
    restored = data.images * (1 - data.masks) + 0.5 * data.masks  # the lesion "repaired" to flat grey
    panel = widgets.ncc_window_explorer(data, restored)
    controls = _controls(panel)
    assert controls["index"].value == 2 and controls["window"].value == 11
    from featureae_lite.models.patchsim import patch_similarity_map

    for window in (5, 15):
        controls["window"].value = window
        want = patch_similarity_map(data.images[2:3], restored[2:3], window=window)[0, 0] * data.brains[2, 0]
        shown = np.asarray(panel.result.axes[2].images[0].get_array())
        np.testing.assert_allclose(shown, want.numpy(), rtol=1e-5)
        lesion = data.masks[2, 0] > 0
        assert _suptitle(panel.result).startswith(f"window {window}: mean 1 − NCC in the lesion "
                                                  f"{float(want[lesion].mean()):.3f}")
    with pytest.raises(ValueError, match="window must be odd"):
        widgets.ncc_window_explorer(data, restored, window=4)


def test_new_widgets_draw_one_static_figure_headless(static, data):
    assert widgets.ssim_terms_explorer(brightness=0.1) is None
    assert len(plt.gcf().axes) == 3
    plt.close("all")
    feats = torch.randn(6, 3, 8, 8)
    assert widgets.data_range_explorer(feats, feats + 0.1, images=data.images) is None
    assert plt.gcf().axes[1].get_title() == "1 − SSIM, L = 1"
    plt.close("all")
    assert widgets.ncc_window_explorer(data, data.images) is None
    assert plt.gcf().axes[2].get_title() == "1 − NCC, window 11"


def test_threshold_explorer_draws_the_dice_curve_and_marks_the_three_protocols(interactive, data, maps):
    from featureae_lite.core.metrics import best_dice, dice_at_fpr, dice_curve

    panel = widgets.threshold_explorer(data, maps, val_threshold=0.55)
    controls = _controls(panel)
    assert controls["threshold"].value == pytest.approx(0.55, abs=controls["threshold"].step)  # starts at val
    inside = data.brains > 0
    scores, labels = maps[inside].numpy(), data.masks[inside].numpy() > 0
    curve_ax = panel.result.axes[3]
    (line,) = [ln for ln in curve_ax.get_lines() if len(ln.get_xdata()) > 2]  # the curve, not the marks
    np.testing.assert_allclose(line.get_ydata(), dice_curve(scores, labels, line.get_xdata())[1])
    marks = {ln.get_label().split(":")[0]: ln.get_xdata()[0] for ln in curve_ax.get_lines()
             if len(ln.get_xdata()) == 2}
    assert marks["best (test)"] == pytest.approx(best_dice(scores, labels)[1])
    assert marks["5% FPR"] == pytest.approx(dice_at_fpr(scores, labels, 0.05)[2])
    assert marks["val"] == pytest.approx(0.55)
    best, best_thr = best_dice(scores, labels)
    assert max(line.get_ydata()) == pytest.approx(best)  # the best threshold lies on the drawn curve
    for thr in (0.3, 0.9):  # the slider's mark follows the slider; the curve stays
        controls["threshold"].value = thr
        slider = [ln for ln in panel.result.axes[3].get_lines() if ln.get_label().startswith("slider")]
        assert slider[0].get_xdata()[0] == pytest.approx(controls["threshold"].value)
    with pytest.raises(ValueError, match="no lesion pixel"):  # the healthy slices alone
        widgets.threshold_explorer(data.subset([0, 3, 5]), maps[[0, 3, 5]])


def test_ssim_window_explorer_recomputes_the_map_with_the_package_ssim(interactive, data):
    from featureae_lite.core.ssim import ssim_map

    rec = data.images * (1 - data.masks) + 0.5 * data.masks  # the lesion "reconstructed" as flat grey
    panel = widgets.ssim_window_explorer(data.images[2], rec[2], data.masks[2], data.brains[2])
    controls = _controls(panel)
    assert set(controls) == {"window_size", "k1", "k2"} and controls["window_size"].max == 15
    x, y, brain, lesion = data.images[2, 0], rec[2, 0], data.brains[2, 0] > 0, data.masks[2, 0] > 0
    shown = {}
    for window in (3, 15):
        controls["window_size"].value = window
        sigma = 1.5 * window / 11
        want = (1 - ssim_map(x[None, None], y[None, None], window, sigma))[0, 0] * brain
        got = np.asarray(panel.result.axes[3].images[0].get_array())
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
        shown[window] = got
        assert panel.result.axes[3].get_title() == f"1 − SSIM, window {window}"
        assert f"1 − SSIM: lesion {float(want[lesion].mean()):.3f}" in _suptitle(panel.result)
    assert not np.allclose(shown[3], shown[15])
    controls["k2"].value = 1.0  # a large constant flattens the map
    flat = np.asarray(panel.result.axes[3].images[0].get_array())
    assert flat[brain.numpy()].mean() < shown[15][brain.numpy()].mean()
    residual = np.asarray(panel.result.axes[2].images[0].get_array())  # the l1 residual does not move
    np.testing.assert_allclose(residual, ((x - y).abs() * brain).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="window_size must be odd"):
        widgets.ssim_window_explorer(data.images[2], rec[2], window_size=4)
    with pytest.raises(ValueError, match="differ in shape"):
        widgets.ssim_window_explorer(data.images[2], rec[2, :, :16])


def test_superpixel_explorer_segments_each_setting_once(interactive, data, monkeypatch):
    from featureae_lite.models import superpixels

    calls = []
    real = superpixels.superpixel_image

    def counting(*args, **kw):
        calls.append((kw["n_segments"], kw["compactness"]))
        return real(*args, **kw)

    monkeypatch.setattr(superpixels, "superpixel_image", counting)
    panel = widgets.superpixel_explorer(data.images[2, 0], data.brains[2, 0], data.masks[2, 0], n_segments=20)
    controls = _controls(panel)
    assert set(controls) == {"n_segments", "compactness"}
    shown = {}
    for n in (20, 200, 20):
        controls["n_segments"].value = n
        proxy = np.asarray(panel.result.axes[1].images[0].get_array())
        want = real(data.images[2, 0], data.brains[2, 0], n_segments=n, compactness=0.1)
        np.testing.assert_array_equal(proxy, want)
        error = np.asarray(panel.result.axes[2].images[0].get_array())
        want_error = np.abs(want - data.images[2, 0].numpy()) * data.brains[2, 0].numpy()
        np.testing.assert_allclose(error, want_error, rtol=1e-6)
        regions = len(np.unique(want[data.brains[2, 0].numpy() > 0]))
        assert _suptitle(panel.result).startswith(f"SLIC: {n} segments asked → {regions} superpixels")
        shown[n] = proxy
    assert len(np.unique(shown[200])) > len(np.unique(shown[20]))  # more segments keep more detail
    assert calls == [(20, 0.1), (200, 0.1)]  # the return to 20 was served from the cache
    with pytest.raises(ValueError, match="brain mask is empty"):
        widgets.superpixel_explorer(data.images[2, 0], torch.zeros(32, 32))


def test_channel_browser_reads_the_lesion_contrast_of_the_shown_channel(interactive, data):
    from featureae_lite.course.analysis import lesion_contrast

    g = torch.Generator().manual_seed(3)
    feats = torch.randn(6, 5, 8, 8, generator=g)
    feats[:, 3] += 4 * torch.nn.functional.adaptive_avg_pool2d(data.masks, 8)[:, 0]  # channel 3 sees lesions
    panel = widgets.channel_browser(data, feats, index=2)
    controls = _controls(panel)
    c = lesion_contrast(feats[2:3], data.masks[2:3], data.brains[2:3])
    for channel in (0, 3):
        controls["channel"].value = channel
        rank = int((c.abs() > c[channel].abs()).sum()) + 1
        assert _suptitle(panel.result) == (f"channel {channel}: lesion contrast {float(c[channel]):+.2f} on "
                                           f"this slice (rank {rank} of 5 by |contrast|)")
    assert "rank 1 of 5" in _suptitle(panel.result)
    assert panel.result.axes[0].get_title() == "input (tumor)"
    assert panel.result.axes[1].collections  # the lesion's cells are outlined on the feature grid
    controls["index"].value = 0  # a healthy slice
    assert "no lesion on this slice" in _suptitle(panel.result)
    with pytest.raises(ValueError, match="does not divide the slice size"):
        widgets.channel_browser(data, torch.zeros(6, 2, 7, 7))


def test_the_widgets_leave_the_random_state_alone(static, data, maps):
    """A notebook's later random draws (and so its recorded figures) do not depend on its widgets."""
    legacy, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()  # noqa: NPY002
    feats = torch.arange(6 * 3 * 8 * 8, dtype=torch.float32).reshape(6, 3, 8, 8).sin()
    assert widgets.threshold_explorer(data, maps, val_threshold=0.5) is None
    assert len(plt.gcf().axes) == 4
    x = data.images[2]
    assert widgets.ssim_window_explorer(x, 0.9 * x, data.masks[2], data.brains[2]) is None
    assert plt.gcf().axes[3].get_title() == "1 − SSIM, window 11"
    assert widgets.superpixel_explorer(data.images[2], data.brains[2], data.masks[2]) is None
    assert plt.gcf().axes[1].get_title() == "proxy (superpixel means)"
    assert widgets.channel_browser(data, feats) is None
    assert (np.random.get_state()[1] == legacy).all()  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)
    plt.close("all")


@pytest.fixture
def budget_session(tmp_path, data):
    """A session on the 32-px slices whose patchsim trains 6 steps (snapshots at 1, 2 and 4)."""
    from featureae_lite.core.presets import Preset
    from featureae_lite.course.session import Session

    g = torch.Generator().manual_seed(2)
    brains = torch.zeros(8, 1, 32, 32)
    brains[..., 4:28, 4:28] = 1
    train = Batch(images=torch.rand(8, 1, 32, 32, generator=g) * brains, brains=brains)
    p = Preset(cohort_size="tiny", image_size=32, slice_step=1, name="test",
               budgets={"patchsim": {"steps": 6, "batch_size": 4}})
    return Session(p, 0, str(tmp_path), train, data, data, tmp_path, "cpu")


def test_budget_explorer_measures_each_snapshot_once(interactive, budget_session):
    from featureae_lite.experiments.checkpoints import list_snapshots
    from featureae_lite.experiments.evaluation import evaluate_output
    from featureae_lite.models.registry import load_detector

    S = budget_session
    S.detector("patchsim")  # trains with snapshots: the course model's config
    state = torch.get_rng_state()
    panel = widgets.budget_explorer(S, "patchsim", references={"l1 residual": 0.25})
    step = _controls(panel)["step"]
    assert step.options == (1, 2, 4, 6) and step.value == 1 and not step.continuous_update
    with torch.random.fork_rng():
        snapshot = load_detector(list_snapshots(S.checkpoint("patchsim"))[2])
    want = evaluate_output(snapshot.predict(S.test.images, S.test.brains), S.test, per_type=False,
                           unmasked=False)["pixel_ap"]
    step.value = 2
    assert _suptitle(panel.result) == (f"patchsim after 2 of 6 steps: test pixel AP {want:.3f}; "
                                       "l1 residual 0.250")
    assert [ax.get_title() for ax in panel.result.axes[:3]] == [
        "slice", "map after 2 steps", "restoration after 2 steps"]
    assert list(panel.result.axes[-1].lines[0].get_xdata()) == [1, 2]  # the curve grows as steps are seen
    assert torch.equal(torch.get_rng_state(), state)  # loading snapshots left the random stream alone
    step.value = 6  # the budget: the session's own evaluation
    assert _suptitle(panel.result).startswith(f"patchsim after 6 of 6 steps: test pixel AP "
                                              f"{S.evaluate('patchsim')['pixel_ap']:.3f}")


def test_budget_explorer_static_figure_and_missing_snapshots(static, budget_session, capsys):
    S = budget_session
    assert widgets.budget_explorer(S, "patchsim") is None
    fig = plt.gcf()
    assert len(fig.axes) == 1 + 4 + 4 + 1  # slice, a map and a restoration per step, the curve
    assert list(fig.axes[-1].lines[0].get_xdata()) == [1, 2, 4, 6]
    assert capsys.readouterr().out == ""
    plt.close("all")
    old = S.detector("patchsim", progress=False, batch_size=2, snapshots=False)  # another checkpoint
    assert old.config.batch_size == 2
    assert widgets.budget_explorer(S, "patchsim", batch_size=2) is None
    out = capsys.readouterr().out
    assert "No training snapshots of patchsim" in out and "delete that checkpoint" in out
    assert list(plt.gcf().axes[-1].lines[0].get_xdata()) == [6]
    assert "no snapshots: the final model only" in _suptitle(plt.gcf())
    with pytest.raises(ValueError, match="no training budget"):
        widgets.budget_explorer(S, "threshold")
    with pytest.raises(ValueError, match="index must be between"):
        widgets.budget_explorer(S, "patchsim", index=6)
