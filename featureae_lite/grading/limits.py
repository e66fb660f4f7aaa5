"""Resource limits of a contained run, and (for root) the pids cgroup that bounds its processes.

:class:`Limits` says what a :class:`~featureae_lite.grading.sandbox.Sandbox` run may use; the wrapper
process (:mod:`featureae_lite.grading.wrapper`) applies them to itself as rlimits before it starts the
command. Linux ignores ``RLIMIT_NPROC`` for root, so when the grader runs as root the sandbox makes a
pids cgroup here (:func:`pids_cgroup`), the wrapper moves itself into it, and :func:`remove_cgroup`
kills what is left in it and removes it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from featureae_lite.core.errors import InputError


@dataclass(frozen=True)
class Limits:
    """Resource limits of one contained run.

    Attributes
    ----------
    wall_seconds : float
        Wall-clock limit; the whole process tree is killed when it passes.
    cpu_seconds : int
        ``RLIMIT_CPU`` of every process (SIGXCPU, then SIGKILL 5 s later): a backstop should the
        caller die; counts the CPU time of all threads of a process, so allow for several cores.
    memory_mb : int
        ``RLIMIT_DATA`` of every process (private writable memory: heap, anonymous mappings, thread
        stacks); an allocation beyond it fails (``MemoryError`` in Python).
    file_size_mb : int
        ``RLIMIT_FSIZE``: largest file a process may write (Python gets ``OSError: [Errno 27] File too
        large``; other programs die of SIGXFSZ).
    processes : int
        Processes and threads the run may add to those of the user (``RLIMIT_NPROC``), or the size
        of its pids cgroup when running as root (Linux does not apply ``RLIMIT_NPROC`` to root).
    """

    wall_seconds: float
    cpu_seconds: int
    memory_mb: int = 6144
    file_size_mb: int = 1024
    processes: int = 256

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise InputError(f"sandbox limit {name} must be positive, got {value}")


def pids_cgroup(size: int, warnings: list[str]) -> Path | None:
    """A fresh pids cgroup allowing ``size`` tasks, or None (with a warning) where none can be made.

    Linux ignores ``RLIMIT_NPROC`` for root, so a fork bomb run by root would only be stopped by the
    system's pid limit; a cgroup (v1 ``pids`` hierarchy, or v2 where the pids controller is enabled
    below the caller's cgroup) bounds it instead.

    Parameters
    ----------
    size : int
        Largest number of tasks (processes and threads) in the group.
    warnings : list of str
        Appended to when no group can be made.
    """
    unified = Path("/sys/fs/cgroup")
    if not (unified / "cgroup.controllers").exists():  # hybrid layout: v2 mounted below
        unified = unified / "unified"
    candidates = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "pids":
                candidates.append(Path("/sys/fs/cgroup/pids") / path.lstrip("/"))
            elif controllers == "":
                candidates.append(unified / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    for parent in candidates:
        if not (parent / "cgroup.procs").exists():  # not a mounted cgroup hierarchy
            continue
        group = parent / f"featureae-sandbox-{os.getpid()}-{time.monotonic_ns()}"
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            if (group / "pids.max").exists():  # the pids controller is enabled there
                (group / "pids.max").write_text(str(size))
                return group
        except OSError:
            pass
        group.rmdir()
    warnings.append("running as root, for whom Linux ignores RLIMIT_NPROC, and no pids cgroup could be "
                    "created: the number of processes is not limited (run the grader as an ordinary "
                    "user, or in a container with --pids-limit)")
    return None


def remove_cgroup(group: Path, warnings: list[str]) -> None:
    """Kill every process left in the pids cgroup ``group`` and remove it (a warning if it stays).

    The wrapper usually removes the group itself when it ends
    (:func:`featureae_lite.grading.wrapper.leave_cgroup`); then there is nothing left to do.
    """
    for _ in range(50):
        if not group.exists():  # removed by the wrapper itself
            return
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    warnings.append(f"could not remove the cgroup {group}")
