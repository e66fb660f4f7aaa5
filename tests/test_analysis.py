"""Measurements used by the notebooks (featureae_lite.course.analysis)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from featureae_lite.course.analysis import domain_shifts, gradient_magnitude, lesion_contrast


def test_lesion_contrast_matches_the_direct_formula_and_weights_feature_cells():
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(9, 1, 32, 32, generator=g) > 0.9).float()
    brains = (torch.rand(9, 1, 32, 32, generator=g) > 0.2).float()
    images = torch.rand(9, 1, 32, 32, generator=g)
    les, nor = masks.bool(), brains.bool() & ~masks.bool()
    want = (images[les].mean() - images[nor].mean()) / images[nor].std(unbiased=False)
    torch.testing.assert_close(lesion_contrast(images, masks, brains), want.view(1), atol=1e-5, rtol=1e-4)
    # a feature map constant on 4x4 cells equals its nearest-upsampled image at full resolution
    values = torch.rand(9, 3, 8, 8, generator=g)
    up = F.interpolate(values, size=(32, 32), mode="nearest")
    les, nor = les.expand_as(up), nor.expand_as(up)
    want = torch.stack([(up[:, c][les[:, c]].mean() - up[:, c][nor[:, c]].mean())
                        / up[:, c][nor[:, c]].std(unbiased=False) for c in range(3)])
    torch.testing.assert_close(lesion_contrast(values, masks, brains), want, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="does not divide"):
        lesion_contrast(torch.rand(9, 3, 7, 7), masks, brains)
    assert torch.isnan(lesion_contrast(values, torch.zeros_like(masks), brains)).all()


def test_domain_shifts_are_masked_seeded_and_do_what_they_say():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 24, 24, generator=g)
    brains = torch.zeros_like(images)
    brains[..., 2:22, 2:22] = 1
    images = images * brains
    shifts = domain_shifts(images, brains, seed=1)
    assert list(shifts) == ["gamma 0.7", "noise σ=0.05", "blur σ=1 px"]
    inside = brains > 0
    for x in shifts.values():
        assert x.shape == images.shape and x.min() >= 0 and x.max() <= 1
        assert not x[~inside].any()
    assert (shifts["gamma 0.7"][inside] >= images[inside]).all()  # mid-tones brighter
    noise = (shifts["noise σ=0.05"] - images)[inside]
    assert 0.03 < float(noise.std()) < 0.06
    torch.testing.assert_close(domain_shifts(images, brains, seed=1)["noise σ=0.05"], shifts["noise σ=0.05"])
    core = brains.clone()
    core[..., :5, :] = core[..., -5:, :] = core[..., :, :5] = core[..., :, -5:] = 0
    blur_grad = gradient_magnitude(shifts["blur σ=1 px"])[core > 0].mean()
    assert blur_grad < 0.6 * gradient_magnitude(images)[core > 0].mean()
