"""Preprocessed slices of a split (a :class:`~featureae_lite.data.batch.Batch`), cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import atomic_path, writer_lock
from featureae_lite.data.batch import Batch
from featureae_lite.data.layouts import SubjectRecord, discover_subjects
from featureae_lite.data.nifti import load_mask, load_volume, missing_file_error
from featureae_lite.data.paths import cache_dir, unwritable_cache
from featureae_lite.data.preprocess import preprocess_volume

CACHE_VERSION = 3  # 3: the file holds its key, so a copied or foreign file is never read


def load_subject_slices(rec: SubjectRecord, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load and preprocess one subject (checks shapes, NaNs and mask values at the boundary).

    Raises
    ------
    ValueError
        A file is unreadable or inconsistent, the image is constant (0 or any other value, without a
        brain mask), or preprocessing fails (e.g. an empty brain, fewer slices than the slice
        range); the message names the subject's image file.
    """
    image, _ = load_volume(rec.image_path)
    mask = load_mask(rec.mask_path, image.shape, labels=rec.label_map) if rec.mask_path else None
    brain = load_mask(rec.brain_mask_path, image.shape) if rec.brain_mask_path else None
    if brain is None and not (image > 0).any():
        raise InputError(f"{rec.image_path}: the image is 0 everywhere (no brain voxel)")
    if brain is None and image.min() == image.max():
        raise InputError(f"{rec.image_path}: the image is {image.flat[0]:g} everywhere (a constant image "
                         "has no anatomy and no background)")
    try:
        return preprocess_volume(image, mask, brain, **kwargs)
    except ValueError as err:
        raise InputError(f"{rec.image_path}: {err}") from err


def content_stamp(path: Path | None) -> str:
    """SHA-1 of a file's bytes (``""`` for None): a cache key that sees every change of content."""
    if path is None:
        return ""
    if not path.is_file():
        raise missing_file_error(path)
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha1").hexdigest()


def _cache_key(records: list[SubjectRecord], args: dict) -> str:
    stamp = [(r.subject_id, r.anomaly_type, *(content_stamp(p) for p in
                                             (r.image_path, r.mask_path, r.brain_mask_path)))
             for r in records]
    blob = json.dumps({"v": CACHE_VERSION, "files": stamp, "args": args}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _read_cache(path: Path, key: str) -> Batch | None:
    """The cached split at ``path``, or None (with a warning) if the file is unreadable or was written
    for another key (another split, data or settings: e.g. a cache file copied over this name)."""
    try:
        stored = torch.load(path, weights_only=True)
        found = stored.pop("key", None)
        data = Batch(**stored) if found == key else None
    except Exception as err:  # truncated or foreign file: rebuild it
        warnings.warn(f"cache file {path} is unreadable ({type(err).__name__}: {err}); rebuilding it",
                      stacklevel=3)
        return None
    if data is None:
        warnings.warn(f"cache file {path} holds another split or data (key {found!r}, expected {key!r}); "
                      "rebuilding it", stacklevel=3)
    return data


def load_split(data_dir: str | os.PathLike | None = None, split: str = "train", *,
               cohort: str | os.PathLike | None = None, layout: str = "synthetic", modality: str = "t2",
               image_size: int = 128, slice_range: tuple[int, int] = (55, 135), slice_step: int = 1,
               equalize: bool = True, cache: bool = True, progress: bool = True,
               size: str = "default", seed: int = 0, subjects: list[str] | None = None) -> Batch:
    """Preprocessed slices of one split.

    Parameters
    ----------
    data_dir : path-like, optional
        Data folder (also holds the cache).
    split : str
        ``train``, ``val`` or ``test`` (real data: the split assigned to every subject found).
    cohort : path-like, optional
        Cohort folder or real-data root; None with ``layout="synthetic"`` uses
        :func:`~featureae_lite.data.cohort.ensure_cohort` (``size``, ``seed``, ``modality``).
    layout, modality : str
        See :func:`~featureae_lite.data.layouts.discover_subjects`.
    image_size, slice_range, slice_step, equalize
        See :func:`~featureae_lite.data.preprocess.preprocess_volume`.
    cache : bool
        Store / reuse the preprocessed split under ``<data_dir>/cache``.
    subjects : list of str, optional
        Keep only these subject ids (a by-subject split of a real data set); an id that is not
        found raises ValueError.

    Returns
    -------
    Batch
    """
    if cohort is None:
        if layout != "synthetic":
            raise InputError(f"layout {layout!r} needs cohort= the folder of the data set")
        from featureae_lite.data.cohort import ensure_cohort

        cohort = ensure_cohort(data_dir, size=size, seed=seed, contrast=modality, progress=progress)
    records = discover_subjects(cohort, layout, modality, split)
    if subjects is not None:
        missing = sorted(set(subjects) - {r.subject_id for r in records})
        if missing:
            raise InputError(f"{cohort}: subject(s) {missing} not found (layout {layout!r}, {modality})")
        records = [r for r in records if r.subject_id in set(subjects)]
    args = {"image_size": image_size, "slice_range": list(slice_range), "slice_step": slice_step,
            "equalize": equalize, "layout": layout, "split": split}
    if not cache:
        return _preprocess(records, split, slice_range, slice_step, image_size, equalize, progress)
    key = _cache_key(records, args)
    path = cache_dir(data_dir) / f"{split}_{key}.pt"
    if path.is_file() and (data := _read_cache(path, key)) is not None:
        return data
    try:
        with writer_lock(path):  # a second process waits, then reads what the first one wrote
            if path.is_file() and (data := _read_cache(path, key)) is not None:
                return data
            data = _preprocess(records, split, slice_range, slice_step, image_size, equalize, progress)
            with atomic_path(path) as tmp:
                torch.save({"key": key, **data.__dict__}, tmp)
    except OSError as err:
        if err.filename and Path(err.filename).parent == path.parent:  # the cache, not an input
            raise unwritable_cache(path.parent, err) from err
        raise
    return data


def _preprocess(records: list[SubjectRecord], split: str, slice_range: tuple[int, int], slice_step: int,
                image_size: int, equalize: bool, progress: bool) -> Batch:
    """Load and preprocess every subject of ``records`` into one Batch."""
    from tqdm.auto import tqdm

    parts = {"images": [], "masks": [], "brains": [], "subject_ids": [], "anomaly_types": [],
             "slice_indices": []}
    zs = list(range(slice_range[0], slice_range[1], slice_step))
    for rec in tqdm(records, desc=f"preprocessing {split}", disable=not progress):
        imgs, masks, brains = load_subject_slices(rec, slice_range=slice_range, image_size=image_size,
                                                  equalize_hist=equalize, slice_step=slice_step)
        parts["images"].append(imgs)
        parts["masks"].append(masks)
        parts["brains"].append(brains)
        parts["subject_ids"] += [rec.subject_id] * len(imgs)
        parts["anomaly_types"] += [rec.anomaly_type] * len(imgs)
        parts["slice_indices"] += zs[: len(imgs)]
    as_t = lambda key: torch.from_numpy(np.concatenate(parts[key]).astype(np.float32))[:, None]  # noqa: E731
    return Batch(images=as_t("images"), masks=as_t("masks"), brains=as_t("brains"),
                 subject_ids=parts["subject_ids"], anomaly_types=parts["anomaly_types"],
                 slice_indices=parts["slice_indices"])
