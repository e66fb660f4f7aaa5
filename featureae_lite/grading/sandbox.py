"""Run a command contained: its own temporary folder and home, a scrubbed environment, resource
limits, and every process it starts killed when it ends or runs out of time.

Used by the autograder (:mod:`featureae_lite.grading.assignments`) to execute student notebooks::

    with Sandbox() as box:
        outcome = box.run([sys.executable, "-c", "..."], Limits(wall_seconds=60, cpu_seconds=120))

How it works: the command runs under a small wrapper process (:mod:`featureae_lite.grading.wrapper`,
in a new session) that lowers its own resource limits (:class:`~featureae_lite.grading.limits.Limits`,
inherited by everything it starts), runs the command as its child subreaper, and finally kills every
process left below it. The caller stops the wrapper (SIGTERM, then SIGKILL of its process group) when
the wall-clock limit passes, and as root bounds the number of processes with a pids cgroup
(:func:`featureae_lite.grading.limits.pids_cgroup`).

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
from dataclasses import dataclass, field
from pathlib import Path

from featureae_lite.grading import wrapper
from featureae_lite.grading.limits import Limits, pids_cgroup, remove_cgroup

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
# System folders an isolated command sees read-only (those that exist); merged-/usr links included.
SYSTEM_READ_ONLY = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Of /etc only what programs need to start (dynamic linker, users and groups, fonts, time zone): no
# shadow file, no host keys, no configuration of the machine's services.
ETC_READ_ONLY = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
                 "hosts", "localtime", "alternatives", "fonts", "mime.types")
ISOLATION_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) on Linux with user "
                  "namespaces, or run as root")


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
            cancel: threading.Event | None = None, pass_fds: tuple[int, ...] = ()) -> Outcome:
        """Run ``cmd`` in ``work`` with the environment of :meth:`environment` and ``limits``.

        Never raises for what the command does; the whole process tree is gone on return.

        Parameters
        ----------
        cmd : list of str
            The command and its arguments.
        limits : Limits
            Resource limits of the run.
        extra_env : dict, optional
            Environment variables added to those of :meth:`environment`.
        cancel : threading.Event, optional
            Setting it (from another thread) stops the command early, like the wall-clock limit does
            but without counting as a time-out.
        pass_fds : tuple of int
            File descriptors of this process the command inherits, under the same numbers (through
            the wrapper and bubblewrap, which leave inherited descriptors open).

        Returns
        -------
        Outcome
            How the command ended.
        """
        warnings: list[str] = []
        cgroup = pids_cgroup(limits.processes, warnings) if os.geteuid() == 0 else None
        if not Path("/proc/self/stat").exists():
            warnings.append("no /proc: the process limit is not applied and only the wrapper's "
                            "process group is killed at the end")
        spec = {"cpu": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                "file_size_mb": limits.file_size_mb, "processes": limits.processes,
                "cgroup": str(cgroup) if cgroup else None, "pass_fds": list(pass_fds)}
        spec["parent"] = os.getpid()
        if self.isolate:
            cmd = [*isolation_args(self.root, cwd=self.work), "--", *cmd]
        argv = [sys.executable, "-I", str(Path(wrapper.__file__).resolve()), json.dumps(spec), "--", *cmd]
        log = self.root / "output.log"
        start, timed_out = time.monotonic(), False
        try:
            with open(log, "wb") as out:
                proc = subprocess.Popen(argv, cwd=self.work, env=self.environment(extra_env),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True, pass_fds=pass_fds)
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
                remove_cgroup(cgroup, warnings)
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
    package = Path(__file__).resolve().parents[1]  # featureae_lite/, not this subpackage
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
