"""The exercise registry and the result types: :data:`EXERCISES`, the :func:`exercise` decorator,
:class:`Exercise`, :class:`Feedback` and :class:`Wrong`, the exception a checker raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIME = "application/vnd.featureae-lite.exercise+json"
STATUSES = ("passed", "failed", "not attempted")


class Wrong(Exception):
    """Raised by a checker: the answer is wrong; ``args[0]`` says how, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class Feedback:
    """Outcome of one check.

    Attributes
    ----------
    exercise : str
        Exercise name (a key of :data:`EXERCISES`).
    status : str
        ``"passed"``, ``"failed"`` or ``"not attempted"``.
    message : str
        What went right or wrong, with a hint.
    """

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def text(self) -> str:
        mark = {"passed": "✔", "failed": "✘", "not attempted": "…"}[self.status]
        return f"{mark} {self.exercise}: {self.status}. {self.message}"

    def __str__(self) -> str:  # what ``display`` prints outside a notebook
        return self.text()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {"text/plain": self.text(), MIME: asdict(self)}


Checker = Callable[[Callable, np.random.Generator], str | None]
"""``checker(fn, rng)``: raises :class:`Wrong` for a wrong answer; may return a sentence (the measured
outcome of a design task) that the passing verdict shows."""


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes
    ----------
    name, notebook, task : str
        Function name the learner writes, the course notebook it belongs to, a one-line task.
    checker : callable
        ``checker(fn, rng)`` raises :class:`Wrong` unless ``fn`` answers cases drawn from ``rng``.
    forbidden : tuple of str
        Dotted names of library functions that already do what the exercise asks (calling them is
        not a solution).
    design : bool
        An open design task: no formula to transcribe; the checker measures what the learner's design
        achieves on held-out data the function never sees (drawn afresh from ``rng``), passes it above a
        stated bar and returns a sentence with the measured outcome (shown with the verdict and in the
        grade report).
    """

    name: str
    notebook: str
    task: str
    checker: Checker
    forbidden: tuple[str, ...] = ()
    design: bool = False


EXERCISES: dict[str, Exercise] = {}


def exercise(notebook: str, task: str, forbidden: tuple[str, ...] = (),
             design: bool = False) -> Callable[[Checker], Checker]:
    """Decorator registering ``check_<name>`` as the checker of exercise ``<name>`` (``design``: an
    open design task, see :class:`Exercise`)."""

    def wrap(fn: Checker) -> Checker:
        name = fn.__name__.removeprefix("check_")
        if name in EXERCISES:  # one function name per exercise: the grader finds solutions by name
            raise ValueError(f"exercise {name!r} registered twice: {EXERCISES[name].notebook}, {notebook}")
        EXERCISES[name] = Exercise(name, notebook, task, fn, forbidden, design)
        return fn

    return wrap
