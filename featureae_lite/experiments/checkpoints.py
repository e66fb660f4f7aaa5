"""Train-or-load: checkpoints keyed by method, config, training data and code.

The models trained in one notebook are reused by the next (uvadlc-style), and a change of any key
trains a new model instead of silently reusing an old one. A training can also leave **snapshots**
of its weights part-way through the budget (:data:`SNAPSHOT_FRACTIONS`) next to its checkpoint, in
``<checkpoint stem>.snapshots/step_<n>.pt``: the notebooks' training-budget slider
(:func:`featureae_lite.course.widgets.budget_explorer`) loads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from featureae_lite.core.fileio import atomic_path, writer_lock
from featureae_lite.data.batch import Batch
from featureae_lite.models.base import Detector
from featureae_lite.models.registry import create_detector, load_detector


def data_fingerprint(data) -> str:
    """A short hash identifying a training set (shape and a few statistics)."""
    images = Batch.of(data).images
    stats = [tuple(images.shape), float(images.sum()), float((images**2).sum())]
    return hashlib.sha1(json.dumps(stats).encode()).hexdigest()[:10]


def code_fingerprint() -> str:
    """A short hash of the source that decides what a trained model is (the methods, the training
    loop, the feature extractor, SSIM), so a checkpoint trained by other code is never reused."""
    root = Path(__file__).resolve().parents[1]
    files = sorted([*root.glob("models/*.py"), root / "training.py", root / "data" / "batch.py",
                    *(root / "core" / f"{name}.py" for name in ("features", "ssim", "maps"))])
    digest = hashlib.sha1()
    for f in files:
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:10]


def train_or_load(
    method: str,
    train,
    val=None,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    patience: int | None = None,
    device: str | torch.device | None = "auto",
    snapshots: bool = False,
    **config: Any,
) -> Detector:
    """Load a matching checkpoint if one exists, otherwise train and save one.

    The checkpoint name hashes the method, its full config, the training data and the code that
    trains it (:func:`code_fingerprint`), so a change of any of them trains a new model instead of
    silently reusing an old one: a warm run gives the same figures as a fresh clone.

    Parameters
    ----------
    method : str
        Registered method name.
    train, val : Batch
        Training and validation data.
    checkpoint_dir : path-like, optional
        Folder of checkpoints; defaults to ``<data_dir>/checkpoints``.
    device : str or torch.device
        Where the model trains and predicts (:func:`featureae_lite.core.device.resolve_device`); the
        checkpoint holds CPU tensors and its name does not depend on the device.
    snapshots : bool
        When it trains: also save the weights at :func:`snapshot_steps` of the budget, in
        :func:`snapshot_folder` (see :func:`training_snapshots`; the trained model is bit-identical
        either way). A checkpoint that exists is loaded as it is, with or without snapshots.
    **config
        Config overrides for :func:`create_detector`.
    """
    det = create_detector(method, **config)
    if not det.trainable:
        return det
    det.to_device(device)
    path = _checkpoint_path(method, det, train, checkpoint_dir)
    if path.exists():
        return load_detector(path, expect={"method": method}).to_device(device)
    with writer_lock(path):  # a second process training the same model waits, then loads it
        if path.exists():
            return load_detector(path, expect={"method": method}).to_device(device)
        steps = snapshot_steps(det.config.steps) if snapshots else []
        with training_snapshots(det, steps, snapshot_folder(path)):
            det.fit(train, val, progress=progress, patience=patience)
        det.save(path)
    return det


def _checkpoint_path(method: str, det: Detector, train, checkpoint_dir: str | os.PathLike | None) -> Path:
    """Where train-or-load keeps the checkpoint of ``det`` (a fresh ``method``) trained on ``train``."""
    from featureae_lite.data.paths import resolve_data_dir

    folder = Path(checkpoint_dir) if checkpoint_dir else resolve_data_dir() / "checkpoints"
    key = json.dumps(
        {"method": method, "config": config_json(det.config), "data": data_fingerprint(train),
         "code": code_fingerprint()},
        sort_keys=True,
    )
    return folder / f"{method}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"


def checkpoint_file(method: str, train, checkpoint_dir: str | os.PathLike | None = None,
                    **config: Any) -> Path | None:
    """The checkpoint :func:`train_or_load` keeps (or would write) for these arguments; None for a
    method without training. Nothing is trained or loaded."""
    det = create_detector(method, **config)
    return _checkpoint_path(method, det, train, checkpoint_dir) if det.trainable else None


# Snapshots along one training: a doubling ladder 1/12, 1/6, 1/3, 2/3 of the budget, then the
# checkpoint itself (the full budget). Doubling spaces them evenly on the log-steps axis of a learning
# curve, and at the classroom budgets it lands on the steps where docs/convergence.md measured the
# lessons: patchsim (3600 steps) at 300, 600 (its restoration still copies lesions, AP at the floor),
# 1200 (it has learned to repair them), 2400; FAE (1400 steps) at 117, 233 (AP level with the l1
# residual's), 467 (clearly past it: the curve has left the floor), 933. At QUICK (150 steps): 12, 25,
# 50, 100.
SNAPSHOT_FRACTIONS = (1 / 12, 1 / 6, 1 / 3, 2 / 3)


def snapshot_steps(steps: int, fractions: Iterable[float] = SNAPSHOT_FRACTIONS) -> list[int]:
    """The step counts below ``steps`` at which a training of ``steps`` steps saves a snapshot
    (:data:`SNAPSHOT_FRACTIONS` of the budget, rounded, at least 1; the full budget is the checkpoint)."""
    return sorted({max(1, round(steps * f)) for f in fractions} - {steps})


def snapshot_folder(checkpoint: str | os.PathLike) -> Path:
    """The folder of a checkpoint's snapshots: ``<checkpoint stem>.snapshots`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.snapshots")


def list_snapshots(checkpoint: str | os.PathLike) -> dict[int, Path]:
    """Step → file of the snapshots saved next to ``checkpoint`` (``{}``: none), in step order."""
    folder = snapshot_folder(checkpoint)
    found = {}
    for f in folder.glob("step_*.pt") if folder.is_dir() else ():
        step = f.stem.removeprefix("step_")
        if step.isdigit():
            found[int(step)] = f
    return dict(sorted(found.items()))


@contextmanager
def training_snapshots(det: Detector, steps: Iterable[int], folder: str | os.PathLike) -> Iterator[None]:
    """While the block trains ``det`` with :func:`featureae_lite.training.fit`, save its weights after
    each step count in ``steps`` to ``folder/step_<n>.pt`` (a checkpoint file: ``load_detector`` reads
    it; written atomically).

    The trained model does not change: a snapshot is taken when the loop asks for the loss of training
    step n + 1 (the first call of ``det.loss`` in training mode after n of them — the validation loss
    runs in eval mode), so it holds the weights after n optimiser steps, and saving draws no random
    number and adds no validation pass (``fit(checkpoints=...)`` would add one at every mark that is
    no validation step, which moves the random stream of methods whose loss draws from it, such as
    patchsim's corruptions). Only ``train_seconds`` includes the few milliseconds of writing.
    Under a constant learning rate (the presets') the snapshot at step n is the model a run of n steps
    would have trained; under ``schedule="cosine"`` it is that run part-way through its schedule.
    """
    marks = set(steps)
    if not marks:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loss, done = det.loss, 0

    def counting_loss(batch):
        nonlocal done
        if det.training:  # a training step (fit computes the validation loss in eval mode)
            if done in marks:
                _save_snapshot(det, folder / f"step_{done}.pt", done)
            done += 1
        return loss(batch)

    det.loss = counting_loss  # an instance attribute, removed below
    try:
        yield
    finally:
        del det.loss


def _save_snapshot(det: Detector, path: Path, step: int) -> None:
    weights = {k: v.detach().cpu() for k, v in det.state_dict().items()}
    state = {"method": det.name, "config": dataclasses.asdict(det.config), "step": step,
             "state_dict": weights}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def config_json(config) -> dict[str, Any]:
    """A detector config as a JSON-ready dict (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def train_checkpoint(
    method: str,
    out: str | os.PathLike,
    *,
    preset: str,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    contrast: str = "t2",
    variety: str = "standard",
    source=None,
    overrides: dict[str, Any] | None = None,
    steps: int | None = None,
    device: str | None = "auto",
    inputs: dict[str, str | os.PathLike | None] | None = None,
) -> tuple[Detector, Path]:
    """Train ``method`` at a preset's budget (``steps``: another step count) and save it to ``out``.

    Every input is checked before the training starts: the method and its config, the device, and
    ``out`` (a writable file name that is none of ``inputs`` — option → path, e.g. the backbone's
    weights — and lies outside the data folder). ``source``: a DataSource of real data sets (default:
    the synthetic cohort). Returns the trained detector and the checkpoint's path.
    """
    from featureae_lite.core.fileio import check_not_an_input, check_output_file
    from featureae_lite.core.presets import preset as get_preset
    from featureae_lite.data.paths import resolve_data_dir
    from featureae_lite.data.splits import load_cohort_splits
    from featureae_lite.models.registry import preset_config

    cfg = preset_config(get_preset(preset), method, seed, overrides)
    if steps is not None:
        cfg["steps"] = steps
    det = create_detector(method, **cfg).to_device(device)  # fails fast on bad input
    check_not_an_input(out, inputs or {}, {"the data folder": resolve_data_dir(data_dir)})
    out = check_output_file(out)  # before minutes of training
    splits = load_cohort_splits(data_dir, preset, seed, contrast, source=source, variety=variety)
    det.fit(splits["train"], splits["val"])
    det.save(out)
    return det, out
