"""Loading the network a tracker runs: the torch model, or its exported graphs on ONNX Runtime, OpenVINO or TensorRT.

:func:`load_network` is the one entry point: it takes a checkpoint file (exported on first use into the cache,
:func:`~ocean_ros.core.export.cached_export`) or an export folder (``ocean-export``), checks the folder against
the tracker's config and the checkpoint, and returns something with the network interface
:class:`~ocean_ros.core.tracker.OceanTracker` calls.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backends import BACKENDS, BackendError
from .checkpoint import checkpoint_preset, load_model, read_checkpoint, read_state_dict
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
    "is_export_folder",
    "load_network",
    "resolve_backend",
    "source_has_align",
    "source_preset",
]

# 'auto' on CPU, per architecture: ONNX Runtime where it was measured faster and exports in seconds (README,
# "Network backends"). ResNet-50 Ocean runs ~2x faster on it too, but its first use exports ~90 MB per graph for
# tens of seconds: select it with backend:=onnxruntime (or an ocean-export folder) where that is acceptable.
AUTO_CPU_BACKEND = {LITE_ARCH: "onnxruntime"}


def is_export_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a ``manifest.json`` (an ``ocean-export`` output)."""
    return Path(path).is_dir() and (Path(path) / MANIFEST_NAME).is_file()


def source_preset(source: str | os.PathLike[str]) -> str | None:
    """The preset stored with a checkpoint (ours) or recorded in an export folder's manifest; None if none."""
    if is_export_folder(source):
        preset = read_manifest(source, verify_files=False).preset
        return None if preset == "custom" else preset
    return checkpoint_preset(source)


def source_has_align(source: str | os.PathLike[str]) -> bool:
    """True when the checkpoint holds an object-aware head (``align_head.*``), or the folder's graphs output its map."""
    if is_export_folder(source):
        return read_manifest(source, verify_files=False).align
    return any(key.startswith("align_head.") for key in read_state_dict(source))


def _arch_of(source: Path) -> str:
    if is_export_folder(source):
        return read_manifest(source, verify_files=False).arch
    _, meta = read_checkpoint(source)
    variant = meta.get("variant") or {}
    return str(variant.get("arch", "ocean_resnet50")) if isinstance(variant, dict) else "ocean_resnet50"


def resolve_backend(name: str, device: torch.device, source: str | os.PathLike[str] | None = None) -> str:
    """The backend ``name`` names ('auto' resolved): on CUDA torch (an export folder: tensorrt); on CPU the
    architecture's entry in :data:`AUTO_CPU_BACKEND`, else torch (an export folder: onnxruntime)."""
    if name != "auto":
        if name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r}; one of auto, {', '.join(BACKENDS)}")
        return name
    folder = source is not None and is_export_folder(source)
    if device.type == "cuda":
        return "tensorrt" if folder else "torch"
    if folder:
        return "onnxruntime"
    return AUTO_CPU_BACKEND.get(_arch_of(Path(source)), "torch") if source is not None else "torch"


def load_network(
    source: str | os.PathLike[str],
    config: TrackerConfig,
    device: str | torch.device = "cpu",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> tuple[nn.Module | GraphNet, dict[str, Any]]:
    """The network for a tracker with ``config`` on ``device``, run by ``config.backend``.

    ``source`` is a checkpoint file or an export folder. Graph backends load the folder, or export the checkpoint
    on first use into ``cache_dir`` (default :func:`~ocean_ros.core.export.default_cache_dir`), then refuse a
    folder that does not match the checkpoint (sha256), the preset's search sizes, stride, align flag, online
    branch or precision, or whose graphs' inputs differ from the manifest. Returns (network, metadata: backend,
    source, export folder).
    """
    device = torch.device(device)
    source = Path(source)
    backend = resolve_backend(config.backend, device, source)
    meta: dict[str, Any] = {"backend": backend, "source": str(source)}
    if backend == "torch":
        if is_export_folder(source):
            raise BackendError(f"{source} is an export folder: run it with a graph backend, or give the checkpoint")
        net, checkpoint_meta = load_model(source, device=device, dtype=torch.float16 if config.half else torch.float32)
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
