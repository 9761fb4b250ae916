"""Object-aware branch: a 3×3 deformable convolution whose nine taps are placed on each cell's predicted box.

Plain PyTorch (bilinear `grid_sample` + matmul), no compiled extension; runs on CPU and CUDA, float32/float16.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDE = 8  # TracKit's ResNet-50 Ocean


@functools.lru_cache(maxsize=32)
def _box_constants(
    n: int, search_size: int, stride: int, origin: float | None, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grid points [N] in search pixels, cell indices [N], tap rows [9,1,1], tap cols [9,1,1]); float32."""
    with torch.inference_mode(False):  # cached tensors must stay usable outside inference mode
        idx = torch.arange(n, device=device, dtype=torch.float32)
        grid = (idx - n // 2) * stride + search_size // 2 if origin is None else idx * stride + origin
        taps = torch.arange(-1, 2, device=device, dtype=torch.float32)
        return grid, idx, taps.repeat_interleave(3).view(9, 1, 1), taps.repeat(3).view(9, 1, 1)


def box_offsets(reg: Tensor, search_size: int, stride: int = STRIDE, origin: float | None = None) -> Tensor:
    """Deformable offsets that put the 3×3 taps of every score cell on that cell's predicted box.

    reg: [B,4,N,N] distances (l, t, r, b) in search-crop pixels; search_size: crop side S in pixels.
    Returns float32 [B,18,N,N] in the usual deformable-conv layout: tap k = (a+1)·3 + (c+1) for row/col
    tap a, c ∈ {-1,0,1}; channel 2k = y offset, 2k+1 = x offset, in feature cells relative to the regular
    3×3 tap position. Tap (a, c) of cell (i, j) then samples (cyf + a·hf/2, cxf + c·wf/2): box centre and
    half-extents in feature cells.

    ``stride`` is the score map's stride (search px per cell); ``origin`` the search pixel of cell 0. With
    ``origin`` None the grid and the centre term are TracKit's ((j - N//2)·stride + S//2 and a centre taken
    relative to S·0.5), kept for bit-exact parity; otherwise the centre term inverts the grid exactly.
    """
    n = reg.shape[-1]
    grid, idx, tap_rows, tap_cols = _box_constants(n, int(search_size), int(stride), origin, reg.device)
    left, top, right, bottom = reg.float().unbind(1)  # each [B,N,N]
    gx = grid.view(1, 1, n)
    gy = grid.view(1, n, 1)
    x1, x2 = gx - left, gx + right
    y1, y2 = gy - top, gy + bottom
    # TracKit centres with S*0.5 (127.5 for S=255) while its grid uses S//2: a -1/16-cell shift, kept.
    if origin is None:
        half, base = search_size * 0.5, n // 2
    else:
        half, base = origin, 0
    cx = ((x1 + x2) / 2 - half) / stride + base
    cy = ((y1 + y2) / 2 - half) / stride + base
    wf = (x2 - x1 + 1) / stride
    hf = (y2 - y1 + 1) / stride
    off_x = (cx - idx.view(1, 1, n)).unsqueeze(1) + tap_cols * (wf / 2 - 1).unsqueeze(1)  # [B,9,N,N]
    off_y = (cy - idx.view(1, n, 1)).unsqueeze(1) + tap_rows * (hf / 2 - 1).unsqueeze(1)
    return torch.stack((off_y, off_x), dim=2).reshape(reg.shape[0], 18, n, n)


def deform_conv3x3(x: Tensor, offset: Tensor, weight: Tensor) -> Tensor:
    """Deformable conv v1, kernel 3, stride 1, padding 1, dilation 1, one offset group, no bias.

    x [B,C,H,W]; offset [B,18,H,W] (layout of `box_offsets`, in cells); weight [O,C,3,3] → [B,O,H,W].
    Each tap is sampled bilinearly; samples outside the map read zero (torchvision `deform_conv2d` rule).
    Sampling is done in float32; the 3×3 weights are applied in x's dtype.
    """
    b, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"deformable conv needs a map of at least 2×2, got {h}×{w}")
    if offset.shape != (b, 18, h, w):
        raise ValueError(
            f"offset shape {tuple(offset.shape)} does not match input {tuple(x.shape)} (want [B,18,H,W])"
        )
    rows, cols, tap_rows, tap_cols = _tap_constants(h, w, offset.device)
    off = offset.float().reshape(b, 9, 2, h, w)
    pos_y = rows.view(1, 1, h, 1) + tap_rows + off[:, :, 0]  # [B,9,H,W]
    pos_x = cols.view(1, 1, 1, w) + tap_cols + off[:, :, 1]
    # align_corners=True maps normalised -1 / +1 to pixel centres 0 / size-1.
    grid = torch.stack((pos_x * (2.0 / (w - 1)) - 1.0, pos_y * (2.0 / (h - 1)) - 1.0), dim=-1)
    grid = grid.view(b, 9 * h, w, 2)
    # Sampling runs in float32: a half-precision grid would quantise tap positions, and CPU grid_sample in
    # float16 / bfloat16 is wrong on channels-last inputs (NaN / large errors, torch 2.x). The map is small.
    sampled = F.grid_sample(
        x.float().contiguous(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    sampled = sampled.to(x.dtype).view(b, c * 9, h * w)  # [B, C·9 (channel-major, tap-minor), H·W]
    out = torch.matmul(weight.reshape(weight.shape[0], c * 9), sampled)
    return out.view(b, weight.shape[0], h, w)


@functools.lru_cache(maxsize=16)
def _tap_constants(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(rows [H], cols [W], regular tap row/col displacements [1,9,1,1]); float32."""
    with torch.inference_mode(False):
        rows = torch.arange(h, device=device, dtype=torch.float32)
        cols = torch.arange(w, device=device, dtype=torch.float32)
        taps = torch.arange(-1, 2, device=device, dtype=torch.float32)
        return rows, cols, taps.repeat_interleave(3).view(1, 9, 1, 1), taps.repeat(3).view(1, 9, 1, 1)


class DeformConv3x3(nn.Module):
    """Holds the [out,in,3,3] weight of the deformable conv (no bias); offsets are supplied per call."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        return deform_conv3x3(x, offset, self.weight)


class BoxAlignedConv(nn.Module):
    """`rpn_conv`: deformable 3×3 conv sampling each cell's predicted box (key `rpn_conv.conv.weight`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = DeformConv3x3(in_channels, out_channels)

    def forward(
        self, x: Tensor, reg: Tensor, search_size: int, stride: int = STRIDE, origin: float | None = None
    ) -> Tensor:
        return self.conv(x, box_offsets(reg, search_size, stride, origin))


class AlignHead(nn.Module):
    """Object-aware classification: box-aligned deformable conv → ReLU → 1×1 conv (bias) → logit map."""

    def __init__(self, in_channels: int = 256, out_channels: int = 256) -> None:
        super().__init__()
        self.rpn_conv = BoxAlignedConv(in_channels, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.rpn_cls = nn.Conv2d(out_channels, 1, 1)

    def forward(
        self, reg_feat: Tensor, reg: Tensor, search_size: int, stride: int = STRIDE, origin: float | None = None
    ) -> Tensor:
        """reg_feat [B,C,N,N] (regression tower), reg [B,4,N,N] (l,t,r,b pixels), S → logits [B,1,N,N].

        ``stride`` / ``origin``: the score grid (see :func:`box_offsets`); defaults are TracKit's.
        """
        return self.rpn_cls(self.relu(self.rpn_conv(reg_feat, reg, search_size, stride, origin)))
