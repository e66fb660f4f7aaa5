"""Running a checker: :func:`feedback` (the verdict), :func:`check` (the verdict, displayed) and
:func:`reveal` (a prediction next to the measured value)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from featureae_lite.core.errors import InputError
from featureae_lite.course.exercises.registry import EXERCISES, Feedback, Wrong
from featureae_lite.course.exercises.tripwires import _tripwires, forbidden_calls
from featureae_lite.course.report import Reading


def _source_of(answer: Callable) -> str | None:
    try:
        return inspect.getsource(answer)
    except (OSError, TypeError):
        return None


def feedback(name: str, answer: Any, *, seed: int | None = None, source: str | None = None) -> Feedback:
    """Run the checker of exercise ``name`` on ``answer`` and return the :class:`Feedback`.

    Parameters
    ----------
    name : str
        Exercise name.
    answer : callable
        The learner's function (or a :class:`featureae_lite.grading.remote.RemoteFunction`).
    seed : int, optional
        Seed of the randomised cases; default: a fresh one on every call.
    source : str, optional
        The solution's source, scanned for forbidden calls; default: ``inspect.getsource(answer)``.
    """
    if name not in EXERCISES:
        raise InputError(f"unknown exercise {name!r}; known exercises: {', '.join(EXERCISES)}")
    if not callable(answer):
        return Feedback(name, "failed", f"expected a function, got {type(answer).__name__}. "
                        "Hint: pass the function itself, e.g. check(name, my_function).")
    ex = EXERCISES[name]
    found = forbidden_calls(source if source is not None else _source_of(answer) or "", ex.forbidden)
    if found:
        return Feedback(name, "failed", f"your solution calls {found[0]}, the function this exercise asks "
                        "you to write. Hint: write the computation yourself with numpy/torch operations.")
    try:
        with _tripwires(ex.forbidden):
            outcome = ex.checker(answer, np.random.default_rng(seed))
    except NotImplementedError:
        return Feedback(name, "not attempted", "Replace the `raise NotImplementedError` with your code, "
                        "run the cell, then run this check again.")
    except Wrong as err:
        hint = f" Hint: {err.hint}" if err.hint else ""
        return Feedback(name, "failed", f"{err.args[0]}{hint} Nearly there, try again!")
    except Exception as err:  # the learner's code crashed: report it, do not crash the notebook
        kind = getattr(err, "kind", type(err).__name__)  # a RemoteError names the learner's exception
        return Feedback(name, "failed", f"your function raised {kind}: {err}. "
                        "Read the message, fix the line it points to and run the check again.")
    return Feedback(name, "passed", f"Well done! {outcome}" if outcome else "Well done!")


def check(name: str, answer: Any) -> None:
    """Check ``answer`` for exercise ``name`` and display the feedback (never raises for bad answers).

    The :class:`Feedback` shows as its own output in a notebook (the grader's tests read its
    :data:`MIME` part) and as its text line elsewhere. Returns nothing, so that a check cell shows its
    feedback once; :func:`feedback` returns it.
    """
    from IPython.display import display

    display(feedback(name, answer))  # outside a notebook: the Feedback's text line


def reveal(prediction: Any, measured: Any, what: str = "") -> str:
    """Show a prediction next to what this run measured (predict-then-measure exercises).

    Parameters
    ----------
    prediction : any
        The learner's ``MY_PREDICTION`` (None: no prediction was written).
    measured : any
        The value this run measured.
    what : str
        What was measured, e.g. ``"the hardest anomaly type"``.

    Returns
    -------
    str
        The sentence, also displayed (Markdown in a notebook, plain text elsewhere).
    """
    about = f" {what}" if what else ""
    shown = f"{measured:.4g}" if isinstance(measured, float) else f"{measured}"
    if prediction is None:
        text = (f"This run measured{about}: **{shown}**. (You wrote no prediction: set MY_PREDICTION "
                "before running the measurement next time — the point is to compare.)")
    else:
        same = str(prediction).strip().lower() == str(measured).strip().lower()
        verdict = "as you predicted" if same else "not what you predicted: which of your assumptions failed?"
        text = f"You predicted{about}: **{prediction}**; this run measured **{shown}** — {verdict}"
    from IPython.display import display

    display(Reading(text))  # Markdown in a notebook, the plain sentence elsewhere
    return text
