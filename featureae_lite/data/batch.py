"""The one batch type: a whole split (images, lesion and brain masks, labels per slice) and the
mini-batches every method trains on and predicts for (images, brains, cached inputs) alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def _pick(values: list | None, index: Any) -> list | None:
    """``values`` at ``index`` (a slice, a list of ints or an index tensor); None stays None."""
    if values is None:
        return None
    if isinstance(index, slice):
        return values[index]
    if isinstance(index, Tensor):
        index = index.tolist()
    return [values[i] for i in index]


@dataclass(kw_only=True)
class Batch:
    """Slices: a split of a data set, or a mini-batch of one.

    Attributes
    ----------
    images : Tensor
        (N, 1, H, W) float in [0, 1].
    brains : Tensor
        (N, 1, H, W) float brain masks {0, 1}: the real masks of the data set (all ones when none
        is given, e.g. for bare images).
    masks : Tensor or None
        (N, 1, H, W) float lesion masks {0, 1}; None where no label is known (training mini-batches).
    subject_ids, anomaly_types : list of str, optional
        Per slice: its subject and the subject's anomaly type (``"healthy"`` for none).
    slice_indices : list of int, optional
        Per slice: the axial index z in its volume.
    cached : Tensor or None
        What :meth:`Detector.prepare` computes once per slice (N, ...): frozen backbone features
        (FAE, DPA) or superpixel images (ProxyAno); None before ``prepare``.

    Examples
    --------
    >>> b = Batch(images=torch.rand(4, 1, 64, 64))
    >>> len(b), b.brains.shape, b[[0, 2]].images.shape
    (4, torch.Size([4, 1, 64, 64]), torch.Size([2, 1, 64, 64]))
    """

    images: Tensor
    brains: Tensor | None = None
    masks: Tensor | None = None
    subject_ids: list[str] | None = None
    anomaly_types: list[str] | None = None
    slice_indices: list[int] | None = None
    cached: Tensor | None = None

    def __post_init__(self) -> None:
        if self.brains is None:
            self.brains = torch.ones_like(self.images)

    @classmethod
    def of(cls, data: Batch | Tensor) -> Batch:
        """``data`` itself, or a batch of bare images (N, 1, H, W)."""
        if isinstance(data, Batch):
            return data
        if isinstance(data, Tensor):
            return cls(images=data)
        raise TypeError(f"expected a Batch or an image tensor (N, 1, H, W), got {type(data).__name__}")

    @classmethod
    def concat(cls, parts: Sequence[Batch]) -> Batch:
        """One batch holding the slices of ``parts`` in order (labels kept where every part has them)."""
        if len(parts) == 1:
            return parts[0]

        def join(name: str) -> Any:
            values = [getattr(p, name) for p in parts]
            if any(v is None for v in values):
                return None
            return torch.cat(values) if isinstance(values[0], Tensor) else [x for v in values for x in v]

        return cls(**{name: join(name) for name in cls.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> Batch:
        """The slices at ``index``: a slice, a list of ints or an index tensor."""
        if isinstance(index, int):
            raise TypeError("index a Batch with a slice or a list of ints (batch[i:i + 1]), not an int")
        tensor_index = list(index) if isinstance(index, Sequence) and not isinstance(index, Tensor) else index
        take = lambda t: None if t is None else t[tensor_index]  # noqa: E731
        return Batch(images=take(self.images), brains=take(self.brains), masks=take(self.masks),
                     subject_ids=_pick(self.subject_ids, index),
                     anomaly_types=_pick(self.anomaly_types, index),
                     slice_indices=_pick(self.slice_indices, index), cached=take(self.cached))

    def unlabelled(self) -> Batch:
        """What a model may see of these slices: images, brains and cached inputs, no labels."""
        return Batch(images=self.images, brains=self.brains, cached=self.cached)

    def subset(self, indices: Sequence[int]) -> Batch:
        """The slices at ``indices`` (list of int), as a new batch."""
        return self[list(indices)]

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on ``device`` (no copy when they are there already)."""
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(images=move(self.images), brains=move(self.brains), masks=move(self.masks),
                     subject_ids=self.subject_ids, anomaly_types=self.anomaly_types,
                     slice_indices=self.slice_indices, cached=move(self.cached))
