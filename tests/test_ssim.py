"""SSIM maps against scikit-image, gradients, components, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from featureae_lite.core import ssim as ssim_module
from featureae_lite.core.maps import gaussian_window
from featureae_lite.core.ssim import ssim_components, ssim_loss, ssim_map


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = np.clip(a + 0.2 * rng.standard_normal(shape), 0, 1)
    return a, b


@pytest.mark.parametrize("data_range", [1.0, 4.0])
def test_matches_skimage_on_interior_pixels(data_range):
    a, b = _pair((48, 40))
    a, b = a * data_range, b * data_range
    _, ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=data_range, full=True)
    ours = ssim_map(torch.tensor(a)[None, None], torch.tensor(b)[None, None], data_range=data_range)
    np.testing.assert_allclose(ours[0, 0, 5:-5, 5:-5].numpy(), ref[5:-5, 5:-5], atol=1e-4)


def test_matches_skimage_per_channel_for_many_channels():
    a, b = _pair((7, 32, 32), seed=1)
    _, ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=1.0, full=True, channel_axis=0)
    ours = ssim_map(torch.tensor(a, dtype=torch.float32)[None], torch.tensor(b, dtype=torch.float32)[None])
    assert ours.shape == (1, 7, 32, 32)
    np.testing.assert_allclose(ours[0, :, 5:-5, 5:-5].numpy(), ref[:, 5:-5, 5:-5], atol=1e-4)


def test_identical_inputs_give_one():
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(ssim_map(x, x, window_size=5), torch.ones_like(x), atol=1e-5, rtol=0)


def test_components_multiply_to_ssim():
    x, y = torch.rand(1, 2, 20, 20), torch.rand(1, 2, 20, 20)
    lum, con, struc = ssim_components(x, y)
    torch.testing.assert_close(lum * con * struc, ssim_map(x, y), atol=1e-4, rtol=1e-4)


def test_gradient_flows():
    x = torch.rand(1, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 12, 12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: ssim_map(a, y, window_size=5), (x,))


def test_window_is_normalised_gaussian():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and g.sum().item() == pytest.approx(1.0) and g.argmax().item() == 5


def test_bad_inputs():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"x has shape \(16, 16\) but SSIM expects \(N, C, H, W\)"):
        ssim_map(x[0, 0], x[0, 0])
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_map(x, torch.rand(1, 1, 16, 15))
    with pytest.raises(ValueError, match="odd"):
        ssim_map(x, x, window_size=4)
    with pytest.raises(ValueError, match="exceeds"):
        ssim_map(x, x, window_size=17)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="input x contains NaN"):
        ssim_map(bad, x)
    bad[0, 0, 0, 0] = -float("inf")
    with pytest.raises(ValueError, match="input y contains NaN or infinite"):
        ssim_loss(x, bad)
    with pytest.raises(ValueError, match="floating"):
        ssim_map(x.long(), x.long())


def test_finite_values_whose_sum_overflows_are_accepted():
    x = torch.full((1, 1, 16, 16), 3e38)
    assert not torch.isfinite(x.sum())
    assert ssim_map(x, x).shape == x.shape


@pytest.mark.parametrize("chunk_elements", [ssim_module.CHUNK_ELEMENTS, 3 * 8 * 16 * 16])
def test_ssim_loss_is_one_minus_the_mean_of_the_map_with_the_same_gradient(monkeypatch, chunk_elements):
    # 7 samples in chunks of 3 (3, 3, 1) as well as in one chunk
    monkeypatch.setattr(ssim_module, "CHUNK_ELEMENTS", chunk_elements)
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(7, 8, 16, 16, generator=gen) * 4
    x0 = y + torch.randn(7, 8, 16, 16, generator=gen)
    xa, xb = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    by_map = 1 - ssim_map(xa, y, window_size=5).mean()
    by_loss = ssim_loss(xb, y, window_size=5)
    by_map.backward()
    by_loss.backward()
    torch.testing.assert_close(by_loss, by_map, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(xb.grad, xa.grad, atol=1e-9, rtol=1e-4)
    assert float(by_map.detach()) > 0.05  # the inputs differ: a loss that ignored x would not pass
