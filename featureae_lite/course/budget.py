"""The snapshots of one course model, for the training-budget slider.

When train-or-load trains a course model (the main job does it once, before the notebooks), it also
saves the weights at a few step counts of the budget next to the checkpoint
(:func:`featureae_lite.experiments.checkpoints.training_snapshots`). :class:`BudgetSnapshots` lists
them for a session's model, loads one on demand and measures its brain-masked test pixel AP the way
:meth:`~featureae_lite.course.session.Session.evaluate` does; results are cached in the session, per
step. :func:`featureae_lite.course.widgets.budget_explorer` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from featureae_lite.core.errors import InputError


@dataclass
class BudgetSnapshots:
    """Step → weights of one model of a session: the snapshots, then the checkpoint (the budget).

    Attributes
    ----------
    session : Session
        The notebook's session (data, device, the cache of results).
    method : str
        The method.
    overrides : dict
        Config overrides of the model (as given to ``session.detector``).
    checkpoint : Path
        The model's checkpoint (the full budget).
    files : dict
        Step → snapshot file, below the budget (empty: the checkpoint has no snapshots).
    budget : int
        Steps of the checkpoint's training.
    """

    session: Any
    method: str
    overrides: dict[str, Any]
    checkpoint: Path
    files: dict[int, Path]
    budget: int
    _key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._key = f"{self.method}:{sorted(self.overrides.items())}"

    @classmethod
    def of(cls, session, method: str, **overrides: Any) -> BudgetSnapshots:
        """The snapshots of ``session.detector(method, **overrides)``, which is trained (with
        snapshots) when its checkpoint does not exist yet."""
        from featureae_lite.experiments.checkpoints import list_snapshots

        det = session.detector(method, snapshots=True, **overrides)
        checkpoint = session.checkpoint(method, **overrides)
        if checkpoint is None:
            raise InputError(f"{method} is not trained: it has no training budget to explore")
        budget = len(det.history.get("train_loss", [])) or det.config.steps
        files = {s: f for s, f in list_snapshots(checkpoint).items() if s < budget}
        return cls(session, method, dict(overrides), checkpoint, files, budget)

    @property
    def steps(self) -> list[int]:
        """The step counts there are weights for, the budget last."""
        return [*self.files, self.budget]

    @property
    def missing(self) -> str | None:
        """Why there are no snapshots and how to get them (None: there are)."""
        if self.files:
            return None
        return (f"No training snapshots of {self.method} next to its checkpoint {self.checkpoint}: it was "
                "trained before train-or-load saved them. Showing the final model only. To get them, "
                "delete that checkpoint and train it again: run `featureae-lite main` (its one training "
                "of the course models writes the snapshots), or rerun this notebook from the top, which "
                "trains it here.")

    def _detector(self, step: int):
        from featureae_lite.models.registry import load_detector

        if step == self.budget:
            return self.session.detector(self.method, **self.overrides)
        if step not in self.files:
            raise InputError(f"no snapshot of {self.method} at step {step}; there are: {self.steps}")
        with torch.random.fork_rng():  # building the module draws its initial weights: leave the
            det = load_detector(self.files[step], expect={"method": self.method})  # notebook's stream alone
        return det.to_device(self.session.device)

    def _result(self, step: int) -> dict[str, Any]:
        """The cached result of ``step``: ``pixel_ap`` (None until measured) and ``slices`` (index →
        map, restoration)."""
        return self.session._snapshot_results.setdefault(f"{self._key}:{step}",
                                                         {"pixel_ap": None, "slices": {}})

    def measured(self) -> dict[int, float]:
        """Step → test pixel AP of the steps measured so far."""
        return {s: r["pixel_ap"] for s in self.steps if (r := self._result(s))["pixel_ap"] is not None}

    def pixel_ap(self, step: int, index: int | None = None) -> float:
        """Brain-masked test pixel AP of the weights at ``step`` (one prediction over the test split,
        once per step; the budget's is :meth:`Session.evaluate`'s ``pixel_ap``). ``index``: also keep
        that slice's map."""
        from featureae_lite.experiments.evaluation import evaluate_output, predict_split

        result = self._result(step)
        if result["pixel_ap"] is None:
            test = self.session.test
            if step == self.budget:  # the maps the session already has
                det, out = self._detector(step), self.session.predict(self.method, **self.overrides)
            else:
                det = self._detector(step)
                out = predict_split(det, test)[0]
            result["pixel_ap"] = evaluate_output(out, test, per_type=False, unmasked=False)["pixel_ap"]
            if index is not None and index not in result["slices"]:
                result["slices"][index] = (out.maps[index], _restore(det, test.images[index:index + 1]))
        return result["pixel_ap"]

    def slice_maps(self, step: int, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The map (1, H, W) of test slice ``index`` at ``step`` and, for a method that restores its
        input (patchsim), the restoration (1, H, W), else None."""
        result = self._result(step)
        if index not in result["slices"]:
            test, det = self.session.test, self._detector(step)
            out = det.predict(test.images[index:index + 1], test.brains[index:index + 1])
            result["slices"][index] = (out.maps[0], _restore(det, test.images[index:index + 1]))
        return result["slices"][index]


def _restore(det, image: torch.Tensor) -> torch.Tensor | None:
    """``det``'s restoration (1, H, W) of one slice (1, 1, H, W), for a method that has one."""
    if not callable(getattr(det, "restore", None)):
        return None
    with torch.no_grad():
        return det.restore(image.to(det.device)).float().cpu()[0]
