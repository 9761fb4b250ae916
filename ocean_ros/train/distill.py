"""Distillation from the NanoTrack v3 teacher (:mod:`ocean_ros.train.teacher`) into a student's score grid.

Both grids are square and axis-aligned: cell u sits on search pixel ``origin + stride·u``. The teacher maps are
sampled bilinearly at the student's cell points (exact indexing when the positions fall on teacher cells, as
for Ocean-Lite: student origin 47, stride 16 → teacher cell u + 2 at S = 255 and 287).

Losses come as (sum, count) like :mod:`ocean_ros.train.losses`, so a caller can normalise over processes:

- classification: Bernoulli KL(teacher p ‖ sigmoid(student logit)) per valid cell (zero iff they agree);
- box: IoU loss −ln((I+1)/(U+1)) of the student's l, t, r, b against the teacher's, weighted per cell by the
  teacher score where it exceeds ``box_threshold`` (default 0.5; 0 elsewhere and outside the teacher grid).
  The weight sum is the count; ``box_threshold=0`` weights every valid cell by its score.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import _intersection_union
from .teacher import TeacherMaps

__all__ = ["map_teacher_to_student", "sample_teacher", "distill_terms", "distill_means", "distill_loss", "PROB_EPS"]

PROB_EPS = 1e-6  # teacher probabilities are clamped to [PROB_EPS, 1 − PROB_EPS]
_Axis = tuple[Tensor, Tensor, Tensor | None]  # lower index, upper index, upper weight (None: integer indices)


def map_teacher_to_student(teacher_origin: float, teacher_stride: float, teacher_size: int, student_origin: float,
                           student_stride: float, student_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(fractional teacher index [Ns] float64, inside [Ns] bool) of each student cell along one axis.

    Student cell u sits on pixel ``student_origin + student_stride·u``, i.e. at teacher index
    ``(pixel − teacher_origin) / teacher_stride``; inside = the index lies in [0, teacher_size − 1].
    """
    pixel = student_origin + student_stride * np.arange(student_size, dtype=np.float64)
    index = (pixel - teacher_origin) / teacher_stride
    return index, (index >= 0.0) & (index <= teacher_size - 1)


def _interp(index: np.ndarray, size: int, device: torch.device) -> _Axis:
    """Lower / upper neighbour and upper weight of each (clamped) index; weight None when all are integers."""
    clamped = np.clip(index, 0.0, size - 1)
    lo = np.floor(clamped).astype(np.int64)
    frac = clamped - lo
    hi = np.minimum(lo + 1, size - 1)
    weight = torch.as_tensor(frac, dtype=torch.float32, device=device) if frac.any() else None
    return torch.as_tensor(lo, device=device), torch.as_tensor(hi, device=device), weight


def _sample(maps: Tensor, rows: _Axis, cols: _Axis) -> Tensor:
    """Separable bilinear sampling of [..., T, T] at the (lo, hi, weight) rows and columns."""

    def along(x: Tensor, axis: int, lo: Tensor, hi: Tensor, w: Tensor | None) -> Tensor:
        a = x.index_select(axis, lo)
        if w is None:
            return a
        shape = [1] * x.dim()
        shape[axis] = -1
        w = w.to(x.dtype).reshape(shape)
        return a * (1 - w) + x.index_select(axis, hi) * w

    return along(along(maps, maps.dim() - 2, *rows), maps.dim() - 1, *cols)


def sample_teacher(maps: TeacherMaps, student_origin: float, student_stride: float,
                   student_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Teacher maps on the student grid: (score [B,Ns,Ns], ltrb [B,4,Ns,Ns], valid [1,Ns,Ns] bool).

    Distances are relative to each cell's own point, so they are interpolated as they are (exact for a box
    the teacher predicts consistently from neighbouring cells). Cells outside the teacher grid take the edge
    values and ``valid`` False.
    """
    size = maps.score.shape[-1]
    index, inside = map_teacher_to_student(maps.origin, maps.stride, size, student_origin, student_stride,
                                           student_size)
    axis = _interp(index, size, maps.score.device)
    score = _sample(maps.score, axis, axis)
    ltrb = _sample(maps.ltrb, axis, axis)
    inside_t = torch.as_tensor(inside, device=maps.score.device)
    valid = (inside_t[:, None] & inside_t[None, :])[None]
    return score, ltrb, valid


def distill_terms(student_logits: Tensor, student_reg: Tensor, teacher_score: Tensor, teacher_ltrb: Tensor,
                  valid: Tensor | None = None, box_threshold: float = 0.5) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(cls_sum, cls_count, box_sum, box_weight) of one (local) batch, float32.

    student_logits [B,1,N,N] or [B,N,N] (foreground logit), student_reg [B,4,N,N] (px, > 0), teacher_score
    [B,N,N] in [0, 1], teacher_ltrb [B,4,N,N] (px), valid [B or 1,N,N] bool (None: every cell). The teacher
    tensors are treated as constants (detached).
    """
    p = teacher_score.detach().float().clamp(PROB_EPS, 1.0 - PROB_EPS)
    s = student_logits.reshape(p.shape).float()
    mask = torch.ones_like(p, dtype=torch.bool) if valid is None else valid.to(torch.bool).expand_as(p)
    kl = p * (p.log() - F.logsigmoid(s)) + (1.0 - p) * (torch.log1p(-p) - F.logsigmoid(-s))
    cls_sum = torch.where(mask, kl, torch.zeros_like(kl)).sum()
    cls_count = mask.sum().float()

    score = teacher_score.detach().float()
    weight = torch.where(mask & (score > box_threshold), score, torch.zeros_like(score))
    sel = weight > 0  # only these cells enter the IoU (elsewhere the distances may be anything)
    inter, union = _intersection_union(student_reg.float().permute(0, 2, 3, 1)[sel],
                                       teacher_ltrb.detach().float().permute(0, 2, 3, 1)[sel])
    box_sum = (-torch.log((inter + 1.0) / (union + 1.0)) * weight[sel]).sum()
    return cls_sum, cls_count, box_sum, weight.sum()


def distill_means(cls_sum: Tensor, cls_count: Tensor, box_sum: Tensor, box_weight: Tensor) -> tuple[Tensor, Tensor]:
    """(KL mean, weighted IoU-loss mean) from :func:`distill_terms`' sums and counts (global counts under DDP);
    a batch without a counted cell gives 0."""
    return cls_sum / cls_count.clamp(min=1e-6), box_sum / box_weight.clamp(min=1e-6)


def distill_loss(student_logits: Tensor, student_reg: Tensor, teacher_score: Tensor, teacher_ltrb: Tensor,
                 valid: Tensor | None = None, box_threshold: float = 0.5, cls_weight: float = 1.0,
                 box_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Single-process total ``cls_weight·KL mean + box_weight·weighted IoU-loss mean`` and its (detached) parts
    ``kd_cls``, ``kd_box`` (:func:`distill_means`)."""
    kd_cls, kd_box = distill_means(*distill_terms(student_logits, student_reg, teacher_score, teacher_ltrb, valid,
                                                  box_threshold))
    total = cls_weight * kd_cls + box_weight * kd_box
    return total, {"kd_cls": kd_cls.detach(), "kd_box": kd_box.detach()}
