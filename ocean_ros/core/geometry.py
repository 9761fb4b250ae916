"""Pure geometry: TracKit's rounding rules, box conversions, score grid, cosine window, the two crop backends.

Conventions: frames are HxWx3 uint8 BGR arrays; boxes are ``x, y, w, h`` in 0-based pixels unless a name says
``center``/``cxcywh``; crops are float tensors [1, 3, S, S] holding BGR values 0..255 (no normalisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch

from .scalars import Scalar, floor, round_even, sqrt

__all__ = [
    "average_colour",
    "cosine_window",
    "crop_opencv",
    "crop_origin",
    "crop_torch",
    "fill_colour",
    "frame_to_device",
    "polygon_to_center_size",
    "polygon_to_xywh",
    "round_half_away",
    "round_half_even",
    "score_grid",
    "score_size",
    "grid_coords",
    "search_crop_side",
    "template_crop_side",
]

_COEF_BITS = 11  # cv2 INTER_RESIZE_COEF_BITS: bilinear weights are integers out of 2048
_COEF_SCALE = 1 << _COEF_BITS


# --- rounding
def round_half_even(x: float) -> int:
    """Python-3 ``round``: nearest integer, ties to even (TracKit's template side and crop origin)."""
    return int(round(float(x)))


def round_half_away(x: float) -> int:
    """Nearest integer, ties away from zero (TracKit's ``python2round``, used for the search crop side)."""
    x = float(x)
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


# --- boxes
def polygon_to_center_size(points: Sequence[float]) -> tuple[float, float, float, float]:
    """VOT polygon ``x1,y1,...,x4,y4`` (0-based px) -> ``(cx, cy, w, h)``, area preserving (spec §5.1).

    Centre = mean of the vertices; the bounding box is scaled by s = sqrt(|v0-v1|·|v1-v2| / bbox area), then
    w = s·bbox_w + 1, h = s·bbox_h + 1 (TracKit's ``get_axis_aligned_bbox``).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1)
    if pts.size != 8:
        raise ValueError(f"a VOT polygon has 8 values, got {pts.size}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("polygon has non-finite coordinates")
    xs, ys = pts[0::2], pts[1::2]
    cx, cy = float(np.mean(xs)), float(np.mean(ys))
    x1, x2, y1, y2 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    bbox_area = (x2 - x1) * (y2 - y1)
    if bbox_area <= 0:
        raise ValueError("degenerate polygon: its bounding box has zero area")
    poly_area = float(np.linalg.norm(pts[0:2] - pts[2:4]) * np.linalg.norm(pts[2:4] - pts[4:6]))
    s = math.sqrt(poly_area / bbox_area)
    return cx, cy, s * (x2 - x1) + 1, s * (y2 - y1) + 1


def polygon_to_xywh(points: Sequence[float]) -> tuple[float, float, float, float]:
    """VOT polygon -> ``(x, y, w, h)``, x = cx - w/2, y = cy - h/2 (see :func:`polygon_to_center_size`)."""
    cx, cy, w, h = polygon_to_center_size(points)
    return cx - w / 2, cy - h / 2, w, h


# --- crop sizes
def template_crop_side(w: Scalar, h: Scalar, context_amount: float) -> Scalar:
    """Unrounded side sqrt((w+p)(h+p)), p = context·(w+h), of the context square around a w×h target (px)."""
    p = context_amount * (w + h)
    return sqrt((w + p) * (h + p))


def search_crop_side(w: Scalar, h: Scalar, context_amount: float, exemplar_size: int, search_size: int
                     ) -> tuple[Scalar, Scalar]:
    """``(scale_z, side)`` of the search crop for a w×h target (spec §5.5); host numbers or device tensors.

    scale_z = exemplar_size / s_z (crop px per frame px);
    side = round_half_away(s_z + (S - exemplar) / scale_z) (frame px; positive, so floor(x + 0.5)).
    """
    s_z = template_crop_side(w, h, context_amount)
    scale_z = exemplar_size / s_z
    pad = (search_size - exemplar_size) / 2 / scale_z
    return scale_z, floor(s_z + 2 * pad + 0.5)


# --- score grid
def score_size(search_size: int, exemplar_size: int = 127, stride: int = 8) -> int:
    """Side N of the score map for a search crop of side ``search_size`` (25 for 255, 27 for 271)."""
    return (search_size - exemplar_size) // stride + 1 + 8


def score_grid(n: int, search_size: int, stride: int = 8) -> np.ndarray:
    """Search-crop pixel coordinate of each score cell index 0..n-1: (j - n//2)·stride + search_size//2."""
    return (np.arange(n, dtype=np.float64) - n // 2) * stride + search_size // 2


def grid_coords(n: int, origin: float, stride: int) -> np.ndarray:
    """Search-crop pixel coordinate of cells 0..n-1 along one axis: origin + stride·j (float64)."""
    return origin + stride * np.arange(n, dtype=np.float64)


def cosine_window(n: int) -> np.ndarray:
    """n×n float64 outer product of ``np.hanning(n)`` with itself (zero at the border)."""
    hann = np.hanning(n)
    return np.outer(hann, hann)


# --- colours
def average_colour(frame: np.ndarray) -> np.ndarray:
    """Per-channel mean of an HxWx3 frame as float64 (3,), TracKit's ``avg_chans``."""
    return frame.reshape(-1, frame.shape[-1]).mean(axis=0, dtype=np.float64)


def fill_colour(avg_chans: np.ndarray) -> np.ndarray:
    """The padding value TracKit really writes: ``avg_chans`` stored in a uint8 canvas, i.e. truncated."""
    return np.clip(np.asarray(avg_chans, dtype=np.float64), 0, 255).astype(np.uint8)


# --- crops
def crop_origin(center_xy: Sequence[Scalar], crop_side: Scalar) -> tuple[Scalar, Scalar]:
    """Top-left frame pixel ``(xmin, ymin)`` of a ``crop_side`` square centred on ``center_xy`` (spec §5.4).

    xmin = round_half_even(cx - (side + 1)/2), likewise y (host ints, or int64 device scalars).
    """
    c = (crop_side + 1) / 2
    return round_even(center_xy[0] - c), round_even(center_xy[1] - c)


def crop_opencv(
    frame: np.ndarray,
    center_xy: Sequence[float],
    out_size: int,
    crop_side: int,
    avg_chans: np.ndarray,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """TracKit's ``get_subwindow_tracking``, bit-exact: float tensor [1, 3, out, out] (BGR 0..255) on device.

    The ``crop_side`` square at ``crop_origin`` is cut from ``frame`` (HxWx3 uint8), parts outside the frame
    are filled with ``fill_colour(avg_chans)``, then ``cv2.resize`` (INTER_LINEAR) to ``out_size`` if needed.
    """
    patch = _padded_patch(frame, center_xy, int(crop_side), fill_colour(avg_chans))
    if patch.shape[0] != out_size:
        patch = cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    tensor = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))
    return tensor.to(device=device).unsqueeze(0).float()


def _padded_patch(frame: np.ndarray, center_xy: Sequence[float], side: int, fill: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    xmin, ymin = crop_origin(center_xy, side)
    x0, y0 = max(xmin, 0), max(ymin, 0)
    x1, y1 = min(xmin + side, width), min(ymin + side, height)
    if x0 == xmin and y0 == ymin and x1 == xmin + side and y1 == ymin + side:
        return frame[y0:y1, x0:x1]
    if x0 >= x1 or y0 >= y1:  # the square lies wholly outside the frame
        return np.broadcast_to(fill.astype(np.uint8), (side, side, frame.shape[2])).copy()
    # copyMakeBorder writes the same bytes as filling a canvas and pasting, ~20x faster for large pads
    return cv2.copyMakeBorder(
        frame[y0:y1, x0:x1], y0 - ymin, ymin + side - y1, x0 - xmin, xmin + side - x1,
        cv2.BORDER_CONSTANT, value=[int(v) for v in fill],
    )


def frame_to_device(frame: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """Upload an HxWx3 uint8 frame once; the torch crop backend samples the returned HxWx3 uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(frame)).to(device=device, non_blocking=True)


def _linear_taps(out_size: int, crop_side: torch.Tensor, rows: bool, steps: torch.Tensor
                 ) -> tuple[torch.Tensor, ...]:
    """cv2 INTER_LINEAR taps for resizing ``crop_side`` (a float64 0-dim tensor) -> ``out_size`` along one axis,
    relative to the crop, with no host reads; ``steps`` = arange(out_size) in float64 on the same device.

    Returns (idx0, idx1, w0, w1): source indices in [0, crop_side) and integer weights out of 2048, computed
    as cv2 does: src = (dst + 0.5)·(crop/out) - 0.5 rounded to float32, weights rounded from its fraction.
    Out-of-crop taps are clamped to the crop's own edge (the crop is already padded, so cv2 replicates the
    crop border). cv2 also zeroes the fraction of clamped columns but keeps it for clamped rows.
    """
    scale = 1.0 / (out_size / crop_side)
    pos = ((steps + 0.5) * scale - 0.5).to(torch.float32)
    idx = torch.floor(pos)
    frac = pos - idx
    idx = idx.to(torch.int64)
    last = crop_side.to(torch.int64) - 1
    if not rows:
        frac = torch.where((idx < 0) | (idx >= last), torch.zeros_like(frac), frac)
    w1 = torch.round(frac * _COEF_SCALE).to(torch.int32)
    w0 = torch.round((1.0 - frac) * _COEF_SCALE).to(torch.int32)
    idx0 = torch.minimum(idx.clamp(min=0), last)
    idx1 = torch.minimum((idx + 1).clamp(min=0), last)
    return idx0, idx1, w0, w1


def crop_torch(
    frame_t: torch.Tensor,
    center_xy: Sequence[Scalar],
    out_size: int,
    crop_side: Scalar,
    fill: torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Crop on the device: [1, 3, out, out] BGR 0..255 of ``dtype``, reproducing :func:`crop_opencv`.

    ``frame_t`` is the HxWx3 uint8 frame on the device (:func:`frame_to_device`), ``fill`` the (3,) uint8
    padding colour on the same device; the centre and side are host numbers or float64 device scalars. Same crop
    window as the OpenCV backend; the resize reproduces cv2's INTER_LINEAR (11-bit fixed-point weights, the
    vectorised rounding of its vertical pass) with separable integer arithmetic, so results equal cv2's on x86
    builds (at most one grey level off if a cv2 build rounds differently). Fixed shapes and no host reads, so it
    can be captured in a CUDA graph.
    """
    device = frame_t.device
    side = crop_side
    if not isinstance(side, torch.Tensor):
        side = torch.tensor(float(side), dtype=torch.float64, device=device)
    steps = _steps(out_size, device)
    xmin, ymin = crop_origin(center_xy, crop_side)
    ix0, ix1, wx0, wx1 = _linear_taps(out_size, side, False, steps)
    iy0, iy1, wy0, wy1 = _linear_taps(out_size, side, True, steps)
    cols = torch.cat((ix0, ix1)) + xmin
    rows = torch.cat((iy0, iy1)) + ymin
    return _resample(frame_t, rows, cols, (wx0, wx1), (wy0, wy1), fill, dtype)


@lru_cache(maxsize=16)
def _steps(out_size: int, device: torch.device) -> torch.Tensor:
    """arange(out_size) in float64 on ``device``, made once (a captured crop reads it, never re-creates it)."""
    return torch.arange(out_size, dtype=torch.float64, device=device)


def _resample(
    frame_t: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    wx: tuple[torch.Tensor, torch.Tensor],
    wy: tuple[torch.Tensor, torch.Tensor],
    fill: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """cv2 INTER_LINEAR from frame rows/cols (first half: tap 0, second half: tap 1) with integer weights."""
    height, width = frame_t.shape[:2]
    wx0, wx1 = wx
    wy0, wy1 = wy
    col_ok = (cols >= 0) & (cols < width)
    row_ok = (rows >= 0) & (rows < height)
    taps = frame_t[rows.clamp(0, height - 1)[:, None], cols.clamp(0, width - 1)[None, :]]
    inside = (row_ok[:, None] & col_ok[None, :])[..., None]
    taps = torch.where(inside, taps, fill.view(1, 1, -1)).to(torch.int32)  # (2S, 2S, 3)
    n = wx0.shape[0]
    horiz = taps[:, :n] * wx0.view(1, n, 1) + taps[:, n:] * wx1.view(1, n, 1)  # (2S, S, 3), x2048
    # cv2's vectorised vertical pass: ((h >> 4) * w >> 16) per tap, summed, then (v + 2) >> 2.
    top = ((horiz[:n] >> 4) * wy0.view(n, 1, 1)) >> 16
    bottom = ((horiz[n:] >> 4) * wy1.view(n, 1, 1)) >> 16
    out = ((top + bottom + 2) >> 2).clamp_(0, 255)
    return out.permute(2, 0, 1).unsqueeze(0).to(dtype).contiguous()
