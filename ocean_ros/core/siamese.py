"""The Siamese stages of the step: network maps -> chosen cell -> new target state (spec §4, §5.5-5.7).

Map arithmetic runs in torch on the maps' device; the chosen cell's values (:class:`Peak`) and the state update
are host numbers or device scalars (:mod:`~ocean_ros.core.scalars`). The sigmoid runs in float32 as in TracKit;
penalties, window and fusion run in float64 because TracKit computes them in numpy float64 and argmax ties are
decided at that precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .geometry import cosine_window, grid_coords, score_grid, score_size
from .scalars import STATE_DTYPE, Scalar, py_max, py_min, sqrt

__all__ = [
    "MAP_DTYPE",
    "Peak",
    "ScoreGrid",
    "decode_boxes",
    "fuse_scores",
    "make_score_grid",
    "peak_picks",
    "resize_online_map",
    "scale_ratio_penalty",
    "update_state",
]

MAP_DTYPE = STATE_DTYPE


@dataclass(frozen=True)
class ScoreGrid:
    """Per-search-size constants on the device: cell coordinates (search-crop px) and the cosine window."""

    search_size: int
    score_size: int
    coords: torch.Tensor  # (N,) pixel coordinate of cell index j along x (and i along y), MAP_DTYPE
    window: torch.Tensor  # (N, N) cosine window, MAP_DTYPE


def make_score_grid(
    search_size: int,
    device: torch.device | str,
    exemplar_size: int = 127,
    stride: int = 8,
    n: int | None = None,
    origin: float | None = None,
) -> ScoreGrid:
    """Build the :class:`ScoreGrid` for a search crop of side ``search_size`` px.

    ``n`` and ``origin`` (search pixel of cell 0) come from the network's geometry
    (``net.score_size(S)``, ``net.grid_origin(S)``); without them TracKit's ResNet grid is used.
    """
    if n is None or origin is None:
        n = score_size(search_size, exemplar_size, stride)
        coords_np = score_grid(n, search_size, stride)
    else:
        coords_np = grid_coords(n, origin, stride)
    coords = torch.as_tensor(coords_np, dtype=MAP_DTYPE, device=device)
    window = torch.as_tensor(cosine_window(n), dtype=MAP_DTYPE, device=device)
    return ScoreGrid(search_size, n, coords, window)


class Peak(NamedTuple):
    """The chosen cell, in the order :func:`peak_picks` lays it out: flat index (row-major), box corners x1, y1,
    x2, y2 (search-crop px), fused score (0..1), scale/ratio penalty (0..1) and selection score."""

    index: Scalar
    x1: Scalar
    y1: Scalar
    x2: Scalar
    y2: Scalar
    score: Scalar
    penalty: Scalar
    pscore: Scalar


def fuse_scores(
    cls_logits: torch.Tensor, align_logits: torch.Tensor | None, align_ratio: float
) -> torch.Tensor:
    """σ(cls), or ratio·σ(cls) + (1 - ratio)·σ(align) when align logits are given; float32 [N, N]."""
    score = torch.sigmoid(cls_logits.float()).reshape(cls_logits.shape[-2:])
    if align_logits is None:
        return score
    align = torch.sigmoid(align_logits.float()).reshape(align_logits.shape[-2:])
    return align_ratio * score + (1 - align_ratio) * align


def decode_boxes(reg: torch.Tensor, grid: ScoreGrid) -> tuple[torch.Tensor, ...]:
    """Distances l, t, r, b ([1, 4, N, N], search px) -> corner maps x1, y1, x2, y2 (MAP_DTYPE, search px)."""
    left, top, right, bottom = reg.reshape(4, grid.score_size, grid.score_size).to(MAP_DTYPE)
    gx = grid.coords.view(1, -1)
    gy = grid.coords.view(-1, 1)
    return gx - left, gy - top, gx + right, gy + bottom


def _context_size(w: Scalar, h: Scalar) -> Scalar:
    pad = (w + h) * 0.5
    return sqrt((w + pad) * (h + pad))


def _change(r: torch.Tensor) -> torch.Tensor:
    return torch.maximum(r, 1.0 / r)


def scale_ratio_penalty(
    pred_w: torch.Tensor, pred_h: torch.Tensor, target_w: Scalar, target_h: Scalar, penalty_k: Scalar
) -> torch.Tensor:
    """exp(-(r_c·s_c - 1)·k) per cell (spec §5.6); predicted and target sizes in search-crop pixels."""
    s_c = _change(_context_size(pred_w, pred_h) / _context_size(target_w, target_h))
    r_c = _change((target_w / target_h) / (pred_w / pred_h))
    return torch.exp(-(r_c * s_c - 1) * penalty_k)


def peak_picks(
    score: torch.Tensor,
    boxes: tuple[torch.Tensor, ...],
    grid: ScoreGrid,
    target_w: Scalar,
    target_h: Scalar,
    penalty_k: Scalar,
    window_influence: Scalar,
    online_map: torch.Tensor | None = None,
    online_ratio: Scalar = 0.0,
) -> torch.Tensor:
    """Penalise, window, optionally fuse an online map and take the first row-major argmax: MAP_DTYPE [8] on
    the maps' device holding the chosen cell as :class:`Peak` orders it (no host read).

    ``score``: fused sigmoid [N, N]; ``boxes``: corners from :func:`decode_boxes`; ``target_w``/``target_h``:
    current target size in search-crop pixels; the scalars may be host numbers or device scalars.
    ``online_map`` (any [.., h, w] float map) is bicubically resized to N×N and blended as
    online_ratio·online + (1 - online_ratio)·pscore after penalty and window (spec §6.7).
    """
    x1, y1, x2, y2 = boxes
    pred_w, pred_h = x2 - x1, y2 - y1
    penalty = scale_ratio_penalty(pred_w, pred_h, target_w, target_h, penalty_k)
    pscore = penalty * score.to(MAP_DTYPE)
    pscore = pscore * (1 - window_influence) + grid.window * window_influence
    if online_map is not None:
        pscore = online_ratio * resize_online_map(online_map, grid.score_size) + (1 - online_ratio) * pscore
    peak = torch.argmax(pscore.reshape(-1))  # first maximum in row-major order
    maps = torch.stack([x1, y1, x2, y2, score.to(MAP_DTYPE), penalty, pscore]).reshape(7, -1)
    # index_select, not maps[:, peak]: indexing with a 0-dim tensor reads it on the host (a sync; no graph capture)
    return torch.cat([peak.to(MAP_DTYPE).reshape(1), maps.index_select(1, peak.reshape(1)).reshape(-1)])


def resize_online_map(online_map: torch.Tensor, n: int) -> torch.Tensor:
    """Bicubic resize (as cv2 INTER_CUBIC, half-pixel centres) of an online score map to [n, n] MAP_DTYPE."""
    m = online_map.reshape(1, 1, *online_map.shape[-2:]).float()
    return F.interpolate(m, size=(n, n), mode="bicubic", align_corners=False).reshape(n, n).to(MAP_DTYPE)


def update_state(
    state: tuple[Scalar, Scalar, Scalar, Scalar],
    peak: Peak,
    scale_z: Scalar,
    search_size: int,
    lr: Scalar,
    image_wh: tuple[float, float],
) -> tuple[tuple[Scalar, Scalar, Scalar, Scalar], Scalar]:
    """New state ``(cx, cy, w, h)`` (frame px) and the size rate from the chosen cell (spec §5.7).

    The centre moves by the full offset; the size moves with rate lr² (TracKit applies its update twice)
    where lr = penalty·score·``lr``. The centre is clipped to [0, image], the size to [10, image], with Python's
    min/max rule (a NaN centre or size clips to the image bound).
    """
    cx, cy, w, h = state
    w_t, h_t = (w * scale_z) / scale_z, (h * scale_z) / scale_z  # TracKit round-trips the size through crop units
    half = search_size // 2
    dx, dy = ((peak.x1 + peak.x2) / 2 - half) / scale_z, ((peak.y1 + peak.y2) / 2 - half) / scale_z
    pw, ph = (peak.x2 - peak.x1) / scale_z, (peak.y2 - peak.y1) / scale_z
    rate = peak.penalty * peak.score * lr
    res_w = pw * rate + (1 - rate) * w_t
    res_h = ph * rate + (1 - rate) * h_t
    new_w = w_t * (1 - rate) + rate * res_w
    new_h = h_t * (1 - rate) + rate * res_h
    img_w, img_h = image_wh
    new = (
        py_max(0.0, py_min(img_w, cx + dx)),
        py_max(0.0, py_min(img_h, cy + dy)),
        py_max(10.0, py_min(img_w, new_w)),
        py_max(10.0, py_min(img_h, new_h)),
    )
    return new, rate
