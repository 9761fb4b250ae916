"""Checks of what callers hand the tracker: a model for a configuration, frames (converted to HxWx3 uint8 BGR) and
initialisation boxes."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .config import TrackerConfig
from .contract import OceanModel
from .types import Box

__all__ = ["OnlineUnsupportedError", "check_init_box", "check_model", "to_bgr"]


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Check a frame and return it as HxWx3 uint8 BGR (grey HxW / HxWx1 and BGRA HxWx4 are converted).

    Raises ValueError for anything that is not a non-empty uint8 image array.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got dtype {frame.dtype}")
    if frame.ndim not in (2, 3):
        raise ValueError(f"frame must be HxW or HxWxC, got {frame.ndim} dimensions {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty: shape {frame.shape}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    channels = frame.shape[2]
    if channels == 3:
        return frame
    if channels == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"frame must have 1, 3 or 4 channels, got {channels}")


def check_init_box(box_xywh: Sequence[float], width: int, height: int) -> Box:
    """Validate an init box ``x, y, w, h`` (0-based px) for a ``width`` x ``height`` frame; ValueError if bad.

    It must be 4 finite numbers with w > 0 and h > 0 and overlap the image; it may extend past the border.
    """
    try:
        box = Box.from_xywh(box_xywh)
    except (TypeError, ValueError) as err:
        raise ValueError(f"init box must be 4 numbers x, y, w, h: {err}") from None
    if not box.is_finite():
        raise ValueError(f"init box has a NaN or infinite value: {box.as_tuple()}")
    if box.w <= 0 or box.h <= 0:
        raise ValueError(f"init box must have positive width and height, got w={box.w}, h={box.h}")
    if not box.intersects_image(width, height):
        raise ValueError(f"init box {box.as_tuple()} lies entirely outside the {width}x{height} image")
    return box


class OnlineUnsupportedError(NotImplementedError, ValueError):
    """``config.online`` with a model that does not implement the online classifier (no ``classifier``).

    A ValueError (a bad model/config pairing) that is also a NotImplementedError, which is what callers got
    before the online branch existed.
    """


def check_model(model: object, config: TrackerConfig, device: torch.device) -> str:
    """Check that ``model`` is an :class:`~ocean_ros.core.contract.OceanModel` that can run ``config`` on
    ``device`` (ValueError naming the mismatch); returns the runtime computing its maps."""
    if not isinstance(model, OceanModel):
        missing = [name for name in vars(OceanModel) if not name.startswith("_") and not hasattr(model, name)]
        raise ValueError(f"{type(model).__name__} is not an Ocean network: it lacks {', '.join(missing)}")
    if config.half and device.type != "cuda":
        raise ValueError(f"half precision needs a CUDA device, got {device}")
    if config.online and not model.has_classifier:
        raise OnlineUnsupportedError(
            "config.online is set but the model has no online classifier: load an online checkpoint "
            "(the shipped ocean_lite.pth, or TracKit's classifier.* and layeronline weights, e.g. OceanV19on.pth)"
        )
    if config.align and not model.has_align:
        raise ValueError("config.align is set but the model has no object-aware head (align_head)")
    model_stride = int(model.stride)
    if model_stride != config.total_stride:
        raise ValueError(
            f"config.total_stride={config.total_stride} but the network's stride is {model_stride}; use the "
            "preset stored with the checkpoint (e.g. LITE for Ocean-Lite)"
        )
    backend = str(model.backend)
    if config.backend not in ("auto", backend):
        raise ValueError(
            f"config.backend={config.backend!r} but the network given runs on {backend}; build the tracker "
            "with ocean_ros.core.build.build_tracker(checkpoint, backend=...)"
        )
    exported = model.search_sizes  # a graph runner serves the sizes it was exported for (None: any)
    if exported is not None and not {config.small_sz, config.big_sz} <= set(exported):
        raise ValueError(
            f"the network has search graphs for {sorted(exported)} but the config picks "
            f"{sorted({config.small_sz, config.big_sz})}; export it for those sizes"
        )
    return backend
