"""Exercise checkers for the notebooks: clear, encouraging feedback instead of bare assertions.

Every exercise in a notebook is a cell tagged ``exercise`` that defines one function (the reference
solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), followed by a check cell::

    fl.exercises.check("l1_residual", l1_residual)

:func:`check` calls the learner's function on freshly randomised inputs (a new seed on every check,
so an answer hard-coded for one case fails the next), compares the answer with a reference
implementation and shows a :class:`Feedback` (passed / failed / not attempted, what is wrong, a
hint). It never raises, so a notebook keeps running after a wrong answer. An exercise that asks for a
function the package (or scikit-learn) already has names it in ``forbidden``: a solution that calls
it fails.

Graders do not trust this display: ``featureae-lite assignments grade`` runs these checkers in its
own process and calls the learner's function in a sandboxed worker (:mod:`featureae_lite.grading.remote`),
so nothing a submission prints or patches can change its verdict.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featureae_lite.core.errors import InputError

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

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {"text/plain": self.text(), MIME: asdict(self)}


Checker = Callable[[Callable, np.random.Generator], None]


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
    """

    name: str
    notebook: str
    task: str
    checker: Checker
    forbidden: tuple[str, ...] = ()


EXERCISES: dict[str, Exercise] = {}


def exercise(notebook: str, task: str, forbidden: tuple[str, ...] = ()) -> Callable[[Checker], Checker]:
    """Decorator registering ``check_<name>`` as the checker of exercise ``<name>``."""

    def wrap(fn: Checker) -> Checker:
        name = fn.__name__.removeprefix("check_")
        EXERCISES[name] = Exercise(name, notebook, task, fn, forbidden)
        return fn

    return wrap


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


def _source_of(answer: Callable) -> str | None:
    try:
        return inspect.getsource(answer)
    except (OSError, TypeError):
        return None


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
    lines += ["        from featureae_lite.course.exercises import _forbidden_call",
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
            ex.checker(answer, np.random.default_rng(seed))
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
    return Feedback(name, "passed", "Well done!")


def check(name: str, answer: Any) -> None:
    """Check ``answer`` for exercise ``name`` and display the feedback (never raises for bad answers).

    Returns nothing, so that a check cell shows its feedback once; :func:`feedback` returns it.
    """
    result = feedback(name, answer)
    try:
        from IPython.display import display

        display(result)
    except ImportError:  # plain Python: print instead
        print(result.text())


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
        The sentence, also displayed (Markdown in a notebook, printed otherwise).
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
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:
        print(text)
    return text


# -- helpers for checkers ------------------------------------------------------------------------
def _gen(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from ``rng``."""
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def _tensor(answer: Any, what: str) -> torch.Tensor:
    if isinstance(answer, np.ndarray):
        answer = torch.from_numpy(answer)
    if not isinstance(answer, torch.Tensor):
        raise Wrong(f"{what} should be a torch.Tensor, got {type(answer).__name__}.")
    return answer


def _close(got: Any, want: torch.Tensor, what: str, hint: str = "", atol: float = 1e-5) -> None:
    got = _tensor(got, what).to(want.dtype)
    if tuple(got.shape) != tuple(want.shape):
        raise Wrong(f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}.", hint)
    if not torch.isfinite(got).all():
        raise Wrong(f"{what} contains NaN or infinite values.", hint)
    err = float((got - want).abs().max()) if got.numel() else 0.0
    if err > atol:
        raise Wrong(f"{what} differs from the expected values (largest difference {err:.3g}).", hint)


def _number(got: Any, want: float, what: str, hint: str = "", tol: float = 1e-5) -> None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    try:
        value = float(got)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} should be a number, got {type(got).__name__}.", hint) from err
    if not math.isclose(value, want, rel_tol=tol, abs_tol=tol):
        raise Wrong(f"{what} is {value:.6g}, expected {want:.6g}.", hint)


def _is_nan(value: Any) -> bool:
    """True for a NaN number; False for anything else (including non-numbers)."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _count(got: Any, want: int, what: str, hint: str) -> None:
    """Check that ``got`` is the whole number ``want``."""
    if isinstance(got, bool) or not isinstance(got, int | np.integer | float | torch.Tensor):
        raise Wrong(f"{what} should be a whole number, got {got!r}.", hint)
    _number(got, float(want), what, hint)


_METHOD_NAMES = ("random", "threshold", "ae_l1", "vae", "ae_ssim", "fae", "dpa", "proxyano", "patchsim")


def _maps(g: torch.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random maps (n, 1, size, size) in [0, 1) and a brain mask of a random box in each slice."""
    maps = torch.rand(n, 1, size, size, generator=g)
    brains = torch.zeros(n, 1, size, size)
    for b in brains:
        top, left = (int(v) for v in torch.randint(0, size // 4, (2,), generator=g))
        bottom, right = (int(v) for v in torch.randint(size - size // 4, size + 1, (2,), generator=g))
        b[:, top:bottom, left:right] = 1
    return maps, brains


def value_and_grad(fn: Callable, args: tuple, wrt: int) -> tuple[Any, torch.Tensor | None]:
    """``fn(*args)`` and the gradient of the sum of its output with respect to ``args[wrt]``.

    A :class:`featureae_lite.grading.remote.RemoteFunction` computes both where the function lives (its own
    ``value_and_grad``); the gradient is ``None`` when the output carries none.
    """
    if hasattr(fn, "value_and_grad"):
        return fn.value_and_grad(args, wrt)
    x = args[wrt].detach().clone().requires_grad_(True)
    out = fn(*args[:wrt], x, *args[wrt + 1:])
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return out, None
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), grad


# -- 00 MRI data -----------------------------------------------------------------------------------
@exercise("00_mri_data_and_anomalies", "lesion volume in millilitres from a voxel mask and voxel sizes")
def check_lesion_volume_ml(fn: Callable, rng: np.random.Generator) -> None:
    for _ in range(3):
        mask = rng.random(tuple(rng.integers(4, 12, size=3))) < rng.uniform(0.05, 0.5)
        zooms = tuple(float(z) for z in rng.uniform(0.4, 3.0, size=3).round(2))
        _number(fn(mask, zooms), mask.sum() * float(np.prod(zooms)) / 1000.0,
                f"the volume of a {mask.sum()}-voxel mask for voxel sizes {zooms} mm",
                "count the voxels, multiply by the volume of one voxel (mm³), 1 ml = 1000 mm³.")
    _number(fn(np.zeros((3, 3, 3), bool), (1.0, 1.0, 1.0)), 0.0, "the volume of an empty mask")


@exercise("00_mri_data_and_anomalies", "mean lesion intensity over the mean of the rest of the brain")
def check_intensity_ratio(fn: Callable, rng: np.random.Generator) -> None:
    for _ in range(3):
        h, w = (int(v) for v in rng.integers(16, 32, size=2))
        image = rng.uniform(0.2, 0.6, (h, w))
        brain = np.zeros((h, w), bool)
        brain[2:-2, 2:-2] = True
        lesion = np.zeros((h, w), bool)
        top, left = int(rng.integers(3, h - 8)), int(rng.integers(3, w - 8))
        lesion[top:top + 4, left:left + 4] = True
        image[lesion] += rng.uniform(-0.15, 0.3)
        want = image[lesion].mean() / image[brain & ~lesion].mean()
        _number(fn(image, lesion, brain), want, "the intensity ratio",
                "the denominator averages over brain pixels that are *not* lesion pixels.")


_NAMES = ("tumor", "lesions", "stroke", "structural", "edema", "cyst", "bleed", "infarct", "plaque", "mass")


@exercise("00_mri_data_and_anomalies", "rank anomaly types by |log| of their intensity ratio, smallest first")
def check_rank_by_log_ratio(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("a lesion half as bright as the brain is as distinct as one twice as bright: compare the "
            "absolute value of the logarithm of each ratio, smallest first; leave NaN ratios out and "
            "break ties by the type's name in alphabetical order.")

    def want(ratios: dict) -> list:
        valid = [k for k, r in ratios.items() if not math.isnan(r)]
        return sorted(valid, key=lambda k: (abs(math.log(ratios[k])), k))

    for case in range(4):
        names = [str(n) for n in rng.permutation(_NAMES)[: int(rng.integers(2, 7))]]
        ratios = {n: float(np.exp(rng.uniform(-1.2, 1.2))) for n in names}
        if case in (0, 3):  # a darker lesion further from 1 than a brighter one, on a log scale only
            bright = float(rng.uniform(1.5, 3.0))
            ratios[names[0]], ratios[names[1]] = bright, 1.0 / (bright * float(rng.uniform(1.2, 1.6)))
        if case == 1:  # a darker and a brighter lesion exactly as far from 1 on a log scale: a tie,
            later, earlier = sorted(names[:2], reverse=True)  # listed against the alphabetical order
            ratios = {later: float(rng.choice([2.0, 4.0])), **{k: v for k, v in ratios.items() if k != later}}
            ratios[earlier] = 1.0 / ratios[later]  # exact reciprocals
        if case == 2:  # a type without a measurable ratio
            ratios[names[-1]] = float("nan")
        expected = want(ratios)
        got = fn(dict(ratios))
        if not isinstance(got, list | tuple) or [str(v) for v in got] != expected:
            shown = {k: round(v, 4) for k, v in ratios.items()}
            raise Wrong(f"for the ratios {shown} expected the order {expected}, got {got!r}.", hint)
    got = fn({})
    if not isinstance(got, list | tuple) or list(got):
        raise Wrong(f"for no types at all expected an empty list, got {got!r}.", hint)


# -- 01 l1 residual ------------------------------------------------------------------------------
@exercise("01_l1_residual_autoencoder", "the l1 residual map |x − x̂|")
def check_l1_residual(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    n, size = int(rng.integers(1, 4)), int(rng.integers(8, 24))
    x, x_hat = torch.rand(n, 1, size, size, generator=g), torch.rand(n, 1, size, size, generator=g)
    _close(fn(x, x_hat), (x - x_hat).abs(), "l1_residual(x, x_hat)",
           "the map keeps the shape (N, 1, H, W): take the absolute difference pixel by pixel.")


@exercise("01_l1_residual_autoencoder", "image score: mean of in-brain map values above the 90th percentile")
def check_top10_mean_score(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.maps import image_scores

    maps, brains = _maps(_gen(rng), int(rng.integers(2, 6)), int(rng.integers(12, 28)))
    _close(fn(maps, brains), image_scores(maps, brains, "top10_mean"), "top10_mean_score(maps, brains)",
           "per slice: keep values where brain > 0, take their 90th percentile q (torch.quantile), "
           "average the values >= q; one score per slice, shape (N,).")


@exercise("01_l1_residual_autoencoder", "the share of a map's in-brain mass that lies on lesion pixels")
def check_lesion_mass_share(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("add up the map over the brain (pixels where brains > 0): that is the denominator; the "
            "numerator adds up the map only where the pixel is in the brain *and* in the lesion. A map "
            "with no mass in the brain has no share: return NaN instead of dividing by zero.")
    g = _gen(rng)
    for _ in range(3):
        n, size = int(rng.integers(1, 5)), int(rng.integers(8, 20))
        maps, brains = _maps(g, n, size)
        maps = maps * float(rng.uniform(0.1, 5.0))
        masks = (torch.rand(n, 1, size, size, generator=g) < rng.uniform(0.02, 0.3)).float()
        masks[..., 0, :] = 1.0  # lesion pixels outside the brain box must not count
        inside = brains > 0
        want = float(maps[inside & (masks > 0)].sum() / maps[inside].sum())
        _number(fn(maps, masks, brains), want, f"the lesion share of {n} random maps of {size}×{size} px",
                hint, tol=1e-5)
    _number(fn(maps, torch.zeros_like(masks), brains), 0.0, "the share when there is no lesion pixel", hint)
    got = fn(torch.zeros_like(maps), masks, brains)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not (isinstance(got, float) and math.isnan(got)):
        raise Wrong(f"for a map that is 0 everywhere the share is undefined (0 / 0): expected NaN, "
                    f"got {got!r}.", hint)


# -- 02 SSIM -------------------------------------------------------------------------------------
def _ssim_terms(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[float, float, float]:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    c3 = c2 / 2
    mx, my = x.mean(), y.mean()
    sx, sy = x.std(unbiased=False), y.std(unbiased=False)
    sxy = ((x - mx) * (y - my)).mean()
    luminance = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    contrast = (2 * sx * sy + c2) / (sx**2 + sy**2 + c2)
    return float(luminance), float(contrast), float((sxy + c3) / (sx * sy + c3))


@exercise("02_ssim", "SSIM's luminance, contrast and structure terms of two patches")
def check_ssim_terms(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    size = int(rng.integers(5, 12))
    x = torch.rand(size, size, generator=g)
    cases = {"a brighter, flatter copy": x * rng.uniform(0.3, 0.8) + rng.uniform(0.1, 0.4),
             "a noisy copy": x + rng.uniform(0.1, 0.4) * torch.rand(size, size, generator=g),
             "a mirrored copy": x.flip(-1), "a flat patch": torch.full((size, size), rng.uniform(0.2, 0.8))}
    for name, y in cases.items():
        got = fn(x, y)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Wrong("return a tuple (luminance, contrast, structure).")
        for label, value, want in zip(("luminance", "contrast", "structure"), got, _ssim_terms(x, y),
                                      strict=True):
            _number(value, want, f"the {label} term for {name}",
                    "use population statistics (divide by n, not n − 1), C1 = (0.01 L)², C2 = (0.03 L)², "
                    "C3 = C2 / 2.", tol=1e-4)


@exercise("02_ssim", "the SSIM loss 1 − mean SSIM of a batch and its reconstruction")
def check_ssim_loss(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.ssim import ssim_map

    g = _gen(rng)
    x = torch.rand(int(rng.integers(1, 4)), 1, int(rng.integers(16, 32)), 24, generator=g)
    x_hat = (x + rng.uniform(0.05, 0.3) * torch.rand(x.shape, generator=g)).clamp(0, 1)
    _number(fn(x, x_hat), float(1 - ssim_map(x_hat, x).mean()), "ssim_loss(x, x_hat)",
            "the course's ssim_map gives the per-pixel SSIM; average it and subtract from 1.")


@exercise("02_ssim", "count the pairs of items two measures order in opposite directions")
def check_discordant_pairs(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("look at every unordered pair of names present in both dicts: the pair is discordant when "
            "one measure says the first is larger and the other says it is smaller. A tie in either "
            "measure, or a NaN in any of the four values, does not count.")

    def want(a: dict, b: dict) -> int:
        keys = [k for k in a if k in b and not (math.isnan(a[k]) or math.isnan(b[k]))]
        return sum((a[p] - a[q]) * (b[p] - b[q]) < 0 for i, p in enumerate(keys) for q in keys[i + 1:])

    for case in range(4):
        n = int(rng.integers(5, 12))
        names = [f"variant_{int(v)}" for v in rng.choice(100, size=n, replace=False)]
        a = {k: float(rng.uniform(0, 1)) for k in names}
        b = {k: float(0.5 * a[k] + rng.uniform(0, 1)) for k in rng.permutation(names)}
        if case == 1:  # ties: equal values in one measure are not discordant
            b[names[1]] = b[names[0]]
            a[names[3]] = a[names[2]]
        if case == 2:  # a NaN, and names only one measure has
            a[names[0]] = float("nan")
            a["only_in_a"], b["only_in_b"] = 0.5, 0.5
        _number(fn(dict(a), dict(b)), want(a, b), f"the discordant pairs of {len(a)} and {len(b)} values",
                hint, tol=0)
    _number(fn({"x": 1.0}, {"x": 2.0}), 0, "the discordant pairs of a single item", hint, tol=0)


# -- 03 feature space ----------------------------------------------------------------------------
@exercise("03_feature_space", "channel-mean feature map upsampled to the image size")
def check_channel_mean_map(fn: Callable, rng: np.random.Generator) -> None:
    c, h = int(rng.integers(2, 9)), int(rng.integers(4, 12))
    size = int(rng.integers(2, 5)) * h
    feats = torch.rand(2, c, h, h, generator=_gen(rng))
    want = F.interpolate(feats.mean(1, keepdim=True), size=(size, size), mode="bilinear", align_corners=True)
    _close(fn(feats, size), want, f"channel_mean_map(features, {size})",
           "average over the channel dimension keeping it, then upsample bilinearly with "
           "align_corners=True.")


@exercise("03_feature_space", "predict the feature-map shape for a choice of EfficientNet-Lite0 layers")
def check_feature_shape(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.features import layer_table

    channels = {row["layer"]: row["channels"] for row in layer_table("efficientnet_lite0")}
    names = list(channels)
    for _ in range(3):
        k = int(rng.integers(1, 4))
        layers = tuple(str(n) for n in sorted(rng.choice(names, size=k, replace=False), key=names.index))
        size = 32 * int(rng.integers(2, 7))
        got = fn(layers, size)
        expected = (sum(channels[n] for n in layers), size // 4, size // 4)
        if not isinstance(got, tuple | list) or tuple(int(v) for v in got) != expected:
            raise Wrong(f"for layers {layers} at {size} px you predicted {got!r}, the extractor gives "
                        f"{expected}.", "channels add up over the layers (see fl.features.layer_table()); "
                        "every layer is resized to 1/4 of the image side.")


@exercise("03_feature_space", "the layer that holds the channel with the largest absolute lesion contrast")
def check_best_layer(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("channels are concatenated layer after layer: the first channels[0] belong to layers[0], "
            "the next channels[1] to layers[1], and so on. Find the channel with the largest "
            "*absolute* contrast (a darker response counts as much as a brighter one), ignoring NaN; "
            "with no valid channel at all return None.")
    for case in range(4):
        k = int(rng.integers(2 if case == 2 else 1, 6))
        layers = [f"block{int(v)}" for v in np.sort(rng.choice(16, size=k, replace=False))]
        channels = [int(v) for v in rng.integers(1, 12, size=k)]
        contrast = rng.normal(0, 1, sum(channels))
        best = int(rng.integers(contrast.size))
        if case == 2:  # the first channel of a layer
            best = int(rng.choice(np.cumsum(channels[:-1])))
        contrast[best] = (-1 if case % 2 == 0 else 1) * (np.abs(contrast).max() + rng.uniform(0.1, 1))
        if case == 3:
            contrast[rng.random(contrast.size) < 0.3] = np.nan
            contrast[best] = -(np.nanmax(np.abs(contrast), initial=0.0) + 0.5)
        want = layers[int(np.searchsorted(np.cumsum(channels), best, side="right"))]
        got = fn(contrast.copy(), list(layers), list(channels))
        if got != want:
            raise Wrong(f"for layers {layers} with {channels} channels the strongest channel is number "
                        f"{best} (contrast {contrast[best]:.3f}), in {want}; you answered {got!r}.", hint)
    got = fn(np.full(sum(channels), np.nan), list(layers), list(channels))
    if got is not None:
        raise Wrong(f"when every contrast is NaN (no lesion pixel) expected None, got {got!r}.", hint)


# -- 04 FAE --------------------------------------------------------------------------------------
def _features(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(rng)
    shape = (int(rng.integers(1, 4)), int(rng.integers(2, 8)), int(rng.integers(8, 16)), 12)
    f = torch.randn(*shape, generator=g)
    return f, f + rng.uniform(0.1, 0.5) * torch.randn(*shape, generator=g)


@exercise("04_feature_autoencoder", "FAE's training loss: 1 − mean feature-space SSIM (5×5 window)")
def check_feature_ssim_loss(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.ssim import ssim_map

    f, f_hat = _features(rng)
    _number(fn(f, f_hat), float(1 - ssim_map(f_hat, f, window_size=5).mean()), "feature_ssim_loss(f, f_hat)",
            "ssim_map works for any channel count; use window_size=5.")


@exercise("04_feature_autoencoder", "FAE's anomaly map: channel-mean 1 − SSIM upsampled to the image")
def check_fae_map(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.ssim import ssim_map

    f, f_hat = _features(rng)
    size = 4 * f.shape[-1]
    amap = (1 - ssim_map(f_hat, f, window_size=5)).mean(1, keepdim=True)
    want = F.interpolate(amap, size=(size, size), mode="bilinear", align_corners=True)
    _close(fn(f, f_hat, size), want, f"fae_map(f, f_hat, {size})",
           "the per-pixel dissimilarity is one minus feature-space SSIM in a 5×5 window; average it over "
           "the channels (keeping a channel axis of size 1), then upsample bilinearly with aligned corners.")


@exercise("04_feature_autoencoder", "the variant whose value falls furthest below the reference (or None)")
def check_largest_drop(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("compare every entry other than the reference with the reference's value; keep only those "
            "strictly below it and ignore NaN; return the name with the largest drop (ties: the first "
            "name in alphabetical order), or None when nothing is below the reference or the reference "
            "itself is NaN.")
    pool = ["MSE loss", "untrained backbone", "fewer layers", "no dropout", "smaller latent", "L1 loss",
            "no augmentation", "half the steps", "larger window", "resnet18"]

    def want(table: dict, reference: str) -> str | None:
        ref = table[reference]
        drops = {k: ref - v for k, v in table.items() if k != reference and not math.isnan(v) and v < ref}
        if math.isnan(ref) or not drops:
            return None
        return min(drops, key=lambda k: (-drops[k], k))

    for case in range(5):
        names = [str(v) for v in rng.permutation(pool)[: int(rng.integers(3, 7))]]
        reference = f"reference {int(rng.integers(100))}"
        table = {n: float(rng.uniform(0.01, 0.3)) for n in names}
        table[reference] = float(rng.uniform(0.1, 0.2))
        table = {str(k): table[k] for k in rng.permutation(list(table))}
        if case == 1:  # nothing below the reference
            table = {k: (v if k == reference else table[reference] + abs(v)) for k, v in table.items()}
        if case == 2:  # a NaN, and a tie for the largest drop listed against the alphabetical order
            later, earlier = sorted(names[:2], reverse=True)
            table = {later: 0.005, **{k: v for k, v in table.items() if k != later}}
            table[earlier] = 0.005
            table[names[2]] = float("nan")
        if case == 3:  # the reference itself was not measured
            table[reference] = float("nan")
        expected = want(table, reference)
        got = fn(dict(table), reference)
        if got != expected:
            shown = {k: round(v, 4) for k, v in table.items()}
            raise Wrong(f"for the table {shown} with reference {reference!r} expected {expected!r}, "
                        f"got {got!r}.", hint)


# -- 05 evaluation -------------------------------------------------------------------------------
def _scored(rng: np.random.Generator, n: int, rate: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.random(n) < rate
    labels[int(rng.integers(n))] = True  # at least one positive
    return rng.random(n) + shift * labels, labels


@exercise("05_evaluation", "average precision by hand (sort, cumulative TP/FP)",
          forbidden=("featureae_lite.core.metrics.average_precision",
                     "sklearn.metrics.average_precision_score",
                     "featureae_lite.core.metrics.curve_metrics"))
def check_average_precision(fn: Callable, rng: np.random.Generator) -> None:
    from sklearn.metrics import average_precision_score

    for n, rate in ((int(rng.integers(200, 600)), rng.uniform(0.02, 0.3)), (int(rng.integers(20, 60)), 0.0)):
        scores, labels = _scored(rng, n, rate, rng.uniform(0.0, 0.8))
        _number(fn(scores, labels), float(average_precision_score(labels, scores)),
                f"your AP for {labels.sum()} positives among {n} pixels",
                "sort scores descending; precision at each positive = TP so far / rank; AP = mean of the "
                "precisions at the positives.", tol=1e-6)


@exercise("05_evaluation", "the Dice coefficient of two binary masks")
def check_dice(fn: Callable, rng: np.random.Generator) -> None:
    for _ in range(3):
        shape = tuple(int(v) for v in rng.integers(6, 20, size=2))
        a, b = rng.random(shape) < rng.uniform(0.1, 0.6), rng.random(shape) < rng.uniform(0.1, 0.6)
        _number(fn(a, b), 2 * (a & b).sum() / (a.sum() + b.sum()), "dice(a, b)",
                "Dice = 2 |A ∩ B| / (|A| + |B|).")
    _number(fn(a, a), 1.0, "dice(a, a)", "identical masks have Dice 1.")
    _number(fn(a, ~a), 0.0, "dice(a, ~a)", "disjoint masks have Dice 0.")


@exercise("05_evaluation", "choose the Dice-maximising threshold on validation scores",
          forbidden=("featureae_lite.core.metrics.best_dice",
                     "featureae_lite.core.metrics.dice_iou_at_threshold",
                     "featureae_lite.core.metrics.curve_metrics"))
def check_val_threshold(fn: Callable, rng: np.random.Generator) -> None:
    from featureae_lite.core.metrics import best_dice, dice_iou_at_threshold

    for _ in range(2):
        scores, labels = _scored(rng, int(rng.integers(300, 1200)), rng.uniform(0.02, 0.15),
                                 rng.uniform(0.2, 0.9))
        best, _ = best_dice(scores, labels)
        thr = fn(scores, labels)
        got, _ = dice_iou_at_threshold(scores, labels, float(thr))
        if got < best - 1e-6:
            raise Wrong(f"binarising at your threshold {float(thr):.4f} gives Dice {got:.4f}; the best "
                        f"possible is {best:.4f}.", "try every distinct score as the threshold (pixels ≥ "
                        "threshold are positive) and keep the one with the highest Dice.")


@exercise("05_evaluation", "predict, then count the method pairs whose 95 % intervals are apart",
          forbidden=("featureae_lite.course.report.intervals_apart",))
def check_separated_pairs(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("two intervals are apart only when one's lower end lies above the other's upper end "
            "(touching ends overlap); leave out methods with a NaN end; count every unordered pair once.")
    cases = []
    for _ in range(3):
        names = [str(n) for n in rng.permutation(_METHOD_NAMES)[: int(rng.integers(3, 9))]]
        centres, halves = rng.uniform(0.0, 0.5, len(names)), rng.uniform(0.005, 0.12, len(names))
        intervals = {n: (float(c - h), float(c + h)) for n, c, h in zip(names, centres, halves, strict=True)}
        if rng.random() < 0.7:
            intervals[names[int(rng.integers(len(names)))]] = (float("nan"), float("nan"))
        cases.append(intervals)
    a, b = (float(v) for v in np.sort(rng.uniform(0.05, 0.3, 2)))
    step = float(rng.uniform(0.01, 0.1))  # edge case: touching intervals, a NaN end, an empty table
    cases += [{"touch_low": (a - step, a), "touch_high": (a, b), "far": (b + step, b + 2 * step),
               "unmeasured": (float("nan"), b)}, {}]
    for intervals in cases:
        valid = [(lo, hi) for lo, hi in intervals.values() if not (math.isnan(lo) or math.isnan(hi))]
        want = sum(p[0] > q[1] or q[0] > p[1] for i, p in enumerate(valid) for q in valid[i + 1:])
        _count(fn({k: tuple(v) for k, v in intervals.items()}),
               want, f"the number of separated pairs among {intervals}", hint)


# -- 06 DPA --------------------------------------------------------------------------------------
@exercise("06_perceptual_autoencoder", "the relative perceptual L1 with a detached denominator",
          forbidden=("featureae_lite.models.dpa.relative_perceptual_loss",))
def check_relative_perceptual_l1(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    shape = (int(rng.integers(2, 5)), int(rng.integers(2, 6)), 5, int(rng.integers(3, 7)))
    fx, fy = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    got, grad = value_and_grad(fn, (fx, fy), wrt=0)
    den = fx.abs().flatten(1).mean(1)
    _close(got, (fx - fy).abs().flatten(1).mean(1) / den, "relative_perceptual_l1(fx, fy)",
           "per sample: mean |fx − fy| / mean |fx|, shape (N,).")
    if grad is None:
        raise Wrong("your loss carries no gradient with respect to fx.",
                    "compute it with torch operations on fx itself (detach only the denominator).")
    want = torch.sign(fx - fy) / (den.view(-1, 1, 1, 1) * fx[0].numel())
    _close(grad, want, "the gradient with respect to fx",
           "the denominator must not carry gradient: compute mean |fx| on a copy of fx cut from the graph.")


@exercise("06_perceptual_autoencoder", "choose a hyperparameter from validation results only")
def check_choose_on_val(fn: Callable, rng: np.random.Generator) -> None:
    for metric, key in (("val_auroc", "latent_dim"), ("val_ap", "lr")):
        values = rng.permutation([16, 32, 64, 128, 256, 512])[: int(rng.integers(3, 7))]
        rows = [{key: int(v), metric: float(rng.uniform(0.5, 0.9)),
                 "test_auroc": float(rng.uniform(0.5, 0.9))} for v in values]
        rows[int(rng.integers(len(rows)))][metric] = float("nan")
        valid = [r for r in rows if not math.isnan(r[metric])]
        want = max(valid, key=lambda r: r[metric])
        got = fn([dict(r) for r in rows], metric)
        if not isinstance(got, dict) or got.get(key) != want[key]:
            raise Wrong(f"for metric {metric!r} expected the row with {key} {want[key]}, got {got!r}.",
                        "leave out rows whose value is NaN and return the whole row with the highest value "
                        "of the metric you are given, never a test column.")


def _detection_rate(scores: np.ndarray, anomalous: np.ndarray, fpr: float) -> float:
    keep = ~np.isnan(scores)
    normal, positive = np.sort(scores[keep & ~anomalous])[::-1], scores[keep & anomalous]
    if positive.size == 0:
        return float("nan")
    allowed = math.floor(fpr * normal.size)
    return 1.0 if allowed >= normal.size else float((positive > normal[allowed]).mean())


@exercise("06_perceptual_autoencoder",
          "predict, then measure the share of anomalous slices flagged at a fixed false-alarm rate",
          forbidden=("featureae_lite.core.metrics.threshold_at_fpr",
                     "featureae_lite.core.metrics.dice_at_fpr",
                     "sklearn.metrics.roc_curve"))
def check_detection_rate_at_fpr(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("with k = the number of normal slices you may flag (fpr × their number, rounded down), any "
            "threshold at or below the (k+1)-th highest normal score flags too many normal slices; so an "
            "anomalous slice is flagged only when it scores strictly above that normal score. Ignore NaN "
            "scores; with no anomalous slice the rate is undefined (NaN).")
    for ties, few_normal in ((False, False), (False, True), (False, False), (True, False), (True, True)):
        n = int(rng.integers(20, 120))
        anomalous = rng.random(n) < (rng.uniform(0.75, 0.9) if few_normal else rng.uniform(0.2, 0.6))
        anomalous[:2] = (True, False)
        scores = rng.normal(0, 1, n) + rng.uniform(0, 2) * anomalous
        if ties:  # edge case: many equal scores, some at the threshold
            scores = np.round(scores * 2) / 2
        scores[rng.random(n) < 0.1] = np.nan  # unscored slices
        fpr = float(rng.choice([0.0, rng.uniform(0.02, 0.3)])) if ties else float(rng.uniform(0.02, 0.3))
        what = f"the detection rate at fpr {fpr:.3g} ({int(anomalous.sum())} of {n} slices anomalous)"
        _number(fn(scores.copy(), anomalous.copy(), fpr), _detection_rate(scores, anomalous, fpr), what, hint)
    got = fn(rng.random(10), np.zeros(10, bool), 0.05)  # edge case: nothing to detect
    if not _is_nan(got):
        raise Wrong(f"with no anomalous slice the detection rate is undefined; you returned {got!r}.", hint)


# -- 07 ProxyAno ---------------------------------------------------------------------------------
@exercise("07_proxy_bridged_reconstruction", "superpixel image: every region set to its mean intensity")
def check_superpixel_mean_image(fn: Callable, rng: np.random.Generator) -> None:
    h, w = (int(v) for v in rng.integers(8, 20, size=2))
    image = rng.random((h, w))
    labels = rng.integers(0, int(rng.integers(2, 7)), size=(h, w))
    want = np.zeros_like(image)
    for k in np.unique(labels[labels > 0]):
        want[labels == k] = image[labels == k].mean()
    _close(fn(image, labels), torch.from_numpy(want), "superpixel_mean_image(image, labels)",
           "label 0 is background and stays 0; every pixel of region k gets the mean intensity of region k.")


@exercise("07_proxy_bridged_reconstruction", "the memory read-out softmax(z·Mᵀ/τ)·M")
def check_memory_readout(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    k, m, d = (int(v) for v in rng.integers(2, 9, size=3))
    z, memory = torch.randn(k, d, generator=g), torch.randn(m, d, generator=g)
    tau = float(rng.uniform(0.1, 2.0))
    want = torch.softmax(z @ memory.t() / tau, dim=1) @ memory
    _close(fn(z, memory, tau), want, f"memory_readout(z, memory, {tau:.3g})",
           "each latent vector's similarities to the slots (dot products, divided by the temperature) "
           "become weights by a softmax over the slots; the read-out is the weighted sum of the slots, "
           "shape (K, D).")


@exercise("07_proxy_bridged_reconstruction", "predict, then tally per-type wins, ties and losses of an "
          "ablation")
def check_wins_ties_losses(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("compare only the types that both dicts hold with a finite value in both; a difference "
            "whose size is at most tol (tol itself included) is a tie; return three whole numbers.")
    types = ["tumor", "structural", "stroke", "lesions", "edema", "cyst", "bleed"]
    quarter = 0.25  # edge case: differences of exactly tol (exact in binary) are ties
    cases = [({"tumor": quarter + quarter / 2, "stroke": quarter, "lesions": float("nan")},
              {"tumor": quarter, "stroke": quarter + quarter / 2, "lesions": 0.1, "only_in_b": 0.3},
              quarter / 2), ({}, {}, 0.0)]
    for _ in range(3):
        chosen = [str(t) for t in rng.permutation(types)[: int(rng.integers(3, 8))]]
        a = {t: float(rng.uniform(0, 0.1)) for t in chosen}
        b = {t: v + float(rng.normal(0, 0.01)) for t, v in a.items()}
        if rng.random() < 0.6:
            b[chosen[int(rng.integers(len(chosen)))]] = float("nan")
        del b[chosen[0]]  # a type the other model was not measured on
        cases.append((a, b, float(rng.uniform(0, 0.01))))
    for a, b, tol in cases:
        diffs = [a[t] - b[t] for t in a if t in b and math.isfinite(a[t]) and math.isfinite(b[t])]
        want = (sum(d > tol for d in diffs), sum(abs(d) <= tol for d in diffs), sum(d < -tol for d in diffs))
        got = fn(dict(a), dict(b), tol)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Wrong(f"return a tuple (wins, ties, losses), got {got!r}.", hint)
        if tuple(int(v) for v in got) != want:
            raise Wrong(f"for a = {a}, b = {b}, tol = {tol:.4g} expected (wins, ties, losses) = {want}, "
                        f"got {tuple(got)}.", hint)


# -- 08 patch similarity -------------------------------------------------------------------------
@exercise("08_patch_similarity_scoring", "normalised cross-correlation of two patches")
def check_ncc(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    size = int(rng.integers(5, 12))
    x = torch.rand(size, size, generator=g)
    eps = float(10 ** rng.uniform(-5, -3))
    for name, a, y in (("a brighter copy", x, rng.uniform(1.2, 3) * x + rng.uniform(0, 0.3)),
                       ("a mirrored copy", x, x.flip(0)),
                       ("a random patch", x, torch.rand(size, size, generator=g)),
                       ("two flat patches", torch.zeros(size, size), torch.zeros(size, size))):
        cov = ((a - a.mean()) * (y - y.mean())).mean()
        want = (cov + eps) / torch.sqrt((a.var(unbiased=False) + eps) * (y.var(unbiased=False) + eps))
        _number(fn(a, y, eps), float(want), f"ncc for {name}",
                "NCC = (cov + eps) / sqrt((var_x + eps)(var_y + eps)) with population statistics.",
                tol=1e-4)


@exercise("08_patch_similarity_scoring", "a local NCC map with a square (box) window",
          forbidden=("featureae_lite.models.patchsim.local_ncc",
                     "featureae_lite.models.patchsim.patch_similarity_map"))
def check_box_ncc_map(fn: Callable, rng: np.random.Generator) -> None:
    g = _gen(rng)
    size = int(rng.integers(12, 24))
    x, y = torch.rand(2, 1, size, size, generator=g), torch.rand(2, 1, size, size, generator=g)
    eps, w = float(10 ** rng.uniform(-5, -3)), int(rng.choice([3, 5, 7]))

    def box(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (w // 2,) * 4, mode="reflect"), w, stride=1)

    mx, my = box(x), box(y)
    vx, vy, cov = box(x * x) - mx**2, box(y * y) - my**2, box(x * y) - mx * my
    want = (cov + eps) / torch.sqrt((vx.clamp_min(0) + eps) * (vy.clamp_min(0) + eps))
    _close(fn(x, y, w, eps), want, f"box_ncc_map(x, y, {w}, {eps:.2g})",
           "local means with F.avg_pool2d on reflect-padded input (pad w // 2 on every side, stride 1); "
           "var = mean(x²) − mean(x)², cov = mean(xy) − mean(x)mean(y).", atol=1e-4)


def _lesion_enrichment(maps: torch.Tensor, masks: torch.Tensor, brains: torch.Tensor) -> float:
    maps = maps.double()
    keep = (brains > 0) & torch.isfinite(maps)
    lesion = keep & (masks > 0)
    mass = float(maps[keep].sum())
    if mass == 0 or int(lesion.sum()) == 0:
        return float("nan")
    return (float(maps[lesion].sum()) / mass) / (int(lesion.sum()) / int(keep.sum()))


@exercise("08_patch_similarity_scoring", "predict, then measure how strongly a map concentrates on lesions")
def check_lesion_enrichment(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("use only in-brain pixels whose map value is finite; enrichment = (mass on lesion pixels / "
            "all mass) divided by (lesion pixels / all pixels), both over those pixels; return NaN when "
            "the mass is 0 or no such pixel is a lesion.")
    g = _gen(rng)
    for _ in range(3):
        n, size = int(rng.integers(2, 5)), int(rng.integers(12, 28))
        maps, brains = _maps(g, n, size)
        masks = torch.zeros_like(maps)
        for m in masks:
            top, left = (int(v) for v in rng.integers(size // 4, size // 2, size=2))
            m[:, top:top + int(rng.integers(2, 6)), left:left + int(rng.integers(2, 6))] = 1
        maps = maps + float(rng.uniform(-0.3, 1.0)) * masks
        maps = maps.clamp_min(0) * float(rng.uniform(0.5, 3.0))
        maps[torch.rand(maps.shape, generator=g) < 0.05] = float("nan")  # unscored pixels
        _number(fn(maps.clone(), masks.clone(), brains.clone()), _lesion_enrichment(maps, masks, brains),
                f"the lesion enrichment of a map of shape {tuple(maps.shape)}", hint, tol=1e-4)
    for name, (m, k) in {"an all-zero map": (torch.zeros_like(maps), masks),
                         "slices without lesion": (maps, torch.zeros_like(masks))}.items():
        got = fn(m.clone(), k.clone(), brains.clone())
        if not _is_nan(got):
            raise Wrong(f"for {name} the enrichment is undefined (NaN); you returned {got!r}.", hint)


# -- 09 benchmark --------------------------------------------------------------------------------
@exercise("09_benchmark", "the best method for each anomaly type")
def check_winner_per_type(fn: Callable, rng: np.random.Generator) -> None:
    methods = ["ae_l1", "fae", "dpa", "threshold", "vae", "patchsim"]
    methods = list(rng.permutation(methods)[: int(rng.integers(2, 6))])
    types = list(rng.permutation(["tumor", "structural", "stroke", "lesions"])[: int(rng.integers(1, 5))])
    table = {str(m): {str(t): float(rng.uniform(0, 0.6)) for t in types} for m in methods}
    got = fn(table)
    want = {t: max(table, key=lambda m, t=t: table[m][t]) for t in table[methods[0]]}
    if got != want:
        raise Wrong(f"for the table {table} expected {want}, got {got!r}.",
                    "for each type, compare every method's value and keep the method name with the highest.")


@exercise("09_benchmark", "how many times better than a baseline (ratio of pixel APs)")
def check_gain_over_baseline(fn: Callable, rng: np.random.Generator) -> None:
    results = {m: {"pixel_ap": float(rng.uniform(0.01, 0.4))} for m in ("threshold", "fae", "ae_l1")}
    results["random"] = {"pixel_ap": 0.0}
    for method, baseline in (("fae", "threshold"), ("ae_l1", "fae")):
        want = results[method]["pixel_ap"] / results[baseline]["pixel_ap"]
        _number(fn(results, method, baseline), want, f"gain_over_baseline(results, {method!r}, {baseline!r})",
                "divide the method's pixel_ap by the baseline's.")
    got = fn(results, "fae", "random")
    if not (isinstance(got, float) and math.isinf(got)):
        raise Wrong(f"against a baseline with AP 0 the gain should be float('inf'), got {got!r}.",
                    "handle a zero baseline explicitly instead of dividing by zero.")


@exercise("09_benchmark", "predict, then find the anomaly type on which the best method is closest to chance")
def check_hardest_type(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("per type: the best finite AP over the methods divided by that type's chance AP; skip types "
            "whose chance AP is 0, NaN or missing, or that no method has a finite AP for; return the type "
            "with the smallest ratio (ties: alphabetically first), None if no type is left.")
    names = ["tumor", "structural", "stroke", "lesions", "edema", "cyst"]
    for _ in range(6):
        types = [str(t) for t in rng.permutation(names)[: int(rng.integers(2, 6))]]
        methods = [str(m) for m in rng.permutation(_METHOD_NAMES[2:])[: int(rng.integers(2, 6))]]
        table = {m: {t: float(rng.uniform(0.0, 0.4)) for t in types} for m in methods}
        chance = {t: float(rng.uniform(0.002, 0.05)) for t in types}
        table[methods[0]][types[-1]] = float("nan")  # edge cases: a method not measured on a type,
        chance[types[0]] = float(rng.choice([0.0, float("nan")]))  # a type without a usable chance AP
        lift = {t: max(v for v in (table[m][t] for m in methods) if not math.isnan(v)) / chance[t]
                for t in types if chance[t] > 0}
        want = min(sorted(lift), key=lift.get) if lift else None
        got = fn({m: dict(v) for m, v in table.items()}, dict(chance))
        if got != want:
            raise Wrong(f"for table {table} and chance {chance} expected {want!r}, got {got!r}.", hint)
    tied = {"b_type": 0.25, "a_type": 0.125}  # edge case: equal ratios (exact in binary: both 0.5)
    got = fn({"m": dict(tied)}, {"b_type": 0.5, "a_type": 0.25})
    if got != "a_type":
        raise Wrong(f"two types with the same ratio: expected the alphabetically first, 'a_type', got "
                    f"{got!r}.", hint)
    got = fn({"m": {"tumor": 0.3}}, {"tumor": 0.0})
    if got is not None:
        raise Wrong(f"with no usable chance AP no type qualifies: expected None, got {got!r}.", hint)
