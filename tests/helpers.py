"""Plain helpers shared by several test modules (``from helpers import write_nifti``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def write_nifti(path: Path, data, dtype=np.float32) -> Path:
    """Write ``data`` as a NIfTI file with an identity affine, creating its folder; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype), np.eye(4)), str(path))
    return path
