"""Checkers of the exercises of notebook ``08_patch_similarity_scoring``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from featureae_lite.course.exercises.helpers import _close, _gen, _is_nan, _maps, _number, _unwrap
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("08_patch_similarity_scoring", "normalised cross-correlation of two patches",
          forbidden=("featureae_lite.models.patchsim.local_ncc",))
def check_ncc(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    size = int(rng.integers(5, 12))
    x = torch.rand(size, size, generator=g)
    eps = float(10 ** rng.uniform(-5, -3))
    for name, a, y in (("a brighter copy", x, rng.uniform(1.2, 3) * x + rng.uniform(0, 0.3)),
                       ("a mirrored copy", x, x.flip(0)),
                       ("a random patch", x, torch.rand(size, size, generator=g)),
                       ("two flat patches", torch.zeros(size, size), torch.zeros(size, size))):
        cov = ((a - a.mean()) * (y - y.mean())).mean()
        want = (cov + eps) / torch.sqrt((a.var(unbiased=False) + eps) * (y.var(unbiased=False) + eps))
        _number(fn(a, y, eps), float(want), f"ncc for {name}",
                "NCC is the covariance of the two patches over the product of their standard deviations, "
                "with eps added to the covariance and to each variance (so that two flat patches give 1); "
                "use population statistics (divide by the number of pixels, not one less).",
                tol=1e-4)


@exercise("08_patch_similarity_scoring", "a local NCC map with a square (box) window",
          forbidden=("featureae_lite.models.patchsim.local_ncc",
                     "featureae_lite.models.patchsim.patch_similarity_map"))
def check_box_ncc_map(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    size = int(rng.integers(12, 24))
    x, y = torch.rand(2, 1, size, size, generator=g), torch.rand(2, 1, size, size, generator=g)
    eps, w = float(10 ** rng.uniform(-5, -3)), int(rng.choice([3, 5, 7]))

    def box(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (w // 2,) * 4, mode="reflect"), w, stride=1)

    mx, my = box(x), box(y)
    vx, vy, cov = box(x * x) - mx**2, box(y * y) - my**2, box(x * y) - mx * my
    want = (cov + eps) / torch.sqrt((vx.clamp_min(0) + eps) * (vy.clamp_min(0) + eps))
    _close(fn(x, y, w, eps), want, f"box_ncc_map(x, y, {w}, {eps:.2g})",
           "every statistic is a local average over the w × w square centred on each pixel; mirror the "
           "image at its borders by half a window so that the map keeps the input's size; the local "
           "variance is the local mean of the squares less the square of the local mean, the local "
           "covariance likewise from the product of the two images.", atol=1e-4)


def _lesion_enrichment(maps: torch.Tensor, masks: torch.Tensor, brains: torch.Tensor) -> float:
    maps = maps.double()
    keep = (brains > 0) & torch.isfinite(maps)
    lesion = keep & (masks > 0)
    mass = float(maps[keep].sum())
    if mass == 0 or int(lesion.sum()) == 0:
        return float("nan")
    return (float(maps[lesion].sum()) / mass) / (int(lesion.sum()) / int(keep.sum()))


@exercise("08_patch_similarity_scoring", "predict, then measure how strongly a map concentrates on lesions")
def check_lesion_enrichment(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("use only in-brain pixels whose map value is finite; enrichment = (mass on lesion pixels / "
            "all mass) divided by (lesion pixels / all pixels), both over those pixels; return NaN when "
            "the mass is 0 or no such pixel is a lesion.")
    g = _gen(rng)
    for _ in range(3):
        n, size = int(rng.integers(2, 5)), int(rng.integers(12, 28))
        maps, brains = _maps(g, n, size)
        masks = torch.zeros_like(maps)
        for m in masks:
            top, left = (int(v) for v in rng.integers(size // 4, size // 2, size=2))
            m[:, top:top + int(rng.integers(2, 6)), left:left + int(rng.integers(2, 6))] = 1
        maps = maps + float(rng.uniform(-0.3, 1.0)) * masks
        maps = maps.clamp_min(0) * float(rng.uniform(0.5, 3.0))
        maps[torch.rand(maps.shape, generator=g) < 0.05] = float("nan")  # unscored pixels
        _number(fn(maps.clone(), masks.clone(), brains.clone()), _lesion_enrichment(maps, masks, brains),
                f"the lesion enrichment of a map of shape {tuple(maps.shape)}", hint, tol=1e-4)
    for name, (m, k) in {"an all-zero map": (torch.zeros_like(maps), masks),
                         "slices without lesion": (maps, torch.zeros_like(masks))}.items():
        got = fn(m.clone(), k.clone(), brains.clone())
        if not _is_nan(got):
            raise Wrong(f"for {name} the enrichment is undefined (NaN); you returned {got!r}.", hint)


_WINDOWS = (3, 5, 7, 9, 11, 15, 21, 27, 33, 41, 51)


def _restoration_pairs(rng: np.random.Generator) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """A sampler of (image, restoration, lesion mask, brain) batches (N, 1, 64, 64).

    Tissue is a smooth random texture; a lesion is a disc where part of the texture is replaced by
    another texture (a structural change, not a brightness change); the restoration is the healthy
    image. Both the image and its restoration carry independent noise. The lesion radius (in one of four
    ranges, 1.5 to 15 px), the noise, the texture's grain and the lesions' strength are drawn once per
    draw.
    """
    size = 64
    low, high = ((1.5, 2.5), (3.5, 5), (6.5, 9), (11, 15))[int(rng.integers(4))]
    radius = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    noise = 0.1 * float(np.exp(rng.uniform(np.log(0.05), np.log(0.4))))
    grain = rng.uniform(1.0, 2.0)
    strength = min(1.0, rng.uniform(0.8, 1.2) * (0.2 + 1.5 / radius))
    count = max(2, min(6, int(1200 / (np.pi * radius**2))))
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")

    def texture(n: int) -> torch.Tensor:
        from featureae_lite.core.maps import gaussian_blur

        field = torch.from_numpy(rng.normal(0, 1, (n, 1, size, size))).float()
        field = gaussian_blur(field, 2 * int(3 * grain) + 1, grain)
        return 0.5 + 0.1 * field / field.std()

    def sample(n: int) -> tuple[torch.Tensor, ...]:
        healthy, other = texture(n), texture(n)
        masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
        for mask in masks:
            for _ in range(count):
                cy, cx = rng.uniform(radius + 2, size - radius - 2, 2)
                mask[0] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        lesioned = torch.where(masks, (1 - strength) * healthy + strength * other, healthy)
        image = lesioned + noise * torch.from_numpy(rng.normal(0, 1, (n, 1, size, size))).float()
        restored = healthy + noise * torch.from_numpy(rng.normal(0, 1, (n, 1, size, size))).float()
        return image, restored, masks.float(), torch.ones(n, 1, size, size)

    return sample


def _ncc_ap(pairs: tuple[torch.Tensor, ...], window: int) -> float:
    """Pixel AP of the map 1 − local NCC (a Gaussian window of side ``window``) of (image, restoration)
    pairs against their lesion masks."""
    from featureae_lite.core.metrics import average_precision
    from featureae_lite.models.patchsim import local_ncc

    image, restored, masks, _ = pairs
    return average_precision((1 - local_ncc(image, restored, window)).flatten().numpy(),
                             masks.flatten().numpy() > 0)


@exercise("08_patch_similarity_scoring", "design: a local-NCC window chosen on validation pairs, graded by "
          "the held-out AP of its map", design=True)
def check_choose_window(fn: Callable, rng: np.random.Generator) -> str:
    hint = ("a window much smaller than a lesion compares noise with noise inside it; a window much "
            "larger than a lesion mixes it with healthy tissue that matches, and the change fades. The "
            "right size depends on the lesions and the noise of the data at hand, which you only see "
            "through the validation pairs: measure there what each candidate window achieves.")
    while True:  # a draw where the window matters: the best window's AP between 0.3 and 0.9
        sample = _restoration_pairs(rng)
        held = sample(24)
        aps = {w: _ncc_ap(held, w) for w in _WINDOWS}
        if 0.3 <= max(aps.values()) <= 0.9:
            break
    got = fn(*sample(16))
    got = _unwrap(got)
    if isinstance(got, bool) or not isinstance(got, int | np.integer | float) or got != int(got) \
            or int(got) % 2 == 0 or not 3 <= int(got) <= 63:
        raise Wrong(f"return the window as an odd whole number from 3 to 63, got {got!r}.", hint)
    best, default = max(aps, key=aps.get), aps[11]
    ap = aps[int(got)] if int(got) in aps else _ncc_ap(held, int(got))
    measured = (f"held-out AP of 1 − NCC {ap:.3f} with window {int(got)}; the best window of "
                f"{', '.join(map(str, _WINDOWS))} on the held-out pairs reaches {aps[best]:.3f} "
                f"(window {best}), the default window 11 {default:.3f}")
    if ap < aps[best] - 0.04:
        raise Wrong(f"{measured}. The bar: within 0.04 of the best.", hint)
    return measured + "."
