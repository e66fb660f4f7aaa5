"""The Structural Feature-Autoencoder (FAE) of Meissen et al., BrainLes @ MICCAI 2022.

Each slice is mapped by a frozen ImageNet CNN to a multi-channel feature map (C × H/4 × W/4); an
autoencoder is trained *in that space* with a per-channel SSIM loss; the anomaly map is the
channel-mean of 1 − SSIM(f, f̂), bilinearly upsampled to the image size.

Faithful to the reference code: encoder 4 × [Conv 5×5 s2 p2 → BatchNorm → LeakyReLU → Dropout2d(0.1)]
with widths 100-150-200-300 and a final Conv 5×5 300→300; decoder 4 × [ConvTranspose 6×6 s2 p2 → BN →
LeakyReLU → Dropout2d] 300→200→150→100→C, then a 1×1 convolution; no biases; SSIM with a 5×5 Gaussian
window (σ 1.5, C1 = 0.01², C2 = 0.03² — constants that assume a [0, 1] range although features are
unbounded); Adam, lr 2e-4, batch 32. Backbone features are computed once per data set (``prepare``),
not every step: the same computation, much faster on a CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor, nn

from featureae_lite.core.features import FeatureExtractor
from featureae_lite.core.maps import batched, to_image_map
from featureae_lite.core.ssim import ssim_loss, ssim_map
from featureae_lite.models.base import Batch, Detector, DetectorConfig, register


@dataclasses.dataclass
class FAEConfig(DetectorConfig):
    """FAE settings; the defaults are the reference's except the offline backbone.

    Attributes
    ----------
    backbone : str
        ``"efficientnet_lite0"`` (offline ImageNet weights, default here) or ``"resnet18"`` (paper;
        needs the torchvision weights once from the internet).
    layers : tuple of str or None
        Backbone layers to concatenate; None = the extractor's default (resnet18: layer0-2).
    pretrained : bool
        ImageNet weights (True) or a fixed random initialisation (the paper's ablation).
    weights_path : str
        A local backbone state dict (e.g. torchvision's ImageNet ResNet18 ``.pth``) instead of the
        packaged / cached weights; empty = those.
    hidden_dims : tuple of int
        Encoder widths.
    dropout : float
        Dropout2d probability.
    loss : str
        ``"ssim"`` (reference) or ``"mse"`` (ablation; map = channel-mean squared error).
    ssim_window : int
        Gaussian window size for the SSIM loss and map.
    precision : str
        ``"float32"`` (reference) or ``"bfloat16"``: the autoencoder's convolutions run under
        bfloat16 autocast while the SSIM statistics stay in float32 (in bfloat16, E[x²] − E[x]²
        of features with std ~8 cancels catastrophically and training fails).
    """

    backbone: str = "efficientnet_lite0"
    layers: tuple[str, ...] | None = None
    pretrained: bool = True
    weights_path: str = ""
    hidden_dims: tuple[int, ...] = (100, 150, 200, 300)
    dropout: float = 0.1
    loss: Literal["ssim", "mse"] = "ssim"
    ssim_window: int = 5
    precision: Literal["float32", "bfloat16"] = "float32"
    lr: float = 2e-4
    steps: int = 1500


def ssim_distance(features: Tensor, reconstruction: Tensor, window_size: int = 5, data_range: float = 1.0
                  ) -> Tensor:
    """FAE's per-channel dissimilarity 1 − SSIM(f̂, f), (N, C, h, w) → (N, C, h, w).

    Parameters
    ----------
    features, reconstruction : Tensor
        (N, C, h, w) feature maps f and the autoencoder's reconstruction f̂ of them.
    window_size : int
        Odd size of SSIM's Gaussian window (5 in the reference).
    data_range : float
        SSIM's L (C1 = (0.01 L)², C2 = (0.03 L)²); 1 in the reference.
    """
    return 1 - ssim_map(reconstruction, features, window_size=window_size, data_range=data_range)


def fae_anomaly_map(features: Tensor, reconstruction: Tensor, size: tuple[int, int] | None = None,
                    window_size: int = 5, data_range: float = 1.0) -> Tensor:
    """FAE's anomaly map: the channel mean of :func:`ssim_distance`.

    Parameters
    ----------
    features, reconstruction : Tensor
        (N, C, h, w) feature maps and their reconstruction.
    size : tuple of int, optional
        (H, W) of the images: the map is upsampled bilinearly (aligned corners) by
        :func:`featureae_lite.core.maps.to_image_map`, as :meth:`FAE.anomaly_map` does; None keeps it
        on the feature grid.
    window_size, data_range
        As in :func:`ssim_distance`.

    Returns
    -------
    Tensor
        (N, 1, H, W), or (N, 1, h, w) without ``size``.
    """
    distance = ssim_distance(features, reconstruction, window_size, data_range)
    return distance.mean(1, keepdim=True) if size is None else to_image_map(distance, size)


def _unit(conv: nn.Module, width: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(width), nn.LeakyReLU(), nn.Dropout2d(dropout))


class FeatureAutoencoder(nn.Module):
    """The reference FAE network acting on feature maps (N, C, h, w), h and w divisible by 16.

    Parameters
    ----------
    in_channels : int
        Feature channels C (256 for ResNet18 layers 0-2).
    hidden_dims : tuple of int
        Encoder widths (reference: 100, 150, 200, 300).
    dropout : float
        Dropout2d probability after every block.
    """

    def __init__(
        self, in_channels: int, hidden_dims: tuple[int, ...] = (100, 150, 200, 300), dropout: float = 0.1
    ) -> None:
        super().__init__()
        enc, c = [], in_channels
        for h in hidden_dims:
            enc.append(_unit(nn.Conv2d(c, h, 5, stride=2, padding=2, bias=False), h, dropout))
            c = h
        enc.append(nn.Conv2d(c, c, 5, stride=1, padding=2, bias=False))
        self.encoder = nn.Sequential(*enc)
        dims = (in_channels, *hidden_dims)
        dec = [
            _unit(nn.ConvTranspose2d(dims[i], dims[i - 1], 6, stride=2, padding=2, bias=False),
                  dims[i - 1], dropout)
            for i in range(len(dims) - 1, 0, -1)
        ]
        dec.append(nn.Conv2d(in_channels, in_channels, 1, bias=False))
        self.decoder = nn.Sequential(*dec)

    def forward(self, f: Tensor) -> Tensor:
        """Reconstruct features f (N, C, h, w) → f̂ (N, C, h, w)."""
        return self.decoder(self.encoder(f))


@register
class FAE(Detector):
    """Structural Feature-Autoencoder detector (see the module docstring)."""

    name = "fae"
    config_class = FAEConfig

    def __init__(self, config: FAEConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        extractor = self.hold_frozen("extractor", FeatureExtractor(
            c.backbone, tuple(c.layers) if c.layers else None, c.pretrained,
            weights_path=c.weights_path or None))
        # channels-last: ~20 % faster convolutions on CPU (oneDNN), same values
        self.net = FeatureAutoencoder(extractor.out_channels, tuple(c.hidden_dims), c.dropout).to(
            memory_format=torch.channels_last
        )

    @torch.no_grad()
    def features(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Frozen backbone features (N, C, H/4, W/4) of images (N, 1, H, W), channels-last, computed
        on the detector's device and returned on the images' (training caches them in CPU memory)."""
        feats = batched(lambda a, b: self.extractor(images[a:b].to(self.device)).to(images.device),
                        len(images), batch_size)
        return torch.cat(feats).contiguous(memory_format=torch.channels_last)

    def prepare(self, batch: Batch) -> Batch:
        """The batch with its backbone features cached (computed once per slice)."""
        return Batch(images=batch.images, brains=batch.brains, cached=self.features(batch.images))

    def reconstruct(self, feats: Tensor) -> Tensor:
        """f̂ (N, C, h, w) in float32, the autoencoder under bfloat16 autocast if so configured."""
        with torch.autocast(feats.device.type, dtype=torch.bfloat16,
                            enabled=self.config.precision == "bfloat16"):
            rec = self.net(feats)
        return rec.float()

    def feature_distance(self, feats: Tensor) -> Tensor:
        """Per-channel distance maps (N, C, h, w): 1 − SSIM(f, f̂) or (f − f̂)²."""
        rec = self.reconstruct(feats)
        if self.config.loss == "mse":
            return (feats - rec) ** 2
        return ssim_distance(feats, rec, self.config.ssim_window)

    def loss(self, batch: Batch) -> Tensor:
        # −mean SSIM in the reference; 1 − mean SSIM has the same gradient.
        feats = batch.cached
        if self.config.loss == "ssim":  # the mean without materialising the map
            return ssim_loss(self.reconstruct(feats), feats, window_size=self.config.ssim_window)
        return self.feature_distance(feats).mean()

    def anomaly_map(self, batch: Batch) -> Tensor:
        return to_image_map(self.feature_distance(batch.cached), batch.images.shape[-2:])
