"""Checkers of the exercises of notebook ``10_transfer_to_real_brains``.

``choose_to_deploy`` is an open design task: the learner's function sees the labelled validation maps
of two or three candidate detectors and names the one to deploy; the checker measures the choice on
held-out slices drawn afresh (never shown to the function). The candidates' maps are drawn like the
maps of the course: a *focal* map lights part of each lesion strongly (the threshold map on an enhancing
tumour), a *diffuse* map raises every lesion pixel a little and also lights normal "edges" (the l1
residual); each has its own scale and offset, and some light the rim outside the brain (a skull strip's
left-overs), where nothing is scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from featureae_lite.course.exercises.helpers import _gen, _maps, _number, _unwrap
from featureae_lite.course.exercises.registry import Wrong, exercise

# Names of the candidates: training populations of ae_l1 and other detectors of the course
CANDIDATES = ("standard", "wide", "wide_intensity", "augmented", "threshold", "ae_ssim", "fae", "dpa")
ROUNDS = 4
BAR = 0.9  # the chosen candidate's held-out AP must reach BAR × the best candidate's


@dataclass(frozen=True)
class _Design:
    """How one candidate's maps are drawn (see the module docstring)."""

    focal: bool
    share: float  # focal: share of lesion pixels lit; diffuse: share of normal in-brain pixels lit
    strength: float  # what a lit lesion pixel gains (diffuse: every lesion pixel)
    edge: float  # diffuse: what a lit normal pixel gains
    scale: float
    offset: float
    rim: bool  # bright values outside the brain


def _design(rng: np.random.Generator) -> _Design:
    focal = bool(rng.random() < 0.5)
    if focal:
        share, strength, edge = rng.uniform(0.25, 0.8), rng.uniform(1.5, 4.5), 0.0
    else:
        share, strength, edge = rng.uniform(0.02, 0.15), rng.uniform(0.8, 2.5), rng.uniform(1.0, 3.5)
    return _Design(focal, float(share), float(strength), float(edge), float(np.exp(rng.uniform(-3, 3))),
                   float(rng.uniform(-2, 2)), bool(rng.random() < 0.4))


def _slices(g: torch.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Brain masks (random boxes) and lesion masks (a disc inside the brain in most slices)."""
    _, brains = _maps(g, n, size)
    masks = torch.zeros_like(brains)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for mask, brain in zip(masks, brains, strict=True):
        if float(torch.rand(1, generator=g)) < 0.2:
            continue  # a slice without lesion
        rows, cols = torch.nonzero(brain[0], as_tuple=True)
        k = int(torch.randint(len(rows), (1,), generator=g))
        radius = 1.5 + float(torch.rand(1, generator=g)) * size / 8
        disc = (yy - rows[k]) ** 2 + (xx - cols[k]) ** 2 <= radius ** 2
        mask[0] = (disc & (brain[0] > 0)).float()
    return masks, brains


def _draw(g: torch.Generator, d: _Design, masks: torch.Tensor, brains: torch.Tensor) -> torch.Tensor:
    """One candidate's maps of the slices ``masks``/``brains``."""
    lesion, inside = masks > 0, brains > 0
    m = torch.randn(masks.shape, generator=g)
    lit = torch.rand(masks.shape, generator=g) < d.share
    if d.focal:
        m = m + d.strength * (lesion & lit)
    else:
        m = m + d.strength * lesion + d.edge * (inside & ~lesion & lit)
    outside = (2.0 + d.strength + d.edge) * torch.rand(masks.shape, generator=g) if d.rim else -3.0
    m = torch.where(inside, m, outside)
    return d.scale * m + d.offset


def _ap(maps: torch.Tensor, masks: torch.Tensor, brains: torch.Tensor) -> float:
    from featureae_lite.core.metrics import average_precision

    return average_precision(maps, masks > 0, brains)


def _round(rng: np.random.Generator, g: torch.Generator):
    """A round whose choice matters: validation slices, held-out slices and the candidates' maps of both,
    drawn until (a) some candidate misses the bar on the held-out slices and (b) the candidate with the
    best *validation* AP meets it (the validation set can tell them apart)."""
    size = int(rng.integers(28, 40))
    for _ in range(50):
        names = [str(n) for n in rng.permutation(CANDIDATES)[: int(rng.integers(2, 4))]]
        designs = {n: _design(rng) for n in names}
        val = _slices(g, int(rng.integers(8, 13)), size)
        held = _slices(g, 16, size)
        if float(val[0].sum()) == 0 or float(held[0].sum()) == 0:
            continue
        val_maps = {n: _draw(g, d, *val) for n, d in designs.items()}
        held_ap = {n: _ap(_draw(g, d, *held), *held) for n, d in designs.items()}
        val_ap = {n: _ap(m, *val) for n, m in val_maps.items()}
        best = max(held_ap.values())
        if min(held_ap.values()) < BAR * best and held_ap[max(val_ap, key=val_ap.get)] >= BAR * best:
            return val_maps, val, held_ap
    raise RuntimeError("no decisive round drawn in 50 tries")  # never seen; the checker's own fault


@exercise("10_transfer_to_real_brains", "design: choose the detector to deploy from validation data alone",
          design=True)
def check_choose_to_deploy(fn: Callable, rng: np.random.Generator) -> str:
    hint = ("the held-out slices are scored by pixel AP inside the brain, all slices pooled: choose by what "
            "will be measured. Ask what a map's overall scale or offset, its values outside the brain, or a "
            "summary that weighs every normal pixel alike (a mean, AUROC) tell you about which pixels come "
            "first in the ranking.")
    g = _gen(rng)
    chosen, bests, worsts = [], [], []
    for r in range(1, ROUNDS + 1):
        val_maps, (masks, brains), held_ap = _round(rng, g)
        got = fn({n: m.clone() for n, m in val_maps.items()}, masks.clone(), brains.clone())
        if not isinstance(got, str) or got not in held_ap:
            raise Wrong(f"round {r}: return the name of one candidate, one of {sorted(held_ap)}; "
                        f"got {got!r}.", "the keys of `maps` are the candidates' names.")
        best_name = max(held_ap, key=held_ap.get)
        if held_ap[got] < BAR * held_ap[best_name]:
            raise Wrong(f"round {r}: you chose {got!r}, whose held-out pixel AP is {held_ap[got]:.3f}; "
                        f"{best_name!r} reached {held_ap[best_name]:.3f} on the same held-out slices "
                        f"(the bar: {BAR:.0%} of the best).", hint)
        chosen.append(held_ap[got])
        bests.append(held_ap[best_name])
        worsts.append(min(held_ap.values()))

    def fmt(values):
        return ", ".join(f"{v:.3f}" for v in values)

    return (f"held-out pixel AP of your choices in {ROUNDS} rounds: {fmt(chosen)}; the best candidate's: "
            f"{fmt(bests)}; the worst's: {fmt(worsts)}.")


@exercise("10_transfer_to_real_brains", "predict, then measure: a pixel AP as a multiple of chance")
def check_lift_over_chance(fn: Callable, rng: np.random.Generator) -> None:
    hint = ("a random map's AP is the share of lesion pixels among the pixels that count — those inside the "
            "brain, all slices pooled; divide the AP by it. With no lesion pixel inside the brain the "
            "share is 0 and the lift undefined: return NaN.")
    g = _gen(rng)
    for _ in range(3):
        n, size = int(rng.integers(1, 5)), int(rng.integers(8, 20))
        _, brains = _maps(g, n, size)
        masks = (torch.rand(n, 1, size, size, generator=g) < rng.uniform(0.02, 0.3)).float()
        masks[..., 0, :] = 1.0  # lesion pixels outside the brain box must not count
        inside = brains > 0
        share = float(masks[inside].sum() / inside.sum())
        if share == 0:
            continue
        ap = float(rng.uniform(share, 1.0))
        _number(fn(ap, masks, brains), ap / share,
                f"the lift of AP {ap:.4f} on {n} slices of {size}×{size} px", hint, tol=1e-5)
    got = fn(0.3, torch.zeros_like(masks), brains)
    got = _unwrap(got)
    if not (isinstance(got, float) and math.isnan(got)):
        raise Wrong(f"with no lesion pixel in the brain a random map's AP is 0 and the lift undefined: "
                    f"expected NaN, got {got!r}.", hint)
