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


# -- design task: an intensity lesion detector that survives another scanner ------------------------
_SHAPE = (16, 40, 40)  # slices × rows × columns of the toy volumes
_DICE_SHARE = 0.75  # the pass bar: this share of the Dice of the best threshold chosen with the labels


def _axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.meshgrid(*[np.linspace(-1, 1, s) for s in _SHAPE], indexing="ij"))


def _toy_volume(rng: np.random.Generator, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A FLAIR-like toy volume: an ellipsoid brain of grey matter, white matter and CSF in fixed
    proportions (a smooth random field decides where), 1–3 bright ellipsoid lesions of about
    ``radius`` voxels, partial-volume blur and noise. Returns (image, lesion, brain)."""
    from scipy.ndimage import gaussian_filter

    z, y, x = _axes()
    brain = (z / 0.95) ** 2 + (y / 0.9) ** 2 + (x / 0.8) ** 2 <= 1
    field = gaussian_filter(rng.normal(size=_SHAPE), 2.0)
    csf, white = np.quantile(field[brain], [0.1, 0.6])
    image = np.where(field < csf, 0.2, np.where(field < white, 0.45, 0.6))  # FLAIR: WM darker than GM
    lesion, index, centres = np.zeros(_SHAPE, bool), np.indices(_SHAPE), np.argwhere(brain)
    for _ in range(int(rng.integers(1, 4))):
        centre = centres[int(rng.integers(len(centres)))][:, None, None, None]
        axes = radius * rng.uniform(0.7, 1.3, 3)[:, None, None, None]
        lesion |= (((index - centre) / axes) ** 2).sum(0) <= 1
    lesion &= brain
    image = np.where(lesion, rng.uniform(1.0, 1.1), image)
    image = gaussian_filter(image, 0.7) + rng.normal(0, 0.03, _SHAPE)
    return np.where(brain, image, 0.0), lesion, brain


def _another_scanner(rng: np.random.Generator, image: np.ndarray,
                     brain: np.ndarray) -> tuple[np.ndarray, float]:
    """The same volume as another scanner records it: a gain, an offset, a gamma and a smooth
    multiplicative bias field across the volume. Returns the image and the gain."""
    z, y, x = _axes()
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    bias = np.exp(rng.uniform(0.03, 0.1) * (direction[0] * z + direction[1] * y + direction[2] * x))
    gain, offset, gamma = np.exp(rng.uniform(-1, 1)), rng.uniform(-0.3, 0.3), np.exp(rng.uniform(-0.2, 0.2))
    return np.where(brain, gain * np.clip(image, 0, None) ** gamma * bias + offset, 0.0), float(gain)


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (pred & truth).sum() / max(1, pred.sum() + truth.sum()))


@exercise("00_mri_data_and_anomalies", "design: an intensity lesion detector calibrated on one labelled "
          "volume, graded by Dice on a held-out volume from another scanner", design=True)
def check_lesion_detector(fn: Callable, rng: np.random.Generator) -> str:
    from featureae_lite.core.metrics import best_dice

    radii = [float(rng.uniform(2.3, 3.0)), float(rng.uniform(3.6, 4.6))]  # one volume with small
    rng.shuffle(radii)  # lesions, one with large ones, in a random order
    val_image, val_lesion, val_brain = _toy_volume(rng, radii[0])
    val_image, _ = _another_scanner(rng, val_image, val_brain)
    image, lesion, brain = _toy_volume(rng, radii[1])
    image, gain = _another_scanner(rng, image, brain)
    got = fn(val_image.copy(), val_lesion.copy(), val_brain.copy(), image.copy(), brain.copy())
    hint = ("a threshold is a number in the intensity units of one scan, and the held-out volume has "
            "other units (gain, offset, gamma, bias field). Express intensities relative to each "
            "volume's own brain before you choose the threshold on the validation volume, so that the "
            "same number means the same thing in both; prefer statistics that a few lesion voxels do "
            "not move, and a threshold in the middle of the range that works on validation rather than "
            "at its edge. A fixed share of the brightest voxels does not carry over either: the lesion "
            "load differs between the volumes.")
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    pred = np.asarray(got)
    if pred.shape != _SHAPE or not (pred.dtype == bool or np.isin(pred, (0, 1)).all()):
        raise Wrong(f"return a boolean lesion mask of the held-out volume, shape {_SHAPE}; got "
                    f"{type(got).__name__} of shape {pred.shape}.", hint)
    pred = pred.astype(bool)
    dice, (best, _) = _dice(pred, lesion), best_dice(image[brain], lesion[brain])
    carried = _dice((image >= best_dice(val_image[val_brain], val_lesion[val_brain])[1]) & brain, lesion)
    if dice < _DICE_SHARE * best:
        raise Wrong(f"your mask reaches a Dice of {dice:.3f} on the held-out volume; the best single "
                    f"threshold, chosen with its labels, reaches {best:.3f} (pass: at least "
                    f"{_DICE_SHARE:.0%} of it, {_DICE_SHARE * best:.3f}).", hint)
    return (f"held-out Dice {dice:.2f} on a volume recorded with {gain:.2g}× the gain, an offset, a gamma "
            f"and a bias field; the best threshold chosen with its labels reaches {best:.2f}, the "
            f"validation volume's best threshold carried over as a number {carried:.2f}.")
