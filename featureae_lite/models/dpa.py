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
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featureae_lite.features import FeatureExtractor
from featureae_lite.models.base import (
    AnomalyOutput,
    Detector,
    DetectorConfig,
    create_detector,
    image_scores,
    postprocess,
    register,
)


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
        Feature extractor f (see :class:`featureae_lite.features.FeatureExtractor`; ``weights_path``
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
    image_score: str = "relative_perceptual"
    lr: float = 1e-3
    steps: int = 1000


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
        raise ValueError(f"feature shapes differ: {tuple(fx.shape)} vs {tuple(fy.shape)}")
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
            raise ValueError(f"image_size {image_size} must be divisible by 2**{len(widths)}")
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
        if c.image_score not in ("relative_perceptual", "map"):
            raise ValueError(f"image_score must be 'relative_perceptual' or 'map', got {c.image_score!r}")
        if c.perceptual_size % 32:
            raise ValueError(f"perceptual_size must be 0 or divisible by 32, got {c.perceptual_size}")
        extractor = FeatureExtractor(c.backbone, layers=tuple(c.layers) if c.layers else None,
                                     pretrained=c.pretrained, weights_path=c.weights_path or None)
        object.__setattr__(self, "extractor", extractor)  # frozen: not in checkpoints
        self.net = PerceptualAutoencoder(c.image_size, tuple(c.widths), c.latent_dim)
        ch = extractor.out_channels
        self.register_buffer("feat_mean", torch.zeros(ch))
        self.register_buffer("feat_std", torch.ones(ch))
        self.register_buffer("stats_ready", torch.zeros((), dtype=torch.bool))

    def fit(self, train, val=None, **kwargs: Any) -> DeepPerceptualAutoencoder:
        self.stats_ready.fill_(False)  # statistics come from this training set
        return super().fit(train, val, **kwargs)

    def raw_features(self, images: Tensor) -> Tensor:
        """Backbone features (N, C, s/4, s/4) of images (N, 1, H, W), s = ``perceptual_size``."""
        size = self.config.perceptual_size
        if size and size != images.shape[-1]:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False)
        return self.extractor(images)

    def features(self, images: Tensor) -> Tensor:
        """Features standardised per channel with the training-set statistics, (N, C, s/4, s/4)."""
        return self.normalise(self.raw_features(images))

    def normalise(self, feats: Tensor) -> Tensor:
        return (feats - self.feat_mean.view(1, -1, 1, 1)) / self.feat_std.view(1, -1, 1, 1)

    def frozen_modules(self) -> list[nn.Module]:
        return [self.extractor]

    @torch.no_grad()
    def prepare(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Images and their cached raw features, packed as one (N, H·W + C·h·w) tensor.

        The first call after :meth:`fit` starts (the training set) measures the per-channel
        mean/std of the healthy features; later calls (validation) reuse them.
        """
        raw = torch.cat([self.raw_features(images[i : i + batch_size])
                         for i in range(0, len(images), batch_size)])
        if not bool(self.stats_ready):
            std = raw.std(dim=(0, 2, 3))
            self.feat_mean.copy_(raw.mean(dim=(0, 2, 3)))
            self.feat_std.copy_(std.clamp_min(max(self.config.std_floor * float(std.median()), 1e-6)))
            self.stats_ready.fill_(True)
        self._feat_shape = raw.shape[1:]
        return torch.cat([images.flatten(1), raw.flatten(1)], dim=1)

    def _unpack(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        s = self.config.image_size
        images = inputs[:, : s * s].view(-1, 1, s, s)
        return images, self.normalise(inputs[:, s * s :].view(-1, *self._feat_shape))

    def loss(self, inputs: Tensor) -> Tensor:
        if inputs.ndim == 4:  # plain images
            with torch.no_grad():
                fx = self.features(inputs)
            images = inputs
        else:
            images, fx = self._unpack(inputs)
        return relative_perceptual_loss(fx, self.features(self.net(images))).mean()

    def _map_and_score(self, images: Tensor, brains: Tensor | None) -> tuple[Tensor, Tensor]:
        fx, frec = self.features(images), self.features(self.net(images))
        amap = (fx - frec).abs().mean(dim=1, keepdim=True)
        weights = None if brains is None else F.adaptive_avg_pool2d((brains > 0).float(), fx.shape[-2:])
        score = relative_perceptual_loss(fx, frec, weights)
        if weights is not None:
            score = torch.where(weights.flatten(1).sum(1) > 0, score, torch.zeros_like(score))
        return F.interpolate(amap, size=images.shape[-2:], mode="bilinear", align_corners=True), score

    def anomaly_map(self, images: Tensor) -> Tensor:
        return self._map_and_score(images, None)[0]

    @torch.no_grad()
    def predict(self, images: Tensor, brains: Tensor | None = None, batch_size: int = 64) -> AnomalyOutput:
        """Maps (N, 1, H, W) and scores (N,); the score is the relative perceptual distance."""
        if self.config.image_score == "map":
            return super().predict(images, brains, batch_size)
        self.check_images(images, brains)
        was_training = self.training
        self.eval()
        dev = self.device
        parts = [[t.to(images.device) for t in self._map_and_score(
                     images[i : i + batch_size].to(dev),
                     None if brains is None else brains[i : i + batch_size].to(dev))]
                 for i in range(0, len(images), batch_size)]
        self.train(was_training)
        maps = torch.cat([p[0] for p in parts]) if parts else images.new_zeros(images.shape)
        scores = torch.cat([p[1] for p in parts]) if parts else images.new_zeros(0)
        maps = postprocess(maps, brains, self.config.mask_brain, self.config.smooth_sigma)
        return AnomalyOutput(maps, scores)


def select_hyperparameters(train, val, grid: dict[str, list], steps: int | None = None,
                           metric: str = "sample_auroc", method: str = "dpa", progress: bool = False,
                           device: str | None = "auto",
                           **fixed: Any) -> tuple[Detector, list[dict[str, Any]]]:
    """The paper's protocol: pick hyperparameters with the labelled anomalies of ``val`` only.

    One model per grid point is trained on ``train`` (healthy) and scored on ``val``; the test split
    is never an argument, so it cannot leak into the choice.

    Parameters
    ----------
    train : SliceData
        Healthy training slices.
    val : SliceData
        Validation slices with a few labelled anomalies (masks) and healthy slices.
    grid : dict of str to list
        Config field → candidate values, e.g. ``{"latent_dim": [64, 128], "layers": [...]}``.
    steps : int, optional
        Training steps per grid point (default: the config's).
    metric : str
        A key of :func:`featureae_lite.evaluation.metrics_from_output` (higher = better), e.g.
        ``"sample_auroc"``, ``"sample_ap"``, ``"pixel_ap"``.
    method : str
        Registered method to tune (DPA by default; any method works).
    device : str
        Where every grid point trains (:func:`featureae_lite.device.resolve_device`).
    **fixed
        Config fields shared by every grid point (``image_size``, ``seed``, …).

    Returns
    -------
    best : Detector
        The trained detector of the best grid point (first one on ties); ``best.config`` holds
        the chosen values.
    table : list of dict
        One row per grid point: its values and ``metric``.
    """
    from featureae_lite.evaluation import metrics_from_output

    if float(val.masks.sum()) == 0:
        raise ValueError("select_hyperparameters needs labelled anomalies in val (its masks are empty)")
    if steps is not None:
        fixed = {**fixed, "steps": steps}
    keys = list(grid)
    table, best, best_value = [], None, -math.inf
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        det = create_detector(method, **fixed, **point).to_device(device)
        det.fit(train, progress=progress)
        value = metrics_from_output(det.predict(val.images, val.brains), val)[metric]
        table.append({**point, metric: value})
        if np.isfinite(value) and value > best_value:
            best, best_value = det, value
    if best is None:
        raise ValueError(f"{metric} is undefined on val for every grid point "
                         "(val needs healthy and anomalous slices)")
    return best, table


__all__ = ["DPAConfig", "DeepPerceptualAutoencoder", "PerceptualAutoencoder", "PreActBlock",
           "image_scores", "relative_perceptual_loss", "select_hyperparameters"]
