"""Real human anatomy from the MNI152 2009 template shipped inside nilearn's wheel (offline).

The template is an average of 152 brains at 1 mm: T1 intensity plus grey- and white-matter
probability maps and a brain mask. The grid is cropped to the brain's bounding box (plus a margin)
to halve the synthesis cost; the affine is shifted accordingly, so files still overlay on MNI152.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# voxel box of the MNI152 1 mm grid (197 × 233 × 189) holding the brain with a margin
CROP = (slice(20, 178), slice(20, 214), slice(0, 160))


@dataclass(frozen=True)
class Anatomy:
    """Template maps on the cropped grid, each float32 (X, Y, Z) in [0, 1].

    Attributes
    ----------
    t1, gm, wm, csf : ndarray
        Template T1 intensity and tissue probabilities (CSF = brain − GM − WM, clipped).
    brain : ndarray
        Brain mask (bool).
    affine : ndarray
        (4, 4) voxel → MNI mm.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    affine: np.ndarray


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Load (once per process) the MNI152 maps from nilearn, cropped to the brain box."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    get = lambda img: np.asarray(img.get_fdata(), dtype=np.float32)[CROP]  # noqa: E731
    t1 = get(t1_img)
    gm = get(datasets.load_mni152_gm_template(resolution=1))
    wm = get(datasets.load_mni152_wm_template(resolution=1))
    brain = get(datasets.load_mni152_brain_mask(resolution=1)) > 0.5
    csf = np.clip(brain - gm - wm, 0, 1).astype(np.float32)
    affine = t1_img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([s.start for s in CROP], dtype=float)
    for a in (t1, gm, wm, csf, brain):
        a.setflags(write=False)
    return Anatomy(t1, gm * brain, wm * brain, csf, brain, affine)
