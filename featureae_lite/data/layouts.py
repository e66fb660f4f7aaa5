"""Find subjects in a folder: the synthetic cohort and real data sets laid out as documented in
``data/README.md`` (BraTS 2020/2021, preprocessed IXI / Cam-CAN, ATLAS, MSLUB)."""

from __future__ import annotations

import csv
import fnmatch
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from featureae_lite.core.errors import InputError

# layout → (image patterns, lesion-mask patterns, brain-mask patterns, anomaly type, label map?)
# "{m}" is replaced by the modality (t1, t2, flair).
LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str, bool]] = {
    "brats": (("*_{m}.nii.gz",), ("*_seg.nii.gz",), (), "tumor", True),
    "ixi": (("*_{m}.nii.gz", "*-{M}.nii.gz"), (), ("*_brainmask.nii.gz", "*_mask.nii.gz"), "healthy", False),
    "camcan": (("*_{m}.nii.gz", "*_{M}w.nii.gz"), (), ("*_brainmask.nii.gz", "*_mask.nii.gz"),
               "healthy", False),
    "atlas": (("*_{m}.nii.gz", "*_T1w.nii.gz"), ("*lesion_mask.nii.gz", "*_seg.nii.gz"),
              ("*_brainmask.nii.gz",), "stroke", False),
    "mslub": (("*_{m}.nii.gz",), ("*_seg.nii.gz", "*consensus*.nii.gz"), ("*_brainmask.nii.gz",),
              "lesions", False),
}
KNOWN_LAYOUTS = ("synthetic", *LAYOUTS)


@dataclass(frozen=True)
class SubjectRecord:
    """Where one subject's files are.

    Attributes
    ----------
    subject_id : str
    image_path : Path
    mask_path : Path or None
        Lesion mask (None for healthy-only data sets).
    brain_mask_path : Path or None
        Brain mask (None: the brain is ``image > 0``, skull-stripped data).
    split : str
    anomaly_type : str
    label_map : bool
        The mask is an integer label map to binarise (> 0), e.g. BraTS 1/2/4.
    """

    subject_id: str
    image_path: Path
    mask_path: Path | None
    brain_mask_path: Path | None
    split: str
    anomaly_type: str
    label_map: bool = False


def subject_files(folder: Path, subject_id: str, contrast: str) -> dict[str, Path]:
    """Paths of a synthetic-cohort subject's files (see :mod:`.cohort` for the layout).

    Parameters
    ----------
    folder : Path
        Cohort folder.
    subject_id : str
        e.g. ``"sub-0001"``.
    contrast : str
        ``t2``, ``t1`` or ``flair``.

    Returns
    -------
    dict
        ``{"image": …, "mask": …, "brain": …}``: image, lesion mask and brain mask.
    """
    base = folder / subject_id / subject_id
    return {"image": Path(f"{base}_{contrast}.nii.gz"), "mask": Path(f"{base}_seg.nii.gz"),
            "brain": Path(f"{base}_brainmask.nii.gz")}


def _matches(name: str, pattern: str) -> bool:
    """Case-insensitive file-name match (``sub_T1.nii.gz`` and ``sub_t1.nii.gz`` alike)."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def _first(folder: Path, patterns: tuple[str, ...], modality: str,
           exclude: tuple[str, ...] = ()) -> Path | None:
    files = sorted(p for p in folder.iterdir() if p.is_file() or p.is_symlink())  # bad links: reported
    for pat in patterns:
        pat = pat.format(m=modality, M=modality.upper())
        hits = [p for p in files if _matches(p.name, pat)
                and not any(_matches(p.name, e.format(m=modality, M=modality.upper())) for e in exclude)]
        if hits:
            return hits[0]
    return None


def discover_subjects(root: str | os.PathLike, layout: str = "synthetic", modality: str = "t2",
                      split: str | None = None) -> list[SubjectRecord]:
    """List the subjects under ``root``.

    Parameters
    ----------
    root : path-like
        Cohort or data-set folder (one sub-folder per subject).
    layout : str
        One of :data:`KNOWN_LAYOUTS`.
    modality : str
        ``t1``, ``t2`` or ``flair`` (for the synthetic cohort: its contrast).
    split : str, optional
        For the synthetic cohort, keep only this split; for real data, the split to assign.

    Raises
    ------
    ValueError
        Unknown layout, or no subject found (the message names the folder and the pattern).
    FileNotFoundError
        ``root`` does not exist.
    """
    root = Path(root)
    if layout not in KNOWN_LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; known layouts: {', '.join(KNOWN_LAYOUTS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    if layout == "synthetic":
        records = _synthetic(root, split)
    else:
        img_pats, mask_pats, brain_pats, kind, labels = LAYOUTS[layout]
        records, skipped = [], []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            image = _first(folder, img_pats, modality, exclude=mask_pats + brain_pats)
            if image is None:
                if any(_matches(p.name, "*.nii*") for p in folder.iterdir()):
                    skipped.append(folder.name)
                continue
            mask = _first(folder, mask_pats, modality) if mask_pats else None
            brain = _first(folder, brain_pats, modality) if brain_pats else None
            records.append(SubjectRecord(folder.name, image, mask, brain, split or "test",
                                         kind if mask is not None else "healthy", labels))
        if skipped:
            wanted = ", ".join(p.format(m=modality, M=modality.upper()) for p in img_pats)
            warnings.warn(f"{root}: {len(skipped)} subject folder(s) skipped ({', '.join(skipped[:3])}"
                          f"{', …' if len(skipped) > 3 else ''}): no {modality} image matching {wanted} "
                          f"(layout {layout!r}; names are matched case-insensitively)", stacklevel=2)
    if not records:
        raise InputError(f"no subject found in {root} for layout {layout!r}, modality {modality!r}"
                         + (f", split {split!r}" if split else "") + " (see data/README.md)")
    return records


def _synthetic(root: Path, split: str | None) -> list[SubjectRecord]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: not a synthetic cohort (or incomplete)")
    with manifest.open() as fh:
        rows = [r for r in csv.DictReader(fh) if split is None or r["split"] == split]
    out = []
    for r in rows:
        f = subject_files(root, r["subject_id"], r["contrast"])
        out.append(SubjectRecord(r["subject_id"], f["image"], f["mask"], f["brain"], r["split"],
                                 r["anomaly_type"]))
    return out
