"""Preprocessed slices of a split, in memory and cached on disk, plus a torch Dataset view."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from featureae_lite.data.layouts import SubjectRecord, discover_subjects
from featureae_lite.data.nifti import load_mask, load_volume
from featureae_lite.data.paths import cache_dir
from featureae_lite.data.preprocess import preprocess_volume

CACHE_VERSION = 1


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
    """Load and preprocess one subject (checks shapes, NaNs and mask values at the boundary)."""
    image, _ = load_volume(rec.image_path)
    mask = load_mask(rec.mask_path, image.shape, labels=rec.label_map) if rec.mask_path else None
    brain = load_mask(rec.brain_mask_path, image.shape) if rec.brain_mask_path else None
    return preprocess_volume(image, mask, brain, **kwargs)


def _cache_key(records: list[SubjectRecord], args: dict) -> str:
    stamp = [(str(r.image_path), r.image_path.stat().st_mtime_ns,
              str(r.mask_path), r.mask_path.stat().st_mtime_ns if r.mask_path else 0) for r in records]
    blob = json.dumps({"v": CACHE_VERSION, "files": stamp, "args": args}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_split(data_dir: str | os.PathLike | None = None, split: str = "train", *,
               cohort: str | os.PathLike | None = None, layout: str = "synthetic", modality: str = "t2",
               image_size: int = 128, slice_range: tuple[int, int] = (55, 135), slice_step: int = 1,
               equalize: bool = True, cache: bool = True, progress: bool = True,
               size: str = "default", seed: int = 0) -> SliceData:
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

    Returns
    -------
    SliceData
    """
    from tqdm.auto import tqdm

    if cohort is None:
        if layout != "synthetic":
            raise ValueError(f"layout {layout!r} needs cohort= the folder of the data set")
        from featureae_lite.data.cohort import ensure_cohort

        cohort = ensure_cohort(data_dir, size=size, seed=seed, contrast=modality, progress=progress)
    records = discover_subjects(cohort, layout, modality, split)
    args = {"image_size": image_size, "slice_range": list(slice_range), "slice_step": slice_step,
            "equalize": equalize, "layout": layout, "split": split}
    path = cache_dir(data_dir) / f"{split}_{_cache_key(records, args)}.pt"
    if cache and path.is_file():
        blob = torch.load(path, weights_only=True)
        return SliceData(**blob)
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
    data = SliceData(as_t("images"), as_t("masks"), as_t("brains"), parts["subject_ids"],
                     parts["anomaly_types"], parts["slice_indices"])
    if cache:
        tmp = Path(f"{path}.tmp")
        torch.save(data.__dict__, tmp)
        tmp.replace(path)
    return data
