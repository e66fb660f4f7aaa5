"""Hyperparameter selection on validation data only (the DPA paper's protocol, for any method)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from featureae_lite.core.errors import InputError
from featureae_lite.experiments.evaluation import metrics_from_output
from featureae_lite.models.base import Detector
from featureae_lite.models.registry import create_detector


def select_hyperparameters(train, val, grid: dict[str, list], steps: int | None = None,
                           metric: str = "sample_auroc", method: str = "dpa", progress: bool = False,
                           device: str | None = "auto",
                           **fixed: Any) -> tuple[Detector, list[dict[str, Any]]]:
    """The paper's protocol: pick hyperparameters with the labelled anomalies of ``val`` only.

    One model per grid point is trained on ``train`` (healthy) and scored on ``val``; the test split
    is never an argument, so it cannot leak into the choice.

    Parameters
    ----------
    train : Batch
        Healthy training slices.
    val : Batch
        Validation slices with a few labelled anomalies (masks) and healthy slices.
    grid : dict of str to list
        Config field → candidate values, e.g. ``{"latent_dim": [64, 128], "layers": [...]}``.
    steps : int, optional
        Training steps per grid point (default: the config's).
    metric : str
        A key of :func:`featureae_lite.experiments.evaluation.metrics_from_output` (higher = better), e.g.
        ``"sample_auroc"``, ``"sample_ap"``, ``"pixel_ap"``.
    method : str
        Registered method to tune (DPA by default; any method works).
    device : str
        Where every grid point trains (:func:`featureae_lite.core.device.resolve_device`).
    **fixed
        Config fields shared by every grid point (``image_size``, ``seed``, …).

    Returns
    -------
    best : Detector
        The trained detector of the best grid point (first one on ties); ``best.config`` holds
        the chosen values.
    table : list of dict
        One row per grid point: its values and ``metric``.
    """
    if float(val.masks.sum()) == 0:
        raise InputError("select_hyperparameters needs labelled anomalies in val (its masks are empty)")
    if steps is not None:
        fixed = {**fixed, "steps": steps}
    keys = list(grid)
    table, best, best_value = [], None, -math.inf
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        det = create_detector(method, **fixed, **point).to_device(device)
        det.fit(train, progress=progress)
        value = metrics_from_output(det.predict(val.images, val.brains), val)[metric]
        table.append({**point, metric: value})
        if np.isfinite(value) and value > best_value:
            best, best_value = det, value
    if best is None:
        raise InputError(f"{metric} is undefined on val for every grid point "
                         "(val needs healthy and anomalous slices)")
    return best, table
