"""Preprocessed slices of a split, in memory and cached on disk, plus a torch Dataset view."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import atomic_path, writer_lock
from featureae_lite.data.layouts import SubjectRecord, discover_subjects
from featureae_lite.data.nifti import load_mask, load_volume, missing_file_error
from featureae_lite.data.paths import cache_dir, unwritable_cache
from featureae_lite.data.preprocess import preprocess_volume

CACHE_VERSION = 3  # 3: the file holds its key, so a copied or foreign file is never read


@dataclass
class SliceData:
    """All slices of a split.

    Attributes
    ----------
    images : Tensor
        (N, 1, H, W) float32 in [0, 1].
    masks : Tensor
        (N, 1, H, W) float32 lesion masks {0, 1}.
    brains : Tensor
        (N, 1, H, W) float32 brain masks {0, 1}.
    subject_ids, anomaly_types : list of str
        Per slice: its subject and the subject's anomaly type.
    slice_indices : list of int
        Per slice: the axial index z in its volume.
    """

    images: torch.Tensor
    masks: torch.Tensor
    brains: torch.Tensor
    subject_ids: list[str]
    anomaly_types: list[str]
    slice_indices: list[int]

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def concat(cls, parts: list[SliceData]) -> SliceData:
        """One SliceData holding the slices of ``parts`` in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                   torch.cat([p.brains for p in parts]), [s for p in parts for s in p.subject_ids],
                   [t for p in parts for t in p.anomaly_types], [z for p in parts for z in p.slice_indices])

    def subset(self, indices) -> SliceData:
        """A new SliceData with the slices at ``indices`` (list of int)."""
        idx = list(indices)
        return SliceData(self.images[idx], self.masks[idx], self.brains[idx],
                         [self.subject_ids[i] for i in idx], [self.anomaly_types[i] for i in idx],
                         [self.slice_indices[i] for i in idx])


class SliceDataset(torch.utils.data.Dataset):
    """Map-style dataset over a :class:`SliceData`; items are dicts of tensors and labels."""

    def __init__(self, data: SliceData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        d = self.data
        return {"image": d.images[i], "mask": d.masks[i], "brain": d.brains[i],
                "subject_id": d.subject_ids[i], "anomaly_type": d.anomaly_types[i],
                "slice_index": d.slice_indices[i]}


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


def _read_cache(path: Path, key: str) -> SliceData | None:
    """The cached split at ``path``, or None (with a warning) if the file is unreadable or was written
    for another key (another split, data or settings: e.g. a cache file copied over this name)."""
    try:
        stored = torch.load(path, weights_only=True)
        found = stored.pop("key", None)
        data = SliceData(**stored) if found == key else None
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
               size: str = "default", seed: int = 0, subjects: list[str] | None = None) -> SliceData:
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
    SliceData
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
                image_size: int, equalize: bool, progress: bool) -> SliceData:
    """Load and preprocess every subject of ``records`` into one SliceData."""
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
    return SliceData(as_t("images"), as_t("masks"), as_t("brains"), parts["subject_ids"],
                     parts["anomaly_types"], parts["slice_indices"])
