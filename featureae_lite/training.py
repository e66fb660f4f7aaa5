"""One training loop for every trainable method: seeded, Adam, tqdm, validation loss, early stopping.

Train-or-load with checkpoints keyed by config, data and code lives in
:mod:`featureae_lite.experiments.checkpoints`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from featureae_lite.core.errors import InputError
from featureae_lite.data.batch import Batch


class Trainable(Protocol):
    """What the loop needs of a model (every :class:`~featureae_lite.models.base.Detector` is one):
    an ``nn.Module`` with a config (``steps``, ``batch_size``, ``lr``, ``seed``), a name, a device, and
    ``prepare`` (raw slices → cached inputs), ``fit_statistics`` and ``loss`` (a batch → scalar)."""

    name: str
    config: Any
    history: dict
    training: bool

    @property
    def device(self) -> torch.device: ...
    def check_images(self, images: torch.Tensor) -> None: ...
    def prepare(self, data: Any) -> Batch: ...
    def fit_statistics(self, inputs: Batch) -> None: ...
    def loss(self, batch: Batch) -> torch.Tensor: ...
    def parameters(self) -> Iterable[torch.nn.Parameter]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...
    def eval(self) -> Any: ...


def _healthy(data) -> Batch | None:
    """Validation slices of healthy subjects only (the validation loss must not see lesions)."""
    if data is None:
        return None
    batch = Batch.of(data)
    if batch.anomaly_types is not None:
        batch = batch[[i for i, t in enumerate(batch.anomaly_types) if t == "healthy"]]
    return batch.unlabelled() if len(batch) else None


def lr_factor(step: int, steps: int, schedule: str = "constant", warmup: float = 0.05) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of a ``steps``-step run.

    ``"constant"``: 1. ``"cosine"``: linear warm-up from 1/w to 1 over the first
    w = ``warmup`` × ``steps`` steps, then a cosine decay to 0.01 at the last step.
    """
    if schedule == "constant":
        return 1.0
    warm = max(1, round(warmup * steps))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - 1 - warm)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def fit(
    detector: Trainable,
    train,
    val=None,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    val_every: int = 100,
    patience: int | None = None,
    progress: bool = True,
    checkpoints: Iterable[int] = (),
    on_checkpoint: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``detector`` on healthy slices with Adam.

    Parameters
    ----------
    detector : Trainable
        A trainable detector (implements ``prepare`` and ``loss``).
    train : Batch or Tensor
        Training slices: images (N, 1, H, W) and their brain masks (bare images: the whole slice
        counts as brain); only healthy slices should be passed.
    val : Batch or Tensor, optional
        Validation data; its healthy subjects give the validation loss.
    steps, batch_size, lr : optional
        Override the detector config.
    val_every : int
        Steps between validation-loss evaluations.
    patience : int, optional
        Stop after this many validation checks without improvement and restore the best weights.
    progress : bool
        Show a tqdm progress bar with the running loss.
    checkpoints, on_checkpoint : optional
        After each step count in ``checkpoints``, call ``on_checkpoint(step, train_seconds)`` with
        the detector in eval mode (e.g. to evaluate it for a learning curve); the time it takes is
        not counted in ``train_seconds``.

    Returns
    -------
    dict
        The detector's ``history``: ``train_loss``, ``val_loss`` (lists), ``train_seconds``.
    """
    cfg = detector.config
    steps = cfg.steps if steps is None else steps
    batch_size = cfg.batch_size if batch_size is None else batch_size
    data = Batch.of(train).unlabelled()
    detector.check_images(data.images[:1] if len(data) else data.images)
    if len(data) == 0:
        raise InputError("training set is empty")
    if steps < 1:
        raise InputError(f"steps must be ≥ 1, got {steps}")

    start = time.perf_counter()
    paused = 0.0  # seconds spent in on_checkpoint, not training
    marks = set(checkpoints)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = detector.device  # the model's device; the data sets stay in CPU memory
    inputs = detector.prepare(data)
    detector.fit_statistics(inputs)
    val_data = _healthy(val)
    val_inputs = detector.prepare(val_data) if val_data is not None else None

    opt = torch.optim.Adam(
        [p for p in detector.parameters() if p.requires_grad], lr=cfg.lr if lr is None else lr
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, steps, cfg.schedule, cfg.warmup))
    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_step": []}
    best, best_state, bad = float("inf"), None, 0
    order = torch.randperm(len(inputs), generator=gen)
    pos = 0
    bar = tqdm(range(steps), desc=f"train {detector.name}", disable=not progress, leave=False)
    detector.train()
    running = None
    for step in bar:
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(inputs), generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        loss = detector.loss(inputs[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{detector.name}: loss became {value} at step {step}")
        history["train_loss"].append(value)
        running = value if running is None else 0.95 * running + 0.05 * value
        if val_inputs is not None and ((step + 1) % val_every == 0 or step + 1 == steps
                                       or step + 1 in marks):
            vloss = validation_loss(detector, val_inputs, batch_size)
            history["val_loss"].append(vloss)
            history["val_step"].append(step + 1)
            if vloss < best - 1e-6:
                best, best_state, bad = vloss, copy.deepcopy(detector.state_dict()), 0
            else:
                bad += 1
            if patience is not None and bad >= patience:
                break
        if on_checkpoint is not None and step + 1 in marks:
            tick = time.perf_counter()
            detector.eval()
            on_checkpoint(step + 1, tick - start - paused)
            detector.train()
            paused += time.perf_counter() - tick
        bar.set_postfix(loss=f"{running:.4f}")
    if patience is not None and best_state is not None:
        detector.load_state_dict(best_state)
    detector.eval()
    history["train_seconds"] = time.perf_counter() - start - paused
    detector.history = history
    return history


@torch.no_grad()
def validation_loss(detector: Trainable, inputs: Batch, batch_size: int = 64) -> float:
    """Mean loss over prepared validation inputs, in eval mode."""
    was = detector.training
    detector.eval()
    device = detector.device
    total = sum(
        float(detector.loss(inputs[i : i + batch_size].to(device))) * len(inputs[i : i + batch_size])
        for i in range(0, len(inputs), batch_size)
    )
    detector.train(was)
    return total / len(inputs)
