"""One Siamese step of the Ocean tracker: network maps -> chosen cell -> new target state (spec §4, §5.5-5.7).

Map arithmetic runs in torch on the maps' device; only the few scalars at the chosen cell reach the host
(one copy). The sigmoid runs in float32 as in TracKit; penalties, window and fusion run in float64 because
TracKit computes them in numpy float64 and argmax ties are decided at that precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .geometry import cosine_window, grid_coords, score_grid, score_size

__all__ = [
    "ScoreGrid",
    "StepParams",
    "StepResult",
    "decode_boxes",
    "fuse_scores",
    "make_score_grid",
    "peak_picks",
    "py_max",
    "py_min",
    "resize_online_map",
    "scale_ratio_penalty",
    "select_peak",
    "update_state",
    "update_state_t",
]

MAP_DTYPE = torch.float64


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


@dataclass(frozen=True)
class StepParams:
    """The step's tunables (see :class:`~ocean_ros.core.config.TrackerConfig` for meanings)."""

    penalty_k: float
    window_influence: float
    lr: float
    align_ratio: float = 0.94
    online_ratio: float = 0.0


class StepResult(NamedTuple):
    """Host scalars at the chosen cell; box in search-crop pixels."""

    row: int
    col: int
    cx: float
    cy: float
    w: float
    h: float
    score: float  # fused sigmoid at the cell, 0..1
    penalty: float  # scale/ratio penalty at the cell, 0..1
    pscore: float  # selection score at the cell (penalised, windowed, online-fused)


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


def _context_size(w: torch.Tensor | float, h: torch.Tensor | float) -> torch.Tensor | float:
    pad = (w + h) * 0.5
    sz2 = (w + pad) * (h + pad)
    return torch.sqrt(sz2) if isinstance(sz2, torch.Tensor) else math.sqrt(sz2)


def _change(r: torch.Tensor) -> torch.Tensor:
    return torch.maximum(r, 1.0 / r)


def scale_ratio_penalty(
    pred_w: torch.Tensor, pred_h: torch.Tensor, target_w: Scalar, target_h: Scalar, penalty_k: Scalar
) -> torch.Tensor:
    """exp(-(r_c·s_c - 1)·k) per cell (spec §5.6); predicted and target sizes in search-crop pixels."""
    s_c = _change(_context_size(pred_w, pred_h) / _context_size(target_w, target_h))
    r_c = _change((target_w / target_h) / (pred_w / pred_h))
    return torch.exp(-(r_c * s_c - 1) * penalty_k)


def select_peak(
    score: torch.Tensor,
    boxes: tuple[torch.Tensor, ...],
    grid: ScoreGrid,
    target_wh: tuple[float, float],
    params: StepParams,
    online_map: torch.Tensor | None = None,
) -> StepResult:
    """Penalise, window, optionally fuse an online map, take the first row-major argmax; one host copy.

    ``score``: fused sigmoid [N, N]; ``boxes``: corners from :func:`decode_boxes`; ``target_wh``: current
    target size in search-crop pixels. ``online_map`` (any [.., h, w] float map) is bicubically resized to
    N×N and blended as online_ratio·online + (1 - online_ratio)·pscore after penalty and window (spec §6.7).
    """
    picks = peak_picks(
        score, boxes, grid, target_wh[0], target_wh[1], params.penalty_k, params.window_influence,
        online_map, params.online_ratio,
    )
    idx, px1, py1, px2, py2, sc, pen, ps = picks.cpu().tolist()
    row, col = divmod(int(idx), grid.score_size)
    return StepResult(row, col, (px1 + px2) / 2, (py1 + py2) / 2, px2 - px1, py2 - py1, sc, pen, ps)


Scalar = float | torch.Tensor  # a Python float or a 0-dim MAP_DTYPE tensor on the maps' device


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
    """:func:`select_peak` without the host read: MAP_DTYPE [8] on the device holding
    (flat index, x1, y1, x2, y2, score, penalty, pscore) of the chosen cell; scalars may be device tensors."""
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
    center: tuple[float, float],
    size: tuple[float, float],
    step: StepResult,
    scale_z: float,
    search_size: int,
    lr: float,
    image_wh: tuple[int, int],
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """New ``(center, size, size_rate)`` in frame pixels from the chosen cell (spec §5.7).

    The centre moves by the full offset; the size moves with rate lr² (TracKit applies its update twice)
    where lr = penalty·score·``lr``. The centre is clipped to [0, image], the size to [10, image].
    """
    w_c, h_c = size[0] * scale_z, size[1] * scale_z
    w_t, h_t = w_c / scale_z, h_c / scale_z  # TracKit round-trips the size through crop units
    half = search_size // 2
    dx, dy = (step.cx - half) / scale_z, (step.cy - half) / scale_z
    pw, ph = step.w / scale_z, step.h / scale_z
    rate = step.penalty * step.score * lr
    res_w = pw * rate + (1 - rate) * w_t
    res_h = ph * rate + (1 - rate) * h_t
    new_w = w_t * (1 - rate) + rate * res_w
    new_h = h_t * (1 - rate) + rate * res_h
    img_w, img_h = image_wh
    cx = max(0.0, min(float(img_w), center[0] + dx))
    cy = max(0.0, min(float(img_h), center[1] + dy))
    new_w = max(10.0, min(float(img_w), new_w))
    new_h = max(10.0, min(float(img_h), new_h))
    return (cx, cy), (new_w, new_h), rate


def py_min(a: Scalar, b: torch.Tensor) -> torch.Tensor:
    """Python's ``min(a, b)`` elementwise: ``b`` only where b < a (so a NaN ``b`` gives ``a``)."""
    return torch.where(b < a, b, a)


def py_max(a: Scalar, b: torch.Tensor) -> torch.Tensor:
    """Python's ``max(a, b)`` elementwise: ``b`` only where b > a (so a NaN ``b`` gives ``a``)."""
    return torch.where(b > a, b, a)


def update_state_t(
    state: torch.Tensor,
    picks: torch.Tensor,
    scale_z: torch.Tensor,
    search_size: int,
    lr: Scalar,
    image_wh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`update_state` on the device: ``state`` (cx, cy, w, h) MAP_DTYPE [4], ``picks`` from
    :func:`peak_picks`, ``image_wh`` MAP_DTYPE [2] → (new state [4], size rate 0-dim). Same float64 operations
    in the same order as the host function, and the same clipping (a NaN centre or size clips to the image)."""
    cx, cy, w, h = state.unbind()
    _, px1, py1, px2, py2, sc, pen, _ = picks.unbind()
    w_t, h_t = (w * scale_z) / scale_z, (h * scale_z) / scale_z
    half = search_size // 2
    dx, dy = ((px1 + px2) / 2 - half) / scale_z, ((py1 + py2) / 2 - half) / scale_z
    pw, ph = (px2 - px1) / scale_z, (py2 - py1) / scale_z
    rate = pen * sc * lr
    res_w = pw * rate + (1 - rate) * w_t
    res_h = ph * rate + (1 - rate) * h_t
    new_w = w_t * (1 - rate) + rate * res_w
    new_h = h_t * (1 - rate) + rate * res_h
    img_w, img_h = image_wh.unbind()
    new = torch.stack([
        py_max(0.0, py_min(img_w, cx + dx)),
        py_max(0.0, py_min(img_h, cy + dy)),
        py_max(10.0, py_min(img_w, new_w)),
        py_max(10.0, py_min(img_h, new_h)),
    ])
    return new, rate
