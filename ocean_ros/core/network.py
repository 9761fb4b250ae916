"""Loading the network a tracker runs: the torch model, or its exported graphs on ONNX Runtime, OpenVINO or TensorRT.

:func:`load_network` is the one entry point: it takes a checkpoint file (exported on first use into the cache,
:func:`~ocean_ros.core.export.cached_export`) or an export folder (``ocean-export``), checks the folder against
the tracker's config and the checkpoint, and returns something with the network interface
:class:`~ocean_ros.core.tracker.OceanTracker` calls. :func:`read_weights` reads a source once, for callers that
need to know what it holds (stored preset, architecture, optional parts) before loading it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .backends import BACKENDS, BackendError
from .checkpoint import has_classifier, model_from_read, read_checkpoint
from .config import TrackerConfig
from .export import cached_export, default_cache_dir, options_for
from .graph_net import GraphNet
from .manifest import (
    MANIFEST_NAME,
    check_against_checkpoint,
    check_against_config,
    read_manifest,
)
from .model.lite import ARCH as LITE_ARCH

__all__ = [
    "AUTO_CPU_BACKEND",
    "Weights",
    "is_export_folder",
    "load_network",
    "read_weights",
    "resolve_backend",
    "source_preset",
]

# 'auto' on CPU, per architecture: ONNX Runtime where it was measured faster and exports in seconds (README,
# "Network backends"). ResNet-50 Ocean runs ~2x faster on it too, but its first use exports ~90 MB per graph for
# tens of seconds: select it with backend:=onnxruntime (or an ocean-export folder) where that is acceptable.
AUTO_CPU_BACKEND = {LITE_ARCH: "onnxruntime"}


def is_export_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a ``manifest.json`` (an ``ocean-export`` output)."""
    return Path(path).is_dir() and (Path(path) / MANIFEST_NAME).is_file()


@dataclass(frozen=True)
class Weights:
    """A checkpoint file or an export folder, read once: what it holds, and (files) its tensors for loading."""

    path: Path
    folder: bool  # an ocean-export folder (graph backends only)
    arch: str  # "ocean_resnet50" or "ocean_lite"
    preset: str | None  # the preset stored with it (None: TracKit files, 'custom' exports)
    has_align: bool  # object-aware head
    has_classifier: bool  # online classifier
    state: dict[str, Tensor] | None = field(default=None, repr=False)  # a file's tensors, as read_checkpoint
    meta: dict[str, Any] | None = field(default=None, repr=False)


def read_weights(source: str | os.PathLike[str] | Weights) -> Weights:
    """Read a checkpoint file (its tensors, once) or an export folder's manifest (CheckpointError / manifest
    errors name the problem); a :class:`Weights` is returned as it is."""
    if isinstance(source, Weights):
        return source
    path = Path(source)
    if is_export_folder(path):
        manifest = read_manifest(path, verify_files=False)
        preset = None if manifest.preset == "custom" else manifest.preset
        return Weights(path, True, manifest.arch, preset, manifest.align, manifest.online is not None)
    state, meta = read_checkpoint(path)
    variant = meta.get("variant") if isinstance(meta.get("variant"), dict) else {}
    preset = (meta.get("config") or {}).get("preset")
    return Weights(
        path, False, str(variant.get("arch", "ocean_resnet50")), preset if isinstance(preset, str) else None,
        any(key.startswith("align_head.") for key in state), has_classifier(state), state, meta,
    )


def source_preset(source: str | os.PathLike[str]) -> str | None:
    """The preset stored with a checkpoint (ours) or recorded in an export folder's manifest; None if none."""
    return read_weights(source).preset


def resolve_backend(name: str, device: torch.device, source: str | os.PathLike[str] | Weights | None = None) -> str:
    """The backend ``name`` names ('auto' resolved): on CUDA torch (an export folder: tensorrt); on CPU the
    architecture's entry in :data:`AUTO_CPU_BACKEND`, else torch (an export folder: onnxruntime)."""
    if name != "auto":
        if name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r}; one of auto, {', '.join(BACKENDS)}")
        return name
    if source is None:
        return "torch"
    weights = read_weights(source)
    if device.type == "cuda":
        return "tensorrt" if weights.folder else "torch"
    return "onnxruntime" if weights.folder else AUTO_CPU_BACKEND.get(weights.arch, "torch")


def load_network(
    source: str | os.PathLike[str] | Weights,
    config: TrackerConfig,
    device: str | torch.device = "cpu",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> tuple[nn.Module | GraphNet, dict[str, Any]]:
    """The network for a tracker with ``config`` on ``device``, run by ``config.backend``.

    ``source`` is a checkpoint file or an export folder, or either already read by :func:`read_weights` (the
    torch backend then builds the network from the tensors read). Graph backends load the folder, or export the
    checkpoint on first use into ``cache_dir`` (default :func:`~ocean_ros.core.export.default_cache_dir`), then refuse a
    folder that does not match the checkpoint (sha256), the preset's search sizes, stride, align flag, online
    branch or precision, or whose graphs' inputs differ from the manifest. Returns (network, metadata: backend,
    source, export folder).
    """
    device = torch.device(device)
    weights = read_weights(source) if isinstance(source, Weights) or config.backend in ("auto", "torch") else None
    source = Path(weights.path if weights is not None else source)
    backend = resolve_backend(config.backend, device, weights)
    meta: dict[str, Any] = {"backend": backend, "source": str(source)}
    if backend == "torch":
        if weights.folder:
            raise BackendError(f"{source} is an export folder: run it with a graph backend, or give the checkpoint")
        net, checkpoint_meta = model_from_read(weights.state, weights.meta, device=device,
                                               dtype=torch.float16 if config.half else torch.float32)
        meta.update(checkpoint_meta)
        return net, meta
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_export_folder(source):
        folder = source
        manifest = read_manifest(folder)
    else:
        options = options_for(config)
        export_device = device if config.half and device.type == "cuda" else torch.device("cpu")
        folder = cached_export(source, options, preset=config.preset, cache_dir=cache, device=export_device)
        manifest = read_manifest(folder)
        check_against_checkpoint(manifest, source)
    check_against_config(
        manifest, search_sizes=(config.small_sz, config.big_sz), total_stride=config.total_stride,
        align=config.align, online=config.online, half=config.half,
    )
    net = GraphNet(manifest, backend, device, threads=threads, engine_cache=cache / "tensorrt")
    meta.update(export=str(folder), variant={"arch": manifest.arch, "align": manifest.align,
                                             "online": manifest.online is not None})
    return net, meta
