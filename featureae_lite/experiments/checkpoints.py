"""Train-or-load: checkpoints keyed by method, config, training data and code.

The models trained in one notebook are reused by the next (uvadlc-style), and a change of any key
trains a new model instead of silently reusing an old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from featureae_lite.core.fileio import writer_lock
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
    **config
        Config overrides for :func:`create_detector`.
    """
    from featureae_lite.data.paths import resolve_data_dir

    det = create_detector(method, **config)
    if not det.trainable:
        return det
    det.to_device(device)
    folder = Path(checkpoint_dir) if checkpoint_dir else resolve_data_dir() / "checkpoints"
    key = json.dumps(
        {"method": method, "config": config_json(det.config), "data": data_fingerprint(train),
         "code": code_fingerprint()},
        sort_keys=True,
    )
    path = folder / f"{method}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        return load_detector(path, expect={"method": method}).to_device(device)
    with writer_lock(path):  # a second process training the same model waits, then loads it
        if path.exists():
            return load_detector(path, expect={"method": method}).to_device(device)
        det.fit(train, val, progress=progress, patience=patience)
        det.save(path)
    return det


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
