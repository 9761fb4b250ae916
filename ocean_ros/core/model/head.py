"""Ocean head: multi-dilation encoders, depth-wise cross-correlation, fusion, box and class towers.

Module names follow TracKit's `connect_model.*` checkpoint keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Branch name → dilation (dH, dW) of its un-padded 3×3 conv.
BRANCH_DILATIONS: dict[str, tuple[int, int]] = {"11": (1, 1), "12": (2, 1), "21": (1, 2)}


def _conv_bn_relu(channels: int, dilation: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=0, dilation=dilation, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


class MultiDilationEncoder(nn.Module):
    """Three parallel 3×3 branches, dilations (1,1), (2,1), (1,2); template (`_k`) and search (`_s`) apart.

    Attributes `matrix11_k`, `matrix11_s`, `matrix12_k`, ... (TracKit's "matrix" module).
    """

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        for name, dilation in BRANCH_DILATIONS.items():
            setattr(self, f"matrix{name}_k", _conv_bn_relu(channels, dilation))
            setattr(self, f"matrix{name}_s", _conv_bn_relu(channels, dilation))

    def encode_kernel(self, kernel: Tensor) -> tuple[Tensor, ...]:
        """The template side of every branch (order 11, 12, 21); it does not change while a target is tracked."""
        return tuple(getattr(self, f"matrix{name}_k")(kernel) for name in BRANCH_DILATIONS)

    def forward(self, search: Tensor, kernel: Tensor | tuple[Tensor, ...]) -> list[tuple[Tensor, Tensor]]:
        """Returns one (search, kernel) feature pair per branch, in order 11, 12, 21.

        ``kernel`` is the template map, or its branches already encoded by :meth:`encode_kernel`.
        """
        encoded = kernel if isinstance(kernel, tuple) else self.encode_kernel(kernel)
        return [
            (getattr(self, f"matrix{name}_s")(search), k) for name, k in zip(BRANCH_DILATIONS, encoded, strict=True)
        ]


def depthwise_xcorr(search: Tensor, kernel: Tensor) -> Tensor:
    """Per-channel correlation, no padding: search [B,C,H,W], kernel [B or 1,C,h,w] → [B,C,H-h+1,W-w+1]."""
    b, c, h, w = search.shape
    if kernel.shape[0] != b:
        if kernel.shape[0] != 1:
            raise ValueError(f"template batch {kernel.shape[0]} does not match search batch {b}")
        kernel = kernel.expand(b, -1, -1, -1)
    out = F.conv2d(search.reshape(1, b * c, h, w), kernel.reshape(b * c, 1, *kernel.shape[-2:]), groups=b * c)
    return out.reshape(b, c, *out.shape[-2:])


class BranchFusion(nn.Module):
    """Softmax-weighted sum of the per-branch correlations (`cls_dw` / `reg_dw`, weight shape [3])."""

    def __init__(self, branches: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(branches))

    def forward(self, pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
        w = torch.softmax(self.weight, dim=0)
        out = None
        for i, (search, kernel) in enumerate(pairs):
            term = w[i] * depthwise_xcorr(search, kernel)
            out = term if out is None else out + term
        return out


def _tower(channels: int, depth: int) -> nn.Sequential:
    """`depth` × [3×3 conv (padding 1, bias), BN, ReLU]: convs at indices 0,3,6,..., BNs at 1,4,7,..."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class OceanHead(nn.Module):
    """TracKit's `box_tower`: correlation, towers and predictors for classification and box regression."""

    def __init__(self, channels: int = 256, tower_depth: int = 4) -> None:
        super().__init__()
        self.cls_encode = MultiDilationEncoder(channels)
        self.reg_encode = MultiDilationEncoder(channels)
        self.cls_dw = BranchFusion(len(BRANCH_DILATIONS))
        self.reg_dw = BranchFusion(len(BRANCH_DILATIONS))
        self.bbox_tower = _tower(channels, tower_depth)
        self.cls_tower = _tower(channels, tower_depth)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.cls_pred = nn.Conv2d(channels, 1, 3, padding=1)
        self.adjust = nn.Parameter(torch.full((1,), 0.1))
        self.bias = nn.Parameter(torch.ones(1, 4, 1, 1))

    def encode_template(self, kernel: Tensor) -> tuple[Tensor, ...]:
        """Both paths' template branches (cls 11, 12, 21, then reg 11, 12, 21), to compute once per target."""
        return self.cls_encode.encode_kernel(kernel) + self.reg_encode.encode_kernel(kernel)

    def forward(self, search: Tensor, kernel: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """search [B,256,H,W], kernel (template) [B or 1,256,7,7] → (cls, reg, reg_feat), N = H - 6.

        ``kernel`` may also be :meth:`encode_template`'s tuple (the same numbers without re-encoding per frame).

        cls [B,1,N,N]: logits already scaled by 0.1 (apply sigmoid for a score).
        reg [B,4,N,N]: distances (l, t, r, b) from each cell's grid point to the box sides, crop pixels.
        reg_feat [B,256,N,N]: regression-tower output (input of the object-aware head).
        """
        cls_kernel, reg_kernel = (kernel[:3], kernel[3:]) if isinstance(kernel, tuple) else (kernel, kernel)
        cls_feat = self.cls_tower(self.cls_dw(self.cls_encode(search, cls_kernel)))
        reg_feat = self.bbox_tower(self.reg_dw(self.reg_encode(search, reg_kernel)))
        cls = 0.1 * self.cls_pred(cls_feat)
        reg = torch.exp(self.adjust * self.bbox_pred(reg_feat) + self.bias)
        return cls, reg, reg_feat
