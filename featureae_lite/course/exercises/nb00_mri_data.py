"""Checkers of the exercises of notebook ``00_mri_data_and_anomalies``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from featureae_lite.course.exercises.helpers import _number
from featureae_lite.course.exercises.registry import Wrong, exercise


@exercise("00_mri_data_and_anomalies", "lesion volume in millilitres from a voxel mask and voxel sizes")
def check_lesion_volume_ml(fn: Callable, rng: np.random.Generator) -> None:
    for _ in range(3):
        mask = rng.random(tuple(rng.integers(4, 12, size=3))) < rng.uniform(0.05, 0.5)
        zooms = tuple(float(z) for z in rng.uniform(0.4, 3.0, size=3).round(2))
        _number(fn(mask, zooms), mask.sum() * float(np.prod(zooms)) / 1000.0,
                f"the volume of a {mask.sum()}-voxel mask for voxel sizes {zooms} mm",
                "count the voxels, multiply by the volume of one voxel (mm³), 1 ml = 1000 mm³.")
    _number(fn(np.zeros((3, 3, 3), bool), (1.0, 1.0, 1.0)), 0.0, "the volume of an empty mask")


@exercise("00_mri_data_and_anomalies", "mean lesion intensity over the mean of the rest of the brain")
def check_intensity_ratio(fn: Callable, rng: np.random.Generator) -> None:
    for _ in range(3):
        h, w = (int(v) for v in rng.integers(16, 32, size=2))
        image = rng.uniform(0.2, 0.6, (h, w))
        brain = np.zeros((h, w), bool)
        brain[2:-2, 2:-2] = True
        lesion = np.zeros((h, w), bool)
        top, left = int(rng.integers(3, h - 8)), int(rng.integers(3, w - 8))
        lesion[top:top + 4, left:left + 4] = True
        image[lesion] += rng.uniform(-0.15, 0.3)
        want = image[lesion].mean() / image[brain & ~lesion].mean()
        _number(fn(image, lesion, brain), want, "the intensity ratio",
                "the denominator averages over brain pixels that are *not* lesion pixels.")


_NAMES = ("tumor", "lesions", "stroke", "structural", "edema", "cyst", "bleed", "infarct", "plaque", "mass")


@exercise("00_mri_data_and_anomalies", "rank anomaly types by |log| of their intensity ratio, smallest first")
def check_rank_by_log_ratio(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("a lesion half as bright as the brain is as distinct as one twice as bright: compare the "
            "absolute value of the logarithm of each ratio, smallest first; leave NaN ratios out and "
            "break ties by the type's name in alphabetical order.")

    def want(ratios: dict) -> list:
        valid = [k for k, r in ratios.items() if not math.isnan(r)]
        return sorted(valid, key=lambda k: (abs(math.log(ratios[k])), k))

    for case in range(4):
        names = [str(n) for n in rng.permutation(_NAMES)[: int(rng.integers(2, 7))]]
        ratios = {n: float(np.exp(rng.uniform(-1.2, 1.2))) for n in names}
        if case in (0, 3):  # a darker lesion further from 1 than a brighter one, on a log scale only
            bright = float(rng.uniform(1.5, 3.0))
            ratios[names[0]], ratios[names[1]] = bright, 1.0 / (bright * float(rng.uniform(1.2, 1.6)))
        if case == 1:  # a darker and a brighter lesion exactly as far from 1 on a log scale: a tie,
            later, earlier = sorted(names[:2], reverse=True)  # listed against the alphabetical order
            ratios = {later: float(rng.choice([2.0, 4.0])), **{k: v for k, v in ratios.items() if k != later}}
            ratios[earlier] = 1.0 / ratios[later]  # exact reciprocals
        if case == 2:  # a type without a measurable ratio
            ratios[names[-1]] = float("nan")
        expected = want(ratios)
        got = fn(dict(ratios))
        if not isinstance(got, list | tuple) or [str(v) for v in got] != expected:
            shown = {k: round(v, 4) for k, v in ratios.items()}
            raise Wrong(f"for the ratios {shown} expected the order {expected}, got {got!r}.", hint)
    got = fn({})
    if not isinstance(got, list | tuple) or list(got):
        raise Wrong(f"for no types at all expected an empty list, got {got!r}.", hint)
