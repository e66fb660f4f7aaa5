"""The batch type every method trains on and predicts for: images, real brain masks, cached inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class Batch:
    """Slices a method trains on or predicts for.

    Attributes
    ----------
    images : Tensor
        (N, 1, H, W) float in [0, 1].
    brains : Tensor
        (N, 1, H, W) float brain masks {0, 1} — the real masks of the data set (all ones when the
        caller gave bare images).
    cached : Tensor or None
        What :meth:`Detector.prepare` computes once per slice (N, ...): frozen backbone features
        (FAE, DPA) or superpixel images (ProxyAno); None before ``prepare``.
    """

    images: Tensor
    brains: Tensor
    cached: Tensor | None = None

    @classmethod
    def of(cls, data: Any) -> Batch:
        """A batch from a SliceData-like object (``images``, ``brains``) or bare images (N, 1, H, W)."""
        if isinstance(data, Batch):
            return data
        if isinstance(data, Tensor):
            return cls(data, torch.ones_like(data))
        brains = getattr(data, "brains", None)
        return cls(data.images, torch.ones_like(data.images) if brains is None else brains)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> Batch:
        """The slices at ``index`` (an int slice, index tensor or list)."""
        return Batch(self.images[index], self.brains[index],
                     None if self.cached is None else self.cached[index])

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device`` (no copy when it is there already)."""
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.images), move(self.brains), move(self.cached))
