"""Detector interface, every method on toy slices, save/load, reproducibility, bad inputs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from featureae_lite.core.maps import image_scores
from featureae_lite.core.metrics import average_precision
from featureae_lite.data.batch import Batch
from featureae_lite.experiments.checkpoints import train_or_load
from featureae_lite.experiments.evaluation import evaluate
from featureae_lite.models.fae import FeatureAutoencoder
from featureae_lite.models.registry import available_methods, create_detector, get_method, load_detector

SIZE = 64
FAST = {"image_size": SIZE, "steps": 4, "batch_size": 8}
METHOD_OPTIONS = {"fae": {"pretrained": False}}


def toy_slices(n: int, seed: int, blob: bool = False) -> Batch:
    """Elliptic 'brains' with a smooth texture; optionally a bright disc (the lesion)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    images, masks, brains = [], [], []
    for _ in range(n):
        a, b = 0.75 + 0.1 * torch.rand(2, generator=g)
        brain = ((xx / a) ** 2 + (yy / b) ** 2 <= 1).float()
        phase = torch.rand(2, generator=g) * 6.28
        tex = 0.45 + 0.15 * torch.sin(6 * xx + phase[0]) * torch.cos(5 * yy + phase[1])
        img = (tex + 0.02 * torch.randn(SIZE, SIZE, generator=g)) * brain
        mask = torch.zeros(SIZE, SIZE)
        if blob:
            cx, cy = (torch.rand(2, generator=g) - 0.5) * 0.8
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= 0.12**2).float() * brain
            img = torch.where(mask > 0, torch.full_like(img, 0.95), img)
        images.append(img.clamp(0, 1))
        masks.append(mask)
        brains.append(brain)
    stack = lambda xs: torch.stack(xs)[:, None]  # noqa: E731
    kind = "tumor" if blob else "healthy"
    return Batch(images=stack(images), masks=stack(masks), brains=stack(brains),
                 subject_ids=[f"s{i}" for i in range(n)], anomaly_types=[kind] * n,
                 slice_indices=list(range(n)))


@pytest.fixture(scope="module")
def toy():
    test = toy_slices(6, 1, blob=True)
    healthy = toy_slices(4, 2)
    merged = Batch.concat([test, healthy])
    merged.subject_ids = test.subject_ids + ["h"] * 4
    return {"train": toy_slices(24, 0), "val": toy_slices(4, 3, blob=True), "test": merged}


def test_registry_lists_core_methods_and_rejects_unknown():
    assert {"random", "threshold", "ae_l1", "vae", "ae_ssim", "fae"} <= set(available_methods())
    with pytest.raises(ValueError, match="unknown method 'nope'; known methods: .*fae"):
        get_method("nope")
    with pytest.raises(ValueError, match="unknown config option"):
        create_detector("ae_l1", not_an_option=3)


@pytest.mark.parametrize("method", ["random", "threshold", "ae_l1", "vae", "ae_ssim", "fae"])
def test_fit_predict_shapes_and_save_load(method, toy, tmp_path):
    det = create_detector(method, **FAST, **METHOD_OPTIONS.get(method, {}))
    det.fit(toy["train"], toy["val"], progress=False)
    out = det.predict(toy["test"].images, toy["test"].brains)
    n = len(toy["test"])
    assert out.maps.shape == (n, 1, SIZE, SIZE) and out.scores.shape == (n,)
    assert torch.isfinite(out.maps).all() and torch.isfinite(out.scores).all()
    assert (out.maps[toy["test"].brains == 0] == 0).all(), "maps are brain-masked by default"
    path = det.save(tmp_path / f"{method}.pt")
    again = load_detector(path).predict(toy["test"].images, toy["test"].brains)
    torch.testing.assert_close(again.maps, out.maps)
    torch.testing.assert_close(again.scores, out.scores)


@pytest.mark.parametrize("method", ["ae_l1", "fae"])
def test_seeded_training_is_reproducible(method, toy):
    runs = []
    for _ in range(2):
        det = create_detector(method, **FAST, **METHOD_OPTIONS.get(method, {}))
        det.fit(toy["train"], progress=False)
        runs.append((det.history["train_loss"], det.predict(toy["test"].images).maps))
    assert runs[0][0] == runs[1][0]
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=0)
    other = create_detector(method, **{**FAST, "seed": 1}, **METHOD_OPTIONS.get(method, {}))
    other.fit(toy["train"], progress=False)
    assert other.history["train_loss"] != runs[0][0]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["threshold", "ae_l1"])
def test_planted_bright_blob_is_found(method, toy):
    det = create_detector(method, image_size=SIZE, steps=300, batch_size=8, lr=2e-3)
    det.fit(toy["train"], progress=False)
    test = toy["test"]
    maps = det.predict(test.images, test.brains).maps
    inside = test.brains > 0
    ap = average_precision(maps[inside].numpy(), test.masks[inside].numpy() > 0)
    prevalence = float(test.masks[inside].mean())
    assert ap > 4 * prevalence, f"{method}: pixel AP {ap:.3f} vs prevalence {prevalence:.3f}"
    res = evaluate(det, test, toy["val"])
    assert res["pixel_ap"] == pytest.approx(ap, abs=1e-6)
    assert set(res["per_type"]) == {"tumor"}
    assert 0 <= res["dice_at_threshold"] <= 1


def test_fae_architecture_matches_reference():
    net = FeatureAutoencoder(256)
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [100, 150, 200, 300, 300]
    assert all(c.kernel_size == (5, 5) and c.bias is None for c in convs)
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    deconvs = [m for m in net.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [200, 150, 100, 256]
    assert all(d.kernel_size == (6, 6) and d.stride == (2, 2) for d in deconvs)
    drops = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout2d)]
    assert drops == [0.1] * 8
    n_params = sum(p.numel() for p in net.parameters())
    assert math.isclose(n_params, 10.3e6, rel_tol=0.02), n_params
    x = torch.randn(2, 256, 32, 32)
    assert net(x).shape == x.shape


def test_fae_default_uses_offline_backbone_and_keeps_it_out_of_checkpoint():
    det = create_detector("fae", image_size=SIZE)
    assert det.config.backbone == "efficientnet_lite0" and det.config.pretrained
    assert not any(k.startswith("extractor") for k in det.state_dict())
    batch = det.prepare(Batch.of(torch.rand(2, 1, SIZE, SIZE)))
    assert batch.cached.shape == (2, det.extractor.out_channels, SIZE // 4, SIZE // 4)
    assert torch.equal(batch.cached, det.features(batch.images))
    assert create_detector("fae", image_size=SIZE).extractor is not det.extractor  # each owns its backbone


def test_bad_inputs_give_clear_errors(toy, tmp_path):
    det = create_detector("ae_l1", **FAST)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 1, 64, 64\), got \(2, 1, 32, 32\)"):
        det.predict(torch.rand(2, 1, 32, 32))
    bad = torch.rand(2, 1, SIZE, SIZE)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        det.predict(bad)
    with pytest.raises(ValueError, match="brain mask shape"):
        det.predict(torch.rand(2, 1, SIZE, SIZE), torch.ones(3, 1, SIZE, SIZE))
    path = det.save(tmp_path / "ae.pt")
    with pytest.raises(ValueError, match="does not match"):
        load_detector(path, expect={"method": "ae_l1", "latent_dim": 7})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a featureae_lite checkpoint"):
        load_detector(junk)
    with pytest.raises(FileNotFoundError):
        load_detector(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="score must be"):
        create_detector("ae_l1", score="median")
    with pytest.raises(ValueError, match="no anomalous pixel"):
        evaluate(det, toy["train"])


def test_train_or_load_reuses_matching_checkpoint(toy, tmp_path):
    first = train_or_load("ae_l1", toy["train"], checkpoint_dir=tmp_path, progress=False, **FAST)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    second = train_or_load("ae_l1", toy["train"], checkpoint_dir=tmp_path, progress=False, **FAST)
    assert second.history["train_loss"] == first.history["train_loss"]
    train_or_load("ae_l1", toy["train"], checkpoint_dir=tmp_path, progress=False,
                  **{**FAST, "latent_dim": 32})
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_train_or_load_retrains_when_the_code_changes(toy, tmp_path, monkeypatch):
    from featureae_lite.experiments import checkpoints

    train_or_load("ae_l1", toy["train"], checkpoint_dir=tmp_path, progress=False, **FAST)
    assert len(checkpoints.code_fingerprint()) == 10
    monkeypatch.setattr(checkpoints, "code_fingerprint", lambda: "other-code")
    train_or_load("ae_l1", toy["train"], checkpoint_dir=tmp_path, progress=False, **FAST)
    assert len(list(tmp_path.glob("*.pt"))) == 2  # a checkpoint of other code is not reused


SNAPSHOT_RUN = {"image_size": SIZE, "steps": 12, "batch_size": 8}


def _trained(method, toy, folder, snapshots, **config):
    """train_or_load with a fresh checkpoint folder; returns the detector, its checkpoint file and the
    global random state after the training."""
    from featureae_lite.experiments.checkpoints import checkpoint_file

    cfg = {**SNAPSHOT_RUN, **METHOD_OPTIONS.get(method, {}), **config}
    det = train_or_load(method, toy["train"], toy["val"], checkpoint_dir=folder, progress=False,
                        snapshots=snapshots, **cfg)
    return det, checkpoint_file(method, toy["train"], folder, **cfg), torch.get_rng_state()


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["patchsim", pytest.param("fae", marks=pytest.mark.slow)])
def test_training_snapshots_leave_the_trained_model_bit_identical(toy, tmp_path, method):
    # patchsim's loss draws its corruptions from the global random stream (in the validation loss
    # too), FAE's dropout draws in training: saving a snapshot must draw nothing and add no pass
    from featureae_lite.experiments.checkpoints import list_snapshots, snapshot_folder, snapshot_steps

    with_, path, rng_with = _trained(method, toy, tmp_path / "with", True)
    without, plain_path, rng_without = _trained(method, toy, tmp_path / "without", False)
    assert path.name == plain_path.name  # snapshots are no part of the key
    assert _same_weights(with_.state_dict(), without.state_dict())
    assert _same_weights(torch.load(path)["state_dict"], torch.load(plain_path)["state_dict"])
    for key in ("train_loss", "val_loss", "val_step"):
        assert with_.history[key] == without.history[key], key
    assert torch.equal(rng_with, rng_without)  # as many random numbers drawn
    assert snapshot_steps(12) == [1, 2, 4, 8]
    assert list(list_snapshots(path)) == [1, 2, 4, 8]
    assert not snapshot_folder(plain_path).exists()
    assert "loss" not in vars(with_)  # the counting hook is gone


def test_a_snapshot_is_the_model_a_shorter_run_trains(toy, tmp_path):
    from featureae_lite.experiments.checkpoints import list_snapshots

    _, path, _ = _trained("patchsim", toy, tmp_path / "long", True)
    snapshot = load_detector(list_snapshots(path)[4], expect={"method": "patchsim"})
    assert torch.load(list_snapshots(path)[4])["step"] == 4
    short, _, _ = _trained("patchsim", toy, tmp_path / "short", False, steps=4)
    assert _same_weights(snapshot.state_dict(), short.state_dict())  # constant learning rate


def test_a_checkpoint_without_snapshots_is_loaded_not_retrained(toy, tmp_path):
    from featureae_lite.experiments.checkpoints import list_snapshots, snapshot_steps

    first, path, _ = _trained("ae_l1", toy, tmp_path, False)
    stamp = path.stat().st_mtime_ns
    again, _, _ = _trained("ae_l1", toy, tmp_path, True)
    assert path.stat().st_mtime_ns == stamp and again.history == first.history
    assert list_snapshots(path) == {}
    assert snapshot_steps(1) == [] and snapshot_steps(3) == [1, 2]


def test_image_score_rules():
    maps = torch.zeros(1, 1, 10, 10)
    maps[0, 0, :, :] = torch.arange(100.0).view(10, 10)
    brains = torch.ones_like(maps)
    assert image_scores(maps, brains, "max").item() == 99
    top = image_scores(maps, brains, "top10_mean").item()
    assert top == pytest.approx(np.mean(np.arange(90, 100)), abs=0.6)
    brains[0, 0, 5:] = 0
    assert image_scores(maps, brains, "max").item() == 49


def test_top_fraction_scores_span_max_top10_and_mean():
    from featureae_lite.core.maps import top_fraction_scores

    g = torch.Generator().manual_seed(0)
    maps = torch.rand(4, 1, 12, 12, generator=g)
    brains = (torch.rand(4, 1, 12, 12, generator=g) < 0.7).float()
    brains[1] = 0  # no brain pixel: score 0, as image_scores
    assert torch.equal(top_fraction_scores(maps, brains, 1e-6), image_scores(maps, brains, "max"))
    assert torch.allclose(top_fraction_scores(maps, brains, 0.1), image_scores(maps, brains), atol=1e-6)
    means = [m[b > 0].mean() if b.any() else torch.tensor(0.0) for m, b in zip(maps, brains, strict=True)]
    assert torch.allclose(top_fraction_scores(maps, brains, 1.0), torch.stack(means))
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_scores(maps, brains, 0.0)


def test_evaluate_output_of_raw_maps_matches_evaluate(toy):
    from featureae_lite.experiments.evaluation import evaluate_output, output_from_maps

    det = create_detector("threshold", image_size=SIZE)
    test = toy["test"]
    res = evaluate(det, test)
    again = evaluate_output(output_from_maps(det.anomaly_map(Batch.of(test)), test.brains), test)
    for key in ("pixel_ap", "pixel_auroc", "best_dice", "sample_auroc"):
        assert again[key] == pytest.approx(res[key], abs=1e-9, nan_ok=True)
    assert again["per_type"].keys() == res["per_type"].keys()
    # per type = that type's slices plus the healthy ones; unmasked = every pixel (one sort for all)
    from featureae_lite.core.metrics import pixel_and_sample_metrics

    out = det.predict(test.images, test.brains)
    want_tumor = pixel_and_sample_metrics(out.maps, test.masks, test.brains, out.scores)
    want_unmasked = pixel_and_sample_metrics(out.maps, test.masks, None, out.scores)
    assert res["per_type"]["tumor"] == pytest.approx(want_tumor, abs=1e-12, nan_ok=True)
    assert res["unmasked"] == pytest.approx(want_unmasked, abs=1e-12, nan_ok=True)
    types = ["stroke"] * 3 + ["tumor"] * 3 + ["healthy"] * 4
    relabelled = dataclasses.replace(test, anomaly_types=types)
    two_types = evaluate_output(out, relabelled, threshold=0.5)
    for kind, rows in (("stroke", [0, 1, 2, 6, 7, 8, 9]), ("tumor", [3, 4, 5, 6, 7, 8, 9])):
        want = pixel_and_sample_metrics(out.maps[rows], test.masks[rows], test.brains[rows], out.scores[rows],
                                        threshold=0.5)
        assert two_types["per_type"][kind] == pytest.approx(want, abs=1e-12, nan_ok=True)
    with pytest.raises(ValueError, match="do not match"):
        evaluate_output(output_from_maps(det.anomaly_map(Batch.of(test)[:1]), test.brains[:1]), test)


def test_methods_see_the_real_brain_masks_and_frozen_helpers_stay_out_of_checkpoints():
    images = torch.rand(2, 1, SIZE, SIZE)
    brains = torch.zeros_like(images)
    brains[..., 8:56, 8:56] = 1  # a brain smaller than the non-zero support of the images
    proxy = create_detector("proxyano", image_size=SIZE)
    sis = proxy.prepare(Batch(images=images, brains=brains)).cached
    assert sis[brains == 0].abs().max() == 0 and sis[brains > 0].abs().max() > 0
    dpa = create_detector("dpa", image_size=SIZE)
    state = dpa.state_dict()
    assert state and not any(k.startswith("extractor.") for k in state)
    missing = dict(state)
    missing.pop(next(iter(missing)))
    with pytest.raises(RuntimeError, match="missing keys"):
        dpa.load_state_dict(missing)
