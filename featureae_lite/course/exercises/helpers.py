"""Helpers of the checkers: random inputs, and comparisons that raise :class:`Wrong` with a message
the learner can act on."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from featureae_lite.course.exercises.registry import Wrong
from featureae_lite.models.registry import available_methods


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


def _unwrap(got: Any) -> Any:
    """A one-element tensor as the Python number it holds; anything else unchanged."""
    return got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got


def _number(got: Any, want: float, what: str, hint: str = "", tol: float = 1e-5) -> None:
    got = _unwrap(got)
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


_METHOD_NAMES = tuple(available_methods())  # the registry's table order: random, threshold, ae_l1, …


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
