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
