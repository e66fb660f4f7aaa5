"""Deep Perceptual Autoencoder (DPA) of Shvetsova et al., IEEE Access 2021 (arXiv 2006.13265).

A plain autoencoder whose training loss *and* abnormality score is the relative perceptual L1
distance between an image and its reconstruction,

    L(x, x̂) = mean |f(x) − f(x̂)| / mean |f(x)|   (per sample, denominator detached),

f = frozen pretrained CNN features, each channel standardised by its mean/std over the healthy
training set. Hyperparameters are chosen with a handful of labelled anomalies of a *validation*
split only (:func:`select_hyperparameters`), the paper's protocol.

Choices and differences from the paper (quoted by the notebooks):

* **Backbone.** The paper used VGG19 ReLU layers (relu1_2 … relu4_2 depending on resolution);
  VGG19 weights cannot be fetched offline here, so the default is the offline ImageNet
  EfficientNet-Lite0, layers ``stem, block0, block2, block4`` (strides 2-8, the depth range of
  relu1-relu3). ``backbone="resnet18"`` with ``layers=("layer0", "layer1", "layer2")`` works for
  users with internet. Its BatchNorms are folded into the convolutions (same values, ~2× faster
  backward on CPU), and f runs at ``perceptual_size`` = 64 px (x and x̂ resized with antialiasing)
  to fit the CPU budget; ``perceptual_size=0`` uses the full image size.
* **Network.** Pre-activation residual blocks (BN → LeakyReLU → conv, twice, plus a shortcut),
  widths 16-32-64-128: a stride-2 stem conv, then one stride-2 block per further width, so a
  128-px slice reaches 128 × 8 × 8, then a dense latent of ``latent_dim`` = 128 (the paper: dense
  16 × 1 × 1 for 64-px X-rays; brain slices need more). ``latent_dim=0`` keeps the spatial
  8 × 8 latent. The decoder mirrors the encoder with transposed-conv blocks; sigmoid output.
* **Training.** Adam, lr 1e-3 (the paper's 2e-3 is for training without progressive growing;
  1e-3 was more stable at batch 32). Progressive growing is not implemented: at 128 px it is not
  needed to train the network, and the paper motivates it for high resolutions. No adversarial term
  (the paper's default). f(x) is computed once in ``prepare`` and cached; only f(x̂) is
  differentiated each step.
* **Scores.** Map = per-location channel mean of |f(x) − f(x̂)|, bilinearly upsampled to H × W.
  Image score = the relative perceptual distance of the slice (``image_score="relative_perceptual"``)
  restricted to the brain when a brain mask is given: every feature location is weighted by the
  fraction of brain pixels it covers, in numerator and denominator. ``image_score="map"`` uses the
  shared map rule (``score``) instead.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featureae_lite.core.errors import InputError
from featureae_lite.core.features import FeatureExtractor
from featureae_lite.core.maps import batched, to_image_map
from featureae_lite.models.base import Batch, Detector, DetectorConfig, register


@dataclasses.dataclass
class DPAConfig(DetectorConfig):
    """DPA settings (see the module docstring for the choices).

    Attributes
    ----------
    widths : tuple of int
        Channels per level; a 2**len(widths) downsampling.
    latent_dim : int
        Dense latent size; 0 = spatial latent (widths[-1] × H/2**L × W/2**L).
    backbone, layers, pretrained, weights_path
        Feature extractor f (see :class:`featureae_lite.core.features.FeatureExtractor`; ``weights_path``
        "" = the packaged / cached weights).
    perceptual_size : int
        Side at which f sees x and x̂ (0 = image size); must be divisible by 32.
    std_floor : float
        Channel stds are floored at ``std_floor`` × their median, so channels that are (nearly)
        constant on healthy slices (dead ReLU6 units) are not amplified without bound.
    image_score : str
        ``"relative_perceptual"`` (paper) or ``"map"`` (shared rule on the map).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    latent_dim: int = 128
    backbone: str = "efficientnet_lite0"
    layers: tuple[str, ...] | None = ("stem", "block0", "block2", "block4")
    pretrained: bool = True
    weights_path: str = ""
    perceptual_size: int = 64
    std_floor: float = 0.1
    image_score: Literal["relative_perceptual", "map"] = "relative_perceptual"
    lr: float = 1e-3
    steps: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.perceptual_size % 32:
            raise InputError(f"perceptual_size must be 0 or divisible by 32, got {self.perceptual_size}")


def relative_perceptual_loss(fx: Tensor, fy: Tensor, weights: Tensor | None = None, eps: float = 1e-8
                             ) -> Tensor:
    """Relative perceptual L1 per sample: mean|f(x) − f(y)| / mean|f(x)|, denominator detached.

    Parameters
    ----------
    fx, fy : Tensor
        (N, C, h, w) (normalised) features of the reference x and of the reconstruction y.
    weights : Tensor, optional
        (N, 1, h, w) non-negative location weights (e.g. brain fraction); default uniform.

    Returns
    -------
    Tensor
        (N,) distances; 0 for identical inputs and invariant to a common rescaling of fx and fy.
    """
    if fx.shape != fy.shape:
        raise InputError(f"feature shapes differ: {tuple(fx.shape)} vs {tuple(fy.shape)}")
    w = torch.ones_like(fx[:, :1]) if weights is None else weights
    norm = (w.sum(dim=(1, 2, 3)) * fx.shape[1]).clamp_min(eps)
    num = ((fx - fy).abs() * w).sum(dim=(1, 2, 3)) / norm
    den = ((fx.abs() * w).sum(dim=(1, 2, 3)) / norm).detach()
    return num / den.clamp_min(eps)


class PreActBlock(nn.Module):
    """Pre-activation residual block: (BN → LeakyReLU → conv) × 2 + shortcut.

    ``mode="down"``: the first conv has stride 2 (shortcut: average pool + 1×1 conv);
    ``mode="up"``: the first conv is a 4×4 stride-2 transposed conv (shortcut: nearest ×2 + 1×1).
    (N, c_in, h, w) → (N, c_out, h/2, w/2) or (N, c_out, 2h, 2w).
    """

    def __init__(self, c_in: int, c_out: int, mode: str = "down") -> None:
        super().__init__()
        first = (nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False) if mode == "down"
                 else nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False))
        act = lambda c: [nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]  # noqa: E731
        second = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.body = nn.Sequential(*act(c_in), first, *act(c_out), second)
        resample = nn.AvgPool2d(2) if mode == "down" else nn.Upsample(scale_factor=2, mode="nearest")
        self.shortcut = nn.Sequential(resample, nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class PerceptualAutoencoder(nn.Module):
    """Residual autoencoder (N, 1, H, W) → (N, 1, H, W) in [0, 1]; see the module docstring."""

    def __init__(self, image_size: int, widths: tuple[int, ...] = (16, 32, 64, 128), latent_dim: int = 128
                 ) -> None:
        super().__init__()
        if image_size % 2 ** len(widths):
            raise InputError(f"image_size {image_size} must be divisible by 2**{len(widths)}")
        self.spatial = image_size // 2 ** len(widths)
        enc = [nn.Conv2d(1, widths[0], 4, 2, 1, bias=False)]
        enc += [PreActBlock(a, b, "down") for a, b in itertools.pairwise(widths)]
        self.encoder = nn.Sequential(*enc, nn.BatchNorm2d(widths[-1]), nn.LeakyReLU(0.2))
        flat = widths[-1] * self.spatial**2
        dense = [nn.Flatten(), nn.Linear(flat, latent_dim), nn.Linear(latent_dim, flat)] if latent_dim else []
        self.bottleneck = nn.Sequential(*dense)
        rev = widths[::-1]
        dec = [PreActBlock(a, b, "up") for a, b in itertools.pairwise(rev)]
        self.decoder = nn.Sequential(*dec, nn.BatchNorm2d(widths[0]), nn.LeakyReLU(0.2),
                                     nn.ConvTranspose2d(widths[0], 1, 4, 2, 1))
        self.widths = widths

    def forward(self, x: Tensor) -> Tensor:
        h = self.bottleneck(self.encoder(x)).view(len(x), self.widths[-1], self.spatial, self.spatial)
        return torch.sigmoid(self.decoder(h))


@register
class DeepPerceptualAutoencoder(Detector):
    """DPA detector (see the module docstring)."""

    name = "dpa"
    config_class = DPAConfig

    def __init__(self, config: DPAConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        extractor = self.hold_frozen("extractor", FeatureExtractor(
            c.backbone, tuple(c.layers) if c.layers else None, c.pretrained,
            weights_path=c.weights_path or None))
        self.net = PerceptualAutoencoder(c.image_size, tuple(c.widths), c.latent_dim)
        ch = extractor.out_channels
        self.register_buffer("feat_mean", torch.zeros(ch))
        self.register_buffer("feat_std", torch.ones(ch))

    def raw_features(self, images: Tensor) -> Tensor:
        """Backbone features (N, C, s/4, s/4) of images (N, 1, H, W), s = ``perceptual_size``, computed
        on the detector's device and returned on the images' (training caches them in CPU memory)."""
        size = self.config.perceptual_size
        if size and size != images.shape[-1]:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False)
        return self.extractor(images.to(self.device)).to(images.device)

    def features(self, images: Tensor) -> Tensor:
        """Features standardised per channel with the training-set statistics, (N, C, s/4, s/4)."""
        return self.normalise(self.raw_features(images))

    def normalise(self, feats: Tensor) -> Tensor:
        return (feats - self.feat_mean.view(1, -1, 1, 1)) / self.feat_std.view(1, -1, 1, 1)

    @torch.no_grad()
    def prepare(self, batch: Batch, batch_size: int = 64) -> Batch:
        """The batch with its raw backbone features f(x) cached (computed once per slice)."""
        raw = batched(lambda a, b: self.raw_features(batch.images[a:b]), len(batch), batch_size)
        return Batch(images=batch.images, brains=batch.brains, cached=torch.cat(raw))

    @torch.no_grad()
    def fit_statistics(self, batch: Batch) -> None:
        """Per-channel mean and (floored) std of the healthy training features."""
        raw = batch.cached
        std = raw.std(dim=(0, 2, 3))
        self.feat_mean.copy_(raw.mean(dim=(0, 2, 3)))
        self.feat_std.copy_(std.clamp_min(max(self.config.std_floor * float(std.median()), 1e-6)))

    def loss(self, batch: Batch) -> Tensor:
        if batch.cached is None:
            with torch.no_grad():
                fx = self.features(batch.images)
        else:
            fx = self.normalise(batch.cached)
        return relative_perceptual_loss(fx, self.features(self.net(batch.images))).mean()

    def map_and_score(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """Channel-mean |f(x) − f(x̂)| upsampled, and the relative perceptual distance inside the brain
        (None with ``image_score="map"``: the shared rule on the map)."""
        fx, frec = self.normalise(batch.cached), self.features(self.net(batch.images))
        amap = to_image_map((fx - frec).abs(), batch.images.shape[-2:])
        if self.config.image_score == "map":
            return amap, None
        weights = F.adaptive_avg_pool2d((batch.brains > 0).float(), fx.shape[-2:])
        score = relative_perceptual_loss(fx, frec, weights)
        return amap, torch.where(weights.flatten(1).sum(1) > 0, score, torch.zeros_like(score))

    def anomaly_map(self, batch: Batch) -> Tensor:
        return self.map_and_score(batch)[0]


__all__ = ["DPAConfig", "DeepPerceptualAutoencoder", "PerceptualAutoencoder", "PreActBlock",
           "relative_perceptual_loss"]
