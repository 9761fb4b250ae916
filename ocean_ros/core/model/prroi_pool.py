"""Precise RoI Pooling in plain PyTorch: the exact mean of the bilinearly interpolated map over each bin.

The feature map is read as the continuous function f(x, y) = Σ_ij v[i, j]·hat(x - j)·hat(y - i), hat(t) =
max(0, 1 - |t|): bilinear interpolation between pixel centres at integer coordinates, decaying to zero one
pixel outside the map (the reference extension reads outside pixels as zero). The integral of f over a bin
[x0, x1]×[y0, y1] therefore separates into Σ_ij v[i, j]·Hx[j]·Hy[i] with Hx[j] = ∫ hat(x - j) dx over [x0, x1],
so each RoI costs two small weight matrices and one contraction; no compiled extension is needed and
autograd gives the gradient with respect to the map (and to the box coordinates).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hat_integral", "prroi_pool2d"]


def _half_hat_integral(a: Tensor, b: Tensor) -> Tensor:
    """∫ (1 - |t|) dt over [a, b] for a <= b on the same side of 0 (|a|, |b| <= 1): length x mean value."""
    return (b - a) * (1 - (a.abs() + b.abs()) * 0.5)


def hat_integral(start: Tensor, end: Tensor) -> Tensor:
    """∫ hat(t) dt over [start, end] (elementwise, start <= end), hat(t) = max(0, 1 - |t|).

    Written as length x mean on each half of the hat, which stays accurate for tiny intervals.
    """
    left = _half_hat_integral(start.clamp(-1.0, 0.0), end.clamp(-1.0, 0.0))
    right = _half_hat_integral(start.clamp(0.0, 1.0), end.clamp(0.0, 1.0))
    return left + right


def _axis_weights(start: Tensor, length: Tensor, bins: int, size: int) -> Tensor:
    """[K, bins, size] mean of each pixel's hat over each bin (zero for empty bins).

    ``start``/``length``: [K] RoI start and extent along the axis in feature-map pixels.
    """
    step = length / bins
    k = torch.arange(bins, device=start.device, dtype=start.dtype)
    lo = start[:, None] + step[:, None] * k  # [K, bins]
    hi = lo + step[:, None]
    pix = torch.arange(size, device=start.device, dtype=start.dtype)
    integral = hat_integral(lo[..., None] - pix, hi[..., None] - pix)  # [K, bins, size]
    safe = torch.where(step > 0, step, torch.ones_like(step))
    return torch.where((step > 0)[:, None, None], integral / safe[:, None, None], torch.zeros_like(integral))


def prroi_pool2d(
    features: Tensor, rois: Tensor, pooled_size: int | tuple[int, int], spatial_scale: float
) -> Tensor:
    """Precise RoI pooling: [B, C, H, W] features, [K, 5] RoIs → [K, C, ph, pw].

    Each RoI row is ``(batch_index, x0, y0, x1, y1)`` in input-image pixels; it is scaled by
    ``spatial_scale`` into feature pixels, where pixel (i, j) sits at integer coordinates (x=j, y=i) with no
    half-pixel offset. A bin's output is the integral of the bilinear interpolant over the bin divided by the
    bin area (0 for bins of zero area; x1 < x0 counts as an empty RoI). The weights are built in float64 and
    the contraction runs in the features' dtype.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, H, W], got {tuple(features.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be [K, 5] (batch_index, x0, y0, x1, y1), got {tuple(rois.shape)}")
    ph, pw = (pooled_size, pooled_size) if isinstance(pooled_size, int) else pooled_size
    height, width = features.shape[-2:]
    batch = rois[:, 0].round().long()
    box = rois[:, 1:].to(torch.float64) * spatial_scale
    x0, y0, x1, y1 = box.unbind(1)
    wy = _axis_weights(y0, (y1 - y0).clamp(min=0), ph, height).to(features.dtype)
    wx = _axis_weights(x0, (x1 - x0).clamp(min=0), pw, width).to(features.dtype)
    return torch.einsum("kchw,kph,kqw->kcpq", features[batch], wy, wx)
