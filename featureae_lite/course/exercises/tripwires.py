"""Forbidden functions: the source scan (:func:`forbidden_calls`), the tripwires of an in-notebook
check (:func:`_tripwires`) and those of the grader's worker (:func:`arm_tripwires`)."""

from __future__ import annotations

import ast
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from featureae_lite.course.exercises.registry import Wrong


def forbidden_calls(source: str, forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden functions that ``source`` names (as a name, an attribute or an import).

    Parameters
    ----------
    source : str
        Python source of a solution.
    forbidden : tuple of str
        Dotted function names, e.g. ``"featureae_lite.core.metrics.best_dice"``; matched by their last part.

    Returns
    -------
    list of str
        The dotted names found, in the order of ``forbidden`` (empty if none, or if ``source`` does
        not parse: its own error is reported when it runs).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.add(node.value)  # getattr(module, "name")
    return [name for name in forbidden if name.rsplit(".", 1)[-1] in used]


@contextlib.contextmanager
def _tripwires(forbidden: tuple[str, ...]) -> Iterator[None]:
    """Make every forbidden function raise :class:`Wrong` while a check runs (catches calls that the
    source scan cannot see, e.g. through a helper function)."""
    saved = []
    for dotted in forbidden:
        module_name, attr = dotted.rsplit(".", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue

        original = getattr(module, attr)

        def tripwire(*args: Any, _name: str = dotted, _original: Callable = original, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.split(".")[0] in ("featureae_lite", "sklearn"):  # the checker or the library itself
                return _original(*args, **kwargs)
            raise Wrong(f"your solution calls {_name}, the function this exercise asks you to write.",
                        "write the computation yourself with numpy/torch operations.")

        saved.append((module, attr, original))
        setattr(module, attr, tripwire)
    try:
        yield
    finally:
        for module, attr, original in reversed(saved):
            setattr(module, attr, original)


class ForbiddenCall(RuntimeError):
    """A forbidden function was called while a learner's code ran (see :func:`arm_tripwires`)."""


RUNTIME_CALLS: list[str] = []  # forbidden functions called since :func:`arm_tripwires` (in order)


def _forbidden_call(dotted: str) -> None:
    """Record a call of the forbidden function ``dotted`` and refuse it (raise :class:`ForbiddenCall`)."""
    RUNTIME_CALLS.append(dotted)
    raise ForbiddenCall(f"your solution calls {dotted}, the function this exercise asks you to write")


def _tripwire_code(dotted: str, free_variables: int) -> Any:
    """Code of a function that calls :func:`_forbidden_call` (``dotted``) with ``free_variables`` free
    variables, so that it can replace the ``__code__`` of a function with that many."""
    names = [f"_free{i}" for i in range(free_variables)]
    lines = ["def _outer():", *(f"    {n} = None" for n in names), "    def _trip(*args, **kwargs):"]
    lines += [f"        ({', '.join(names)},)"] if names else []
    lines += ["        from featureae_lite.course.exercises.tripwires import _forbidden_call",
              f"        _forbidden_call({dotted!r})", "    return _trip"]
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)
    return namespace["_outer"]().__code__


def arm_tripwires(forbidden: tuple[str, ...]) -> list[str]:
    """Make every forbidden function record the call and raise :class:`ForbiddenCall`, however it is
    reached; for a process that then runs only the learner's code (the grader's worker).

    A Python function gets a new ``__code__`` (so every reference to it trips: a module attribute, a
    name imported before, a computed ``importlib.import_module("sk" + "learn.metrics")``, a registry or
    a decorator's ``__wrapped__``); any other callable is replaced in every loaded module that holds
    it. Unlike :func:`_tripwires` nothing is exempt, not even the package's own functions that call a
    forbidden one: using them to get the answer is not a solution either.

    Returns
    -------
    list of str
        :data:`RUNTIME_CALLS`, the record of forbidden calls (the same list object).
    """
    for dotted in forbidden:
        module_name, attr = dotted.rsplit(".", 1)
        try:
            original = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue  # a library that is not installed cannot be called either
        seen: set[int] = set()
        fn = original
        while callable(fn) and id(fn) not in seen:  # the function and what it wraps
            seen.add(id(fn))
            code = getattr(fn, "__code__", None)
            if code is not None:
                try:
                    fn.__code__ = _tripwire_code(dotted, len(code.co_freevars))
                except (TypeError, ValueError, AttributeError):
                    pass
            fn = getattr(fn, "__wrapped__", None)
        if getattr(original, "__code__", None) is None:  # a builtin or a class: replace the references

            def refuse(*args: Any, _name: str = dotted, **kwargs: Any) -> Any:
                _forbidden_call(_name)

            for module in list(sys.modules.values()):
                for key, value in list(getattr(module, "__dict__", {}).items()):
                    if value is original:
                        setattr(module, key, refuse)
    return RUNTIME_CALLS
