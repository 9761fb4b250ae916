"""Ocean's losses (training-spec §1.5): balanced BCE, IoU loss on the box distances, object-aware BCE.

Each term is returned as (sum, count) so a caller can normalise over a batch split across processes
(``total = sum / global count``); :func:`ocean_loss` does the single-process normalisation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossTerms", "iou_label", "iou_loss_terms", "balanced_bce_terms", "align_bce_terms", "ocean_loss"]


class LossTerms(NamedTuple):
    """Sums and counts of the loss terms of one (local) batch."""

    pos_sum: Tensor
    pos_count: Tensor
    neg_sum: Tensor
    neg_count: Tensor
    reg_sum: Tensor
    reg_count: Tensor
    align_sum: Tensor
    align_count: Tensor


def _intersection_union(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """I and U of boxes given as distances l, t, r, b ([..., 4]) from the same point."""
    pl, pt, pr, pb = pred.unbind(-1)
    tl, tt, tr, tb = target.unbind(-1)
    area_p = (pl + pr) * (pt + pb)
    area_t = (tl + tr) * (tt + tb)
    inter = (torch.minimum(pl, tl) + torch.minimum(pr, tr)) * (torch.minimum(pt, tt) + torch.minimum(pb, tb))
    return inter, area_p + area_t - inter


def iou_loss_terms(pred: Tensor, target: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Sum over weighted cells of -ln((I+1)/(U+1)) and the number of such cells.

    pred, target [B,4,N,N] distances (px, pred > 0); weight [B,N,N] 0/1.
    """
    mask = weight > 0
    p = pred.permute(0, 2, 3, 1)[mask].float()
    t = target.permute(0, 2, 3, 1)[mask].float()
    inter, union = _intersection_union(p, t)
    loss = -torch.log((inter + 1.0) / (union + 1.0))
    return loss.sum(), mask.sum().to(loss.dtype)


def balanced_bce_terms(logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """BCE-with-logits summed separately over positive (label 1) and negative (label 0) cells, with counts."""
    logits = logits.reshape(label.shape).float()
    bce = F.binary_cross_entropy_with_logits(logits, label, reduction="none")
    pos = label > 0.5
    neg = ~pos
    return bce[pos].sum(), pos.sum().float(), bce[neg].sum(), neg.sum().float()


def iou_label(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Object-aware label: IoU of the predicted and true boxes per cell, 0 outside the box; [B,N,N], no grad.

    The label is detached: the object-aware head learns to predict the regression quality, it does not
    push the regression through its target (TracKit leaves that path open).
    """
    with torch.no_grad():
        inter, union = _intersection_union(pred.permute(0, 2, 3, 1).float(), target.permute(0, 2, 3, 1).float())
        return ((inter + 1.0) / (union + 1.0) * weight).clamp(0.0, 1.0)


def align_bce_terms(logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """BCE-with-logits of the object-aware logits against the IoU label, summed over all cells, with count."""
    logits = logits.reshape(label.shape).float()
    bce = F.binary_cross_entropy_with_logits(logits, label, reduction="sum")
    return bce, torch.tensor(float(label.numel()), device=label.device)


def loss_terms(cls: Tensor, reg: Tensor, align: Tensor | None, cls_label: Tensor, reg_target: Tensor,
               reg_weight: Tensor) -> LossTerms:
    """Every term of one batch."""
    pos_sum, pos_count, neg_sum, neg_count = balanced_bce_terms(cls, cls_label)
    reg_sum, reg_count = iou_loss_terms(reg, reg_target, reg_weight)
    if align is not None:
        align_sum, align_count = align_bce_terms(align, iou_label(reg, reg_target, reg_weight))
    else:
        align_sum, align_count = cls.new_zeros((), dtype=torch.float32), cls.new_zeros((), dtype=torch.float32)
    return LossTerms(pos_sum, pos_count, neg_sum, neg_count, reg_sum, reg_count, align_sum, align_count)


def combine(terms: LossTerms, counts: Tensor | None = None, scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss L_cls + L_reg + L_align from sums and (optionally global) counts [4]: pos, neg, reg, align.

    L_cls = 0.5·mean over positives + 0.5·mean over negatives (the negative mean alone when a batch has no
    positive). ``scale`` multiplies the total (world size under DDP, whose gradient averaging divides by it).
    """
    if counts is None:
        counts = torch.stack([terms.pos_count, terms.neg_count, terms.reg_count, terms.align_count]).detach()
    pos_n, neg_n, reg_n, align_n = counts.clamp(min=1.0).unbind(0)
    has_pos = counts[0] > 0
    pos_mean = terms.pos_sum / pos_n
    neg_mean = terms.neg_sum / neg_n
    cls_loss = torch.where(has_pos, 0.5 * pos_mean + 0.5 * neg_mean, neg_mean)
    reg_loss = terms.reg_sum / reg_n
    align_loss = terms.align_sum / align_n
    total = (cls_loss + reg_loss + align_loss) * scale
    return total, {"cls": cls_loss.detach(), "reg": reg_loss.detach(), "align": align_loss.detach()}


def ocean_loss(cls: Tensor, reg: Tensor, align: Tensor | None, cls_label: Tensor, reg_target: Tensor,
               reg_weight: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss of one batch in one process, and its parts."""
    return combine(loss_terms(cls, reg, align, cls_label, reg_target, reg_weight))
