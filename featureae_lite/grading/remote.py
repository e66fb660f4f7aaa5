"""Call a learner's functions in a sandboxed worker, judge them in the grader: verdicts out of band.

The autograder (:mod:`featureae_lite.grading.assignments`) never trusts anything a submission prints. It
runs the checkers of :mod:`featureae_lite.course.exercises` in its own process and hands them a
:class:`RemoteFunction` instead of the learner's function. Every call sends its arguments to a worker
process inside the submission's :class:`~featureae_lite.grading.sandbox.Sandbox`; the worker executed the
learner's solution cells (and nothing else of the submission) and answers with the function's
return value. So the learner's code only ever computes answers to inputs it has not seen before
(fresh random cases per grading); it cannot reach the checker, its verdict or the grader's memory.

Before the cells run, the worker arms the exercise's forbidden functions
(:func:`featureae_lite.course.exercises.arm_tripwires`): a call, however the function was reached, is
refused and reported with every answer, and the grader fails the exercise. ``os._exit`` is refused
in the worker's own process (the cell stops there with :class:`SubmissionExit`), so what the cells
defined before it is still graded; a worker that ends anyway is told apart from one stopped by the
grader (:meth:`RemoteSession.exit_reason`).

The channel is a folder of request/answer files: ``req-K.json`` + ``req-K.pt`` from the grader,
``res-K.json`` (+ ``res-K.pt``) from the worker, each written under a temporary name and renamed.
Values travel as ``torch.save`` files read back with ``torch.load(weights_only=True)``, which builds
tensors, numbers, strings and containers only: an answer file cannot run code in the grader.

Run as ``python -m featureae_lite.grading.remote FOLDER`` (the worker; started by :class:`RemoteSession`).
"""

from __future__ import annotations

import ast
import json
import linecache
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featureae_lite.grading.sandbox import Limits, Outcome, Sandbox

PRELUDE = ("import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
           "import featureae_lite as fl\n")
MAX_ANSWER_MB = 64  # an answer file larger than this is refused unread
POLL = 0.005


class RemoteError(Exception):
    """The learner's function raised in the worker; ``kind`` is the name of its exception type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class WorkerGone(Exception):
    """The worker stopped answering (crashed, killed by a limit, or past its time)."""


class SubmissionExit(BaseException):
    """Raised in the worker instead of ending it when the learner's code calls ``os._exit``."""


EXITED = "the submission exited the worker (os._exit) before grading finished"


# -- values on the wire -----------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """``value`` as tensors, numbers, strings and containers (numpy arrays tagged, to be restored).

    Raises
    ------
    TypeError
        For an object of another type (e.g. a function or a custom class).
    """
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        items = [encode(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise TypeError(f"an object of type {type(value).__name__} cannot be checked")


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [decode(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _save(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(encode(value), tmp)
    os.replace(tmp, path)


def _load(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_ANSWER_MB * 2**20:
        raise RemoteError("ValueError", f"the answer is {size / 2**20:.0f} MB, more than {MAX_ANSWER_MB} MB")
    return decode(torch.load(path, weights_only=True))


# -- the grader's side ------------------------------------------------------------------------------
class RemoteFunction:
    """Stands for the learner's function ``name`` living in a worker; calls go over the channel.

    Parameters
    ----------
    session : RemoteSession
        The running worker.
    name : str
        Name of the function in the worker's namespace.
    """

    def __init__(self, session: RemoteSession, name: str) -> None:
        self.session, self.name = session, name

    def __call__(self, *args: Any) -> Any:
        return self.session.call(self.name, args, None)

    def value_and_grad(self, args: tuple, wrt: int) -> tuple[Any, torch.Tensor | None]:
        """``fn(*args)`` and d sum(fn(*args)) / d args[wrt], computed in the worker."""
        return self.session.call(self.name, args, wrt)


class RemoteSession:
    """A worker in ``box`` that executed the solution ``cells``; answers calls until closed.

    Parameters
    ----------
    box : Sandbox
        The submission's sandbox (the worker runs there with ``limits``).
    cells : list of str
        Solution cells of the submission, run in order in one namespace after :data:`PRELUDE`.
    limits : Limits
        Resource limits of the worker; ``wall_seconds`` bounds its whole life.
    call_timeout : float
        Seconds one call may take.
    extra_env : dict, optional
        Environment variables added to the worker's.
    forbidden : tuple of str
        Dotted names of the functions the learner's code may not call (armed in the worker).

    Attributes
    ----------
    cell_errors : list of dict
        One entry per solution cell that raised: ``cell`` (1-based), ``names`` (functions it
        defines), ``ename``, ``evalue``, ``traceback``.
    defined : set of str
        Callables defined by the cells.
    forbidden_calls : list of str
        Forbidden functions (of ``forbidden``) the learner's code called in the worker, as reported
        with its answers.
    outcome : Outcome or None
        How the worker ended (after closing).
    """

    def __init__(self, box: Sandbox, cells: list[str], limits: Limits, call_timeout: float = 60.0,
                 extra_env: dict[str, str] | None = None, forbidden: tuple[str, ...] = ()) -> None:
        self.box, self.cells, self.limits, self.call_timeout = box, cells, limits, call_timeout
        self.extra_env, self.forbidden = extra_env, tuple(forbidden)
        self.cell_errors: list[dict] = []
        self.defined: set[str] = set()
        self.forbidden_calls: list[str] = []
        self.outcome: Outcome | None = None
        self.ended_early = False  # the worker was gone before the grader asked it to stop
        self._closed = False
        self._count = 0
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    def __enter__(self) -> RemoteSession:
        self.folder = Path(self.box.root) / f"rpc-{time.monotonic_ns()}"
        self.folder.mkdir()
        _write(self.folder / "cells.json", json.dumps(self.cells))
        _write(self.folder / "forbidden.json", json.dumps(self.forbidden))
        cmd = [sys.executable, "-m", "featureae_lite.grading.remote", str(self.folder)]

        def run() -> None:
            self.outcome = self.box.run(cmd, self.limits, self.extra_env, self._cancel)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        try:  # the cells run until they finish or the worker's wall-clock limit stops them
            ready = self._wait(self.folder / "ready.json", None)
        except BaseException:
            self.__exit__()
            raise
        info = json.loads(ready.read_text())
        self.cell_errors, self.defined = info["errors"], set(info["defined"])
        self._note_forbidden(info)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and not self._thread.is_alive():
            self.ended_early = True
        self._closed = True
        _write(self.folder / "stop", "")
        if self._thread is not None:
            self._thread.join(timeout=2.0)  # a worker stuck in the learner's code is stopped
            self._cancel.set()
            self._thread.join()

    def _note_forbidden(self, info: dict) -> None:
        self.forbidden_calls += [n for n in info.get("forbidden", []) if n not in self.forbidden_calls]

    def exit_reason(self) -> str | None:
        """Why the worker ended by itself before the grader stopped it, without a signal or time-out
        (else None): the submission exited it (e.g. ``posix._exit``: status 0, :data:`EXITED`) or the
        worker failed (another status, with the last line it wrote)."""
        outcome = self.outcome
        if outcome is None or outcome.timed_out or outcome.returncode < 0:
            return None
        if self._closed and not self.ended_early:
            return None  # stopped by the grader
        if not self._closed and self._thread is not None and self._thread.is_alive():
            return None
        if outcome.returncode == 0:
            return EXITED
        last = (outcome.stderr.strip().splitlines() or ["no message"])[-1]
        return f"the worker ended with exit status {outcome.returncode} before grading finished ({last})"

    def function(self, name: str) -> RemoteFunction:
        """The learner's function ``name`` (calls fail with ``NameError`` when it is not defined)."""
        return RemoteFunction(self, name)

    def _wait(self, path: Path, timeout: float | None) -> Path:
        deadline = time.monotonic() + (timeout if timeout is not None else math.inf)
        while not path.exists():
            if self._thread is None or not self._thread.is_alive():
                raise WorkerGone("the worker stopped")
            if time.monotonic() > deadline:
                raise WorkerGone(f"no answer within {timeout:.0f} s")
            time.sleep(POLL)
        return path

    def call(self, name: str, args: tuple, grad: int | None) -> Any:
        """Call ``name(*args)`` in the worker (with the gradient of ``args[grad]`` when not None)."""
        k, self._count = self._count, self._count + 1
        _save(self.folder / f"req-{k}.pt", args)
        _write(self.folder / f"req-{k}.json", json.dumps({"name": name, "grad": grad}))
        try:
            answer = json.loads(self._wait(self.folder / f"res-{k}.json", self.call_timeout).read_text())
        except WorkerGone as err:
            if "no answer" not in str(err) and self.exit_reason():
                raise RemoteError("WorkerGone", f"{name}(): {self.exit_reason()}") from None
            raise RemoteError("TimeoutError" if "no answer" in str(err) else "WorkerGone",
                              f"{name}() {err}: it did not return (an endless loop, or a crash of "
                              "the process)") from None
        self._note_forbidden(answer)
        if not answer["ok"]:
            if answer["ename"] == "NotImplementedError":
                raise NotImplementedError(answer["evalue"])
            raise RemoteError(answer["ename"], answer["evalue"])
        return _load(self.folder / f"res-{k}.pt")


# -- the worker's side (runs the learner's code) ----------------------------------------------------
def _error(err: BaseException) -> dict[str, Any]:
    return {"ename": type(err).__name__, "evalue": str(err), "traceback": traceback.format_exception(err)}


def defined_functions(source: str) -> list[str]:
    """Names of the top-level functions a cell defines (a regex fallback when it does not parse)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return re.findall(r"^def (\w+)\(", source, flags=re.M)
    return [n.name for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _answer(fn: Callable, args: tuple, grad: int | None) -> Any:
    if grad is None:
        return fn(*args)
    from featureae_lite.course.exercises import value_and_grad

    return value_and_grad(fn, args, grad)


def worker_main(folder: str) -> int:
    """Execute the solution cells of ``folder/cells.json`` and answer requests until ``stop``."""
    from featureae_lite.course.exercises import arm_tripwires

    folder_path, pid = Path(folder), os.getpid()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(PRELUDE, "<prelude>", "exec"), namespace)
    forbidden = folder_path / "forbidden.json"
    calls = arm_tripwires(tuple(json.loads(forbidden.read_text())) if forbidden.exists() else ())
    real_exit = os._exit

    def refuse_exit(status: int = 0) -> None:
        if os.getpid() != pid:  # a process the learner forked (or multiprocessing's): let it end
            real_exit(status)
        raise SubmissionExit(f"os._exit({status}) was called: {EXITED}; the call was refused and "
                             "the rest of its cell skipped")

    os._exit = refuse_exit  # type: ignore[assignment]
    errors = []
    for i, source in enumerate(json.loads((folder_path / "cells.json").read_text()), start=1):
        filename = f"<solution cell {i}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks
        try:
            exec(compile(source, filename, "exec"), namespace)
        except BaseException as err:  # the learner's top-level code: report, keep going
            if os.getpid() != pid:  # a process the learner forked: never let it answer requests
                real_exit(0)
            errors.append({"cell": i, "names": defined_functions(source), **_error(err)})
    defined = sorted(k for k, v in namespace.items() if callable(v) and not k.startswith("__"))
    _write(folder_path / "ready.json", json.dumps({"errors": errors, "defined": defined,
                                                   "forbidden": sorted(set(calls))}))
    k = 0
    while not (folder_path / "stop").exists():
        request = folder_path / f"req-{k}.json"
        if not request.exists():
            time.sleep(POLL)
            continue
        spec = json.loads(request.read_text())
        reply: dict[str, Any] = {"ok": True}
        try:
            fn = namespace.get(spec["name"])
            if not callable(fn):
                raise NameError(f"no function {spec['name']}() is defined by your solution cells")
            _save(folder_path / f"res-{k}.pt", _answer(fn, decode(torch.load(folder_path / f"req-{k}.pt")),
                                                       spec["grad"]))
        except BaseException as err:  # any failure of the learner's function is its answer
            if os.getpid() != pid:
                real_exit(0)
            reply = {"ok": False, **_error(err)}
        reply["forbidden"] = sorted(set(calls))
        _write(folder_path / f"res-{k}.json", json.dumps(reply))
        k += 1
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
