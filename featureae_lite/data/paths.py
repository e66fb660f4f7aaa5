"""Where the package keeps generated data, caches and checkpoints.

The data folder is resolved like nilearn does it: an explicit argument first, then the
``FEATUREAE_LITE_DATA`` environment variable, then ``data/`` in the source checkout (git-ignored),
and for an installed (non-editable) package ``~/featureae_lite_data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from featureae_lite.core.fileio import make_folder, resolve_path

ENV_VAR = "FEATUREAE_LITE_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]


def source_checkout() -> Path | None:
    """The repository folder when the package runs from a source checkout (an editable install or the
    tests), None for an installed (non-editable) package."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "featureae_lite").is_dir():
        return REPO_ROOT
    return None


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the data folder (created if missing).

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit folder. When ``None`` the ``FEATUREAE_LITE_DATA`` environment variable is used,
        then ``data/`` in the repository checkout, then ``~/featureae_lite_data``.

    Returns
    -------
    Path
        The absolute folder path.

    Raises
    ------
    ValueError
        The path is a file, a symbolic link that loops, or the folder cannot be created.
    """
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir)
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    elif source_checkout() is not None:
        path = REPO_ROOT / "data"
    else:
        path = Path.home() / "featureae_lite_data"
    return make_folder(resolve_path(path, "data folder"), "data folder")


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Folder for preprocessed slice caches, ``<data_dir>/cache``.

    Raises
    ------
    ValueError
        The folder cannot be created (e.g. a read-only data folder); see :func:`unwritable_cache`.
    """
    path = resolve_data_dir(data_dir) / "cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise unwritable_cache(path, err) from err
    return path


def unwritable_cache(folder: Path, err: OSError) -> ValueError:
    """The error for a cache folder that cannot be written, saying how to go on."""
    return ValueError(f"cache folder {folder} is not writable ({err.strerror}): preprocessed slices are "
                      f"cached in the data folder; give a writable one with --data or ${ENV_VAR} (a "
                      "read-only cohort can still be read with --train-data/--test-data DIR "
                      "--train-layout synthetic --test-layout synthetic)")
