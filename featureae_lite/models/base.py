"""The one small interface every anomaly detector implements.

A detector is a plain ``nn.Module`` with four extra duties:

* ``fit(train, val)`` — learn from healthy slices (the shared loop :func:`featureae_lite.training.fit`
  for trainable methods);
* ``predict(images, brains)`` → :class:`AnomalyOutput` ``(maps (N, 1, H, W), scores (N,))``;
* ``save(path)`` / :func:`featureae_lite.models.registry.load_detector` — the checkpoint carries the
  method name and config and is read back with ``torch.load(..., weights_only=True)``.

Methods see their data as a :class:`Batch` (images, real brain masks, and whatever ``prepare``
caches once per slice, e.g. frozen backbone features) and implement three hooks:
``prepare(batch)`` → the batch with its cached inputs, ``loss(batch)`` → a scalar training loss and
``anomaly_map(batch)`` → the raw map (N, 1, H, W) before post-processing (or ``map_and_score`` when
the method has its own image score). Frozen pretrained helpers are held with :meth:`hold_frozen`:
normal submodules (they follow ``.to(device)``) that are left out of checkpoints.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from featureae_lite.core.device import resolve_device
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import atomic_path, check_output_file
from featureae_lite.core.maps import ScoreRule, batched, image_scores, postprocess
from featureae_lite.data.batch import Batch
from featureae_lite.training import fit as training_fit


class AnomalyOutput(NamedTuple):
    """What :meth:`Detector.predict` returns.

    Attributes
    ----------
    maps : Tensor
        Pixel anomaly maps, shape (N, 1, H, W), higher = more anomalous.
    scores : Tensor
        Image-level anomaly scores, shape (N,).
    """

    maps: Tensor
    scores: Tensor


MAX_STEPS = 10_000_000  # the most training steps a config (or --steps) may ask: 1000x the references'


Schedule = Literal["constant", "cosine"]


@dataclasses.dataclass
class DetectorConfig:
    """Settings shared by every method.

    Attributes
    ----------
    image_size : int
        Side of the square input slices (H = W).
    seed : int
        Seed for weight initialisation and training order.
    steps : int
        Optimisation steps (ignored by non-trainable methods).
    batch_size : int
        Mini-batch size.
    lr : float
        Adam learning rate.
    mask_brain : bool
        Multiply maps by the brain mask (post-processing shared by all methods).
    smooth_sigma : float
        Gaussian smoothing of maps in pixels (0 = none; the FAE reference applies none).
    score : str
        Image score rule: ``"top10_mean"`` (mean of in-brain map values above the 90th percentile,
        the FAE reference) or ``"max"`` (in-brain maximum, the UPD study).
    schedule : str
        Learning-rate schedule: ``"constant"`` (the references) or ``"cosine"`` (linear warm-up over
        ``warmup`` × steps, then cosine decay to 1 % of ``lr``; ``training.lr_factor``).
    warmup : float
        Fraction of the steps spent warming up under ``schedule="cosine"``.

    Every config checks itself when it is made (``__post_init__``): a field typed ``Literal[...]``
    must hold one of its values, and each method adds its own checks (calling this one first).
    """

    image_size: int = 128
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    mask_brain: bool = True
    smooth_sigma: float = 0.0
    score: ScoreRule = "top10_mean"
    schedule: Schedule = "constant"
    warmup: float = 0.05

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            allowed = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else ()
            value = getattr(self, f.name)
            if allowed and value not in allowed:
                raise InputError(f"{f.name} must be one of {', '.join(allowed)}, got {value!r}")
        if not 0 <= self.warmup < 1:
            raise InputError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")


SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)
REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding a detector to :data:`REGISTRY` under ``cls.name``
    (:mod:`featureae_lite.models.registry` builds and loads them)."""
    REGISTRY[cls.name] = cls
    return cls


class Detector(nn.Module):
    """Base class of every anomaly detector (see the module docstring)."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[DetectorConfig]] = DetectorConfig
    trainable: ClassVar[bool] = True
    prepare_for_prediction: ClassVar[bool] = True  # False: predict skips prepare (training-only inputs)

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.config_class()
        self.history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
        self._frozen: set[str] = set()

    # -- frozen helpers and devices --------------------------------------------------------
    def hold_frozen(self, name: str, module: nn.Module) -> nn.Module:
        """Hold a frozen helper such as a pretrained backbone as submodule ``name``: the detector owns
        it (it follows ``.to(device)`` and dtype changes of this detector only) but it is left out of
        :meth:`state_dict` (its weights ship with its package, not with the checkpoint). Returns the
        module."""
        setattr(self, name, module)
        self._frozen.add(name)
        return module

    def _is_frozen_key(self, key: str, prefix: str = "") -> bool:
        return key[len(prefix):].split(".", 1)[0] in self._frozen if key.startswith(prefix) else False

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The trained weights and buffers, without the frozen helpers (see :meth:`hold_frozen`)."""
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        for key in [k for k in state if self._is_frozen_key(k, prefix)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load weights saved by :meth:`state_dict`; the frozen helpers keep their own weights."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not self._is_frozen_key(k)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys "
                               f"{missing}, unexpected keys {result.unexpected_keys}")
        return result._replace(missing_keys=missing)

    @property
    def device(self) -> torch.device:
        """Device of the detector's weights (the CPU for a detector without any)."""
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

    def to_device(self, device: str | torch.device | None = "auto") -> Detector:
        """Move the detector (frozen helpers included) to ``device`` (``"auto"``, ``"cpu"``,
        ``"cuda"``, ``"mps"``; see :func:`featureae_lite.core.device.resolve_device`). Returns it."""
        return self.to(resolve_device(device))

    # -- hooks for the training loop and prediction ------------------------------------------
    def prepare(self, batch: Batch) -> Batch:
        """The batch with what the method computes once per slice (default: nothing)."""
        return batch

    def fit_statistics(self, batch: Batch) -> None:
        """Called by the training loop once with the prepared training set (default: nothing;
        DPA measures its feature statistics here)."""

    def loss(self, batch: Batch) -> Tensor:
        """Scalar training loss of a prepared batch."""
        raise NotImplementedError(f"{self.name} is not trainable")

    def anomaly_map(self, batch: Batch) -> Tensor:
        """Raw anomaly map (N, 1, H, W) of a prepared batch, before post-processing."""
        raise NotImplementedError

    def map_and_score(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """Raw maps (N, 1, H, W) and, for methods with their own image score, scores (N,); None =
        the shared rule on the post-processed map (``config.score``)."""
        return self.anomaly_map(batch), None

    # -- public API ---------------------------------------------------------------------
    def fit(self, train, val=None, **kwargs: Any) -> Detector:
        """Fit on healthy training slices.

        Parameters
        ----------
        train : Batch or Tensor
            Healthy training slices; images (N, 1, H, W) in [0, 1] (and their brain masks).
        val : Batch or Tensor, optional
            Validation slices for the validation loss / early stopping.
        **kwargs
            Passed to :func:`featureae_lite.training.fit` (``progress``, ``patience``, …).
        """
        if self.trainable:
            training_fit(self, train, val, **kwargs)
        return self

    def check_images(self, images: Tensor, brains: Tensor | None = None) -> None:
        """Validate a batch at the boundary; raises ValueError with the offending shape."""
        size = self.config.image_size
        if not isinstance(images, Tensor):
            raise InputError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 1 or images.shape[-2:] != (size, size):
            raise InputError(
                f"{self.name} expects images of shape (N, 1, {size}, {size}), "
                f"got {tuple(images.shape)}"
            )
        if not torch.isfinite(images).all():
            raise InputError("images contain NaN or infinite values")
        if brains is not None and brains.shape != images.shape:
            raise InputError(
                f"brain mask shape {tuple(brains.shape)} does not match images {tuple(images.shape)}"
            )

    @torch.no_grad()
    def predict(
        self, images: Tensor, brains: Tensor | None = None, batch_size: int = 64
    ) -> AnomalyOutput:
        """Anomaly maps and image scores.

        Parameters
        ----------
        images : Tensor
            Slices (N, 1, H, W) in [0, 1].
        brains : Tensor, optional
            Brain masks (N, 1, H, W); used by the method, for masking (``config.mask_brain``) and
            for the image score.
        batch_size : int
            Inference batch size; batches go to the model's device, maps come back to the CPU.

        Returns
        -------
        AnomalyOutput
            ``maps`` (N, 1, H, W) and ``scores`` (N,).
        """
        self.check_images(images, brains)
        if not len(images):
            return AnomalyOutput(images.new_zeros(images.shape), images.new_zeros(0))
        was_training = self.training
        self.eval()
        data, dev = Batch(images=images, brains=brains), self.device

        def run(a: int, b: int) -> tuple[Tensor, Tensor | None]:
            batch = data[a:b].to(dev)
            maps, scores = self.map_and_score(self.prepare(batch) if self.prepare_for_prediction else batch)
            return maps.to(images.device), None if scores is None else scores.to(images.device)

        parts = batched(run, len(images), batch_size)
        self.train(was_training)
        maps = postprocess(torch.cat([m for m, _ in parts]), brains, self.config.mask_brain,
                           self.config.smooth_sigma)
        if parts[0][1] is not None:
            return AnomalyOutput(maps, torch.cat([s for _, s in parts]))
        return AnomalyOutput(maps, image_scores(maps, brains, self.config.score))

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint with the method name, config, history and weights (CPU tensors)."""
        path = check_output_file(path, "checkpoint path")
        weights = {k: v.detach().cpu() for k, v in self.state_dict().items()}  # loadable anywhere
        state = {"method": self.name, "config": dataclasses.asdict(self.config), "history": self.history,
                 "state_dict": weights}
        with atomic_path(path) as tmp:  # a reader never finds a half-written checkpoint
            torch.save(state, tmp)
        return path
