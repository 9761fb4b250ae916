"""Training checkpoints: the resumable per-epoch files of both stages, and fine-tuning from one of our models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ocean_ros.core.model import LiteNetConfig, OceanLiteNet

from .datasets import DataError

__all__ = ["TRAIN_FORMAT", "init_from_checkpoint", "load_train_checkpoint", "save_train_checkpoint"]

TRAIN_FORMAT = "ocean_ros.train.v1"


def init_from_checkpoint(path: Path, want: LiteNetConfig) -> tuple[OceanLiteNet, dict[str, Any]]:
    """(An Ocean-Lite net with every tensor of one of our checkpoints (online classifier included, if any), the
    file's stored config) for fine-tuning; DataError when the file's net differs from the configured one in
    stride, width, depth or align."""
    from ocean_ros.core.checkpoint import CheckpointError, read_checkpoint

    try:
        state, meta = read_checkpoint(path)
    except (CheckpointError, OSError) as exc:
        raise DataError(f"model.init: {exc}") from None
    values = (meta.get("config") or {}).get("net")
    if not isinstance(values, dict):
        raise DataError(f"model.init: {path} is not an Ocean-Lite checkpoint of ours (no config.net)")
    stored = LiteNetConfig.from_dict(values)
    shape = ("stride", "channels", "tower_depth", "align")
    if any(getattr(stored, k) != getattr(want, k) for k in shape):
        raise DataError(f"model.init: {path} holds {stored}, the model section asks for "
                        + ", ".join(f"{k}={getattr(want, k)}" for k in shape))
    net = OceanLiteNet(stored)
    net.load_state_dict(state, strict=False)
    missing = [k for k in net.state_dict() if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise DataError(f"model.init: {path} lacks {len(missing)} tensor(s) of its own net, e.g. {missing[0]}")
    return net, dict(meta.get("config") or {})


def save_train_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    """Write a resumable training checkpoint atomically (a temporary file renamed over ``path``)."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_train_checkpoint(path: Path, kind: str, fmt: str = TRAIN_FORMAT) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_train_checkpoint`; DataError naming ``kind`` (e.g. 'an ocean-train')
    when the file is missing or its ``format`` is not ``fmt``."""
    if not path.is_file():
        raise DataError(f"resume checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != fmt:
        found = state.get("format") if isinstance(state, dict) else None
        raise DataError(f"{path}: not {kind} checkpoint (format {found!r})")
    return state
