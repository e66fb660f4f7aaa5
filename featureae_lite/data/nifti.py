"""Reading and writing NIfTI volumes with clear errors at the boundary."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import atomic_path, is_symlink_loop


def missing_file_error(path: Path) -> Exception:
    """The error for a NIfTI path that is not a readable file: a symbolic link that loops
    (ValueError), one to nothing, or no file at all (FileNotFoundError)."""
    if not path.is_symlink():
        return FileNotFoundError(f"NIfTI file not found: {path}")
    target = os.readlink(path)
    if is_symlink_loop(path):
        return ValueError(f"{path}: is a symbolic link that loops (to {target}); replace it by the "
                          "image file")
    return FileNotFoundError(f"{path}: is a symbolic link to {target}, which does not exist")


def load_volume(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3-D NIfTI volume.

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    (data, affine) : tuple
        float32 array (X, Y, Z) and the (4, 4) affine.

    Raises
    ------
    FileNotFoundError
        The file does not exist (or is a symbolic link to nothing).
    ValueError
        The file is a symbolic link that loops, is not a readable NIfTI, is not 3-D, or contains
        NaN / infinite values.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file_error(path)
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3-D volume, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise InputError(f"{path}: contains NaN or infinite values")
    return data, img.affine


def load_mask(path: str | os.PathLike, shape: tuple[int, ...] | None = None,
              labels: bool = False) -> np.ndarray:
    """Load a binary mask (bool (X, Y, Z)).

    Parameters
    ----------
    path : path-like
        Mask file.
    shape : tuple, optional
        Required shape (the image's); a mismatch raises ValueError.
    labels : bool
        Accept integer label maps (e.g. BraTS 1/2/4) and binarise them (> 0); a negative label is an
        error (it would silently count as background). Otherwise the mask must contain only 0 and 1.
    """
    data, _ = load_volume(path)
    if shape is not None and data.shape != tuple(shape):
        raise InputError(f"{path}: mask shape {data.shape} does not match image shape {tuple(shape)}")
    values = np.unique(data)
    if labels:
        if not np.allclose(values, np.round(values)):
            raise InputError(f"{path}: label map has non-integer values {values[:5]}")
        if values[0] < 0:
            raise InputError(f"{path}: label map has negative labels {values[values < 0][:5]}; expected "
                             "0 (background) and positive lesion labels")
    elif not np.isin(values, (0, 1)).all():
        raise InputError(f"{path}: mask is not binary (values {values[:6]}…); expected only 0 and 1")
    return data > 0


def save_volume(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` (X, Y, Z) as NIfTI with ``affine``, keeping its dtype (int16 / uint8 / float32).

    The file is written under a temporary name and renamed, so a reader never finds it half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
