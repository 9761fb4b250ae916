"""The online branch's localisation flags (ATOM's advanced localisation, spec §6.6)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..config import OnlineParams
from ..scalars import Scalar

__all__ = ["FLAGS", "HARD_NEGATIVE", "NORMAL", "NOT_FOUND", "UNCERTAIN", "flag_name", "localize"]

FLAGS = ("normal", "hard_negative", "uncertain", "not_found")
NORMAL, HARD_NEGATIVE, UNCERTAIN, NOT_FOUND = range(4)


def flag_name(code: int) -> str:
    """Name of a localisation flag code (0 normal, 1 hard_negative, 2 uncertain, 3 not_found)."""
    return FLAGS[code]


def localize(
    scores: Tensor,
    target_size_cells: Sequence[Scalar],
    previous_cells: Sequence[Scalar],
    params: OnlineParams,
) -> Tensor:
    """Localisation flag code (0-dim int64 tensor on the scores' device; see :data:`FLAGS`), no host sync.

    ``scores``: raw map [.., H, W]; ``target_size_cells``: (h, w) of the target in score cells (output grid
    = H - 1 cells over the sample); ``previous_cells``: the previous target position relative to the sample
    centre, in cells (y, x). ATOM's advanced localisation: not_found if the peak < threshold; else the target
    neighbourhood (neighborhood_scale x target size) around the peak is zeroed and the second peak decides.
    """
    height, width = scores.shape[-2:]
    flat = scores.reshape(-1).float()
    peak1, index1 = flat.max(dim=0)
    row1 = torch.div(index1, width, rounding_mode="floor").double()
    col1 = (index1 % width).double()
    half_h = params.neighborhood_scale * target_size_cells[0] / 2
    half_w = params.neighborhood_scale * target_size_cells[1] / 2
    top = torch.round(row1 - half_h).clamp(min=0)
    bottom = torch.round(row1 + half_h + 1).clamp(max=height)
    left = torch.round(col1 - half_w).clamp(min=0)
    right = torch.round(col1 + half_w + 1).clamp(max=width)
    rows = torch.arange(height, device=scores.device, dtype=torch.float64).view(-1, 1)
    cols = torch.arange(width, device=scores.device, dtype=torch.float64).view(1, -1)
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    masked = torch.where(inside.reshape(-1), torch.zeros_like(flat), flat)
    peak2, index2 = masked.max(dim=0)
    row2 = torch.div(index2, width, rounding_mode="floor").double()
    col2 = (index2 % width).double()
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    dist1 = torch.hypot(row1 - centre_y - previous_cells[0], col1 - centre_x - previous_cells[1])
    dist2 = torch.hypot(row2 - centre_y - previous_cells[0], col2 - centre_x - previous_cells[1])
    limit = params.displacement_scale * math.sqrt(height * width) / 2
    one_far = ((dist2 > limit) & (dist1 < limit)) | ((dist2 < limit) & (dist1 > limit))
    distractor = torch.where(one_far, HARD_NEGATIVE, UNCERTAIN)
    hard = (peak2 > params.hard_negative_threshold * peak1) & (peak2 > params.not_found_threshold)
    code = torch.where(hard, HARD_NEGATIVE, NORMAL)
    code = torch.where(peak2 > params.distractor_threshold * peak1, distractor, code)
    return torch.where(peak1 < params.not_found_threshold, NOT_FOUND, code).long()
