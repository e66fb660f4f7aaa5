"""Checkers of the exercises of notebook ``03_feature_space``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from featureae_lite.core.maps import to_image_map
from featureae_lite.course.exercises.helpers import _close, _gen
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("03_feature_space", "channel-mean feature map upsampled to the image size")
def check_channel_mean_map(fn: Callable, rng: np.random.Generator) -> None:
    c, h = int(rng.integers(2, 9)), int(rng.integers(4, 12))
    size = int(rng.integers(2, 5)) * h
    feats = torch.rand(2, c, h, h, generator=_gen(rng))
    want = to_image_map(feats, (size, size))
    _close(fn(feats, size), want, f"channel_mean_map(features, {size})",
           "first average the channels into one (the result keeps a channel axis, of size 1), then "
           "resize that small map to the image side with bilinear interpolation whose corner pixels "
           "sit exactly on the corners of the image grid, as the task says.")


@exercise("03_feature_space", "predict the feature-map shape for a choice of EfficientNet-Lite0 layers")
def check_feature_shape(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.features import layer_table

    channels = {row["layer"]: row["channels"] for row in layer_table("efficientnet_lite0")}
    names = list(channels)
    for _ in range(3):
        k = int(rng.integers(1, 4))
        layers = tuple(str(n) for n in sorted(rng.choice(names, size=k, replace=False), key=names.index))
        size = 32 * int(rng.integers(2, 7))
        got = fn(layers, size)
        expected = (sum(channels[n] for n in layers), size // 4, size // 4)
        if not isinstance(got, tuple | list) or tuple(int(v) for v in got) != expected:
            raise Wrong(f"for layers {layers} at {size} px you predicted {got!r}, the extractor gives "
                        f"{expected}.", "the channels of the chosen layers add up (the layer table above "
                        "the exercise gives each layer's count); every layer is resized to a quarter of the "
                        "image side, whatever its own stride.")


@exercise("03_feature_space", "the layer that holds the channel with the largest absolute lesion contrast")
def check_best_layer(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("channels are concatenated layer after layer: the first layer's channels come first, then "
            "the second layer's, and so on, as many of each as the channel counts say. Find the channel "
            "with the largest *absolute* contrast (a darker response counts as much as a brighter one), "
            "ignoring NaN, then the layer its position falls into; with no valid channel at all the "
            "answer is None.")
    for case in range(4):
        k = int(rng.integers(2 if case == 2 else 1, 6))
        layers = [f"block{int(v)}" for v in np.sort(rng.choice(16, size=k, replace=False))]
        channels = [int(v) for v in rng.integers(1, 12, size=k)]
        contrast = rng.normal(0, 1, sum(channels))
        best = int(rng.integers(contrast.size))
        if case == 2:  # the first channel of a layer
            best = int(rng.choice(np.cumsum(channels[:-1])))
        contrast[best] = (-1 if case % 2 == 0 else 1) * (np.abs(contrast).max() + rng.uniform(0.1, 1))
        if case == 3:
            contrast[rng.random(contrast.size) < 0.3] = np.nan
            contrast[best] = -(np.nanmax(np.abs(contrast), initial=0.0) + 0.5)
        want = layers[int(np.searchsorted(np.cumsum(channels), best, side="right"))]
        got = fn(contrast.copy(), list(layers), list(channels))
        if got != want:
            raise Wrong(f"for layers {layers} with {channels} channels the strongest channel is number "
                        f"{best} (contrast {contrast[best]:.3f}), in {want}; you answered {got!r}.", hint)
    got = fn(np.full(sum(channels), np.nan), list(layers), list(channels))
    if got is not None:
        raise Wrong(f"when every contrast is NaN (no lesion pixel) expected None, got {got!r}.", hint)


# -- design task: which channels should the feature map average? -----------------------------------
_FEATURE_SIDE = 16
_GAIN_OVER_MEAN = 0.1  # the pass bar: this much above the held-out AP of the plain channel mean


def _feature_problem(rng: np.random.Generator) -> dict:
    """What one draw's toy extractor is: 3–5 layers of 4–12 channels; the channels of one layer respond
    to lesions, each brighter or darker by its own amount, the others hardly; every channel has its
    own noise level."""
    channels = [int(c) for c in rng.integers(4, 13, size=int(rng.integers(3, 6)))]
    layer = int(rng.integers(len(channels)))
    start = sum(channels[:layer])
    response = rng.normal(0, 0.05, sum(channels))
    response[start:start + channels[layer]] += (rng.choice([-1.0, 1.0], channels[layer])
                                                * rng.uniform(0.3, 1.0, channels[layer]))
    return {"channels": channels, "layer": layer, "response": torch.from_numpy(response).float(),
            "noise": torch.from_numpy(np.exp(rng.uniform(np.log(0.5), np.log(2.0), sum(channels)))).float()}


def _toy_features(rng: np.random.Generator, problem: dict, n: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` feature maps (N, C, h, w) of the toy extractor: smooth noise per channel plus each channel's
    response to a lesion disk; outside the round brain every channel holds an offset of its own.
    Returns (features, masks, brains), masks and brains on the feature grid."""
    from featureae_lite.core.maps import gaussian_blur

    g, side, c = _gen(rng), _FEATURE_SIDE, len(problem["response"])
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    brain = (((yy - 7.5) ** 2 + (xx - 7.5) ** 2) <= 7.2**2).float()
    masks = torch.zeros(n, 1, side, side)
    for i in range(n):
        r, (cy, cx) = float(rng.uniform(1.5, 3.5)), rng.uniform(4, side - 4, 2)
        masks[i, 0] = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float() * brain
    noise = 2 * gaussian_blur(torch.randn(n, c, side, side, generator=g), 5, 1.0, padding="reflect")
    lesion = gaussian_blur(masks, 3, 0.7)
    scale, response = problem["noise"][None, :, None, None], problem["response"][None, :, None, None]
    features = noise * scale + response * lesion
    outside = 3 * torch.randn(c, generator=g)[None, :, None, None]
    return features * brain + (1 - brain) * outside, masks, brain.expand(n, 1, side, side).clone()


@exercise("03_feature_space", "design: per-channel weights for a feature map, chosen on validation features, "
          "graded by the held-out AP against the plain channel mean", design=True)
def check_channel_weights(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.metrics import average_precision

    problem = _feature_problem(rng)
    val = _toy_features(rng, problem, 12)
    features, masks, brains = _toy_features(rng, problem, 24)
    c = features.shape[1]
    got = fn(*(t.clone() for t in val), list(problem["channels"]))
    hint = ("the plain mean gives every channel the same say: channels that turn darker on a lesion "
            "cancel those that turn brighter, and channels that do not respond add only noise. Measure "
            "on the validation features, inside the brain, how differently each channel behaves on "
            "lesion and normal pixels, compared with how much it varies on normal ones; give the "
            "separating channels weight with the sign of their response and the others little or "
            "none. Whole layers can share a behaviour: the channels list says which channels belong "
            "to which layer.")
    if isinstance(got, list | tuple):
        got = np.asarray(got, dtype=float)
    if isinstance(got, np.ndarray):
        got = torch.from_numpy(got)
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu()
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (c,) or not torch.isfinite(got).all() \
            or not got.abs().sum() > 0:
        raise Wrong(f"return {c} finite weights, one per channel (not all 0), as a tensor, an array or a "
                    f"list; got {type(got).__name__} of shape {tuple(getattr(got, 'shape', ()))}.", hint)

    def held_out_ap(w: torch.Tensor) -> float:
        amap = (features * w.float()[None, :, None, None]).sum(1, keepdim=True)
        return average_precision(amap.numpy(), masks.numpy() > 0, brains.numpy() > 0)

    mine, plain = held_out_ap(got), held_out_ap(torch.ones(c))
    if mine < plain + _GAIN_OVER_MEAN:
        raise Wrong(f"with your weights the map reaches a held-out pixel AP of {mine:.3f}; the plain channel "
                    f"mean reaches {plain:.3f} (pass: at least {_GAIN_OVER_MEAN} more, "
                    f"{plain + _GAIN_OVER_MEAN:.3f}).", hint)
    layer, response = problem["layer"], problem["response"]
    start = sum(problem["channels"][:layer])
    brighter = int((response[start:start + problem["channels"][layer]] > 0).sum())
    return (f"held-out pixel AP {mine:.2f} with your weights against {plain:.2f} for the plain channel "
            f"mean; the lesion-sensitive channels were those of layer {layer + 1} of "
            f"{len(problem['channels'])} ({brighter} brighter, {problem['channels'][layer] - brighter} "
            f"darker on a lesion).")
