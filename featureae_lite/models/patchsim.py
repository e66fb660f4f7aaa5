"""AREPAS-style restoration + local patch-similarity scoring (Mitic … Langs, arXiv 2509.12905).

No public code exists; choices made here:

* **Restoration network**: a small U-Net (4×4 stride-2 stem, levels 8-16-32-64 at 64 → 8 px for a
  128-px slice, two Conv3×3-BN-ReLU per level, max-pool down, bilinear up; a transposed conv back to
  full size, no full-resolution skip of the input (it would let anomalies be copied); sigmoid output;
  the half-resolution start keeps the CPU cost low), trained on healthy slices only to map a
  *corrupted* view back to the clean slice (l1). Corruptions, 1–3 per slice, each a rectangle of
  8–32 px at 128 px (scaled with the image size) centred in the brain, kind drawn uniformly from
  ``corruptions``: ``"mask"`` (set to 0), ``"noise"`` (uniform noise), ``"paste"`` (the same region of
  another slice of the batch). Skip connections are fine here — unlike a plain autoencoder the
  identity is not a solution, since the corrupted regions must be inpainted from context.
* **Test**: the observed slice itself is restored (anomalies act as unseen corruptions) and compared
  with its restoration by **local patch-wise similarity** (:func:`patch_similarity_map`):
  ``"ncc"`` (default): 1 − local normalised cross-correlation in a Gaussian window (``window = 11``,
  σ = window / 4), NCC = (σxy + c) / √((σx² + c)(σy² + c)), c = ``eps`` = 1e-4: two flat patches are
  similar (→ 1), a flat vs a textured patch dissimilar (→ 0); tolerant to local intensity offset and
  gain, sensitive to structure. ``"ssim"``: 1 − SSIM with the same window. ``"feature_cosine"``:
  1 − cosine similarity of frozen EfficientNet-Lite0 feature vectors per location (semantic patches),
  bilinearly upsampled. Ablation ``score_map = "residual"``: |x − x̂| of the same restoration.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featureae_lite.core.errors import InputError
from featureae_lite.core.features import FeatureExtractor
from featureae_lite.core.maps import gaussian_blur, to_image_map
from featureae_lite.core.ssim import ssim_map
from featureae_lite.models.base import Batch, Detector, DetectorConfig, register
from featureae_lite.models.patches import random_box

Similarity = Literal["ncc", "ssim", "feature_cosine"]
SIMILARITIES: tuple[str, ...] = get_args(Similarity)


@dataclasses.dataclass
class PatchSimConfig(DetectorConfig):
    """Settings of the AREPAS-style detector (see :class:`DetectorConfig` for the shared fields).

    Attributes
    ----------
    widths : tuple of int
        U-Net widths per level.
    corruptions : tuple of str
        Corruption kinds drawn during training: ``"mask"``, ``"noise"``, ``"paste"``.
    max_corruptions : int
        At most this many rectangles per slice (at least 1).
    patch_min, patch_max : int
        Rectangle side range at 128 px (scaled with ``image_size``).
    similarity : str
        ``"ncc"``, ``"ssim"`` or ``"feature_cosine"`` (see the module docstring).
    window : int
        Gaussian window size (odd) of the local similarity.
    eps : float
        Stabiliser c of the NCC.
    score_map : str
        ``"similarity"`` (default) or ``"residual"`` (ablation |x − x̂|).
    """

    widths: tuple[int, ...] = (8, 16, 32, 64)
    corruptions: tuple[str, ...] = ("mask", "noise", "paste")
    max_corruptions: int = 3
    patch_min: int = 8
    patch_max: int = 32
    similarity: Similarity = "ncc"
    window: int = 11
    eps: float = 1e-4
    score_map: Literal["similarity", "residual"] = "similarity"
    lr: float = 1e-3
    steps: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % 2 ** len(self.widths):
            raise InputError(f"image_size {self.image_size} must be divisible by 2**{len(self.widths)}")


def local_ncc(x: Tensor, y: Tensor, window: int = 11, sigma: float | None = None, eps: float = 1e-4
              ) -> Tensor:
    """Local normalised cross-correlation in a Gaussian window, (N, C, H, W) → (N, C, H, W) in [−1, 1].

    NCC = (σxy + eps) / √((σx² + eps)(σy² + eps)); two flat patches give 1. Reflect padding.
    """
    c = x.shape[1]
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    stats = gaussian_blur(stats, window, sigma if sigma is not None else window / 4, padding="reflect")
    mx, my, sxx, syy, sxy = stats.split(c, dim=1)
    vx, vy, cov = (sxx - mx**2).clamp_min(0), (syy - my**2).clamp_min(0), sxy - mx * my
    return ((cov + eps) / torch.sqrt((vx + eps) * (vy + eps))).clamp(-1, 1)


def patch_similarity_map(
    x: Tensor, y: Tensor, window: int = 11, similarity: str = "ncc", eps: float = 1e-4,
    extractor: nn.Module | None = None,
) -> Tensor:
    """Local patch dissimilarity between images x and y, (N, 1, H, W) each → (N, 1, H, W), 0 if x = y.

    Parameters
    ----------
    x, y : Tensor
        Slices (N, 1, H, W) in [0, 1].
    window : int
        Gaussian window size (odd) for ``"ncc"`` and ``"ssim"``.
    similarity : str
        ``"ncc"``: 1 − local NCC ∈ [0, 2]; ``"ssim"``: 1 − SSIM; ``"feature_cosine"``: 1 − cosine of
        frozen backbone feature vectors per location (H/4 grid), bilinearly upsampled.
    eps : float
        NCC stabiliser (flat-patch handling).
    extractor : nn.Module, optional
        Feature extractor for ``"feature_cosine"``, on x's device (default: a new EfficientNet-Lite0;
        pass one to reuse it over many calls).
    """
    if x.shape != y.shape or x.ndim != 4:
        raise InputError(f"x and y must have the same (N, C, H, W) shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if similarity == "ncc":
        return (1 - local_ncc(x, y, window, eps=eps)).mean(1, keepdim=True)
    if similarity == "ssim":
        return (1 - ssim_map(x, y, window_size=window)).mean(1, keepdim=True)
    if similarity == "feature_cosine":
        ext = extractor if extractor is not None else FeatureExtractor("efficientnet_lite0").to(x.device)
        fx, fy = ext(x), ext(y)
        cos = F.cosine_similarity(fx, fy, dim=1, eps=1e-8)[:, None]
        return to_image_map((1 - cos).clamp_min(0), x.shape[-2:])
    raise InputError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")


def corrupt(
    x: Tensor, brain: Tensor, kinds: tuple[str, ...] = ("mask", "noise", "paste"), max_count: int = 3,
    min_size: int = 8, max_size: int = 32, rng: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupted views of a batch for restoration training.

    Parameters
    ----------
    x : Tensor
        Clean slices (N, 1, H, W).
    brain : Tensor
        Brain masks (N, 1, H, W); rectangles are centred on brain pixels.
    kinds : tuple of str
        Corruption kinds to draw from (``"mask"``, ``"noise"``, ``"paste"`` — from the batch rolled by one).
    max_count : int
        1 … ``max_count`` rectangles per slice.
    min_size, max_size : int
        Rectangle side range in pixels.
    rng : torch.Generator, optional
        Random generator (default the global torch RNG).

    Returns
    -------
    corrupted : Tensor
        (N, 1, H, W).
    region : Tensor
        (N, 1, H, W) bool, where a corruption was applied.
    """
    n, _, h, w = x.shape
    out, region = x.clone(), torch.zeros_like(x, dtype=torch.bool)
    donors = x.roll(1, dims=0)
    for i in range(n):
        pos = brain[i, 0].nonzero()
        for _ in range(int(torch.randint(1, max_count + 1, (1,), generator=rng))):
            sides = torch.randint(min_size, max_size + 1, (2,), generator=rng)
            sh, sw = min(int(sides[0]), h), min(int(sides[1]), w)
            y0, x0 = random_box(pos, sh, sw, (h, w), rng)
            kind = kinds[int(torch.randint(len(kinds), (1,), generator=rng))]
            sl = (i, 0, slice(y0, y0 + sh), slice(x0, x0 + sw))
            if kind == "mask":
                out[sl] = 0.0
            elif kind == "noise":
                out[sl] = torch.rand(sh, sw, generator=rng, dtype=x.dtype)
            elif kind == "paste":
                out[sl] = donors[sl]
            else:
                raise InputError(f"unknown corruption {kind!r}; use 'mask', 'noise' or 'paste'")
            region[sl] = True
    return out, region


def _double_conv(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
        nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Small U-Net (N, 1, H, W) → (N, 1, H, W) in [0, 1]; H, W divisible by 2^len(widths).

    For CPU speed the first level runs at half resolution: a 4×4 stride-2 stem, U-Net levels of
    ``widths`` (two Conv3×3-BN-ReLU each, max-pool down, bilinear up + skip), then a 4×4 transposed
    convolution back to full size and a 3×3 output convolution (no full-resolution skip of the input).
    """

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 4, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        chans = (widths[0], *widths)
        self.downs = nn.ModuleList(_double_conv(a, b) for a, b in zip(chans, chans[1:], strict=False))
        self.ups = nn.ModuleList(_double_conv(widths[i] + widths[i + 1], widths[i])
                                 for i in range(len(widths) - 2, -1, -1))
        full = max(4, widths[0] // 2)
        self.to_full = nn.Sequential(nn.ConvTranspose2d(widths[0], full, 4, 2, 1, bias=False),
                                     nn.BatchNorm2d(full), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(full, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, H, W) → (N, 1, H, W)."""
        h, skips = self.stem(x), []
        for i, block in enumerate(self.downs):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(self.ups, skips[-2::-1], strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return torch.sigmoid(self.head(self.to_full(h)))


@register
class PatchSimilarity(Detector):
    """Restoration U-Net + local patch-similarity map (see the module docstring)."""

    name = "patchsim"
    config_class = PatchSimConfig

    def __init__(self, config: PatchSimConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        if c.similarity == "feature_cosine":  # its own frozen backbone, built once
            self.hold_frozen("extractor", FeatureExtractor("efficientnet_lite0"))
        self.net = UNet(tuple(c.widths))

    def loss(self, batch: Batch) -> Tensor:
        c = self.config
        x, brain = batch.images, batch.brains
        scale = c.image_size / 128
        lo, hi = max(1, round(c.patch_min * scale)), max(1, round(c.patch_max * scale))
        xc, _ = corrupt(x, brain, tuple(c.corruptions), c.max_corruptions, lo, hi)
        return F.l1_loss(self.net(xc), x)

    def restore(self, images: Tensor) -> Tensor:
        """Healthy restoration x̂ (N, 1, H, W) of observed slices (N, 1, H, W)."""
        return self.net(images)

    def anomaly_map(self, batch: Batch) -> Tensor:
        c = self.config
        images = batch.images
        rec = self.restore(images)
        if c.score_map == "residual":
            return (images - rec).abs()
        return patch_similarity_map(images, rec, c.window, c.similarity, c.eps,
                                    extractor=getattr(self, "extractor", None))
