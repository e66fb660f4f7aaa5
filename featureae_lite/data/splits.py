"""The train / val / test splits of a run: the synthetic cohort, or real data sets read from folders.

The FAE paper's protocol: train on healthy scans of one data set (IXI, Cam-CAN), test on lesion scans
of another (BraTS, ATLAS, MSLUB). With real data the splits are made by *subject*, reproducibly from
the seed:

* ``train`` / ``val`` healthy — the healthy subjects of ``train_data``, ``val_fraction`` of them
  (at least one) held out for the validation loss;
* ``test`` / ``val`` anomalous — the lesion subjects of ``test_data``, ``val_fraction`` of them (at
  least one, when there are two or more) held out so that thresholds and hyperparameters are chosen
  on validation data only, never on the test subjects.

Either side may stay the synthetic cohort (the default for both), e.g. train on the cohort and test
on a real data set.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featureae_lite.core import presets
from featureae_lite.core.errors import InputError
from featureae_lite.data.batch import Batch
from featureae_lite.data.cohort import ensure_cohort
from featureae_lite.data.dataset import load_split
from featureae_lite.data.layouts import LAYOUTS, discover_subjects
from featureae_lite.data.synth import CONTRASTS, check_choice

TRAIN_LAYOUTS = ("synthetic", "ixi", "camcan")
TEST_LAYOUTS = ("synthetic", "brats", "atlas", "mslub")


@dataclass(frozen=True)
class DataSource:
    """Where a run's data come from (recorded in ``meta.json``).

    Attributes
    ----------
    train_data : str or None
        Folder of healthy training subjects (or of a synthetic cohort); None = the synthetic cohort
        of the data folder.
    train_layout : str
        ``"synthetic"``, ``"ixi"`` or ``"camcan"``.
    test_data : str or None
        Folder of test subjects with lesion masks; None = the synthetic cohort.
    test_layout : str
        ``"synthetic"``, ``"brats"``, ``"atlas"`` or ``"mslub"``.
    modality : str
        ``"t1"``, ``"t2"`` or ``"flair"`` (for the synthetic cohort: its contrast).
    val_fraction : float
        Share of the real subjects held out for validation (by subject, seeded).
    """

    train_data: str | None = None
    train_layout: str = "synthetic"
    test_data: str | None = None
    test_layout: str = "synthetic"
    modality: str = "t2"
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_choice(self.train_layout, TRAIN_LAYOUTS, "training layout")
        check_choice(self.test_layout, TEST_LAYOUTS, "test layout")
        check_choice(self.modality, CONTRASTS, "modality")
        for side, folder, layout in (("train", self.train_data, self.train_layout),
                                     ("test", self.test_data, self.test_layout)):
            if layout != "synthetic" and not folder:
                raise InputError(f"--{side}-layout {layout} needs --{side}-data DIR, the data set's folder")
            if folder and not Path(folder).is_dir():
                raise InputError(f"--{side}-data {folder}: folder not found")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")

    @property
    def synthetic(self) -> bool:
        """True if both sides are the synthetic cohort of the data folder."""
        return self.train_data is None and self.test_data is None

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (folders as absolute paths)."""
        out = asdict(self)
        for key in ("train_data", "test_data"):
            out[key] = str(Path(out[key]).resolve()) if out[key] else None
        return out


def split_subjects(ids: list[str], fraction: float, seed: int,
                   minimum: int = 1) -> tuple[list[str], list[str]]:
    """Hold out ``fraction`` of subject ids (at least ``minimum`` when two or more), seeded.

    Returns
    -------
    (kept, held_out) : tuple of list of str
        Both sorted; the same ids and seed always give the same split.
    """
    ids = sorted(ids)
    if len(ids) < 2:
        return ids, []
    n_out = min(len(ids) - 1, max(minimum, int(round(fraction * len(ids)))))
    order = np.random.default_rng(seed).permutation(len(ids))
    out = {ids[i] for i in order[:n_out]}
    return [i for i in ids if i not in out], sorted(out)


def _require_masks(folder: Path, layout: str, modality: str) -> list[str]:
    """Subject ids of a test data set; every subject must have a lesion mask."""
    records = discover_subjects(folder, layout, modality, "test")
    missing = [r for r in records if r.mask_path is None]
    if missing:
        patterns = ", ".join(LAYOUTS[layout][1])
        raise InputError(f"{missing[0].image_path.parent}: no lesion mask matching {patterns} (layout "
                         f"{layout!r} needs one for every test subject; {len(missing)} subject(s) lack it)")
    return [r.subject_id for r in records]


def load_cohort_splits(
    data_dir: str | os.PathLike | None = None, preset: str = "default", seed: int = 0,
    contrast: str = "t2", progress: bool = True, source: DataSource | None = None,
    variety: str = "standard",
) -> dict[str, Any]:
    """Load the train / val / test splits of a preset, from the synthetic cohort (synthesised if
    needed) or from real data sets (``source``).

    Parameters
    ----------
    data_dir : path-like, optional
        Data folder (cohort, cache).
    preset : str
        Preset name (:data:`featureae_lite.core.presets.PRESETS`: sizes and budgets).
    contrast : str
        Contrast of the synthetic cohort (ignored when ``source`` is given: its ``modality``).
    source : DataSource, optional
        Real data sets; default: the synthetic cohort for both sides.
    variety : str
        Variety of the synthetic cohort's training subjects (``"standard"`` or e.g. ``"wide"``; its
        val and test subjects are the standard ones).

    Returns
    -------
    dict
        ``{"train", "val", "test": Batch, "cohort": Path, "source": dict}``.
    """
    source = source or DataSource(modality=contrast)
    p = presets.preset(preset)
    kw = dict(image_size=p.image_size, slice_range=p.slice_range, slice_step=p.slice_step,
              progress=progress, modality=source.modality)

    def cohort_of(folder: str | None) -> Path:  # a synthetic cohort: given, or the data folder's
        return Path(folder) if folder else ensure_cohort(data_dir, size=p.cohort_size, seed=seed,
                                                         contrast=source.modality, progress=progress,
                                                         variety=variety)

    parts: dict[str, list[Batch]] = {"train": [], "val": [], "test": []}
    if source.train_layout == "synthetic":
        cohort = train_root = cohort_of(source.train_data)
        parts["train"].append(load_split(data_dir, "train", cohort=cohort, **kw))
        parts["val"].append(load_split(data_dir, "val", cohort=cohort, **kw))
    else:
        root = train_root = Path(source.train_data)
        ids = [r.subject_id for r in discover_subjects(root, source.train_layout, source.modality)]
        train_ids, val_ids = split_subjects(ids, source.val_fraction, seed)
        if not val_ids:
            raise InputError(f"--train-data {root}: {len(ids)} healthy subject(s); at least 2 are needed "
                             "(one is held out for validation)")
        for split, subjects in (("train", train_ids), ("val", val_ids)):
            parts[split].append(load_split(data_dir, split, cohort=root, layout=source.train_layout,
                                           subjects=subjects, **kw))
    if source.test_layout == "synthetic":
        parts["test"].append(load_split(data_dir, "test", cohort=cohort_of(source.test_data), **kw))
    else:
        root = Path(source.test_data)
        test_ids, val_ids = split_subjects(_require_masks(root, source.test_layout, source.modality),
                                           source.val_fraction, seed)
        parts["test"].append(load_split(data_dir, "test", cohort=root, layout=source.test_layout,
                                        subjects=test_ids, **kw))
        if val_ids:
            parts["val"].append(load_split(data_dir, "val", cohort=root, layout=source.test_layout,
                                           subjects=val_ids, **kw))
    out: dict[str, Any] = {k: Batch.concat(v) for k, v in parts.items()}
    out["cohort"] = train_root
    out["source"] = source.describe()
    return out
