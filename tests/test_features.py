"""Frozen feature extractor: shapes, offline weights, frozen but differentiable, clear errors."""

from __future__ import annotations

import time

import pytest
import torch

from featureae_lite.core.features import FeatureExtractor, available_backbones, layer_names


def test_effnet_default_is_offline_pretrained_176_channels():
    fe = FeatureExtractor()
    assert fe.backbone_name == "efficientnet_lite0" and fe.out_channels == 176
    assert fe.strides == (4, 8, 16)
    x = torch.rand(2, 1, 64, 64)
    out = fe(x)
    assert out.shape == (2, 176, 16, 16)
    untrained = FeatureExtractor(pretrained=False)
    assert not torch.allclose(untrained(x), out)


def test_resnet18_paper_layers_give_256_channels_at_quarter_resolution():
    fe = FeatureExtractor("resnet18", pretrained=False)
    assert fe.layers == ("layer0", "layer1", "layer2") and fe.out_channels == 256
    assert fe(torch.rand(1, 1, 128, 128)).shape == (1, 256, 32, 32)
    assert FeatureExtractor("resnet18", ("layer1", "layer2"), pretrained=False).out_channels == 192


def test_frozen_eval_but_gradient_reaches_input():
    fe = FeatureExtractor(pretrained=False)
    assert not any(p.requires_grad for p in fe.parameters())
    fe.train()
    assert not fe.net.training
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    fe(x).pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_untrained_is_deterministic():
    x = torch.rand(1, 1, 64, 64)
    a = FeatureExtractor("resnet18", pretrained=False)(x)
    b = FeatureExtractor("resnet18", pretrained=False)(x)
    assert torch.equal(a, b)


def test_resnet18_pretrained_without_cached_weights_fails_fast_and_clearly():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="needs internet once.*efficientnet_lite0"):
        FeatureExtractor("resnet18", pretrained=True)
    assert time.perf_counter() - start < 10


def test_bad_names_and_shapes():
    assert available_backbones() == ["efficientnet_lite0", "resnet18"]
    assert layer_names("resnet18")[0] == "layer0"
    with pytest.raises(ValueError, match="unknown backbone .vgg.; known backbones: efficientnet_lite0"):
        FeatureExtractor("vgg")
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['layer9'\]"):
        FeatureExtractor("resnet18", ("layer9",), pretrained=False)
    fe = FeatureExtractor(pretrained=False)
    with pytest.raises(ValueError, match=r"grey slices \(N, 1, H, W\), got \(1, 3, 64, 64\)"):
        fe(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="divisible by 32"):
        fe(torch.rand(1, 1, 60, 60))


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_folded_batchnorm_gives_the_same_features(backbone, monkeypatch):
    import featureae_lite.core.features as features

    x = torch.rand(2, 1, 64, 64)
    folded = FeatureExtractor(backbone, pretrained=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    monkeypatch.setattr(features, "_fold_batchnorm", lambda net, backbone: None)
    features._folded_weights.cache_clear()  # the cache holds folded weights
    try:
        plain = FeatureExtractor(backbone, pretrained=False)
    finally:
        monkeypatch.undo()
        features._folded_weights.cache_clear()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    torch.testing.assert_close(folded(x), plain(x), atol=1e-4, rtol=1e-4)


def test_two_detectors_own_their_backbones():
    """Moving one detector to another dtype (or device) leaves the other's backbone as it was."""
    from featureae_lite.models.registry import create_detector

    a = create_detector("fae", image_size=64, pretrained=False)
    b = create_detector("fae", image_size=64, pretrained=False)
    pa, pb = next(a.extractor.parameters()), next(b.extractor.parameters())
    assert a.extractor is not b.extractor and pa.data_ptr() != pb.data_ptr()
    assert torch.equal(pa, pb)  # the same cached weights, copied into each
    a.to(torch.bfloat16)
    assert next(a.extractor.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in b.extractor.parameters())
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(b.extractor(x), FeatureExtractor(pretrained=False)(x), rtol=0, atol=0)


def test_local_resnet18_weights_load_offline_and_bad_files_are_named(tmp_path):
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torchvision.models import resnet18

    from featureae_lite.models.registry import create_detector

    net = resnet18(weights=None)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(net.state_dict(), path)
    det = create_detector("fae", backbone="resnet18", weights_path=str(path), image_size=64)
    folded = fuse_conv_bn_eval(net.eval().conv1, net.bn1)  # the local file's weights, folded
    assert torch.equal(det.extractor.net.conv1.weight, folded.weight)
    (tmp_path / "other.pth").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="other.pth: not a ResNet18 state dict"):
        create_detector("dpa", backbone="resnet18", weights_path=str(tmp_path / "other.pth"),
                        layers=("layer0", "layer1"), image_size=64)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_layer_table_matches_the_extractor(backbone):
    from featureae_lite.core.features import layer_table

    rows = layer_table(backbone)
    layers = tuple(r["layer"] for r in rows)
    ext = FeatureExtractor(backbone=backbone, layers=layers, pretrained=False)
    assert ext.layer_channels == tuple(r["channels"] for r in rows)
    assert ext.strides == tuple(r["stride"] for r in rows)
