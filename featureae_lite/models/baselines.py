"""Non-trainable reference points: random scores (the floor) and the intensity threshold.

The threshold baseline (Meissen et al., "Challenging current semi-supervised anomaly segmentation
methods for brain MRI") uses the histogram-equalised intensity itself as the anomaly map. On
hyperintense lesions it beats many autoencoders — a humbling, essential lesson.
"""

from __future__ import annotations

import torch
from torch import Tensor

from featureae_lite.models.base import Batch, Detector, register


@register
class RandomDetector(Detector):
    """Uniform random maps: the floor.

    Each call seeds its own generator with ``config.seed`` plus a checksum of the batch's intensities
    (``int(sum × 1000) mod 9973``), so the maps depend on the batch's content, not on its position or
    on earlier calls: the same images give the same maps.
    """

    name = "random"
    trainable = False

    def anomaly_map(self, batch: Batch) -> Tensor:
        images = batch.images
        gen = torch.Generator().manual_seed(self.config.seed + int(images.sum().item() * 1000) % 9973)
        return torch.rand(images.shape, generator=gen)


@register
class ThresholdDetector(Detector):
    """The (histogram-equalised) intensity is the anomaly map: bright = anomalous."""

    name = "threshold"
    trainable = False

    def anomaly_map(self, batch: Batch) -> Tensor:
        return batch.images.clone()
