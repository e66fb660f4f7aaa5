"""Values on the channel between the grader and its worker (:mod:`featureae_lite.grading.remote`).

Values travel as ``torch.save`` data of tensors, numbers, strings and containers (numpy arrays
tagged, to be restored), read back with ``torch.load(weights_only=True)``, which builds nothing else:
data from the worker cannot run code in the grader. Headers travel as JSON. Only byte strings are
sent (``Connection.send_bytes``), never pickles.
"""

from __future__ import annotations

import io
import json
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

MAX_ANSWER_MB = 64  # an answer (or any message of the worker) larger than this is refused unread


def encode(value: Any) -> Any:
    """``value`` as tensors, numbers, strings and containers (numpy arrays tagged, to be restored).

    Raises
    ------
    TypeError
        For an object of another type (e.g. a function or a custom class).
    """
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        items = [encode(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise TypeError(f"an object of type {type(value).__name__} cannot be checked")


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [decode(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def dumps(value: Any) -> bytes:
    """``value`` (see :func:`encode`) as ``torch.save`` data."""
    buffer = io.BytesIO()
    torch.save(encode(value), buffer)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """Inverse of :func:`dumps`; builds tensors, numbers, strings and containers only."""
    return decode(torch.load(io.BytesIO(data), weights_only=True))


def send_json(conn: Connection, message: Any) -> None:
    """Send ``message`` over ``conn`` as one JSON byte string."""
    conn.send_bytes(json.dumps(message).encode())
