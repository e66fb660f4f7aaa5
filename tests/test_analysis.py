"""Measurements used by the notebooks (featureae_lite.analysis)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from featureae_lite.analysis import lesion_contrast


def test_lesion_contrast_matches_the_direct_formula_and_upsamples_in_chunks():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(9, 3, 8, 8, generator=g)
    masks = (torch.rand(9, 1, 32, 32, generator=g) > 0.9).float()
    brains = (torch.rand(9, 1, 32, 32, generator=g) > 0.2).float()
    up = F.interpolate(values, size=(32, 32), mode="bilinear", align_corners=True)
    les, nor = masks.bool().expand_as(up), (brains.bool() & ~masks.bool()).expand_as(up)
    want = torch.stack([(up[:, c][les[:, c]].mean() - up[:, c][nor[:, c]].mean())
                        / up[:, c][nor[:, c]].std(unbiased=False) for c in range(3)])
    torch.testing.assert_close(lesion_contrast(values, masks, brains), want, atol=1e-5, rtol=1e-4)
    assert torch.isnan(lesion_contrast(values, torch.zeros_like(masks), brains)).all()
