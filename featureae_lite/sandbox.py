"""Run a command contained: its own temporary folder and home, a scrubbed environment, resource
limits, and every process it starts killed when it ends or runs out of time.

Used by the autograder (:mod:`featureae_lite.assignments`) to execute student notebooks::

    with Sandbox() as box:
        outcome = box.run([sys.executable, "-c", "..."], Limits(wall_seconds=60, cpu_seconds=120))

How it works: the command runs under a small wrapper (this file executed as a script, in a new
session). The wrapper lowers its own resource limits (inherited by everything it starts), makes
itself a *child subreaper* so that orphaned grandchildren — a Jupyter kernel starts in a session of
its own, a student's forks in the kernel's — are re-parented to it instead of to ``init``, runs the
command, and finally kills every process left below it. The caller stops the wrapper (SIGTERM, then
SIGKILL of its process group) when the wall-clock limit passes.

This stops accidents and runaway code, not a malicious user: the command runs as the same user and
can read and change whatever that user can reach by absolute paths (see ``docs/teaching.md``).
Linux only for the process-tree clean-up and the process limit (``/proc``, ``prctl``); elsewhere the
rlimits that exist still apply and the clean-up falls back to the wrapper's process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Environment variables naming per-user folders: all redirected inside the sandbox.
REDIRECTED = {
    "HOME": "home", "TMPDIR": "tmp", "XDG_CACHE_HOME": "home/.cache", "XDG_CONFIG_HOME": "home/.config",
    "MPLCONFIGDIR": "home/.config/matplotlib", "TORCH_HOME": "home/.cache/torch",
    "IPYTHONDIR": "home/.ipython", "JUPYTER_CONFIG_DIR": "home/.jupyter",
    "JUPYTER_DATA_DIR": "home/.local/share/jupyter",
    "JUPYTER_RUNTIME_DIR": "home/.local/share/jupyter/runtime",
}
# The only variables of the caller's environment passed on (when set). PYTHONPATH lets a package
# run from a source folder import itself; nothing else (tokens, credentials, proxies) gets through.
PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "OMP_NUM_THREADS", "VIRTUAL_ENV", "PYTHONPATH")
STOP_GRACE = 10.0  # seconds the wrapper gets to kill its processes after SIGTERM
_PR_SET_CHILD_SUBREAPER = 36


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
                raise ValueError(f"sandbox limit {name} must be positive, got {value}")


@dataclass
class Outcome:
    """What a contained run did.

    Attributes
    ----------
    returncode : int
        Exit status of the command; negative: killed by that signal (``-signal.SIGXCPU`` …).
    timed_out : bool
        The wall-clock limit passed and the run was killed.
    seconds : float
        Wall-clock duration.
    stderr : str
        The end (4000 characters at most) of what the command wrote to stdout and stderr.
    warnings : list of str
        Limits that could not be applied on this system.
    """

    returncode: int
    timed_out: bool
    seconds: float
    stderr: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def signal_name(self) -> str | None:
        """Name of the signal that ended the command, e.g. ``"SIGXFSZ"``, or None."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


class Sandbox:
    """A temporary folder with a working directory ``work`` and a home inside; removed on exit.

    Parameters
    ----------
    prefix : str
        Name prefix of the temporary folder.
    """

    def __init__(self, prefix: str = "featureae-sandbox-") -> None:
        self.prefix = prefix
        self.root = self.work = Path()

    def __enter__(self) -> Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix)).resolve()
        self.work = self.root / "work"
        self.work.mkdir()
        for sub in REDIRECTED.values():
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        _remove_tree(self.root)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The command's whole environment: home-like folders inside the sandbox, the variables of
        :data:`PASSED` that are set, then ``extra``; nothing else of the caller's environment."""
        env = {k: os.environ[k] for k in PASSED if os.environ.get(k)}
        env.setdefault("PATH", os.defpath)
        env.update({var: str(self.root / sub) for var, sub in REDIRECTED.items()})
        env.update(extra or {})
        return env

    def run(self, cmd: list[str], limits: Limits, extra_env: dict[str, str] | None = None,
            cancel: threading.Event | None = None) -> Outcome:
        """Run ``cmd`` in ``work`` with the environment of :meth:`environment` and ``limits``.

        Never raises for what the command does; the whole process tree is gone on return. Setting
        ``cancel`` (from another thread) stops the command early, like the wall-clock limit does but
        without counting as a time-out.
        """
        warnings: list[str] = []
        cgroup = _pids_cgroup(limits.processes, warnings) if os.geteuid() == 0 else None
        if not Path("/proc/self/stat").exists():
            warnings.append("no /proc: the process limit is not applied and only the wrapper's "
                            "process group is killed at the end")
        spec = {"cpu": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                "file_size_mb": limits.file_size_mb, "processes": limits.processes,
                "cgroup": str(cgroup) if cgroup else None}
        wrapper = [sys.executable, "-I", str(Path(__file__).resolve()), json.dumps(spec), "--", *cmd]
        log = self.root / "output.log"
        start, timed_out = time.monotonic(), False
        try:
            with open(log, "wb") as out:
                proc = subprocess.Popen(wrapper, cwd=self.work, env=self.environment(extra_env),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True)
                deadline = start + limits.wall_seconds
                try:
                    while proc.poll() is None and not (cancel is not None and cancel.is_set()):
                        if time.monotonic() > deadline:
                            timed_out = True
                            break
                        try:
                            proc.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
                        except subprocess.TimeoutExpired:
                            pass
                finally:  # also on KeyboardInterrupt in the caller
                    if proc.poll() is None:
                        _stop(proc)
        finally:
            if cgroup:
                _remove_cgroup(cgroup, warnings)
        code = proc.returncode
        if code > 128:  # the wrapper reports "killed by signal s" as 128 + s, like a shell
            code = -(code - 128)
        return Outcome(code, timed_out, round(time.monotonic() - start, 1), _tail(log), warnings)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the wrapper (it kills its process tree), then SIGKILL its process group."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the wrapper leads its own session: never ours
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, size: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _remove_tree(root: Path) -> None:
    """Remove a folder even where the command made parts of it read-only (symbolic links are
    removed, never followed)."""
    def _writable_again(func, path, _exc):
        try:
            os.chmod(Path(path).parent, stat.S_IRWXU)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
            func(path)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(root, onexc=_writable_again)
    else:
        shutil.rmtree(root, onerror=_writable_again)


# --- root only: a pids cgroup instead of RLIMIT_NPROC --------------------------------------------------

def _pids_cgroup(size: int, warnings: list[str]) -> Path | None:
    """A fresh pids cgroup allowing ``size`` tasks, or None (with a warning) where none can be made.

    Linux ignores ``RLIMIT_NPROC`` for root, so a fork bomb run by root would only be stopped by the
    system's pid limit; a cgroup (v1 ``pids`` hierarchy, or v2 where the pids controller is enabled
    below the caller's cgroup) bounds it instead.
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


def _remove_cgroup(group: Path, warnings: list[str]) -> None:
    for _ in range(50):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            _kill(pid)
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    warnings.append(f"could not remove the cgroup {group}")


# --- the wrapper: runs in the child, before and around the command ------------------------------------

class _Terminated(Exception):
    pass


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _user_tasks(uid: int) -> int:
    """Processes and threads of user ``uid`` system-wide: what ``RLIMIT_NPROC`` counts."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in Path(entry.path, "status").read_text().splitlines()
                          if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return total


def _set_limit(kind: int, soft: int, hard: int | None = None) -> None:
    """Lower a limit (never raise it above the inherited hard limit)."""
    import resource  # POSIX only: imported where used, so that the module imports everywhere

    _, old_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(kind, (soft, hard))


def _limit_self(spec: dict) -> None:
    """Apply the limits to this process (and so to everything it starts)."""
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

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _descendants(root: int) -> list[tuple[int, int, str]]:
    """(pid, process group, state) of every process below ``root``, from ``/proc``."""
    children: dict[int, list[tuple[int, int, str]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()  # after "pid (command)"
        children.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[2]), fields[0]))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_descendants() -> None:
    """Kill every process below this one (orphans included: this process is their subreaper)."""
    if not Path("/proc/self/stat").exists():
        return  # no process table to read: the caller's kill of this process group is all there is
    me, own_group = os.getpid(), os.getpgid(0)
    for _ in range(200):
        alive = [(pid, group) for pid, group, state in _descendants(me) if state != "Z"]
        if not alive:
            break
        for group in {g for _, g in alive} - {own_group}:
            try:  # a whole group at once, so that processes forked meanwhile go too
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid, _ in alive:
            _kill(pid)
        _reap()
        time.sleep(0.02)
    _reap()


def _wrapper_main(argv: list[str]) -> int:
    """``sandbox.py SPEC -- CMD…``: limit, run CMD, clean up; exit with CMD's status (128 + signal)."""
    spec, cmd = json.loads(argv[0]), argv[2:]
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        _limit_self(spec)
    except (OSError, ValueError) as err:  # never run the command without its limits
        print(f"sandbox: cannot apply the limits: {err}", file=sys.stderr)
        return 1
    code = 1
    try:
        child = subprocess.Popen(cmd)
        code = child.wait()
    except _Terminated:
        code = -signal.SIGTERM
    except OSError as err:
        print(f"sandbox: cannot start {cmd[0]}: {err}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _kill_descendants()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(_wrapper_main(sys.argv[1:]))
