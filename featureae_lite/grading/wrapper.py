"""The wrapper process of a sandbox run: limit itself, run the command, kill what it leaves behind.

:meth:`featureae_lite.grading.sandbox.Sandbox.run` starts this file as a script, in a session of its
own and with ``python -I`` (so that nothing the command wrote in its sandbox home — a
``usercustomize`` module, a ``.pth`` file — runs here, outside the isolation), as
``wrapper.py SPEC -- CMD…``. It imports only the standard library and ``psutil``, never the rest of
the package, so that it runs the same whichever copy of the package ``-I`` would find.

The wrapper lowers its own resource limits (inherited by everything it starts), joins the pids cgroup
the caller made (root only, :func:`featureae_lite.grading.limits.pids_cgroup`), makes itself a *child
subreaper* so that orphaned grandchildren — a Jupyter kernel starts in a session of its own, a
student's forks in the kernel's — are re-parented to it instead of to ``init``, runs the command, and
finally kills every process left below it. It reports why it could not run the command on its
stderr (``sys.stderr.write``: it is a process of its own, whose output the caller reads back as
:attr:`~featureae_lite.grading.sandbox.Outcome.stderr`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class _Terminated(Exception):
    pass


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _user_tasks(uid: int) -> int:
    """Processes and threads of user ``uid`` system-wide: what ``RLIMIT_NPROC`` counts."""
    total = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids, threads = proc.info["uids"], proc.info["num_threads"]
        if uids is not None and threads is not None and uids.real == uid:
            total += threads
    return total


def _set_limit(kind: int, soft: int, hard: int | None = None) -> None:
    """Lower a limit (never raise it above the inherited hard limit)."""
    import resource  # POSIX only: imported where used, so that the module imports everywhere

    _, old_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(kind, (soft, hard))


def limit_self(spec: dict) -> None:
    """Apply the limits of ``spec`` to this process (and so to everything it starts).

    Parameters
    ----------
    spec : dict
        ``cpu`` (seconds), ``memory_mb``, ``file_size_mb``, ``processes``, ``cgroup`` (a pids cgroup
        to join, or None) and ``parent`` (the caller's pid), as :meth:`Sandbox.run
        <featureae_lite.grading.sandbox.Sandbox.run>` writes them.

    Raises
    ------
    _Terminated
        The caller died before this process could ask to be told (``PR_SET_PDEATHSIG``).
    """
    import resource

    mb = 1024 * 1024
    _set_limit(resource.RLIMIT_CORE, 0)  # no core dumps of a 6 GB kernel killed by SIGXCPU/SIGXFSZ
    _set_limit(resource.RLIMIT_CPU, spec["cpu"], spec["cpu"] + 5)
    # RLIMIT_DATA rather than RLIMIT_AS: RLIMIT_AS counts reserved address space, and glibc reserves
    # 64 MB per malloc arena (up to 8 per core) besides the libraries torch maps, so a torch kernel on
    # a many-core machine reserves several GB it never uses and would fail at random. RLIMIT_DATA
    # (Linux >= 4.7) counts private writable memory only: what a runaway allocation grows.
    _set_limit(resource.RLIMIT_DATA, spec["memory_mb"] * mb)
    _set_limit(resource.RLIMIT_FSIZE, spec["file_size_mb"] * mb)
    if spec["cgroup"]:
        Path(spec["cgroup"], "cgroup.procs").write_text(str(os.getpid()))
    elif hasattr(resource, "RLIMIT_NPROC") and Path("/proc/self/status").exists():
        # RLIMIT_NPROC counts every process and thread of the user, system-wide (not only ours):
        # an absolute number would either block the run on a busy machine or allow a fork bomb to
        # take everything; so allow the user's current count plus a margin.
        _set_limit(resource.RLIMIT_NPROC, _user_tasks(os.getuid()) + spec["processes"])
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # the caller killed (even by SIGKILL): SIGTERM this wrapper, which then kills its processes
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if spec.get("parent") and os.getppid() != spec["parent"]:  # the caller died before the prctl
        raise _Terminated


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants() -> None:
    """Kill every process below this one (orphans included: this process is their subreaper)."""
    if not Path("/proc/self/stat").exists():
        return  # no process table to read: the caller's kill of this process group is all there is
    me, own_group = psutil.Process(), os.getpgid(0)
    for _ in range(200):
        alive: list[tuple[psutil.Process, int]] = []
        for child in me.children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append((child, os.getpgid(child.pid)))
            except (psutil.Error, OSError):  # gone meanwhile
                continue
        if not alive:
            break
        for group in {g for _, g in alive} - {own_group}:
            try:  # a whole group at once, so that processes forked meanwhile go too
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for child, _ in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        _reap()
        time.sleep(0.02)
    _reap()


def leave_cgroup(group: str | None) -> None:
    """Move this (last) process of the pids cgroup ``group`` to its parent and remove the group, so that
    it is gone even when the caller was killed (best effort; the caller removes it otherwise)."""
    if not group:
        return
    try:
        Path(group).parent.joinpath("cgroup.procs").write_text(str(os.getpid()))
        Path(group).rmdir()
    except OSError:
        pass


def main(argv: list[str]) -> int:
    """``wrapper.py SPEC -- CMD…``: limit, run CMD, clean up; exit with CMD's status (128 + signal).

    The file descriptors listed in the spec's ``pass_fds`` are handed on to CMD (and closed here once
    it has started).
    """
    spec, cmd = json.loads(argv[0]), argv[2:]
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        limit_self(spec)
    except (OSError, ValueError) as err:  # never run the command without its limits
        sys.stderr.write(f"sandbox: cannot apply the limits: {err}\n")
        return 1
    except _Terminated:
        return 128 + signal.SIGTERM
    code = 1
    pass_fds = tuple(spec.get("pass_fds", ()))
    try:
        child = subprocess.Popen(cmd, pass_fds=pass_fds)
        for fd in pass_fds:  # the command holds them now; this process does not use them
            with contextlib.suppress(OSError):
                os.close(fd)
        code = child.wait()
    except _Terminated:
        code = -signal.SIGTERM
    except OSError as err:
        sys.stderr.write(f"sandbox: cannot start {cmd[0]}: {err}\n")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_descendants()
        leave_cgroup(spec.get("cgroup"))
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
