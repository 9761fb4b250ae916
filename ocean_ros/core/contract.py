"""The network contract: what :class:`~ocean_ros.core.tracker.OceanTracker` may call on the network it drives.

The torch networks (:class:`~ocean_ros.core.model.OceanNet`, ``OnlineOceanNet``, ``OceanLiteNet``) and the
exported-graph runner (:class:`~ocean_ros.core.graph_net.GraphNet`) all satisfy :class:`OceanModel`; those with
``has_classifier`` also satisfy :class:`OnlineModel`. :func:`require_parts` is the one check that a configuration
asks only for parts the weights have, shared by the factory (weights read from a file) and the tracker (a model).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from .config import TrackerConfig
from .model.ocean import OceanOutput

__all__ = ["MissingPartError", "OceanModel", "OnlineModel", "require_parts"]


@runtime_checkable
class OceanModel(Protocol):
    """A stateless Ocean network: template features belong to the caller, so trackers can share one network.

    ``template``/``track`` compute the maps; ``stride``, ``score_size`` and ``grid_origin`` place the score grid
    on the search crop; ``has_align``/``has_classifier`` name the optional parts (object-aware head, online
    classifier); ``backend`` is the runtime computing the maps; ``search_sizes`` the search-crop sides it serves
    (None: any side its geometry allows, as the torch networks).
    """

    @property
    def backend(self) -> str: ...

    @property
    def stride(self) -> int: ...

    @property
    def has_align(self) -> bool: ...

    @property
    def has_classifier(self) -> bool: ...

    @property
    def search_sizes(self) -> frozenset[int] | None: ...

    def template(self, z: Tensor) -> Any: ...

    def track(self, x: Tensor, zf: Any, use_align: bool = True) -> OceanOutput: ...

    def score_size(self, search_size: int) -> int: ...

    def grid_origin(self, search_size: int) -> float: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def eval(self) -> Any: ...


@runtime_checkable
class OnlineModel(OceanModel, Protocol):
    """An :class:`OceanModel` whose ``has_classifier`` is true: the online branch's features and filter learner."""

    classifier: Any  # ocean_ros.core.model.OnlineClassifier (filter initialiser, optimiser, classify)

    def classification_features(self, x: Tensor) -> Tensor: ...


class MissingPartError(ValueError):
    """The configuration needs a part of the network that the weights lack; the message names both."""


# config field -> (the part, the weights that hold it, how to get weights that have it)
_PARTS = {
    "align": ("object-aware head", "align_head.*", "use weights with an object-aware head (e.g. TracKit's "
              "OceanV.pth)"),
    "online": ("online classifier", "classifier.*", "use an online checkpoint (the shipped ocean_lite.pth, "
               "or TracKit's classifier.* and layeronline weights, e.g. OceanV19on.pth)"),
}


def require_parts(config: TrackerConfig, *, has_align: bool, has_classifier: bool, source: str) -> None:
    """Raise :class:`MissingPartError` when ``config`` turns on a part that ``source`` (named in the message) lacks."""
    present = {"align": has_align, "online": has_classifier}
    for name, (part, keys, remedy) in _PARTS.items():
        if getattr(config, name) and not present[name]:
            raise MissingPartError(
                f"preset {config.preset} uses the {part} but {source} has no {part} ({keys} weights): set {name} "
                f"to false or {remedy}"
            )
