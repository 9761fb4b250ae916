"""The one way to get an :class:`~ocean_ros.core.tracker.OceanTracker` from weights.

The ROS node, ``ocean-eval``, the benchmarks, training validation and the demo all call :func:`build_tracker`,
which decides each of these once, for every caller:

- **weights**: a checkpoint file or an ``ocean-export`` folder, read once (:func:`~ocean_ros.core.network.read_weights`
  gives its stored preset, architecture and optional parts, and its tensors for the torch network); None is the
  shipped Ocean-Lite model; a network already built (an :class:`~ocean_ros.core.contract.OceanModel`: training
  validation, random weights for plumbing checks) is used as it is.
- **preset**: None means the preset stored with the weights (LITE for the shipped model), else
  :data:`DEFAULT_PRESET` (OTB2015, the benchmark TracKit's files are usually run on). ``custom`` starts from the
  schema defaults. Overrides (any :class:`~ocean_ros.core.config.TrackerConfig` field) apply on top.
- **missing parts**: nothing is switched off behind the caller's back. A configuration that uses a part the weights
  lack (object-aware head, online classifier) is refused with one
  :class:`~ocean_ros.core.contract.MissingPartError` naming the part and the weights, before anything is loaded;
  a caller that wants the tracker without it passes ``align=False`` / ``online=False`` (``ocean-eval --online``
  passes ``online=True, align=False``).
- **crop backend**: the config's, default ``auto`` (OpenCV on CPU, torch on CUDA; both are TracKit-exact).
- **network backend**: ``auto`` unless given (torch on CUDA, ONNX Runtime for Ocean-Lite on CPU; an export folder
  its graph runtime).
- **device**: :func:`resolve_device` (``auto``: CUDA when available; a named CUDA device must exist).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ocean_ros.models import default_checkpoint

from .config import TrackerConfig
from .contract import OceanModel, require_parts
from .network import Weights, load_network, read_weights
from .tracker import OceanTracker

__all__ = ["DEFAULT_PRESET", "build_from_config", "build_tracker", "default_preset", "resolve_device", "tracker_config"]

DEFAULT_PRESET = "OTB2015"

Source = str | os.PathLike[str] | Weights


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda[:N]' must exist. ValueError with the reason otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N ({err})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name} requested but CUDA is not available (torch {torch.__version__})")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {name} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def default_preset(weights: Weights | None) -> str:
    """The preset a tracker on ``weights`` gets when none is named: the stored one, else :data:`DEFAULT_PRESET`."""
    return (weights.preset if weights is not None else None) or DEFAULT_PRESET


def tracker_config(weights: Weights | None, preset: str | None = None, **overrides: Any) -> TrackerConfig:
    """The configuration :func:`build_tracker` runs: ``preset`` (None: :func:`default_preset`) with ``overrides``."""
    return TrackerConfig.from_dict({"preset": preset or default_preset(weights), **overrides})


def build_tracker(
    checkpoint: Source | OceanModel | None = None,
    preset: str | None = None,
    device: str | torch.device = "auto",
    backend: str = "auto",
    *,
    step_mode: str | None = None,
    threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> OceanTracker:
    """A tracker on ``checkpoint`` (module docstring: the rules) with ``preset`` and ``overrides`` on ``device``.

    ``backend`` is the network runtime; ``threads`` the CPU threads of a graph runtime, ``cache_dir`` where graph
    backends keep their exports; ``step_mode`` as :class:`OceanTracker` takes it. Raises ValueError (a
    CheckpointError, MissingPartError, BackendError, ...) whose message names what is wrong.
    """
    if isinstance(checkpoint, OceanModel):
        weights, net = None, checkpoint
        source = f"the given {type(checkpoint).__name__}"
        has_align, has_classifier = checkpoint.has_align, checkpoint.has_classifier
    else:
        weights = read_weights(default_checkpoint() if checkpoint is None else checkpoint)
        source, has_align, has_classifier = str(weights.path), weights.has_align, weights.has_classifier
    config = tracker_config(weights, preset, backend=backend, **overrides)
    require_parts(config, has_align=has_align, has_classifier=has_classifier, source=source)
    target = resolve_device(device)
    if weights is not None:
        net, _ = load_network(weights, config, target, cache_dir=cache_dir, threads=threads)
    return OceanTracker(net, config, target, step_mode=step_mode)


def build_from_config(checkpoint: Source | OceanModel | None, config: TrackerConfig,
                      device: str | torch.device = "auto", **options: Any) -> OceanTracker:
    """:func:`build_tracker` with every setting taken from ``config`` (``options``: step_mode, threads, cache_dir)."""
    values = config.to_dict()
    preset, backend = values.pop("preset"), values.pop("backend")
    return build_tracker(checkpoint, preset, device, backend, **options, **values)
