"""One object per notebook: the preset, the three splits, and train-or-load detectors.

>>> S = start(quick=True, seed=0)             # synthesises the cohort on first use
>>> fae = S.detector("fae")                   # loads a matching checkpoint or trains one
>>> result = S.evaluate("fae")                # metrics on the test split, threshold from val

Checkpoints live in ``<data_dir>/checkpoints`` and are keyed by method, full config and data, so the
models trained in one notebook are reused by the next (uvadlc-style train-or-load).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.presets import Preset, preset
from featureae_lite.data.batch import Batch
from featureae_lite.models.base import AnomalyOutput, Detector


@dataclass
class Session:
    """Data and models of one run (see :func:`start`).

    Attributes
    ----------
    preset : Preset
        Sizes in use (QUICK or classroom).
    seed : int
        Seed of the cohort and of every model.
    data_dir : str or None
        Data folder (None = default resolution).
    train, val, test : Batch
        The splits.
    cohort : Path
        Folder of the NIfTI cohort.
    device : str
        Where models train and predict (``"cpu"``, ``"cuda"``, ``"mps"``), resolved by :func:`start`.
    """

    preset: Preset
    seed: int
    data_dir: str | None
    train: Batch
    val: Batch
    test: Batch
    cohort: Path
    device: str = "cpu"
    _detectors: dict[str, Detector] = field(default_factory=dict, repr=False)
    _outputs: dict[str, tuple[AnomalyOutput, float]] = field(default_factory=dict, repr=False)
    _snapshot_results: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def config(self, method: str, **overrides: Any) -> dict[str, Any]:
        """The course config of ``method``: the preset's image size, the seed, the preset's budget,
        then ``overrides``."""
        from featureae_lite.models.registry import preset_config

        return {**preset_config(self.preset, method, self.seed), **overrides}

    def detector(self, method: str, progress: bool = True, snapshots: bool | None = None,
                 **overrides: Any) -> Detector:
        """Train-or-load ``method`` with the preset's image size and steps (overridable).

        ``snapshots``: when it trains, also save its weights part-way through the budget for the
        training-budget slider (:func:`featureae_lite.experiments.checkpoints.training_snapshots`);
        None (default): for the course model (the preset's config, whatever overrides spell it out),
        not for variants such as notebook 04's ablations.
        """
        from featureae_lite.experiments.checkpoints import train_or_load
        from featureae_lite.models.registry import build_config, get_method

        cfg = self.config(method, **overrides)
        key = f"{method}:{sorted(cfg.items())}"
        if key not in self._detectors:
            if snapshots is None:
                kind = get_method(method).config_class
                snapshots = build_config(kind, cfg, method) == build_config(kind, self.config(method), method)
            self._detectors[key] = train_or_load(method, self.train, self.val,
                                                 checkpoint_dir=self._checkpoint_dir(), progress=progress,
                                                 device=self.device, snapshots=snapshots, **cfg)
        return self._detectors[key]

    def _checkpoint_dir(self) -> Path | None:
        return Path(self.data_dir) / "checkpoints" if self.data_dir else None

    def checkpoint(self, method: str, **overrides: Any) -> Path | None:
        """The checkpoint file of ``method``'s model in this session (None: a method without
        training); it exists once :meth:`detector` has trained or loaded it."""
        from featureae_lite.experiments.checkpoints import checkpoint_file

        return checkpoint_file(method, self.train, self._checkpoint_dir(), **self.config(method, **overrides))

    def predict(self, method: str, split: str = "test", **overrides: Any) -> AnomalyOutput:
        """Maps and scores of ``method`` on a split (cached per method, config and split)."""
        return self._predict_timed(method, split, overrides)[0]

    def _predict_timed(self, method: str, split: str,
                       overrides: dict[str, Any]) -> tuple[AnomalyOutput, float]:
        from featureae_lite.experiments.evaluation import predict_split

        if split not in ("train", "val", "test"):
            raise InputError(f"unknown split {split!r}; known: train, val, test")
        key = f"{method}:{sorted(overrides.items())}:{split}"
        if key not in self._outputs:
            self._outputs[key] = predict_split(self.detector(method, **overrides), getattr(self, split))
        return self._outputs[key]

    def evaluate(self, method: str, ci: bool = False, **overrides: Any) -> dict[str, Any]:
        """Metrics of ``method`` on the test split, the honest threshold chosen on val.

        The maps are computed once per session and shared with :meth:`predict`. The brain-masked
        metrics only: the unmasked variant (every pixel, twice the cost) is left to
        :func:`featureae_lite.experiments.evaluation.evaluate` and the benchmark. ``ci=True`` adds 95 %
        subject-level bootstrap intervals (``pixel_ap_ci`` …, overall and per type).
        """
        from featureae_lite.experiments.evaluation import evaluate_predictions

        out, speed = self._predict_timed(method, "test", overrides)
        val_out, _ = self._predict_timed(method, "val", overrides)
        detector = self.detector(method, **overrides)
        return evaluate_predictions(detector, self.test, out, speed, self.val, val_out, unmasked=False,
                                    ci=ci)


def train_course_models(session: Session, methods: tuple[str, ...] | None = None,
                        progress: bool = True) -> list[dict[str, Any]]:
    """Train once, then teach: train-or-load every course model at the session's budgets.

    The main job (``featureae-lite main``) calls this before the notebooks, which then load the
    same checkpoints (keyed by config, data and code) instead of training inside a lesson. Each
    training also saves the snapshots of its weights part-way through the budget that the
    notebooks' training-budget slider shows (:meth:`Session.detector`).

    Parameters
    ----------
    session : Session
        The run's data and preset.
    methods : tuple of str, optional
        Default: every trainable method of the benchmark, in the order the notebooks meet them.
    progress : bool
        A tqdm bar per model.

    Returns
    -------
    list of dict
        Per method: ``method``, ``steps``, ``train_seconds`` (of the training that produced the
        checkpoint) and ``trained`` (False when it was loaded).
    """
    import time

    from featureae_lite.experiments.benchmark import DEFAULT_METHODS
    from featureae_lite.models.registry import create_detector

    methods = methods or tuple(m for m in DEFAULT_METHODS if create_detector(m).trainable)
    rows = []
    for method in methods:
        tick = time.perf_counter()
        det = session.detector(method, progress=progress)
        seconds = det.history.get("train_seconds", 0.0)
        rows.append({"method": method, "steps": det.config.steps, "train_seconds": seconds,
                     "trained": time.perf_counter() - tick >= 0.5 * seconds})
    return rows


def start(quick: bool = False, seed: int = 0, data_dir: str | os.PathLike | None = None,
          contrast: str = "t2", progress: bool = True, device: str | None = "auto") -> Session:
    """Synthesise (if needed) and load the cohort for a preset; returns a :class:`Session`.

    ``quick=False`` gives the classroom settings (:data:`featureae_lite.core.presets.CLASSROOM`: the
    default cohort at 128 px and the benchmark's training steps; the main job trains the course
    models once, see :func:`train_course_models`). ``device``: ``"auto"``
    (a GPU if there is one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
    """
    from featureae_lite.core.device import resolve_device
    from featureae_lite.data.splits import load_cohort_splits

    where = str(resolve_device(device))  # fails before any work on a device this machine lacks
    data_dir = str(data_dir) if data_dir else None
    splits = load_cohort_splits(data_dir, "quick" if quick else "default", seed, contrast, progress)
    return Session(preset(quick if quick else "classroom"), seed, data_dir, splits["train"], splits["val"],
                   splits["test"], splits["cohort"], where)
