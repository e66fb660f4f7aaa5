"""ProxyAno: proxy-bridged image reconstruction (Zhou et al., IEEE TMI 2021), built from the paper's text.

No public code exists; choices made here (where the paper is silent, as its field would choose, and
then on the validation split only — ``docs/convergence.md`` has the measured table of every variant):

* **Proxy** = superpixel image (SI, :func:`~featureae_lite.models.superpixels.superpixel_image`): SLIC
  superpixels inside the brain (``n_segments = 150``, ``compactness = 0.1`` for [0, 1] slices), each set
  to its mean intensity, background 0. Computed once for the training set in ``prepare``. The training
  loop hands ``prepare`` images only, so the brain is the non-zero support of the skull-stripped slice
  (identical to the data's brain masks for skull-stripped data; zero pixels get SI 0 = their value).
  The proxy alone removes no lesion: SLIC follows the edges of the near-flat synthetic lesions, so
  |SI − x| is about as large inside lesions as in healthy brain (notebook 07 measures the ratio).
* **Proxy Extraction Module (PEM)**: image → SI encoder–decoder (4 × [Conv4×4 s2, BN, LeakyReLU],
  widths 8-16-32-64, 128 px → 8×8×64; small for the CPU budget — three passes per step) with a
  **dense bottleneck** of ``latent_dim = 64`` units (a linear layer from the 8×8×64 map and back) and a
  **memory** on it: the latent vector z of the image is replaced by the convex combination w·M,
  w = softmax(z·Mᵀ / τ) over ``memory_slots = 64`` learned slots (τ = 1). Abnormal content cannot be
  expressed as a combination of normal prototypes. ``latent_dim = 0`` gives this package's first
  version, a *spatial* bottleneck with the memory applied to each of its 8×8 vectors: that path
  reconstructs lesions too (pixel AUROC below chance, AP of the random map) — the dense bottleneck is
  the fix. Optional MemAE hard shrinkage (``shrink_threshold > 0``): w ← ReLU(w − λ)·w / (|w − λ| + ε),
  renormalised to sum 1 (falls back to the softmax weights if everything is shrunk away), and MemAE's
  entropy loss on w (``entropy_weight``); both off, as validation chose (λ = 0.0025 with entropy
  weight 0.0002 lowered the validation AP at ``latent_dim = 64``).
* **Image Reconstruction Module (IRM)**: SI → image, the same encoder–decoder with a spatial bottleneck
  (``dense_irm = False``: validation preferred it; its input already went through the PEM's memory),
  without memory and without skip connections (skips would let pasted patches through unchanged).
* **Pseudo-anomalies** (``pseudo_on = "both"``): with probability ``pseudo_prob = 0.5`` a square of
  8–32 px (at 128 px; scaled with the image size) cropped from *another* training image of the batch
  (the batch rolled by one) is pasted onto the sample's SI inside the brain (the paper's IRM input),
  and independently onto the sample's *image* on the test-time path x → PEM → IRM; the targets stay
  the normal SI and the normal image. ``"proxy"`` pastes on the SI only (the paper's text).
* **Loss** (all l1, equal weights ``w_proxy``, ``w_image``, ``w_chain``):
  |PEM(x') − SI| + |IRM(SI or pseudo-SI) − x| + |IRM(PEM(x')) − x| (x' = x with or without a pasted
  square); the last (chained) term trains both modules end to end for the test-time path.
* **Test**: x → PEM → IRM → x̂; map |x − x̂|; image score from the map (shared rule).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featureae_lite.core.errors import InputError
from featureae_lite.models.base import Batch, Detector, DetectorConfig, register
from featureae_lite.models.superpixels import paste_pseudo_anomaly, superpixel_images

PseudoOn = Literal["proxy", "input", "both"]
PSEUDO_ON: tuple[str, ...] = get_args(PseudoOn)


@dataclasses.dataclass
class ProxyAnoConfig(DetectorConfig):
    """ProxyAno settings (see :class:`DetectorConfig` for the shared fields).

    Attributes
    ----------
    n_segments, compactness : int, float
        SLIC superpixel parameters of the proxy.
    widths : tuple of int
        Encoder widths of both modules (one stride-2 level each).
    memory_slots : int
        Number M of memory prototypes in the PEM.
    temperature : float
        Softmax temperature τ of the memory read-out.
    shrink_threshold : float
        MemAE hard-shrinkage λ (0 = off).
    pseudo_prob : float
        Probability of a pseudo-anomaly per training sample.
    patch_min, patch_max : int
        Side range of pasted patches at 128 px (scaled linearly with ``image_size``).
    w_proxy, w_image, w_chain : float
        Weights of the three l1 terms.
    latent_dim : int
        Size of the PEM's dense bottleneck, where the memory reads (0 = a spatial bottleneck with the
        memory on each of its vectors: the first version, which reconstructs lesions too).
    dense_irm : bool
        Give the IRM the same dense bottleneck (default: spatial).
    entropy_weight : float
        Weight of MemAE's entropy loss on the memory read-out weights (0 = off).
    pseudo_on : str
        Where pseudo-anomalies are pasted: ``"proxy"`` (the SI fed to the IRM, as in the paper),
        ``"input"`` (the image fed to the PEM, on the test-time path) or ``"both"``.
    """

    n_segments: int = 150
    compactness: float = 0.1
    widths: tuple[int, ...] = (8, 16, 32, 64)
    memory_slots: int = 64
    temperature: float = 1.0
    shrink_threshold: float = 0.0
    pseudo_prob: float = 0.5
    patch_min: int = 8
    patch_max: int = 32
    w_proxy: float = 1.0
    w_image: float = 1.0
    w_chain: float = 1.0
    latent_dim: int = 64
    dense_irm: bool = False
    entropy_weight: float = 0.0
    pseudo_on: PseudoOn = "both"
    lr: float = 1e-3
    steps: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % 2 ** len(self.widths):
            raise InputError(f"image_size {self.image_size} must be divisible by 2**{len(self.widths)}")
        if self.latent_dim < 0:
            raise InputError(f"latent_dim must be ≥ 0 (0 = spatial bottleneck), got {self.latent_dim}")


class MemoryModule(nn.Module):
    """Attention read-out over learned prototypes: z ← softmax(z·Mᵀ/τ)·M (optionally hard-shrunk).

    Parameters
    ----------
    num_slots : int
        Number M of memory slots.
    dim : int
        Feature dimension D.
    temperature : float
        Softmax temperature τ.
    shrink_threshold : float
        MemAE hard-shrinkage λ; 0 disables it.
    """

    def __init__(self, num_slots: int, dim: int, temperature: float = 1.0, shrink_threshold: float = 0.0):
        super().__init__()
        bound = 1.0 / dim**0.5
        self.memory = nn.Parameter(torch.empty(num_slots, dim).uniform_(-bound, bound))
        self.temperature, self.shrink_threshold = temperature, shrink_threshold

    def weights(self, z: Tensor) -> Tensor:
        """Read-out weights (K, M) of vectors z (K, D): non-negative, each row sums to 1."""
        w = torch.softmax(z @ self.memory.t() / self.temperature, dim=1)
        lam = self.shrink_threshold
        if lam > 0:
            shrunk = F.relu(w - lam) * w / ((w - lam).abs() + 1e-12)
            total = shrunk.sum(1, keepdim=True)
            w = torch.where(total > 0, shrunk / total.clamp_min(1e-12), w)
        return w

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Map z (N, D, h, w) → (read-out (N, D, h, w), weights (N, h, w, M)); the weights are also
        kept in :attr:`last_weights` for the entropy loss."""
        n, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        att = self.weights(flat)
        self.last_weights = att
        out = (att @ self.memory).view(n, h, w, d).permute(0, 3, 1, 2)
        return out, att.view(n, h, w, -1)

    def entropy(self) -> Tensor:
        """Mean entropy −Σ w log w of the read-out weights of the last forward pass (MemAE's
        sparsity loss)."""
        w = self.last_weights
        return -(w * torch.log(w + 1e-12)).sum(1).mean()


def _down(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2))


def _up(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2))


class EncoderDecoder(nn.Module):
    """Fully convolutional encoder–decoder (N, 1, H, W) → (N, 1, H, W) in [0, 1], optional memory.

    Parameters
    ----------
    widths : tuple of int
        Encoder widths (one stride-2 level each); the bottleneck is (widths[-1], H/2^L, W/2^L).
    memory : MemoryModule, optional
        Applied to every bottleneck vector.
    """

    def __init__(self, widths: tuple[int, ...], memory: MemoryModule | None = None, image_size: int = 128,
                 latent_dim: int = 0) -> None:
        super().__init__()
        chans = (1, *widths)
        self.encoder = nn.Sequential(*[_down(a, b) for a, b in zip(chans, chans[1:], strict=False)])
        self.memory = memory
        self.spatial = image_size // 2 ** len(widths)
        self.dense = latent_dim > 0
        if self.dense:
            flat = widths[-1] * self.spatial**2
            self.to_latent, self.from_latent = nn.Linear(flat, latent_dim), nn.Linear(latent_dim, flat)
        rev = widths[::-1]
        self.decoder = nn.Sequential(
            *[_up(a, b) for a, b in zip(rev, rev[1:], strict=False)], nn.ConvTranspose2d(rev[-1], 1, 4, 2, 1)
        )

    def latent(self, x: Tensor) -> Tensor:
        """The bottleneck vectors the memory reads, before the read-out: (N, 1, H, W) →
        (N, latent_dim, 1, 1) with a dense bottleneck, (N, widths[-1], H/2^L, W/2^L) without."""
        z = self.encoder(x)
        return self.to_latent(z.flatten(1))[:, :, None, None] if self.dense else z

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, H, W) → (N, 1, H, W)."""
        h = self.latent(x)
        if self.memory is not None:
            h = self.memory(h)[0]
        if self.dense:
            h = self.from_latent(h.flatten(1)).view(len(x), -1, self.spatial, self.spatial)
        return torch.sigmoid(self.decoder(h))


@register
class ProxyAno(Detector):
    """ProxyAno detector (see the module docstring)."""

    name = "proxyano"
    config_class = ProxyAnoConfig
    prepare_for_prediction = False  # the superpixel proxies are training targets only

    def __init__(self, config: ProxyAnoConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        dim = c.latent_dim or c.widths[-1]
        memory = MemoryModule(c.memory_slots, dim, c.temperature, c.shrink_threshold)
        self.pem = EncoderDecoder(tuple(c.widths), memory, c.image_size, c.latent_dim)
        self.irm = EncoderDecoder(tuple(c.widths), None, c.image_size, c.latent_dim if c.dense_irm else 0)

    def prepare(self, batch: Batch) -> Batch:
        """The batch with its superpixel images (the proxies, (N, 1, H, W)) cached — for training;
        prediction needs none (:attr:`prepare_for_prediction`)."""
        c = self.config
        sis = superpixel_images(batch.images, batch.brains, c.n_segments, c.compactness)
        return Batch(images=batch.images, brains=batch.brains, cached=sis.to(batch.images.dtype))

    def pseudo_anomalies(self, x: Tensor, canvas: Tensor, brain: Tensor) -> Tensor:
        """Canvases (N, 1, H, W) (SIs or images); with probability ``pseudo_prob`` a patch of the
        rolled batch ``x`` is pasted on each."""
        c = self.config
        scale = c.image_size / 128
        lo, hi = max(1, round(c.patch_min * scale)), max(1, round(c.patch_max * scale))
        donors = x.roll(1, dims=0)
        out = canvas.clone()
        chosen = torch.rand(len(x)) < c.pseudo_prob
        for i in chosen.nonzero().flatten().tolist():
            if len(x) > 1:
                out[i, 0] = paste_pseudo_anomaly(canvas[i, 0], donors[i, 0], None, brain[i, 0], lo, hi)[0]
        return out

    def loss(self, batch: Batch) -> Tensor:
        c = self.config
        x, si, brain = batch.images, batch.cached, batch.brains
        pseudo = self.training and c.pseudo_prob > 0
        x_in = self.pseudo_anomalies(x, x, brain) if pseudo and c.pseudo_on in ("input", "both") else x
        si_hat = self.pem(x_in)
        loss = c.w_proxy * F.l1_loss(si_hat, si)
        if c.entropy_weight > 0:
            loss = loss + c.entropy_weight * self.pem.memory.entropy()
        si_in = self.pseudo_anomalies(x, si, brain) if pseudo and c.pseudo_on in ("proxy", "both") else si
        return loss + c.w_image * F.l1_loss(self.irm(si_in), x) + c.w_chain * F.l1_loss(self.irm(si_hat), x)

    def reconstruct(self, images: Tensor) -> Tensor:
        """Test-time path x → PEM → IRM → x̂, (N, 1, H, W) → (N, 1, H, W)."""
        return self.irm(self.pem(images))

    def anomaly_map(self, batch: Batch) -> Tensor:
        return (batch.images - self.reconstruct(batch.images)).abs()
