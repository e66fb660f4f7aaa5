"""Safe file output: atomic writes, output paths checked before work starts, and lock files.

* A reader never sees a half-written file: everything the package writes goes to a temporary name in
  the destination folder and is renamed into place (``os.replace`` is atomic on POSIX and Windows).
* Output paths given by the user are checked (a folder where a file is expected, a file where a
  folder is expected, a folder that cannot be written) before minutes of training are spent.
* Writers of one shared file (a cohort, a cache, a checkpoint) are serialised with a lock file
  (:mod:`filelock`): the second waits and then finds the finished result.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from featureae_lite.core.errors import InputError

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write ``path`` through; renamed into place when the block succeeds.

    The temporary name keeps the full suffix (``.nii.gz``, ``.pt``, ``.ipynb``) so that writers that
    choose their format by extension (nibabel, papermill) behave as for the real name. On any
    exception, the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> with atomic_path("model.pt") as tmp:  # doctest: +SKIP
    ...     torch.save(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Parameters
    ----------
    path : path-like
        Destination file (its folder must exist).
    data : str or bytes
        Text (UTF-8) or bytes.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def is_symlink_loop(path: str | os.PathLike) -> bool:
    """True if ``path`` (or a folder above it) is a symbolic link that loops."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def resolve_path(path: str | os.PathLike, option: str) -> Path:
    """``path`` made absolute with its symbolic links resolved.

    Raises
    ------
    ValueError
        ``path`` (or a folder above it) is a symbolic link that loops; the message names ``option``.
    """
    path = Path(path).expanduser()
    if is_symlink_loop(path):  # Path.resolve raises RuntimeError on it before Python 3.13, then not
        raise InputError(f"{option} {path}: is a symbolic link that loops (it points back at itself); "
                         "remove the link or give the real folder")
    return path.resolve()


def make_folder(folder: str | os.PathLike, option: str) -> Path:
    """Create ``folder`` (and its parents) if needed; returns it.

    Raises
    ------
    ValueError
        ``folder`` is a file, a symbolic link that loops or points nowhere, or cannot be created; the
        message names ``option`` (e.g. ``--out``).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder}: is a file, expected a folder")
    if folder.is_symlink() and not folder.exists():
        resolve_path(folder, option)  # raises for a loop
        raise InputError(f"{option} {folder}: is a symbolic link to {os.readlink(folder)}, which does "
                         "not exist")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{option} {folder}: cannot create this folder ({err.strerror})") from err
    return folder


def _writable_folder(folder: Path, option: str) -> None:
    make_folder(folder, option)
    try:  # a real write: also catches read-only mounts, where os.access can say yes (root)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"{option} {folder}: folder is not writable ({err.strerror}); "
                         "choose another one") from err


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check that a file can be written at ``path`` (its folder is created); returns the path.

    Raises
    ------
    ValueError
        ``path`` is a folder, or its folder cannot be created or written; the message names
        ``option`` and the path.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder, expected a file name")
    _writable_folder(path.parent if str(path.parent) else Path("."), option)
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check that ``path`` is (or can become) a writable folder; creates it and returns it.

    Raises
    ------
    ValueError
        ``path`` is a file, or cannot be created or written; the message names ``option``.
    """
    path = Path(path)
    _writable_folder(path, option)
    return path


def check_not_an_input(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None],
                       folders: dict[str, str | os.PathLike | None] | None = None,
                       option: str = "--out") -> None:
    """Refuse an output path that is one of the command's inputs or lies inside a folder it manages.

    Parameters
    ----------
    out : path-like
        The output file or folder.
    inputs : dict
        What each input is (e.g. ``"--checkpoint"``, ``"--real-data"``) → its path (None: not given):
        ``out`` must not be any of them.
    folders : dict, optional
        Folders whose whole content the command reads or writes by its own names (the data folder:
        cohorts, caches, checkpoints): ``out`` must not be one of them nor lie inside one.
    option : str
        The output option, named in the message.

    Raises
    ------
    ValueError
        ``out`` would replace an input or write into a folder the command reads.
    """
    target = resolve_path(out, option)
    for what, path in {**inputs, **(folders or {})}.items():
        if not path:
            continue
        source = resolve_path(path, what)
        if target == source:
            kind = "folder" if source.is_dir() else "file"
            raise InputError(f"{option} {out}: is the {kind} the command reads ({what}); it would be "
                             f"{'written into' if kind == 'folder' else 'replaced'}, choose another {kind}")
        if what in (folders or {}) and target.is_relative_to(source):
            raise InputError(f"{option} {out}: is inside {what} {source}, which the command reads; "
                             "choose a path outside it")


@contextmanager
def writer_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of the writers of ``path`` (lock file ``<path>.lock`` beside it).

    When another process holds it, say so (a warning: on stderr, also without a logging setup) and wait
    for it to finish.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.with_name(path.name + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process to finish writing %s (lock %s)", path, lock.lock_file)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
