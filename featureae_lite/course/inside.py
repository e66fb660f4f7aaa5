"""Look inside a method: its network as a layer table, the library's own source of its loss and map,
and a fresh, untrained copy of a course model that a notebook trains by hand for a few steps.

The notebooks call these so that a student sees the model itself, not only its results: the layer
table comes from ``torchinfo`` (output shape and parameter count of every layer), the source from
:func:`inspect.getsource` of the package's code (never a copy of it in a cell).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from featureae_lite.course.session import Session
from featureae_lite.data.batch import Batch
from featureae_lite.models.base import Detector
from featureae_lite.models.registry import create_detector


def untrained(session: Session, method: str, **overrides: Any) -> Detector:
    """A fresh, untrained detector with the course config of ``method`` (:meth:`Session.config`),
    on the session's device: the network the course model starts from."""
    return create_detector(method, **session.config(method, **overrides)).to_device(session.device)


def practice(detector: Detector, session: Session, n: int = 256) -> tuple[Batch, Batch]:
    """What a by-hand training needs: the first ``n`` training slices prepared the way the method trains
    on them (its training-set statistics fitted, as the loop does) and the test slice with the most
    lesion pixels, to watch the map on."""
    inputs = detector.prepare(session.train[:n].unlabelled())
    detector.fit_statistics(inputs)
    j = int(session.test.masks.flatten(1).sum(1).argmax())
    return inputs, session.test[j:j + 1]


def layer_table(module: nn.Module, example: Tensor, depth: int = 3) -> Any:
    """The layer table of ``module`` for an input like ``example`` (1, C, H, W): every layer's output
    shape and parameter count, with the totals (a ``torchinfo`` summary; it shows as a table).

    The summary runs one forward pass in eval mode under a forked random state, so it changes
    neither the module nor any later random draw.
    """
    from torchinfo import summary

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        return summary(module, input_data=example.to(next(module.parameters()).device), depth=depth,
                       col_names=("output_size", "num_params"), mode="eval", verbose=0)


def show_source(obj: Any) -> Any:
    """The package's own source of a function, method or class, syntax-highlighted in a notebook
    (its plain text elsewhere)."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
