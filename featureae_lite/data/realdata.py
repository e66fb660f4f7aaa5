"""A small real held-out test set: the two brain-tumour MR cases of the pyradiomics source distribution.

Nothing here runs at import or test time: :func:`fetch_pyradiomics` downloads the sdist from PyPI
(with pooch, checked against its SHA-256) only when a user asks (``featureae-lite fetch-real --out
DIR``), or reads one already on disk (``--sdist PATH``), and writes the cases in the package's BraTS
layout::

    DIR/pyradiomics-brain1/pyradiomics-brain1_t1.nii.gz         T1-weighted post-contrast image, skull removed
    DIR/pyradiomics-brain1/pyradiomics-brain1_seg.nii.gz        the case's label (uint8 0/1)
    DIR/pyradiomics-brain1/pyradiomics-brain1_brainmask.nii.gz  the derived brain mask (uint8 0/1)
    DIR/provenance.json                                         source, hashes, licence, method, limits

What the cases are (read from the files; see ``data/README.md``): axial T1-weighted scans **after
contrast** (bright vessels and dura), 256 × 256 × 25 and × 23 voxels of 0.78 × 0.78 × 6.5 mm, **with
skull and scalp**, and one label each (4137 and 453 voxels) on an enhancing lesion. The sdist's only
licence is its ``LICENSE.txt`` (BSD-3-Clause, © Harvard Medical School); the data folder does not
say where the scans come from.

The conversion (skull strip, alignment, resampling onto the cohort's grid) and its limits:
:mod:`featureae_lite.data.nrrd_cases`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
from pathlib import Path

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.nrrd_cases import brain_mask_from_head, convert_case

log = logging.getLogger(__name__)

# The pyradiomics 3.1.0 sdist on PyPI (the file and hash listed by its simple index).
PYRADIOMICS = {
    "package": "pyradiomics",
    "version": "3.1.0",
    "filename": "pyradiomics-3.1.0.tar.gz",
    "url": "https://files.pythonhosted.org/packages/03/c1/20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b"
           "4578f2/pyradiomics-3.1.0.tar.gz",
    "sha256": "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4",
    "cases": ("brain1", "brain2"),
    "licence": "BSD-3-Clause (the sdist's LICENSE.txt, Copyright 2017 Harvard Medical School); the data "
               "folder states no other licence and no origin of the scans",
}
MODALITY = "t1"  # the closest synthetic contrast: the cases are T1-weighted after contrast (T1c)


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def download_sdist(folder: Path, source: dict = PYRADIOMICS, progress: bool = True) -> Path:
    """Download the sdist into ``folder`` with pooch and check its SHA-256; reuse a verified copy.

    pooch streams into a temporary file in ``folder`` and moves it into place only once its hash
    matches, so an interrupted or wrong download leaves no ``source["filename"]`` behind. ``progress``:
    a tqdm bar of the bytes. Network errors are pooch's (``requests``' exceptions, OSErrors).
    """
    import pooch
    from tqdm.auto import tqdm

    path = folder / source["filename"]
    if path.is_file() and sha256(path) == source["sha256"]:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (~34 MB) from PyPI …", source["filename"])
    # pooch sets the bar's total from the response (total=1 until then: a bar without one is not truthy)
    bar = tqdm(total=1, desc=f"downloading {source['filename']} from PyPI", unit="B", unit_scale=True,
               leave=True) if progress else None
    pooch_log, level = pooch.get_logger(), pooch.get_logger().level
    pooch_log.setLevel(logging.WARNING)  # its own "Downloading data from ..." line: ours is logged above
    try:
        pooch.retrieve(source["url"], known_hash=f"sha256:{source['sha256']}", fname=source["filename"],
                       path=folder, downloader=pooch.HTTPDownloader(progressbar=bar if bar else False,
                                                                    chunk_size=1 << 20, timeout=180))
    except ValueError as exc:  # pooch's hash mismatch (the temporary file is deleted)
        got = re.search(r"but got (\w+)", str(exc))
        if got is None:
            raise
        raise InputError(f"{source['url']}: SHA-256 {got.group(1)} does not match the expected "
                         f"{source['sha256']}") from exc
    finally:
        pooch_log.setLevel(level)
        if bar is not None:
            bar.close()
    return path


def fetch_pyradiomics(out: str | os.PathLike, sdist: str | os.PathLike | None = None,
                      progress: bool = True) -> list[Path]:
    """Build the real held-out test set in ``out`` from the pyradiomics sdist.

    Parameters
    ----------
    out : path-like
        Folder for the subject folders and ``provenance.json`` (a BraTS-layout test set).
    sdist : path-like, optional
        An sdist already on disk (checked against the expected SHA-256); default: download it from
        PyPI into ``out/.download``.
    progress : bool
        tqdm bars of the download and of the conversion; the same steps are logged at INFO level
        (logger ``featureae_lite.data.realdata``).

    Returns
    -------
    list of Path
        The subject folders written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = PYRADIOMICS
    if sdist is None:
        archive = download_sdist(out / ".download", src, progress)
    else:
        archive = Path(sdist)
        if not archive.is_file():
            raise InputError(f"--sdist {archive}: file not found")
        if sha256(archive) != src["sha256"]:
            raise InputError(f"--sdist {archive}: not the expected {src['filename']} (SHA-256 differs)")
    prefix = f"{src['package']}-{src['version']}"
    staged = out / ".download" / "extracted"
    staged.mkdir(parents=True, exist_ok=True)
    wanted = [f"data/{c}_{kind}.nrrd" for c in src["cases"] for kind in ("image", "label")]
    wanted += ["LICENSE.txt", "data/README.md"]
    with tarfile.open(archive, "r:gz") as tar:  # only the named members, read as bytes (no extractall)
        for name in wanted:
            member = tar.extractfile(f"{prefix}/{name}")
            if member is None:
                raise InputError(f"{archive}: {prefix}/{name} is missing")
            write_atomic(staged / name.replace("/", "_"), member.read())
    from tqdm.auto import tqdm

    cases, folders = [], []
    for c in (bar := tqdm(src["cases"], desc="converting", disable=not progress)):
        case_id = f"pyradiomics-{c}"
        log.info("converting %s …", case_id)
        bar.set_description(f"converting {case_id}")
        cases.append(convert_case(staged / f"data_{c}_image.nrrd", staged / f"data_{c}_label.nrrd", out,
                                  case_id, MODALITY))
        cases[-1]["sha256"] = {k: sha256(staged / f"data_{c}_{k}.nrrd") for k in ("image", "label")}
        folders.append(out / case_id)
    provenance = {
        "source": {k: src[k] for k in ("package", "version", "filename", "url", "sha256")},
        "licence": src["licence"],
        "licence_text": (staged / "LICENSE.txt").read_text(),
        "what": "two axial T1-weighted post-contrast (T1c) brain MR scans with skull, 0.78 x 0.78 x 6.5 mm, "
                "each with one label on an enhancing lesion; read as modality 't1' (layout 'brats')",
        "method": {"brain_mask": brain_mask_from_head.__doc__.split("\n\n")[1].strip(),
                   "alignment": "translation + isotropic scale matching the brain mask's in-plane centroid "
                                "and spread, and its area per slice, to the MNI152 brain mask of the "
                                "synthetic cohort (no rotation)",
                   "resampling": "linear in-plane, nearest across slices (each 1 mm slice is an acquired "
                                 "6.5 mm slice), masks nearest; grid 158 x 194 x 160 at 1 mm (the cohort's)"},
        "limits": ["brain mask from a simple slice-wise method: wrong on skull-base and vertex slices",
                   "post-contrast T1 read as T1: vessels, dura and enhancement are bright",
                   "6.5 mm slices: in-plane partial volume, repeated slices along z",
                   "two cases only: figures on them are anecdotes, not estimates"],
        "cases": cases,
    }
    write_atomic(out / "provenance.json", json.dumps(provenance, indent=2))
    return folders
