"""The three seed-paper methods: DPA, ProxyAno and the AREPAS-style patch-similarity detector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_models import SIZE, toy_slices

from featureae_lite.data.batch import Batch
from featureae_lite.experiments import tuning
from featureae_lite.models import dpa, patchsim, proxyano  # noqa: F401  (registers the methods)
from featureae_lite.models.patchsim import patch_similarity_map
from featureae_lite.models.proxyano import MemoryModule
from featureae_lite.models.registry import create_detector, load_detector
from featureae_lite.models.superpixels import paste_pseudo_anomaly, superpixel_image

FAST = {"image_size": SIZE, "steps": 3, "batch_size": 8}
OPTIONS = {"dpa": {"pretrained": False}, "proxyano": {"n_segments": 40}, "patchsim": {}}
METHODS = list(OPTIONS)


@pytest.fixture(scope="module")
def toy():
    return {"train": toy_slices(16, 0), "test": toy_slices(4, 1, blob=True)}


@pytest.mark.parametrize("method", METHODS)
def test_fit_predict_save_load_and_reproducible(method, toy, tmp_path):
    det = create_detector(method, **FAST, **OPTIONS[method])
    assert det.name == method
    det.fit(toy["train"], progress=False)
    test = toy["test"]
    out = det.predict(test.images, test.brains)
    assert out.maps.shape == (4, 1, SIZE, SIZE) and out.scores.shape == (4,)
    assert torch.isfinite(out.maps).all() and torch.isfinite(out.scores).all()
    again = load_detector(det.save(tmp_path / "m.pt")).predict(test.images, test.brains)
    torch.testing.assert_close(again.maps, out.maps)
    torch.testing.assert_close(again.scores, out.scores)
    twin = create_detector(method, **FAST, **OPTIONS[method]).fit(toy["train"], progress=False)
    assert twin.history["train_loss"] == det.history["train_loss"]
    torch.testing.assert_close(twin.predict(test.images, test.brains).maps, out.maps)


# -- ProxyAno ------------------------------------------------------------------------------------
def test_superpixel_image_is_piecewise_constant_and_zero_outside_brain(toy):
    from skimage.segmentation import slic

    img, brain = toy["train"].images[0, 0].numpy(), toy["train"].brains[0, 0].numpy()
    si = superpixel_image(img, brain, n_segments=40, compactness=0.1)
    assert si.shape == img.shape and np.all(si[brain == 0] == 0)
    labels = slic(img.astype(np.float64), n_segments=40, compactness=0.1, mask=brain > 0,
                  channel_axis=None, start_label=1)
    assert labels.max() > 5
    for k in range(1, labels.max() + 1):
        vals = si[labels == k]
        if vals.size:
            assert np.ptp(vals) == 0
            assert vals[0] == pytest.approx(img[labels == k].mean(), abs=1e-5)


def test_superpixel_images_segments_the_same_slices_once(toy, monkeypatch):
    from featureae_lite.models import superpixels

    images, brains = toy["train"].images[:3], toy["train"].brains[:3]
    first = superpixels.superpixel_images(images, brains, n_segments=30)
    calls = []
    monkeypatch.setattr(superpixels, "superpixel_image", lambda *a: calls.append(a) or np.zeros((1, 1)))
    again = superpixels.superpixel_images(images.clone(), brains, n_segments=30)
    assert calls == [] and torch.equal(again, first)
    again[0] += 1  # callers get a copy: the cache is not modified through it
    assert torch.equal(superpixels.superpixel_images(images, brains, n_segments=30), first)
    superpixels.superpixel_images(images[:2] + 0.01, brains[:2], n_segments=30)  # other slices
    assert len(calls) == 2


def test_memory_readout_is_a_convex_combination():
    for shrink in (0.0, 0.02):
        mem = MemoryModule(num_slots=10, dim=6, temperature=0.5, shrink_threshold=shrink)
        out, w = mem(torch.randn(2, 6, 3, 3))
        assert out.shape == (2, 6, 3, 3) and w.shape == (2, 3, 3, 10)
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 3))
        torch.testing.assert_close(out, torch.einsum("nhwm,md->ndhw", w, mem.memory))


def test_proxyano_bottleneck_is_dense_by_default_and_spatial_on_request():
    x = torch.rand(3, 1, 64, 64)
    dense = create_detector("proxyano", image_size=64, n_segments=40)
    assert dense.pem.latent(x).shape == (3, dense.config.latent_dim, 1, 1)  # one read-out per slice
    assert not dense.irm.dense  # the IRM keeps its spatial bottleneck (dense_irm=False)
    spatial = create_detector("proxyano", image_size=64, n_segments=40, latent_dim=0)
    assert spatial.pem.latent(x).shape == (3, 64, 4, 4)  # the first version: 16 read-outs per slice
    for det in (dense, spatial):
        assert det.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="pseudo_on must be one of proxy, input, both"):
        create_detector("proxyano", image_size=64, pseudo_on="everywhere")


def test_proxyano_entropy_loss_is_the_mean_entropy_of_the_read_out_weights(toy):
    det = create_detector("proxyano", image_size=SIZE, n_segments=40, entropy_weight=0.5)
    batch = det.prepare(Batch.of(toy["train"])[:4])
    det.train()
    loss = det.loss(batch)
    w = det.pem.memory.last_weights
    assert w.shape == (4, det.config.memory_slots)
    torch.testing.assert_close(det.pem.memory.entropy(), -(w * torch.log(w + 1e-12)).sum(1).mean())
    assert torch.isfinite(loss)
    assert 0 < float(det.pem.memory.entropy().detach()) <= math.log(det.config.memory_slots) + 1e-5


def test_pseudo_anomaly_changes_only_the_pasted_region():
    g = torch.Generator().manual_seed(0)
    si = torch.rand(32, 32) * 0.5 + 0.1
    brain = torch.zeros(32, 32, dtype=torch.bool)
    brain[4:28, 4:28] = True
    si = si * brain
    donor = torch.full((32, 32), 0.9)
    out, patch = paste_pseudo_anomaly(si, donor, g, brain, min_size=6, max_size=10)
    assert patch.any() and not (patch & ~brain).any()
    assert torch.equal(out[~patch], si[~patch])
    assert torch.all(out[patch] == 0.9)


# -- patch similarity ----------------------------------------------------------------------------
def _textured(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    return (0.5 + 0.2 * torch.sin(25 * xx) * torch.cos(19 * yy) + 0.02 * torch.randn(64, 64, generator=g))[
        None, None
    ]


@pytest.mark.parametrize("similarity", ["ncc", "ssim"])
def test_patch_similarity_zero_for_identical_and_high_in_a_structural_change(similarity):
    x = _textured()
    assert patch_similarity_map(x, x, similarity=similarity).abs().max() < 1e-4
    flat = torch.zeros(1, 1, 64, 64)  # two flat patches are similar
    assert patch_similarity_map(flat, flat, similarity=similarity).abs().max() < 1e-4
    y = x.clone()
    patch = y[..., 20:44, 20:44]
    y[..., 20:44, 20:44] = patch.flip(-1).transpose(-1, -2)  # rotated: same mean/std, new structure
    shuffled = x.clone()
    g = torch.Generator().manual_seed(1)
    shuffled[..., 20:44, 20:44] = patch.flatten()[torch.randperm(patch.numel(), generator=g)].view_as(patch)
    for changed in (y, shuffled):
        m = patch_similarity_map(x, changed, window=7, similarity=similarity)
        assert m.shape == (1, 1, 64, 64)
        inside, outside = m[..., 24:40, 24:40].mean(), m[..., :10, :].mean()
        assert inside > 0.3 and outside < 0.05


def test_patch_similarity_feature_cosine_and_residual_ablation(toy):
    x = toy["test"].images[:2]
    from featureae_lite.core.features import FeatureExtractor

    ext = FeatureExtractor(pretrained=False)
    assert patch_similarity_map(x, x, similarity="feature_cosine", extractor=ext).abs().max() < 1e-4
    m = patch_similarity_map(x, x.flip(-1), similarity="feature_cosine", extractor=ext)
    assert m.shape == (2, 1, SIZE, SIZE) and m.max() > 0.01
    det = create_detector("patchsim", image_size=SIZE, score_map="residual")
    torch.testing.assert_close(det.anomaly_map(Batch.of(x)), (x - det.restore(x)).abs())
    with pytest.raises(ValueError, match="similarity"):
        create_detector("patchsim", image_size=SIZE, similarity="nope")


# -- DPA -----------------------------------------------------------------------------------------
def test_relative_perceptual_loss_zero_for_identical_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    fx, fy = torch.randn(3, 5, 4, 4, generator=g), torch.randn(3, 5, 4, 4, generator=g)
    loss = dpa.relative_perceptual_loss
    torch.testing.assert_close(loss(fx, fx), torch.zeros(3))
    torch.testing.assert_close(loss(3.7 * fx, 3.7 * fy), loss(fx, fy))
    assert loss(fx, fy).shape == (3,) and (loss(fx, fy) > 0).all()
    fx.requires_grad_(True)
    loss(fx, fy).sum().backward()  # the denominator is detached: only the numerator's gradient
    den = fx.detach().abs().flatten(1).mean(1).view(-1, 1, 1, 1)
    expected = torch.sign(fx - fy).detach() / (den * fx[0].numel())
    torch.testing.assert_close(fx.grad, expected)


def test_select_hyperparameters_uses_val_only(toy, monkeypatch):
    import inspect

    params = list(inspect.signature(tuning.select_hyperparameters).parameters)
    assert params[:2] == ["train", "val"] and "test" not in params
    val = toy_slices(6, 3, blob=True)
    healthy = toy_slices(4, 4)
    from featureae_lite.data import Batch

    val = Batch.concat([val, healthy])
    best, table = tuning.select_hyperparameters(
        toy["train"], val, {"latent_dim": [8, 16]}, steps=2, image_size=SIZE, batch_size=8, pretrained=False
    )
    assert [row["latent_dim"] for row in table] == [8, 16]
    values = [row["sample_auroc"] for row in table]
    chosen = best.config.latent_dim
    assert chosen == table[int(np.nanargmax(values))]["latent_dim"]
