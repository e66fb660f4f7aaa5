"""Write a synthetic cohort as NIfTI files in a BraTS-like layout, plus a manifest.

Layout::

    <data_dir>/synthetic_<contrast>_<size>_seed<seed>/
        manifest.csv                      subject_id, split, anomaly_type, seed, contrast
        sub-0001/sub-0001_t2.nii.gz       image, int16 (≈ 0–1000)
        sub-0001/sub-0001_seg.nii.gz      lesion mask, uint8 (all zero for healthy subjects)
        sub-0001/sub-0001_brainmask.nii.gz

Splits: ``train`` healthy only; ``val`` healthy plus anomalous subjects of every type (to choose
thresholds and hyperparameters honestly); ``test`` every type plus healthy subjects.

A cohort of another training ``variety`` (e.g. ``"wide"``, :data:`.synth.VARIETY`) lives in
``synthetic_<contrast>_<size>_seed<seed>_<variety>/``: its *training* subjects are drawn with that
variety, its val and test subjects are the very subjects of the standard cohort (same seeds, same
files), so validation and the synthetic test split stay comparable. Its manifest has an extra
``variety`` column and the folder a ``README.md`` saying what it is.
"""

from __future__ import annotations

import csv
import io
import multiprocessing as mp
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_output_dir, write_atomic, writer_lock
from featureae_lite.data.layouts import subject_files
from featureae_lite.data.paths import resolve_data_dir
from featureae_lite.data.synth import (
    ANOMALY_TYPES,
    CONTRASTS,
    VARIETIES,
    VARIETY,
    check_choice,
    synthesize_subject,
)

LESION_TYPES = ANOMALY_TYPES[1:]
# split → (healthy subjects, anomalous subjects per type)
SIZES = {
    "tiny": {"train": (3, 0), "val": (1, 1), "test": (1, 1)},
    "quick": {"train": (8, 0), "val": (2, 1), "test": (2, 2)},
    "default": {"train": (24, 0), "val": (4, 2), "test": (4, 8)},
}
FIELDS = ("subject_id", "split", "anomaly_type", "seed", "contrast")


def cohort_dir(data_dir: str | os.PathLike | None, size: str, seed: int, contrast: str,
               variety: str = "standard") -> Path:
    """Folder of a cohort: ``<data_dir>/synthetic_<contrast>_<size>_seed<seed>[_<variety>]``."""
    suffix = "" if variety == "standard" else f"_{variety}"
    return resolve_data_dir(data_dir) / f"synthetic_{contrast}_{size}_seed{seed}{suffix}"


def plan(size: str, seed: int, contrast: str, variety: str = "standard") -> list[dict]:
    """The manifest rows of a cohort (subject ids, splits, types and per-subject seeds).

    A non-standard ``variety`` adds a ``variety`` column: that variety for the training subjects,
    ``standard`` for val and test (the same subjects as in the standard cohort).
    """
    check_choice(size, tuple(SIZES), "cohort size")
    check_choice(contrast, CONTRASTS, "contrast")
    check_choice(variety, VARIETIES, "variety")
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"the cohort seed must be a whole number ≥ 0, got {seed!r}")
    rows, k = [], 0
    for split, (n_healthy, n_per_type) in SIZES[size].items():
        kinds = ["healthy"] * n_healthy + [t for t in LESION_TYPES for _ in range(n_per_type)]
        for kind in kinds:
            k += 1
            rows.append({"subject_id": f"sub-{k:04d}", "split": split, "anomaly_type": kind,
                         "seed": seed * 100_003 + k, "contrast": contrast})
            if variety != "standard":
                rows[-1]["variety"] = variety if split == "train" else "standard"
    return rows


def variety_readme(variety: str, size: str, seed: int, contrast: str) -> str:
    """The ``README.md`` of a non-standard cohort: what it is and the variety's parameters."""
    params = "\n".join(f"- `{k}` = {v!r}" for k, v in vars(VARIETY[variety]).items())
    return (f"# synthetic_{contrast}_{size}_seed{seed}_{variety}\n\nA training-variety cohort (issue 16): "
            f"the **training** subjects are synthesised with variety `{variety}`; the val and test subjects "
            f"are those of `synthetic_{contrast}_{size}_seed{seed}` (variety `standard`, same seeds). "
            f"Parameters of `{variety}` (`featureae_lite.data.synth.VARIETY`):\n\n{params}\n")


def _write_subject(args: tuple[dict, str]) -> str:
    import torch

    from featureae_lite.data.nifti import save_volume

    torch.set_num_threads(1)
    row, folder = args
    s = synthesize_subject(int(row["seed"]), row["contrast"], row["anomaly_type"],
                           row.get("variety", "standard"))
    files = subject_files(Path(folder), row["subject_id"], row["contrast"])
    save_volume(files["image"], np.clip(np.round(s.image * 1000), 0, 32767).astype(np.int16), s.affine)
    save_volume(files["mask"], s.lesion_mask, s.affine)
    save_volume(files["brain"], s.brain_mask, s.affine)
    return row["subject_id"]


def is_complete(folder: Path) -> bool:
    """True if the cohort's manifest exists and every file it lists is present."""
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        return False
    with manifest.open() as fh:
        rows = list(csv.DictReader(fh))
    return bool(rows) and all(p.is_file() for r in rows
                              for p in subject_files(folder, r["subject_id"], r["contrast"]).values())


def synthesize_cohort(data_dir: str | os.PathLike | None = None, *, size: str = "default", seed: int = 0,
                      contrast: str = "t2", n_jobs: int = 2, progress: bool = True,
                      overwrite: bool = False, variety: str = "standard") -> Path:
    """Synthesise a cohort and write it as NIfTI files (see the module docstring).

    Parameters
    ----------
    data_dir : path-like, optional
        Data folder (argument, then ``$FEATUREAE_LITE_DATA``, then ``data/``).
    size : str
        ``"tiny"`` (unit tests), ``"quick"`` or ``"default"`` (classroom).
    seed : int
        Cohort seed; the same seed gives identical files.
    contrast : str
        ``"t2"``, ``"t1"`` or ``"flair"``.
    n_jobs : int
        Worker processes.
    overwrite : bool
        Replace an existing cohort: the new one is written beside it (a hidden folder) and swapped
        in only when complete, so an interrupted overwrite keeps the old cohort.
    variety : str
        Training-subject variety: ``"standard"`` (default) or a wide one (see the module docstring).

    Returns
    -------
    Path
        The cohort folder.
    """
    rows = plan(size, seed, contrast, variety)
    folder = cohort_dir(data_dir, size, seed, contrast, variety)
    readme = variety_readme(variety, size, seed, contrast) if variety != "standard" else None
    with writer_lock(folder):
        return _write_cohort(rows, folder, size, n_jobs, progress, overwrite, readme)


def _write_cohort(rows: list[dict], folder: Path, size: str, n_jobs: int, progress: bool,
                  overwrite: bool, readme: str | None = None) -> Path:
    """Write the subjects, the ``readme`` (if any), then the manifest (the caller holds the cohort's
    writer lock)."""
    from tqdm.auto import tqdm

    from featureae_lite.data.anatomy import load_anatomy
    from featureae_lite.data.anomalies import template_maps
    from featureae_lite.data.synth import template_texture

    check_output_dir(folder.parent, "data folder")
    for stale in folder.parent.glob(f".{folder.name}.*-*"):  # left by an overwrite that was killed
        shutil.rmtree(stale, ignore_errors=True)
    if overwrite and folder.exists():  # built beside the old cohort, which is replaced once complete
        tag = uuid.uuid4().hex[:8]
        new, old = (folder.with_name(f".{folder.name}.{kind}-{tag}") for kind in ("new", "old"))
        try:
            _write_cohort(rows, new, size, n_jobs, progress, False, readme)
            os.replace(folder, old)
            os.replace(new, folder)
        finally:
            shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.csv").unlink(missing_ok=True)  # written last: marks a complete cohort
    for stale in folder.glob("*/.*.tmp.*"):  # left by a writer that was killed mid-file
        stale.unlink()
    load_anatomy(), template_texture(), template_maps()  # computed once, shared with forked workers
    jobs = [(r, str(folder)) for r in rows]
    with tqdm(total=len(jobs), desc=f"synthesising {size} cohort", disable=not progress) as bar:
        if n_jobs > 1 and "fork" in mp.get_all_start_methods():  # closed also when interrupted
            with mp.get_context("fork").Pool(n_jobs) as pool:
                for _ in pool.imap_unordered(_write_subject, jobs):
                    bar.update()
        else:
            for job in jobs:
                _write_subject(job)
                bar.update()
    if readme:
        write_atomic(folder / "README.md", readme)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(folder / "manifest.csv", text.getvalue())
    return folder


def ensure_cohort(data_dir: str | os.PathLike | None = None, *, size: str = "default", seed: int = 0,
                  contrast: str = "t2", n_jobs: int = 2, progress: bool = True,
                  variety: str = "standard") -> Path:
    """Return the cohort folder, synthesising it first if it is missing or incomplete.

    A cohort that another process is writing is waited for (lock file beside the folder).
    ``variety`` picks the training subjects' variety (see the module docstring).
    """
    rows = plan(size, seed, contrast, variety)  # validates the arguments
    folder = cohort_dir(data_dir, size, seed, contrast, variety)
    if is_complete(folder):
        return folder
    with writer_lock(folder):
        if is_complete(folder):  # another process finished it while we waited
            return folder
        readme = variety_readme(variety, size, seed, contrast) if variety != "standard" else None
        return _write_cohort(rows, folder, size, n_jobs, progress, overwrite=False, readme=readme)


def cohort_summary(cohort: str | os.PathLike) -> str:
    """A short text summary of a cohort's manifest: subjects per split and anomaly type."""
    import pandas as pd

    man = pd.read_csv(Path(cohort) / "manifest.csv")
    table = man.groupby(["split", "anomaly_type"]).size().unstack(fill_value=0)
    return f"cohort {cohort}\n{table.to_string()}"
