"""A head scan with skull (NRRD or NIfTI) and its label → a BraTS-layout subject on the cohort's grid.

Reading (:func:`read_nrrd`, by pynrrd), then the conversion, in the native grid then onto the
synthetic cohort's grid:

1. **Brain mask** (:func:`brain_mask_from_head`): a simple slice-by-slice skull strip — no
   registration, no atlas. Its limits: good on the mid-brain slices, wrong on the skull-base and vertex
   slices (temporal muscle, orbits, scalp can be kept), and the scalp can leak in where the skull is
   thin. A user with a real skull-stripping tool should prefer it.
2. **Alignment** (:func:`align_to_grid`): a translation and an isotropic scale that match the brain
   mask's centroid and in-plane spread to the MNI152 brain mask of the synthetic cohort (no rotation).
   The cohort's axial slice range (55–135 on its 1 mm grid) then lands on comparable anatomy.
3. **Resampling** onto the cohort grid (158 × 194 × 160, 1 mm): linear in-plane, **nearest across
   slices**, so that every output slice is a real acquired slice (6–7 consecutive 1 mm slices repeat
   one 6.5 mm slice) rather than a blend of two slices 6.5 mm apart. Label and mask: nearest.

:mod:`featureae_lite.data.realdata` fetches the two real cases this is written for.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from featureae_lite.core.errors import InputError


def read_nrrd(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D NRRD volume with pynrrd (:func:`nrrd.read`) and its voxel → RAS-mm affine.

    ``space directions`` and ``space origin`` give the affine (``spacings`` when there are no
    directions); LPS spaces are turned into RAS like NIfTI.

    Returns
    -------
    (data, affine) : tuple
        C-contiguous array (X, Y, Z) in the file's dtype and the (4, 4) voxel → RAS-mm affine.

    Raises
    ------
    InputError
        (a ValueError) Not an NRRD file, not 3-D, a space other than LPS or RAS, or a file pynrrd
        cannot read (its message follows the file's name).
    """
    import nrrd

    path = Path(path)
    with open(path, "rb") as fh:
        if fh.read(7) != b"NRRD000":
            raise InputError(f"{path}: not an NRRD file (no NRRD000x magic line)")
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except (nrrd.NRRDError, ValueError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: {exc}") from exc
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3-D NRRD volume, got sizes {list(data.shape)}")
    affine = np.eye(4)
    if "space directions" in header:
        affine[:3, :3] = np.asarray(header["space directions"], float).T  # pynrrd: one row per axis
    elif "spacings" in header:
        affine[:3, :3] = np.diag(np.asarray(header["spacings"], float))
    if "space origin" in header:
        affine[:3, 3] = np.asarray(header["space origin"], float)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("left-posterior-superior", "lps"):
        affine[:2] *= -1  # LPS → RAS
    elif space not in ("right-anterior-superior", "ras"):
        raise InputError(f"{path}: NRRD space {space!r} is not supported (LPS or RAS)")
    return np.ascontiguousarray(data), affine


def _disk(radius_mm: float, spacing: float) -> np.ndarray:
    r = max(1, int(round(radius_mm / spacing)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx ** 2 + yy ** 2 <= r * r


def brain_mask_from_head(image: np.ndarray, spacing: tuple[float, float, float], *,
                         bridge_mm: float = 4.0, skull_mm: float = 6.0) -> np.ndarray:
    """A brain mask of a T1-weighted head scan with skull, by a simple slice-by-slice method.

    Per axial slice: the head is the filled Otsu foreground; brain candidates are voxels brighter
    than that Otsu threshold (grey and white matter; CSF and bone are darker) at least ``skull_mm``
    inside the head; an opening of ``bridge_mm`` cuts the thin bridges to the scalp; the component
    lying deepest inside the head is kept, grown back and its holes (ventricles) filled; a slice whose
    kept region is mostly brighter than brain tissue (a cap of scalp fat) gets no brain.

    Limits: meant for the mid-brain slices of T1(c) scans; on the skull-base and vertex slices it
    keeps muscle, orbits or scalp, and where the skull is thin the scalp can leak in.

    Parameters
    ----------
    image : ndarray
        (X, Y, Z) intensities, axial slices along Z.
    spacing : tuple of float
        Voxel size in mm (the in-plane size sets the structuring elements).

    Returns
    -------
    ndarray
        bool (X, Y, Z).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    x = np.asarray(image, np.float32)
    if x.ndim != 3:
        raise InputError(f"expected a 3-D volume, got shape {x.shape}")
    level = threshold_otsu(x)
    fat = threshold_otsu(x[x > level])  # splits the head's bright voxels: brain tissue | scalp fat
    bridge, skull = _disk(bridge_mm, spacing[0]), _disk(skull_mm, spacing[0])
    out = np.zeros(x.shape, bool)
    for z in range(x.shape[2]):
        head = ndi.binary_fill_holes(x[:, :, z] > level)
        if head.sum() < 100:
            continue
        inner = ndi.binary_erosion(head, skull)
        cand = (x[:, :, z] > level) & inner
        labels, n = ndi.label(ndi.binary_erosion(cand, bridge))
        if n == 0:
            continue
        depth = ndi.distance_transform_edt(head)
        best = 1 + int(np.argmax(ndi.sum(depth, labels, range(1, n + 1))))
        keep = ndi.binary_dilation(labels == best, bridge) & cand
        if np.median(x[:, :, z][keep]) > fat:  # a cap of scalp (a slice above or below the brain)
            continue
        out[:, :, z] = ndi.binary_fill_holes(keep)
    return out


def align_to_grid(image: np.ndarray, label: np.ndarray, brain: np.ndarray, affine: np.ndarray,
                  target_brain: np.ndarray, target_affine: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Resample a case onto a target grid, matching its brain mask to ``target_brain``.

    The map is a translation plus an isotropic scale (no rotation): centroids matched in-plane, the
    scale from the in-plane spread (standard deviation of the mask's x and y coordinates in mm), the
    axial position from the best least-squares match of brain area per slice (:func:`_slice_offset`).
    Images are resampled linearly in-plane and by nearest neighbour across slices; masks by nearest
    neighbour.

    Returns
    -------
    (image, label, brain, transform) : tuple
        float32, bool, bool arrays on the target grid, and ``{"scale", "shift_mm"}``.
    """
    from scipy import ndimage as ndi

    def world(mask, aff):
        ijk = np.argwhere(mask).astype(float)
        return ijk @ aff[:3, :3].T + aff[:3, 3]

    src, dst = world(brain, affine), world(target_brain, target_affine)
    if len(src) == 0:
        raise InputError("the brain mask is empty: cannot align the case")
    c_src, c_dst = src.mean(0), dst.mean(0)
    scale = float(np.sqrt(np.prod(dst[:, :2].std(0)) / np.prod(src[:, :2].std(0))))
    c_dst[2] += _slice_offset(brain, affine, target_brain, target_affine, c_src, c_dst, scale)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in target_brain.shape], indexing="ij"), -1)
    pts = grid.reshape(-1, 3) @ target_affine[:3, :3].T + target_affine[:3, 3]
    pts = c_src + (pts - c_dst) / scale  # target world → source world
    ijk = (pts - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    ijk[:, 2] = np.round(ijk[:, 2])  # nearest across slices: every output slice is an acquired one
    coords = ijk.T
    shape = target_brain.shape
    img = ndi.map_coordinates(np.asarray(image, np.float32), coords, order=1, cval=0.0).reshape(shape)
    lab = ndi.map_coordinates(label.astype(np.uint8), coords, order=0, cval=0).reshape(shape) > 0
    brn = ndi.map_coordinates(brain.astype(np.uint8), coords, order=0, cval=0).reshape(shape) > 0
    return img, lab, brn, {"scale": round(scale, 4), "shift_mm": [round(float(v), 2) for v in c_dst - c_src]}


def _slice_offset(brain, affine, target_brain, target_affine, c_src, c_dst, scale, search_mm=40) -> float:
    """Fine z shift (mm) that best matches the brain area per axial slice to the target's (least squares).

    The centroid alone is pulled by the slices where the mask fails (skull base, vertex); the area
    profile along z is a broad hump that a few wrong slices move less.
    """
    voxel_area = float(np.prod(np.linalg.norm(affine[:3, :2], axis=0))) * scale ** 2
    area = brain.sum((0, 1)) * voxel_area
    z_src = (np.arange(brain.shape[2])[:, None] * affine[:3, 2] + affine[:3, 3])[:, 2]
    t_area = target_brain.sum((0, 1)) * float(np.prod(np.linalg.norm(target_affine[:3, :2], axis=0)))
    t_z0, t_dz = target_affine[2, 3], target_affine[2, 2]

    def cost(shift):
        idx = np.round((c_dst[2] + (z_src - c_src[2]) * scale + shift - t_z0) / t_dz).astype(int)
        ok = (idx >= 0) & (idx < len(t_area))
        return float(((area - np.where(ok, t_area[np.clip(idx, 0, len(t_area) - 1)], 0)) ** 2).sum())

    shifts = np.arange(-search_mm, search_mm + 1, 1.0)
    return float(shifts[int(np.argmin([cost(t) for t in shifts]))])


def convert_case(image_path: str | os.PathLike, label_path: str | os.PathLike, out_root: str | os.PathLike,
                 case_id: str, modality: str = "t1") -> dict:
    """Convert one NRRD (or NIfTI) image + label pair with skull into a BraTS-layout subject folder.

    Writes ``<out_root>/<case_id>/<case_id>_<modality>.nii.gz`` (int16, skull removed: 0 outside the
    brain mask, ≥ 1 inside, so that the ``brats`` layout's ``image > 0`` is the mask),
    ``<case_id>_seg.nii.gz`` and ``<case_id>_brainmask.nii.gz`` (uint8), each atomically.

    Returns
    -------
    dict
        What was done: native shape and spacing, label voxels (native, inside the mask, on the grid),
        brain volume, the alignment transform.
    """
    from featureae_lite.data.anatomy import load_anatomy
    from featureae_lite.data.nifti import save_volume

    image, affine = _read_any(image_path)
    label, label_affine = _read_any(label_path)
    if label.shape != image.shape:
        raise InputError(f"{label_path}: label shape {label.shape} does not match image shape {image.shape}")
    if not np.allclose(label_affine, affine, atol=1e-3):
        raise InputError(f"{label_path}: label grid differs from the image's")
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    brain = brain_mask_from_head(image, spacing)
    lesion = label > 0
    anatomy = load_anatomy()
    img, lab, brn, transform = align_to_grid(image, lesion, brain, affine, anatomy.brain, anatomy.affine)
    if not lab.any():
        raise InputError(f"{label_path}: the label is empty after resampling")
    img = np.where(brn, np.maximum(np.rint(img), 1), 0).astype(np.int16)
    folder = Path(out_root) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    save_volume(folder / f"{case_id}_{modality}.nii.gz", img, anatomy.affine)
    save_volume(folder / f"{case_id}_seg.nii.gz", lab.astype(np.uint8), anatomy.affine)
    save_volume(folder / f"{case_id}_brainmask.nii.gz", brn.astype(np.uint8), anatomy.affine)
    voxel = float(np.prod(spacing))
    return {"case": case_id, "native_shape": list(image.shape),
            "native_spacing_mm": [round(s, 4) for s in spacing],
            "label_voxels_native": int(lesion.sum()), "label_voxels_inside_mask": int((lesion & brain).sum()),
            "label_voxels_on_grid": int((lab & brn).sum()),
            "brain_volume_native_cm3": round(float(brain.sum()) * voxel / 1000, 1),
            "alignment": transform}


def _read_any(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    if path.name.lower().endswith(".nrrd"):
        return read_nrrd(path)
    from featureae_lite.data.nifti import load_volume

    return load_volume(path)
