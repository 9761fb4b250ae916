"""Ocean with its online classifier: the Siamese network plus ``classifier.*`` (TracKit's online checkpoints)."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from .ocean import OceanNet, OceanNetConfig
from .online_classifier import OnlineClassifier

__all__ = ["OnlineOceanNet"]


class OnlineOceanNet(OceanNet):
    """:class:`OceanNet` built with ``layeronline`` and an :class:`OnlineClassifier` under ``classifier``.

    One module, so one strict state dict covers a merged TracKit online checkpoint (Siamese weights,
    ``features.features.layeronline.*`` and the 8 ``classifier.*`` tensors).
    """

    def __init__(self, config: OceanNetConfig | None = None) -> None:
        config = dataclasses.replace(config if config is not None else OceanNetConfig(align=False), online=True)
        super().__init__(config)
        self.classifier = OnlineClassifier()

    @property
    def has_classifier(self) -> bool:
        """Always True (duck-typing hook for trackers)."""
        return True

    def classification_features(self, x: Tensor) -> Tensor:
        """RGB ImageNet-normalised samples [B, 3, H, W] → classification features [B, 512, H/16-1, ...] float32.

        (224 → 13x13.) The backbone runs in the weights' dtype; the projection output is float32.
        """
        return self.classifier.extract_features(self.online_features(x))
