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

The channel is a :func:`multiprocessing.Pipe` (a Unix socket pair). The worker inherits its end as a
file descriptor through the sandbox (:meth:`Sandbox.run <featureae_lite.grading.sandbox.Sandbox.run>`
``pass_fds``; the wrapper and bubblewrap leave inherited descriptors open, and a socket pair needs
neither a network nor a path); the grader's end is never inherited by anything. Only byte strings
travel (``send_bytes`` / ``recv_bytes``, never the pickling ``send`` / ``recv``): JSON headers, and
values as ``torch.save`` data read back with ``torch.load(weights_only=True)``, which builds tensors,
numbers, strings and containers only (:mod:`featureae_lite.grading.wire`), so an answer cannot run
code in the grader; the grader reads no message larger than
:data:`~featureae_lite.grading.wire.MAX_ANSWER_MB`. It waits for an answer on the channel and on the end of
the worker's run at once (:func:`multiprocessing.connection.wait`), and stops the worker by closing
its end. The worker starts with ``hello``, is sent the cells and the forbidden names, answers
``ready`` once the cells ran, then one header (and, when it succeeded, the value) per call.

Run as ``python -m featureae_lite.grading.remote FD`` (the worker; started by :class:`RemoteSession`).
"""

from __future__ import annotations

import json
import linecache
import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from featureae_lite.grading.authoring import defined_functions
from featureae_lite.grading.limits import Limits
from featureae_lite.grading.sandbox import Outcome, Sandbox
from featureae_lite.grading.wire import MAX_ANSWER_MB, dumps, loads, send_json

PRELUDE = ("import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
           "import featureae_lite as fl\n")


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
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._conn: Connection | None = None  # the grader's end of the channel
        self._ended: Connection | None = None  # readable (end of file) once the worker's run is over

    def __enter__(self) -> RemoteSession:
        self._conn, worker_end = multiprocessing.Pipe()
        self._ended, ended = multiprocessing.Pipe(duplex=False)
        fd = worker_end.fileno()
        cmd = [sys.executable, "-m", "featureae_lite.grading.remote", str(fd)]

        def run() -> None:
            try:
                self.outcome = self.box.run(cmd, self.limits, self.extra_env, self._cancel, pass_fds=(fd,))
            finally:
                ended.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        try:
            try:  # the worker has started (and holds its end) once it says hello
                self._receive(None)
            finally:
                worker_end.close()
            try:
                send_json(self._conn, {"cells": self.cells, "forbidden": list(self.forbidden)})
            except OSError:  # the worker's end is closed: it is gone
                raise self._gone() from None
            # the cells run until they finish or the worker's wall-clock limit stops them
            info = json.loads(self._receive(None))
        except BaseException:
            self.__exit__()
            raise
        self.cell_errors, self.defined = info["errors"], set(info["defined"])
        self._note_forbidden(info)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and not self._thread.is_alive():
            self.ended_early = True
        self._closed = True
        if self._conn is not None:
            self._conn.close()  # the worker's next read ends it
        if self._thread is not None:
            self._thread.join(timeout=2.0)  # a worker stuck in the learner's code is stopped
            self._cancel.set()
            self._thread.join()
        if self._ended is not None:
            self._ended.close()

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

    def _gone(self) -> WorkerGone:
        """The worker's end of the channel is closed: wait until its run is over (so that
        :meth:`exit_reason` knows how it ended; bounded by its wall-clock limit)."""
        if self._thread is not None:
            self._thread.join()
        return WorkerGone("the worker stopped")

    def _receive(self, timeout: float | None) -> bytes:
        """The worker's next message (at most :data:`MAX_ANSWER_MB`), waiting ``timeout`` seconds at most
        (None: until the worker's run is over).

        Raises
        ------
        WorkerGone
            The worker's run ended, the worker sent too large a message, or ``timeout`` passed.
        """
        if self._conn is None or self._conn.closed or self._ended is None:
            raise WorkerGone("the worker stopped")
        ready = wait([self._conn, self._ended], timeout)
        if self._conn in ready:  # a message, or the end of the channel
            try:
                return self._conn.recv_bytes(MAX_ANSWER_MB * 2**20)
            except EOFError:
                raise self._gone() from None
            except OSError:  # longer than allowed: refused unread (the connection is closed)
                raise WorkerGone(f"sent a message of more than {MAX_ANSWER_MB} MB") from None
        if ready:  # the run is over
            raise self._gone()
        raise WorkerGone(f"no answer within {timeout:.0f} s")

    def call(self, name: str, args: tuple, grad: int | None) -> Any:
        """Call ``name(*args)`` in the worker (with the gradient of ``args[grad]`` when not None)."""
        try:
            if self._conn is None or self._conn.closed:
                raise WorkerGone("the worker stopped")
            try:
                send_json(self._conn, {"name": name, "grad": grad})
                self._conn.send_bytes(dumps(args))
            except OSError:  # the worker's end is closed: it is gone
                raise self._gone() from None
            answer = json.loads(self._receive(self.call_timeout))
            value = None
            if answer["ok"] and answer["size"] <= MAX_ANSWER_MB * 2**20:
                value = self._receive(self.call_timeout)
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
        if value is None:
            size = answer["size"]
            raise RemoteError("ValueError",
                              f"the answer is {size / 2**20:.0f} MB, more than {MAX_ANSWER_MB} MB")
        return loads(value)


# -- the worker's side (runs the learner's code) ----------------------------------------------------
def _error(err: BaseException) -> dict[str, Any]:
    return {"ename": type(err).__name__, "evalue": str(err), "traceback": traceback.format_exception(err)}


def _answer(fn: Callable, args: tuple, grad: int | None) -> Any:
    if grad is None:
        return fn(*args)
    from featureae_lite.course.exercises import value_and_grad

    return value_and_grad(fn, args, grad)


def worker_main(fd: int) -> int:
    """Execute the solution cells the grader sends over the channel ``fd`` and answer its calls until
    it closes the channel.

    Parameters
    ----------
    fd : int
        The worker's end of the :func:`multiprocessing.Pipe` (inherited from the grader).

    Returns
    -------
    int
        0, the exit status.
    """
    from featureae_lite.course.exercises import arm_tripwires

    conn, pid = Connection(fd), os.getpid()
    send_json(conn, "hello")
    setup = json.loads(conn.recv_bytes())
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(PRELUDE, "<prelude>", "exec"), namespace)
    calls = arm_tripwires(tuple(setup["forbidden"]))
    real_exit = os._exit

    def refuse_exit(status: int = 0) -> None:
        if os.getpid() != pid:  # a process the learner forked (or multiprocessing's): let it end
            real_exit(status)
        raise SubmissionExit(f"os._exit({status}) was called: {EXITED}; the call was refused and "
                             "the rest of its cell skipped")

    os._exit = refuse_exit  # type: ignore[assignment]
    errors = []
    for i, source in enumerate(setup["cells"], start=1):
        filename = f"<solution cell {i}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks
        try:
            exec(compile(source, filename, "exec"), namespace)
        except BaseException as err:  # the learner's top-level code: report, keep going
            if os.getpid() != pid:  # a process the learner forked: never let it answer requests
                real_exit(0)
            errors.append({"cell": i, "names": defined_functions(source), **_error(err)})
    defined = sorted(k for k, v in namespace.items() if callable(v) and not k.startswith("__"))
    send_json(conn, {"errors": errors, "defined": defined, "forbidden": sorted(set(calls))})
    while True:
        try:
            spec, args = json.loads(conn.recv_bytes()), conn.recv_bytes()
        except EOFError:  # the grader closed the channel: grading is over
            return 0
        reply: dict[str, Any] = {"ok": True}
        value = b""
        try:
            fn = namespace.get(spec["name"])
            if not callable(fn):
                raise NameError(f"no function {spec['name']}() is defined by your solution cells")
            value = dumps(_answer(fn, loads(args), spec["grad"]))
        except BaseException as err:  # any failure of the learner's function is its answer
            if os.getpid() != pid:
                real_exit(0)
            reply = {"ok": False, **_error(err)}
        reply["forbidden"] = sorted(set(calls))
        if reply["ok"]:
            reply["size"] = len(value)
        send_json(conn, reply)
        if reply["ok"] and len(value) <= MAX_ANSWER_MB * 2**20:  # a larger one the grader refuses
            conn.send_bytes(value)


if __name__ == "__main__":
    sys.exit(worker_main(int(sys.argv[1])))
