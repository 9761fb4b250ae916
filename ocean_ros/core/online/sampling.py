"""Where the online classifier's samples come from: the sample window, the crop, normalisation, target boxes.

Positions are ``(y, x)`` and sizes ``(h, w)`` in frame pixels (TracKit's online state order); target boxes inside a
sample are ``x, y, w, h`` in sample pixels; frames are HxWx3 uint8 BGR tensors on the device; samples are float32
[N, 3, S, S] RGB 0..255 before :func:`normalise`. A window's position may be host numbers or device scalars
(:mod:`~ocean_ros.core.scalars`); its shape is always known on the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..scalars import Scalar, as_float, trunc

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SAMPLE_SIZE", "SampleWindow", "crop_sample", "normalise",
           "sample_window", "target_box", "window_shape"]

# Side of every online sample (px): TracKit's image_sample_size, the input side the online feature network is
# trained and exported at (ocean-export writes its graph for this side), so it is a constant, not a tunable.
SAMPLE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SampleWindow(NamedTuple):
    """Where a sample is cut from a frame and what it covers.

    The frame is first decimated by ``step`` starting at ``offset`` (rows, cols); rows ``top .. top+size-1``
    and cols ``left .. left+size-1`` of the decimated frame (replicated at the borders) are resized to the
    output size. ``pos`` (y, x) is the window centre (frame px) and ``scale`` the frame pixels per sample pixel.
    ``top``, ``left``, ``offset`` and ``pos`` are host numbers or device scalars; the rest are host numbers.
    """

    top: Scalar
    left: Scalar
    size: int
    step: int
    offset: tuple[Scalar, Scalar]
    pos: tuple[Scalar, Scalar]
    scale: float


def window_shape(sample_side: float, output_size: int) -> tuple[int, int, float]:
    """The host-only part of a sample window of side ``sample_side`` frame px: (decimation df, crop side in
    decimated px, frame px per sample px). It depends on the side alone, never on where the window sits.

    df = max(int(side/output - 0.1), 1); crop side = round(side/df) (at least 2); scale = df·side'/output.
    """
    df = max(int(sample_side / output_size - 0.1), 1)
    size = max(int(round(sample_side / df)), 2)
    extent = df * size  # y1 - y0 (and x1 - x0) of the window, frame px
    return df, size, math.sqrt(extent / output_size * extent / output_size)


def sample_window(pos: Sequence[Scalar], sample_side: float, output_size: int) -> SampleWindow:
    """TracKit's online crop window (``sample_patch``) of side ``sample_side`` frame px around ``pos`` (y, x).

    The centre is truncated to integers; frames are pre-decimated by df (:func:`window_shape`); integer
    halves are floor divisions (PyTorch 1.1 semantics), on host integers and int64 device scalars alike.
    """
    df, size, scale = window_shape(sample_side, output_size)
    starts, offsets, centres = [], [], []
    for p in pos:
        whole = trunc(p)  # truncation toward zero, as Tensor.long()
        offset = whole % df
        whole = (whole - offset) // df
        start, end = whole - (size - 1) // 2, whole + size // 2 + 1
        starts.append(start)
        offsets.append(offset)
        centres.append(as_float(df * start + df * end - 1) * 0.5)  # TracKit leaves out the decimation offset
    return SampleWindow(starts[0], starts[1], size, df, (offsets[0], offsets[1]), (centres[0], centres[1]), scale)


def crop_sample(frame_t: Tensor, window: SampleWindow, output_size: int) -> Tensor:
    """Cut ``window`` from an HxWx3 uint8 BGR frame on the device → [1, 3, out, out] float32 RGB 0..255.

    Border pixels are replicated; the resize is bilinear with half-pixel centres (no antialiasing). Fixed
    shapes and no host reads for a window on the device, so it can be captured in a CUDA graph.
    """
    height, width = frame_t.shape[:2]
    rows = _taps(window.top, window.offset[0], height, window.step, window.size, frame_t.device)
    cols = _taps(window.left, window.offset[1], width, window.step, window.size, frame_t.device)
    return _resized_patch(frame_t, rows, cols, output_size)


def _taps(start: Scalar, offset: Scalar, extent: int, df: int, size: int, device: torch.device) -> Tensor:
    """Frame indices of one axis of a window: decimated index start + i, clamped to the frame, times df plus
    the offset."""
    last = -(-(extent - offset) // df) - 1  # last decimated index inside the frame
    index = torch.arange(size, device=device).add_(start)
    index = torch.minimum(index.clamp_(min=0), last) if isinstance(last, Tensor) else index.clamp_(0, last)
    return index.mul_(df).add_(offset)


def _resized_patch(frame_t: Tensor, rows: Tensor, cols: Tensor, output_size: int) -> Tensor:
    # two index_selects gather the same pixels as frame_t[rows[:, None], cols[None, :]], ~3x faster on CPU
    patch = frame_t.index_select(0, rows).index_select(1, cols).permute(2, 0, 1)
    patch = patch.index_select(0, _bgr_to_rgb(frame_t.device)).unsqueeze(0).float()
    if patch.shape[-2:] != (output_size, output_size):
        patch = F.interpolate(patch, size=(output_size, output_size), mode="bilinear", align_corners=False)
    return patch


@lru_cache(maxsize=8)
def _bgr_to_rgb(device: torch.device) -> Tensor:
    return torch.tensor([2, 1, 0], device=device)


@lru_cache(maxsize=8)
def _imagenet_stats(device: torch.device) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def normalise(samples: Tensor) -> Tensor:
    """RGB 0..255 samples → /255, minus ImageNet mean, divided by ImageNet std (float32)."""
    mean, std = _imagenet_stats(samples.device)
    return (samples.float() / 255 - mean) / std


def target_box(
    pos: Sequence[Scalar], size: Sequence[Scalar], sample_pos: Sequence[Scalar], sample_scale: float,
    sample_size: int,
) -> tuple[Scalar, Scalar, Scalar, Scalar]:
    """Target ``x, y, w, h`` in sample pixels for a target at ``pos`` (y, x) of ``size`` (h, w), frame px.

    centre = (pos - sample_pos)/scale + (sample_size - 1)/2, size/scale, top-left = centre - (size - 1)/2.
    """
    cy = (pos[0] - sample_pos[0]) / sample_scale + (sample_size - 1) / 2
    cx = (pos[1] - sample_pos[1]) / sample_scale + (sample_size - 1) / 2
    h, w = size[0] / sample_scale, size[1] / sample_scale
    return cx - (w - 1) / 2, cy - (h - 1) / 2, w, h
