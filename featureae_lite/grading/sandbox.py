"""Run a command contained: its own temporary folder and home, a scrubbed environment, resource
limits, and every process it starts killed when it ends or runs out of time.

Used by the autograder (:mod:`featureae_lite.grading.assignments`) to execute student notebooks::

    with Sandbox() as box:
        outcome = box.run([sys.executable, "-c", "..."], Limits(wall_seconds=60, cpu_seconds=120))

How it works: the command runs under a small wrapper (this file executed as a script, in a new
session). The wrapper lowers its own resource limits (inherited by everything it starts), makes
itself a *child subreaper* so that orphaned grandchildren — a Jupyter kernel starts in a session of
its own, a student's forks in the kernel's — are re-parented to it instead of to ``init``, runs the
command, and finally kills every process left below it. The caller stops the wrapper (SIGTERM, then
SIGKILL of its process group) when the wall-clock limit passes.

With ``Sandbox(isolate=True)`` (what the autograder uses) the command also runs in namespaces made
by bubblewrap (``bwrap``, see :func:`isolation_args`): a private mount namespace in which only the
sandbox folder is writable and the Python installation and the package's own folder are visible
read-only (no home, no other files of the machine's users, a private ``/tmp``), a private PID
namespace (the grader and every other process are invisible, and all of the command's processes die
with it), no network, and no capabilities, also when the grader runs as root. Without it the command
runs as the same user and can read and change whatever that user can reach by absolute paths (see
``docs/teaching.md``). Linux only for the process-tree clean-up, the process limit and isolation
(``/proc``, ``prctl``, namespaces); elsewhere the rlimits that exist still apply and the clean-up
falls back to the wrapper's process group.
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

from featureae_lite.core.errors import InputError

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
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# System folders an isolated command sees read-only (those that exist); merged-/usr links included.
SYSTEM_READ_ONLY = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Of /etc only what programs need to start (dynamic linker, users and groups, fonts, time zone): no
# shadow file, no host keys, no configuration of the machine's services.
ETC_READ_ONLY = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
                 "hosts", "localtime", "alternatives", "fonts", "mime.types")
ISOLATION_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) on Linux with user "
                  "namespaces, or run as root")


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
    isolate : bool
        Run commands in namespaces (:func:`isolation_args`) where only this folder is writable and
        no other process is visible; entering raises ``RuntimeError`` where that is not possible
        (:func:`isolation_problem` says why).
    """

    def __init__(self, prefix: str = "featureae-sandbox-", isolate: bool = False) -> None:
        self.prefix, self.isolate = prefix, isolate
        self.root = self.work = Path()

    def __enter__(self) -> Sandbox:
        if self.isolate:
            problem = isolation_problem()
            if problem:
                raise RuntimeError(f"cannot isolate the command: {problem}")
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
        spec["parent"] = os.getpid()
        if self.isolate:
            cmd = [*isolation_args(self.root, cwd=self.work), "--", *cmd]
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


def readable_paths() -> list[Path]:
    """What an isolated Python command must read: the interpreter's installation, the environment's
    packages and this package's folder (not the repository or folder around it).

    Entries of ``sys.path`` that contain this package's folder (a source checkout on ``PYTHONPATH``)
    are replaced by the package folder itself; the working directory, the home folder and folders
    above them are never included.
    """
    package = Path(__file__).resolve().parent
    found = [Path(sys.base_prefix), Path(sys.base_exec_prefix), Path(sys.prefix), Path(sys.exec_prefix),
             Path(sys.executable).resolve().parent, package]
    never = {Path.cwd().resolve(), Path.home().resolve(), *package.parents}
    for entry in sys.path:
        if not entry:
            continue
        path = Path(entry).resolve()
        if path.is_dir() and path not in never and not any(path in n.parents for n in never):
            found.append(path)
    paths: list[Path] = []
    for path in sorted({p.resolve() for p in found if p.exists()}, key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(kept) for kept in paths) and path != Path("/"):
            paths.append(path)
    return paths


def isolation_args(root: Path, read_only: list[Path] | None = None, cwd: Path | None = None) -> list[str]:
    """The ``bwrap`` command line (without ``--`` and the command) that runs a command isolated.

    The command sees an empty root file system with: :data:`SYSTEM_READ_ONLY` and a few files of
    ``/etc`` (:data:`ETC_READ_ONLY`) read-only, ``read_only`` (default :func:`readable_paths`)
    read-only, a private ``/tmp``, ``/dev`` (null, zero, random, …) and ``/proc`` of its own PID
    namespace, and ``root`` writable at its own path (working directory ``cwd``, default ``root``).
    It has no network (loopback only), its own IPC and host name, no capabilities (also when started
    by root), and dies with the process that started it.
    """
    args = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    args += ["--cap-drop", "ALL"] if os.geteuid() == 0 else ["--unshare-user"]
    for folder in SYSTEM_READ_ONLY:
        if os.path.lexists(folder):
            args += ["--ro-bind", folder, folder]
    for name in ETC_READ_ONLY:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    for path in read_only if read_only is not None else readable_paths():
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(root), str(root), "--chdir", str(cwd or root)]
    return args


_ISOLATION: dict[str, str | None] = {}


def isolation_problem() -> str | None:
    """Why commands cannot be isolated here (one line), or None where :func:`isolation_args` works.

    Tried once per process: ``bwrap`` runs this interpreter with the arguments the sandbox uses.
    """
    if "problem" not in _ISOLATION:
        _ISOLATION["problem"] = _probe_isolation()
    return _ISOLATION["problem"]


def _probe_isolation() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"isolation needs Linux namespaces; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed; {ISOLATION_HINT}"
    root = Path(tempfile.mkdtemp(prefix="featureae-isolation-probe-")).resolve()
    try:
        probe = [*isolation_args(root), "--", sys.executable, "-I", "-c",
                 "import os, sys; sys.exit(0 if os.getpid() <= 3 and os.access(os.getcwd(), os.W_OK) else 3)"]
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap (bwrap) could not be run: {err}"
    finally:
        _remove_tree(root)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"bubblewrap (bwrap) cannot create the namespaces here ({message}); {ISOLATION_HINT}"
    return None


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
        if not group.exists():  # removed by the wrapper itself (see _leave_cgroup)
            return
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

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # the caller killed (even by SIGKILL): SIGTERM this wrapper, which then kills its processes
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if spec.get("parent") and os.getppid() != spec["parent"]:  # the caller died before the prctl
        raise _Terminated


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


def _leave_cgroup(group: str | None) -> None:
    """Move this (last) process of the pids cgroup ``group`` to its parent and remove the group, so that
    it is gone even when the caller was killed (best effort; the caller removes it otherwise)."""
    if not group:
        return
    try:
        Path(group).parent.joinpath("cgroup.procs").write_text(str(os.getpid()))
        Path(group).rmdir()
    except OSError:
        pass


def _wrapper_main(argv: list[str]) -> int:
    """``sandbox.py SPEC -- CMD…``: limit, run CMD, clean up; exit with CMD's status (128 + signal)."""
    spec, cmd = json.loads(argv[0]), argv[2:]
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        _limit_self(spec)
    except (OSError, ValueError) as err:  # never run the command without its limits
        print(f"sandbox: cannot apply the limits: {err}", file=sys.stderr)
        return 1
    except _Terminated:
        return 128 + signal.SIGTERM
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
        _leave_cgroup(spec.get("cgroup"))
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(_wrapper_main(sys.argv[1:]))
