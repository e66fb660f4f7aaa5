"""Image-space autoencoders: the start of the teaching sequence.

* ``ae_l1``  — convolutional autoencoder trained with l1 loss; anomaly map |x − x̂|.
* ``vae``    — variational autoencoder (KL weight 0.05); anomaly map |x − x̂| of the posterior mean.
* ``ae_ssim``— the same autoencoder trained with image-space SSIM; anomaly map 1 − SSIM(x, x̂).

All three share one network: five stride-2 convolutions (widths 16-32-64-128-256 for a 128-px input,
as in the baseline of the FAE reference) and a dense bottleneck of ``latent_dim`` units.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featureae_lite.core.errors import InputError
from featureae_lite.core.ssim import ssim_loss, ssim_map
from featureae_lite.models.base import Batch, Detector, DetectorConfig, register


@dataclasses.dataclass
class AEConfig(DetectorConfig):
    """Autoencoder settings (see :class:`DetectorConfig` for the shared fields).

    Attributes
    ----------
    widths : tuple of int
        Encoder channel widths, one stride-2 level each.
    latent_dim : int
        Size of the dense bottleneck.
    kl_weight : float
        Weight of the KL term (``vae`` only).
    ssim_window : int
        SSIM window for ``ae_ssim`` (loss and map).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    latent_dim: int = 256
    kl_weight: float = 0.05
    ssim_window: int = 11
    lr: float = 1e-3
    steps: int = 1500


def _block(c_in: int, c_out: int, down: bool) -> nn.Sequential:
    conv = (
        nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
        if down
        else nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class ConvAutoencoder(nn.Module):
    """Convolutional (variational) autoencoder with a dense bottleneck.

    Parameters
    ----------
    image_size : int
        Input side H = W; must be divisible by ``2 ** len(widths)``.
    widths : tuple of int
        Encoder widths; the decoder mirrors them.
    latent_dim : int
        Bottleneck size.
    variational : bool
        Predict a mean and log-variance and sample with the reparameterisation trick.
    """

    def __init__(
        self, image_size: int, widths: tuple[int, ...], latent_dim: int, variational: bool = False
    ) -> None:
        super().__init__()
        if image_size % (2 ** len(widths)):
            raise InputError(
                f"image_size {image_size} must be divisible by 2**{len(widths)} = {2 ** len(widths)}"
            )
        self.variational = variational
        self.spatial = image_size // 2 ** len(widths)
        chans = (1, *widths)
        self.encoder = nn.Sequential(*[_block(a, b, True) for a, b in zip(chans, chans[1:], strict=False)])
        flat = widths[-1] * self.spatial**2
        self.to_latent = nn.Linear(flat, latent_dim * (2 if variational else 1))
        self.from_latent = nn.Linear(latent_dim, flat)
        rev = widths[::-1]
        self.decoder = nn.Sequential(
            *[_block(a, b, False) for a, b in zip(rev, rev[1:], strict=False)],
            nn.ConvTranspose2d(rev[-1], 1, 4, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Reconstruct x (N, 1, H, W); returns (x̂ in [0, 1], mu, logvar) — mu/logvar None for AE."""
        h = self.to_latent(self.encoder(x).flatten(1))
        mu = logvar = None
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            h = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        h = self.from_latent(h).view(len(x), -1, self.spatial, self.spatial)
        return torch.sigmoid(self.decoder(h)), mu, logvar


class _ImageAE(Detector):
    config_class = AEConfig
    variational = False

    def __init__(self, config: AEConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.net = ConvAutoencoder(c.image_size, tuple(c.widths), c.latent_dim, self.variational)

    def reconstruct(self, images: Tensor) -> Tensor:
        """Reconstruction x̂ (N, 1, H, W) of images (N, 1, H, W)."""
        return self.net(images)[0]


@register
class L1Autoencoder(_ImageAE):
    """Autoencoder trained with the l1 loss; anomaly map = |x − x̂|."""

    name = "ae_l1"

    def loss(self, batch: Batch) -> Tensor:
        return F.l1_loss(self.reconstruct(batch.images), batch.images)

    def anomaly_map(self, batch: Batch) -> Tensor:
        return (batch.images - self.reconstruct(batch.images)).abs()


@register
class VariationalAutoencoder(L1Autoencoder):
    """VAE: l1 reconstruction (per-pixel mean) + kl_weight × KL (mean per latent unit)."""

    name = "vae"
    variational = True

    def loss(self, batch: Batch) -> Tensor:
        rec, mu, logvar = self.net(batch.images)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        return F.l1_loss(rec, batch.images) + self.config.kl_weight * kl


@register
class SSIMAutoencoder(_ImageAE):
    """Autoencoder trained with image-space SSIM; anomaly map = 1 − SSIM(x, x̂)."""

    name = "ae_ssim"

    def loss(self, batch: Batch) -> Tensor:
        return ssim_loss(self.reconstruct(batch.images), batch.images, self.config.ssim_window)

    def anomaly_map(self, batch: Batch) -> Tensor:
        return 1 - ssim_map(self.reconstruct(batch.images), batch.images, self.config.ssim_window)
