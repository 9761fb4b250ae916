"""Ocean's online classifier (a DiMP-style discriminative filter, spec §6.1): projection, initialiser, optimiser.

Parameter names follow TracKit's checkpoint layout under ``classifier.``:
``feature_extractor.0`` (3x3 projection 1024→512), ``filter_initializer.filter_conv``,
``filter_optimizer.{log_step_length, filter_reg, label_map_predictor, target_mask_predictor.0,
spatial_weight_predictor}``.

Conventions: classification features are [N, 512, h, w] (stride 16; 13x13 for a 224 sample); target boxes are
``x, y, w, h`` in sample pixels (rows of an [N, 4] tensor); the filter is [1, 512, 4, 4]; scores are
[N, 1, h+1, w+1] raw responses (no activation). Everything after the projection conv runs in float32 whatever
the dtype of the weights or backbone (half-precision backbones feed float32 features to the optimiser).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .prroi_pool import prroi_pool2d

__all__ = [
    "BIN_DISPLACEMENT",
    "FEATURE_DIM",
    "FEATURE_STRIDE",
    "FILTER_SIZE",
    "NUM_DIST_BINS",
    "FilterInitializer",
    "FilterOptimizer",
    "InstanceL2Norm",
    "OnlineClassifier",
    "OptimizerTargets",
    "apply_filter",
    "distance_bins",
    "filter_gradient",
    "initialise_untrained",
]

FEATURE_DIM = 512
FILTER_SIZE = 4
FEATURE_STRIDE = 16
NUM_DIST_BINS = 100
BIN_DISPLACEMENT = 0.1  # score cells per distance bin
MIN_FILTER_REG = 1e-3
_ALPHA_MIN_DENOMINATOR = 1e-8


def apply_filter(feat: Tensor, filt: Tensor) -> Tensor:
    """Correlate features [N, C, h, w] with the filter [1, C, k, k] (padding k//2) → scores [N, 1, h', w'].

    Computed as one channel contraction per filter tap (a matrix product) followed by k² shifted sums: the
    same sums as ``conv2d(feat, filt, padding=k//2)`` but several times faster on CPU for single-output filters.
    """
    n, c, h, w = feat.shape
    k = filt.shape[-1]
    pad = k // 2
    taps = torch.matmul(filt.reshape(c, k * k).t(), feat.reshape(n, c, h * w))  # [N, k*k, h*w]
    taps = F.pad(taps.view(n, k * k, h, w), (pad, pad, pad, pad))
    out_h, out_w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    scores = taps[:, 0, :out_h, :out_w]
    for tap in range(1, k * k):
        u, v = divmod(tap, k)
        scores = scores + taps[:, tap, u : u + out_h, v : v + out_w]
    return scores.unsqueeze(1)


def filter_gradient(feat: Tensor, residual: Tensor, filter_size: int = FILTER_SIZE) -> Tensor:
    """Transpose of :func:`apply_filter` w.r.t. the filter, summed over samples: [N, C, h, w], [N, 1, h', w'] →
    [1, C, k, k], i.e. Σ_n Σ_ij residual[n, i, j]·padded_feat[n, c, i+u, j+v]."""
    n, c, h, w = feat.shape
    # One group per sample: its residual map correlated with each of its feature channels, then summed over
    # samples and flipped. Much faster on CPU than one conv over all samples, and it follows TracKit's
    # rounding more closely (the 25 initial steps amplify rounding differences).
    per_sample = F.conv2d(
        residual.reshape(1, n, *residual.shape[-2:]),
        feat.reshape(n * c, 1, h, w),
        padding=(filter_size - 1) // 2,
        groups=n,
    )
    return per_sample.view(n, c, filter_size, filter_size).sum(dim=0, keepdim=True).flip((2, 3))


class InstanceL2Norm(nn.Module):
    """Scale each sample to a fixed L2 norm: x·scale·sqrt(C·H·W / (Σx² + eps)), computed in float32."""

    def __init__(self, scale: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = scale
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        count = x.shape[1] * x.shape[2] * x.shape[3]
        energy = (x * x).sum(dim=(1, 2, 3), keepdim=True)
        return x * (self.scale * torch.sqrt(count / (energy + self.eps)))


def distance_bins(centers: Tensor, output_size: tuple[int, int]) -> Tensor:
    """Distance-bin encoding [N, 100, H, W] of every score cell's distance to each sample's target centre.

    ``centers``: [N, 2] (row, col) in score cells. Bin k (displacement 0.1 cells) holds the triangular
    membership max(0, 1 - |d/0.1 - k|); the last bin saturates, min(1, max(0, 1 + d/0.1 - k)).
    """
    bins = torch.arange(NUM_DIST_BINS, dtype=torch.float32, device=centers.device).view(1, -1, 1, 1)
    diff = _bin_position(centers, output_size) - bins
    return torch.cat(
        (torch.relu(1.0 - diff[:, :-1].abs()), (1.0 + diff[:, -1:]).clamp(0.0, 1.0)), dim=1
    )


def _bin_position(centers: Tensor, output_size: tuple[int, int]) -> Tensor:
    """Every cell's distance to each sample's centre in bins (distance / 0.1 cells): [N, 1, H, W] float32."""
    device = centers.device
    rows = torch.arange(output_size[0], dtype=torch.float32, device=device).view(1, 1, -1, 1)
    cols = torch.arange(output_size[1], dtype=torch.float32, device=device).view(1, 1, 1, -1)
    d_row = rows - centers[:, 0].view(-1, 1, 1, 1)
    d_col = cols - centers[:, 1].view(-1, 1, 1, 1)
    return torch.sqrt(d_row * d_row + d_col * d_col) / BIN_DISPLACEMENT


def _binned(position: Tensor, weight: Tensor) -> Tensor:
    """Σ_k weight_k · bin_k(position) for a 1x1 conv ``weight`` [1, 100, 1, 1] over the distance bins, from the
    bins that can be non-zero: the triangular bins floor(p) and floor(p)+1 (below the last) and the last one."""
    w = weight.float().reshape(-1)
    last = NUM_DIST_BINS - 1
    triangular = torch.cat((w[:last], w.new_zeros(2)))  # index `last` and beyond: no triangular bin
    low = position.floor().clamp(0, last).long()
    high = low + 1
    term_low = triangular[low] * torch.relu(1.0 - (position - low).abs())
    term_high = triangular[high] * torch.relu(1.0 - (position - high).abs())
    return term_low + term_high + w[last] * (1.0 + (position - last)).clamp(0.0, 1.0)


class FilterInitializer(nn.Module):
    """Initial filter: 3x3 conv on the features, Precise RoI pooling (4x4) of each target box, mean over samples."""

    def __init__(self, feature_dim: int = FEATURE_DIM, filter_size: int = FILTER_SIZE) -> None:
        super().__init__()
        self.filter_size = filter_size
        self.filter_conv = nn.Conv2d(feature_dim, feature_dim, 3, padding=1)

    def forward(self, feat: Tensor, boxes: Tensor) -> Tensor:
        """Features [N, C, h, w] (float32) and boxes [N, 4] (x, y, w, h, sample px) → filter [1, C, k, k]."""
        conv = self.filter_conv
        x = F.conv2d(feat.float(), conv.weight.float(), conv.bias.float(), padding=1)
        boxes = boxes.to(device=x.device, dtype=torch.float32)
        index = torch.arange(boxes.shape[0], device=x.device, dtype=torch.float32)
        rois = torch.cat((index[:, None], boxes[:, :2], boxes[:, :2] + boxes[:, 2:]), dim=1)
        pooled = prroi_pool2d(x, rois, self.filter_size, 1.0 / FEATURE_STRIDE)
        return pooled.mean(dim=0, keepdim=True)


class OptimizerTargets:
    """Per-sample training targets of the filter optimiser, for fixed boxes: [N, 1, H, W] each.

    ``label`` y, ``mask`` m (leaky-ReLU slope in the score activation) and ``spatial_weight`` v.
    """

    __slots__ = ("label", "mask", "spatial_weight")

    def __init__(self, label: Tensor, mask: Tensor, spatial_weight: Tensor) -> None:
        self.label = label
        self.mask = mask
        self.spatial_weight = spatial_weight


class FilterOptimizer(nn.Module):
    """Steepest descent with a Gauss-Newton step length (DiMP), with learned step length and regularisation.

    Loss: Σ_n Σ_cells (u·(a(s) - y))² + λ‖f‖², s = f∗x, a(s) = ((1-m)/2)|s| + ((1+m)/2)s,
    u = v·sqrt(sample weight), λ = max(filter_reg², 1e-6).
    """

    def __init__(self, num_bins: int = NUM_DIST_BINS) -> None:
        super().__init__()
        self.log_step_length = nn.Parameter(torch.full((1,), math.log(0.9)))
        self.filter_reg = nn.Parameter(torch.full((1,), 0.1))
        self.label_map_predictor = nn.Conv2d(num_bins, 1, 1, bias=False)
        self.target_mask_predictor = nn.Sequential(nn.Conv2d(num_bins, 1, 1, bias=False), nn.Sigmoid())
        self.spatial_weight_predictor = nn.Conv2d(num_bins, 1, 1, bias=False)

    def targets(self, boxes: Tensor, output_size: tuple[int, int]) -> OptimizerTargets:
        """Label, mask and spatial weight for boxes [N, 4] (x, y, w, h, sample px) on an output grid (cells).

        Each map is a 1x1 conv over the :func:`distance_bins` encoding. At most three bins of a cell are
        non-zero, so the conv is evaluated as those three terms (:func:`_binned`), O(N·H·W) instead of
        O(N·100·H·W): the same sum, to float32 rounding.
        """
        boxes = boxes.float()
        centers = ((boxes[:, :2] + boxes[:, 2:] / 2) / FEATURE_STRIDE).flip(1)  # (row, col); even filter: no offset
        position = _bin_position(centers, output_size)
        label = _binned(position, self.label_map_predictor.weight)
        mask = torch.sigmoid(_binned(position, self.target_mask_predictor[0].weight))
        spatial_weight = _binned(position, self.spatial_weight_predictor.weight)
        return OptimizerTargets(label, mask, spatial_weight)

    def regularisation(self) -> Tensor:
        """λ = filter_reg², at least (1e-3)² (float32 [1])."""
        reg = self.filter_reg.float()
        return (reg * reg).clamp(min=MIN_FILTER_REG**2)

    def step_length(self) -> Tensor:
        """exp(log_step_length) (float32 [1])."""
        return torch.exp(self.log_step_length.float())

    @staticmethod
    def residual_weights(targets: OptimizerTargets, sample_weight: Tensor | None) -> Tensor:
        """u = v·sqrt(w_n) per cell, [N, 1, H, W]; ``sample_weight`` None means w_n = 1/N."""
        n = targets.spatial_weight.shape[0]
        if sample_weight is None:
            return math.sqrt(1.0 / n) * targets.spatial_weight
        return sample_weight.float().sqrt().view(n, 1, 1, 1) * targets.spatial_weight

    def loss(self, filt: Tensor, feat: Tensor, targets: OptimizerTargets, weights: Tensor) -> Tensor:
        """Training loss (scalar tensor) of ``filt`` on features [N, C, h, w] with residual weights u."""
        scores = apply_filter(feat, filt)
        act = _leaky(scores, targets.mask)
        residual = weights * (act - targets.label)
        return (residual * residual).sum() + self.regularisation() * (filt * filt).sum()

    def step(self, filt: Tensor, feat: Tensor, targets: OptimizerTargets, weights: Tensor) -> Tensor:
        """One steepest-descent step with the Gauss-Newton step length; returns the new filter [1, C, k, k]."""
        reg = self.regularisation()
        scores = apply_filter(feat, filt)
        act = _leaky(scores, targets.mask)
        slope = _leaky_slope(scores, targets.mask)
        residual = weights * (act - targets.label)
        grad = filter_gradient(feat, slope * (weights * residual), filt.shape[-1]) + reg * filt
        grad_scores = weights * (slope * apply_filter(feat, grad))
        grad_sq = (grad * grad).sum()
        denominator = ((grad_scores * grad_scores).sum() + reg * grad_sq).clamp(min=_ALPHA_MIN_DENOMINATOR)
        alpha = grad_sq / denominator
        return filt - (self.step_length() * alpha) * grad

    def forward(
        self, filt: Tensor, feat: Tensor, boxes: Tensor, sample_weight: Tensor | None = None, num_iter: int = 1
    ) -> Tensor:
        """Run ``num_iter`` steps on features [N, C, h, w], boxes [N, 4] (x, y, w, h, sample px) and optional
        per-sample weights [N] (summing to 1; None = uniform)."""
        feat = feat.float()
        filt = filt.float()
        output_size = _output_size(feat, filt)
        targets = self.targets(boxes.to(feat.device), output_size)
        weights = self.residual_weights(targets, sample_weight)
        for _ in range(num_iter):
            filt = self.step(filt, feat, targets, weights)
        return filt


def _output_size(feat: Tensor, filt: Tensor) -> tuple[int, int]:
    k = filt.shape[-1]
    return feat.shape[-2] + (k + 1) % 2, feat.shape[-1] + (k + 1) % 2


def _leaky(scores: Tensor, mask: Tensor) -> Tensor:
    return (1 - mask) / 2 * scores.abs() + (1 + mask) / 2 * scores


def _leaky_slope(scores: Tensor, mask: Tensor) -> Tensor:
    return (1 - mask) / 2 * torch.sign(scores) + (1 + mask) / 2


class OnlineClassifier(nn.Module):
    """Projection (3x3 conv 1024→512 + instance L2 norm), filter initialiser and filter optimiser."""

    def __init__(self, in_dim: int = 1024, feature_dim: int = FEATURE_DIM, filter_size: int = FILTER_SIZE) -> None:
        super().__init__()
        self.filter_size = filter_size
        norm_scale = math.sqrt(1.0 / (feature_dim * filter_size * filter_size))
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(in_dim, feature_dim, 3, padding=1, bias=False), InstanceL2Norm(norm_scale)
        )
        self.filter_initializer = FilterInitializer(feature_dim, filter_size)
        self.filter_optimizer = FilterOptimizer()

    def extract_features(self, backbone_feat: Tensor) -> Tensor:
        """layeronline features [N, 1024, h, w] (any float dtype) → classification features [N, 512, h, w] float32."""
        conv = self.feature_extractor[0]
        x = conv(backbone_feat.to(conv.weight.dtype))
        return self.feature_extractor[1](x)

    def init_filter(self, feat: Tensor, boxes: Tensor) -> Tensor:
        """Initial filter [1, 512, 4, 4] from features [N, 512, h, w] and boxes [N, 4] (x, y, w, h, sample px)."""
        return self.filter_initializer(feat, boxes)

    def optimize(
        self, filt: Tensor, feat: Tensor, boxes: Tensor, sample_weight: Tensor | None = None, num_iter: int = 1
    ) -> Tensor:
        """``num_iter`` optimiser steps from ``filt`` (see :class:`FilterOptimizer`); float32 [1, 512, 4, 4]."""
        return self.filter_optimizer(filt, feat, boxes, sample_weight, num_iter)

    @staticmethod
    def classify(filt: Tensor, feat: Tensor) -> Tensor:
        """Raw scores [N, 1, h+1, w+1] of features [N, 512, h, w] under the filter [1, 512, 4, 4] (float32)."""
        return apply_filter(feat.float(), filt.float())


def initialise_untrained(
    classifier: OnlineClassifier, sigma_cells: float = 1.0, mask_factor: float = 4.0, filter_reg: float = 0.01,
    step_length: float = 1.0,
) -> OnlineClassifier:
    """DiMP's starting point for a classifier trained from scratch (in place; returns it).

    Over the distance bins d_k = k·0.1 cells: label y(d) = exp(-d²/(2σ²)) (σ = ``sigma_cells``), mask
    m(d) = sigmoid(mask_factor·tanh(2 - d)), spatial weight v(d) = 1; step length and regularisation as given;
    the initialiser conv is the identity (initial filter = pooled target features); the projection keeps its
    default (Kaiming-uniform) initialisation.
    """
    opt = classifier.filter_optimizer
    d = torch.arange(NUM_DIST_BINS, dtype=torch.float32) * BIN_DISPLACEMENT
    with torch.no_grad():
        opt.label_map_predictor.weight.copy_(torch.exp(-0.5 * (d / sigma_cells) ** 2).view(1, -1, 1, 1))
        opt.target_mask_predictor[0].weight.copy_((mask_factor * torch.tanh(2.0 - d)).view(1, -1, 1, 1))
        opt.spatial_weight_predictor.weight.fill_(1.0)
        opt.filter_reg.fill_(filter_reg)
        opt.log_step_length.fill_(math.log(step_length))
        conv = classifier.filter_initializer.filter_conv
        conv.weight.zero_()
        conv.weight[:, :, 1, 1].copy_(torch.eye(conv.out_channels, conv.in_channels))
        conv.bias.zero_()
    return classifier
