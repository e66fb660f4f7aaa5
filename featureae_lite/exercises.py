"""Exercise checkers for the notebooks: clear, encouraging feedback instead of bare assertions.

Every exercise in a notebook is a cell tagged ``exercise`` that defines one function (the reference
solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), followed by a check cell::

    fl.exercises.check("l1_residual", l1_residual)

:func:`check` calls the learner's function on small synthetic inputs, compares the answer with a
reference implementation and shows a :class:`Feedback` (passed / failed / not attempted, what is
wrong, a hint). It never raises, so a notebook keeps running after a wrong answer. The feedback is
also emitted under the MIME type :data:`MIME` so that ``featureae-lite assignments grade`` can read
the results back from an executed notebook.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

MIME = "application/vnd.featureae-lite.exercise+json"
STATUSES = ("passed", "failed", "not attempted")


class Wrong(Exception):
    """Raised by a checker: the answer is wrong; ``args[0]`` says how, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class Feedback:
    """Outcome of one check.

    Attributes
    ----------
    exercise : str
        Exercise name (a key of :data:`EXERCISES`).
    status : str
        ``"passed"``, ``"failed"`` or ``"not attempted"``.
    message : str
        What went right or wrong, with a hint.
    """

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def text(self) -> str:
        mark = {"passed": "✔", "failed": "✘", "not attempted": "…"}[self.status]
        return f"{mark} {self.exercise}: {self.status}. {self.message}"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {"text/plain": self.text(), MIME: asdict(self)}


@dataclass(frozen=True)
class Exercise:
    """One exercise: its notebook, a one-line task and the checker (raises :class:`Wrong`)."""

    name: str
    notebook: str
    task: str
    checker: Callable[[Callable], None]


EXERCISES: dict[str, Exercise] = {}


def exercise(notebook: str, task: str) -> Callable:
    """Decorator registering ``check_<name>`` as the checker of exercise ``<name>``."""

    def wrap(fn: Callable[[Callable], None]) -> Callable[[Callable], None]:
        name = fn.__name__.removeprefix("check_")
        EXERCISES[name] = Exercise(name, notebook, task, fn)
        return fn

    return wrap


def feedback(name: str, answer: Any) -> Feedback:
    """Run the checker of exercise ``name`` on ``answer`` and return the :class:`Feedback`."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; known exercises: {', '.join(EXERCISES)}")
    if not callable(answer):
        return Feedback(name, "failed", f"expected a function, got {type(answer).__name__}. "
                        "Hint: pass the function itself, e.g. check(name, my_function).")
    try:
        EXERCISES[name].checker(answer)
    except NotImplementedError:
        return Feedback(name, "not attempted", "Replace the `raise NotImplementedError` with your code, "
                        "run the cell, then run this check again.")
    except Wrong as err:
        hint = f" Hint: {err.hint}" if err.hint else ""
        return Feedback(name, "failed", f"{err.args[0]}{hint} Nearly there, try again!")
    except Exception as err:  # the learner's code crashed: report it, do not crash the notebook
        return Feedback(name, "failed", f"your function raised {type(err).__name__}: {err}. "
                        "Read the message, fix the line it points to and run the check again.")
    return Feedback(name, "passed", "Well done!")


def check(name: str, answer: Any) -> Feedback:
    """Check ``answer`` for exercise ``name`` and display the feedback (never raises for bad answers)."""
    result = feedback(name, answer)
    try:
        from IPython.display import display

        display(result)
    except ImportError:  # plain Python: print instead
        print(result.text())
    return result


# -- helpers for checkers ------------------------------------------------------------------------
def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tensor(answer: Any, what: str) -> torch.Tensor:
    if isinstance(answer, np.ndarray):
        answer = torch.from_numpy(answer)
    if not isinstance(answer, torch.Tensor):
        raise Wrong(f"{what} should be a torch.Tensor, got {type(answer).__name__}.")
    return answer


def _close(got: Any, want: torch.Tensor, what: str, hint: str = "", atol: float = 1e-5) -> None:
    got = _tensor(got, what).to(want.dtype)
    if tuple(got.shape) != tuple(want.shape):
        raise Wrong(f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}.", hint)
    if not torch.isfinite(got).all():
        raise Wrong(f"{what} contains NaN or infinite values.", hint)
    err = float((got - want).abs().max()) if got.numel() else 0.0
    if err > atol:
        raise Wrong(f"{what} differs from the expected values (largest difference {err:.3g}).", hint)


def _number(got: Any, want: float, what: str, hint: str = "", tol: float = 1e-5) -> None:
    try:
        value = float(got)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} should be a number, got {type(got).__name__}.", hint) from err
    if not math.isclose(value, want, rel_tol=tol, abs_tol=tol):
        raise Wrong(f"{what} is {value:.6g}, expected {want:.6g}.", hint)


def _maps(n: int = 3, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    maps = torch.rand(n, 1, size, size, generator=g)
    brains = torch.zeros(n, 1, size, size)
    brains[..., 3:-3, 2:-4] = 1
    return maps, brains


# -- 00 MRI data -----------------------------------------------------------------------------------
@exercise("00_mri_data_and_anomalies", "lesion volume in millilitres from a voxel mask and voxel sizes")
def check_lesion_volume_ml(fn: Callable) -> None:
    mask = np.zeros((10, 12, 8), dtype=bool)
    mask[2:5, 3:7, 1:3] = True  # 24 voxels
    for zooms in ((1.0, 1.0, 1.0), (0.5, 0.8, 2.0)):
        _number(fn(mask, zooms), mask.sum() * float(np.prod(zooms)) / 1000.0,
                f"the volume for voxel sizes {zooms} mm",
                "count the voxels, multiply by the volume of one voxel (mm³), 1 ml = 1000 mm³.")


@exercise("00_mri_data_and_anomalies", "mean lesion intensity over the mean of the rest of the brain")
def check_intensity_ratio(fn: Callable) -> None:
    g = np.random.default_rng(0)
    image = g.uniform(0.2, 0.6, (20, 20))
    brain = np.zeros((20, 20), bool)
    brain[2:18, 2:18] = True
    lesion = np.zeros((20, 20), bool)
    lesion[5:9, 6:10] = True
    image[lesion] += 0.3
    want = image[lesion].mean() / image[brain & ~lesion].mean()
    _number(fn(image, lesion, brain), want, "the intensity ratio",
            "the denominator uses brain pixels that are *not* lesion: brain & ~lesion.")


# -- 01 l1 residual ------------------------------------------------------------------------------
@exercise("01_l1_residual_autoencoder", "the l1 residual map |x − x̂|")
def check_l1_residual(fn: Callable) -> None:
    x, _ = _maps(seed=1)
    x_hat, _ = _maps(seed=2)
    _close(fn(x, x_hat), (x - x_hat).abs(), "l1_residual(x, x_hat)",
           "the map keeps the shape (N, 1, H, W): take the absolute difference pixel by pixel.")


@exercise("01_l1_residual_autoencoder", "image score: mean of in-brain map values above the 90th percentile")
def check_top10_mean_score(fn: Callable) -> None:
    from featureae_lite.maps import image_scores

    maps, brains = _maps(4, 20, seed=3)
    _close(fn(maps, brains), image_scores(maps, brains, "top10_mean"), "top10_mean_score(maps, brains)",
           "per slice: keep values where brain > 0, q = torch.quantile(values, 0.9), "
           "average the values >= q; return shape (N,).")


# -- 02 SSIM -------------------------------------------------------------------------------------
def _ssim_terms(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[float, float, float]:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    c3 = c2 / 2
    mx, my = x.mean(), y.mean()
    sx, sy = x.std(unbiased=False), y.std(unbiased=False)
    sxy = ((x - mx) * (y - my)).mean()
    luminance = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    contrast = (2 * sx * sy + c2) / (sx**2 + sy**2 + c2)
    return float(luminance), float(contrast), float((sxy + c3) / (sx * sy + c3))


@exercise("02_ssim", "SSIM's luminance, contrast and structure terms of two patches")
def check_ssim_terms(fn: Callable) -> None:
    g = _gen(4)
    x = torch.rand(8, 8, generator=g)
    for name, y in {"a brighter copy": x * 0.5 + 0.4, "a noisy copy": x + 0.2 * torch.rand(8, 8, generator=g),
                    "a mirrored copy": x.flip(-1)}.items():
        got = fn(x, y)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Wrong("return a tuple (luminance, contrast, structure).")
        for label, value, want in zip(("luminance", "contrast", "structure"), got, _ssim_terms(x, y),
                                      strict=True):
            _number(value, want, f"the {label} term for {name}",
                    "use population statistics (std(unbiased=False)), C1 = (0.01 L)², C2 = (0.03 L)², "
                    "C3 = C2 / 2.", tol=1e-4)


@exercise("02_ssim", "the SSIM loss 1 − mean SSIM of a batch and its reconstruction")
def check_ssim_loss(fn: Callable) -> None:
    from featureae_lite.ssim import ssim_map

    x, _ = _maps(2, 24, seed=5)
    x_hat = (x + 0.1 * torch.rand(x.shape, generator=_gen(6))).clamp(0, 1)
    _number(fn(x, x_hat), float(1 - ssim_map(x_hat, x).mean()), "ssim_loss(x, x_hat)",
            "fl.ssim.ssim_map(x_hat, x) gives the per-pixel SSIM; average it and subtract from 1.")


# -- 03 feature space ----------------------------------------------------------------------------
@exercise("03_feature_space", "channel-mean feature map upsampled to the image size")
def check_channel_mean_map(fn: Callable) -> None:
    feats = torch.rand(2, 5, 8, 8, generator=_gen(7))
    want = F.interpolate(feats.mean(1, keepdim=True), size=(32, 32), mode="bilinear", align_corners=True)
    _close(fn(feats, 32), want, "channel_mean_map(features, 32)",
           "average over dim 1 with keepdim=True, then F.interpolate(..., mode='bilinear', "
           "align_corners=True).")


@exercise("03_feature_space", "predict the feature-map shape for a choice of EfficientNet-Lite0 layers")
def check_feature_shape(fn: Callable) -> None:
    from featureae_lite.features import FeatureExtractor

    for layers in (("block2",), ("block2", "block4", "block10"), ("stem", "block4", "block10", "block15")):
        want = FeatureExtractor(layers=layers, pretrained=False).layer_channels
        got = fn(layers, 128)
        expected = (sum(want), 32, 32)
        if tuple(int(v) for v in got) != expected:
            raise Wrong(f"for layers {layers} at 128 px you predicted {tuple(got)}, the extractor gives "
                        f"{expected}.", "channels add up over the layers; every layer is resized to "
                        "1/4 of the image side.")


# -- 04 FAE --------------------------------------------------------------------------------------
@exercise("04_feature_autoencoder", "FAE's training loss: 1 − mean feature-space SSIM (5×5 window)")
def check_feature_ssim_loss(fn: Callable) -> None:
    from featureae_lite.ssim import ssim_map

    f = torch.randn(2, 6, 12, 12, generator=_gen(8))
    f_hat = f + 0.3 * torch.randn(f.shape, generator=_gen(9))
    _number(fn(f, f_hat), float(1 - ssim_map(f_hat, f, window_size=5).mean()), "feature_ssim_loss(f, f_hat)",
            "ssim_map works for any channel count; use window_size=5.")


@exercise("04_feature_autoencoder", "FAE's anomaly map: channel-mean 1 − SSIM upsampled to the image")
def check_fae_map(fn: Callable) -> None:
    from featureae_lite.ssim import ssim_map

    f = torch.randn(2, 6, 12, 12, generator=_gen(10))
    f_hat = f + 0.3 * torch.randn(f.shape, generator=_gen(11))
    amap = (1 - ssim_map(f_hat, f, window_size=5)).mean(1, keepdim=True)
    want = F.interpolate(amap, size=(48, 48), mode="bilinear", align_corners=True)
    _close(fn(f, f_hat, 48), want, "fae_map(f, f_hat, 48)",
           "1 − ssim_map(..., window_size=5), mean over channels (keepdim), then bilinear upsampling "
           "with align_corners=True.")


# -- 05 evaluation -------------------------------------------------------------------------------
@exercise("05_evaluation", "average precision by hand (sort, cumulative TP/FP)")
def check_average_precision(fn: Callable) -> None:
    from sklearn.metrics import average_precision_score

    g = np.random.default_rng(12)
    labels = g.random(500) < 0.1
    scores = g.random(500) + 0.5 * labels
    _number(fn(scores, labels), float(average_precision_score(labels, scores)), "your AP",
            "sort scores descending; precision at each positive = TP so far / rank; AP = mean of the "
            "precisions at the positives.", tol=1e-6)


@exercise("05_evaluation", "the Dice coefficient of two binary masks")
def check_dice(fn: Callable) -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[2:6, 2:6], b[4:8, 3:7] = True, True
    _number(fn(a, b), 2 * (a & b).sum() / (a.sum() + b.sum()), "dice(a, b)",
            "Dice = 2 |A ∩ B| / (|A| + |B|).")
    _number(fn(a, a), 1.0, "dice(a, a)", "identical masks have Dice 1.")


@exercise("05_evaluation", "choose the Dice-maximising threshold on validation scores")
def check_val_threshold(fn: Callable) -> None:
    from featureae_lite.metrics import best_dice, dice_iou_at_threshold

    g = np.random.default_rng(13)
    labels = g.random(2000) < 0.05
    scores = g.random(2000) + 0.6 * labels
    best, _ = best_dice(scores, labels)
    thr = fn(scores, labels)
    got, _ = dice_iou_at_threshold(scores, labels, float(thr))
    if got < best - 1e-6:
        raise Wrong(f"binarising at your threshold {float(thr):.4f} gives Dice {got:.4f}; the best "
                    f"possible is {best:.4f}.", "try every distinct score as the threshold (pixels ≥ "
                    "threshold are positive) and keep the one with the highest Dice.")


# -- 06 DPA --------------------------------------------------------------------------------------
@exercise("06_perceptual_autoencoder", "the relative perceptual L1 with a detached denominator")
def check_relative_perceptual_l1(fn: Callable) -> None:
    from featureae_lite.models.dpa import relative_perceptual_loss

    fx = torch.randn(3, 4, 5, 5, generator=_gen(14)).requires_grad_(True)
    fy = torch.randn(3, 4, 5, 5, generator=_gen(15))
    got = fn(fx, fy)
    _close(got.detach() if isinstance(got, torch.Tensor) else got, relative_perceptual_loss(fx, fy).detach(),
           "relative_perceptual_l1(fx, fy)", "per sample: mean |fx − fy| / mean |fx|, shape (N,).")
    got.sum().backward()
    den = fx.detach().abs().flatten(1).mean(1).view(-1, 1, 1, 1)
    want = torch.sign(fx - fy).detach() / (den * fx[0].numel())
    _close(fx.grad, want, "the gradient with respect to fx",
           "the denominator must not carry gradient: divide by mean |fx| computed on fx.detach().")


@exercise("06_perceptual_autoencoder", "choose a hyperparameter from validation results only")
def check_choose_on_val(fn: Callable) -> None:
    rows = [{"latent_dim": 16, "val_auroc": 0.61}, {"latent_dim": 64, "val_auroc": float("nan")},
            {"latent_dim": 128, "val_auroc": 0.74}, {"latent_dim": 256, "val_auroc": 0.70}]
    got = fn(rows, "val_auroc")
    if not isinstance(got, dict) or got.get("latent_dim") != 128:
        raise Wrong(f"expected the row with latent_dim 128, got {got!r}.",
                    "ignore NaN values (math.isnan) and return the whole row with the highest value.")


# -- 07 ProxyAno ---------------------------------------------------------------------------------
@exercise("07_proxy_bridged_reconstruction", "superpixel image: every region set to its mean intensity")
def check_superpixel_mean_image(fn: Callable) -> None:
    g = np.random.default_rng(16)
    image = g.random((12, 12))
    labels = np.zeros((12, 12), int)
    labels[1:6, 1:11], labels[6:11, 1:6], labels[6:11, 6:11] = 1, 2, 3
    want = np.zeros_like(image)
    for k in (1, 2, 3):
        want[labels == k] = image[labels == k].mean()
    _close(fn(image, labels), torch.from_numpy(want), "superpixel_mean_image(image, labels)",
           "label 0 is background and stays 0; for every other label k set image[labels == k].mean().")


@exercise("07_proxy_bridged_reconstruction", "the memory read-out softmax(z·Mᵀ/τ)·M")
def check_memory_readout(fn: Callable) -> None:
    z = torch.randn(5, 4, generator=_gen(17))
    memory = torch.randn(7, 4, generator=_gen(18))
    want = torch.softmax(z @ memory.t() / 0.5, dim=1) @ memory
    _close(fn(z, memory, 0.5), want, "memory_readout(z, memory, 0.5)",
           "weights = softmax over the slots (dim=1) of z @ memory.T / temperature; read-out = weights "
           "@ memory, shape (K, D).")


# -- 08 patch similarity -------------------------------------------------------------------------
@exercise("08_patch_similarity_scoring", "normalised cross-correlation of two patches")
def check_ncc(fn: Callable) -> None:
    x = torch.rand(7, 7, generator=_gen(19))
    eps = 1e-4
    for name, y in {"a brighter copy": 2 * x + 0.1, "a mirrored copy": x.flip(0),
                    "two flat patches": torch.zeros(7, 7)}.items():
        a = torch.zeros(7, 7) if name == "two flat patches" else x
        cov = ((a - a.mean()) * (y - y.mean())).mean()
        want = (cov + eps) / torch.sqrt((a.var(unbiased=False) + eps) * (y.var(unbiased=False) + eps))
        _number(fn(a, y, eps), float(want), f"ncc for {name}",
                "NCC = (cov + eps) / sqrt((var_x + eps)(var_y + eps)) with population statistics.",
                tol=1e-4)


@exercise("08_patch_similarity_scoring", "a local NCC map with a square (box) window")
def check_box_ncc_map(fn: Callable) -> None:
    x = torch.rand(1, 1, 16, 16, generator=_gen(20))
    y = torch.rand(1, 1, 16, 16, generator=_gen(21))
    eps, w = 1e-4, 5

    def box(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (w // 2,) * 4, mode="reflect"), w, stride=1)

    mx, my = box(x), box(y)
    vx, vy, cov = box(x * x) - mx**2, box(y * y) - my**2, box(x * y) - mx * my
    want = (cov + eps) / torch.sqrt((vx.clamp_min(0) + eps) * (vy.clamp_min(0) + eps))
    _close(fn(x, y, w, eps), want, "box_ncc_map(x, y, 5, 1e-4)",
           "local means with F.avg_pool2d(F.pad(t, (w//2,)*4, mode='reflect'), w, stride=1); "
           "var = mean(x²) − mean(x)², cov = mean(xy) − mean(x)mean(y).", atol=1e-4)


# -- 09 benchmark --------------------------------------------------------------------------------
@exercise("09_benchmark", "the best method for each anomaly type")
def check_winner_per_type(fn: Callable) -> None:
    table = {"ae_l1": {"tumor": 0.3, "structural": 0.02}, "fae": {"tumor": 0.25, "structural": 0.09},
             "threshold": {"tumor": 0.4, "structural": 0.01}}
    got = fn(table)
    want = {"tumor": "threshold", "structural": "fae"}
    if got != want:
        raise Wrong(f"expected {want}, got {got!r}.",
                    "for each type, compare every method's value and keep the method name with the highest.")


@exercise("09_benchmark", "how many times better than a baseline (ratio of pixel APs)")
def check_gain_over_baseline(fn: Callable) -> None:
    results = {"threshold": {"pixel_ap": 0.04}, "fae": {"pixel_ap": 0.1}, "random": {"pixel_ap": 0.0}}
    _number(fn(results, "fae", "threshold"), 2.5, "gain_over_baseline(results, 'fae', 'threshold')",
            "divide the method's pixel_ap by the baseline's.")
    got = fn(results, "fae", "random")
    if not (isinstance(got, float) and math.isinf(got)):
        raise Wrong(f"against a baseline with AP 0 the gain should be float('inf'), got {got!r}.",
                    "handle a zero baseline explicitly instead of dividing by zero.")
