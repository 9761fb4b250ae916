"""NanoTrack v3 (trunk + BAN head) as a frozen distillation teacher (training-spec §3, §6).

Built from the §6 layer table; module names follow the checkpoint, so the ``ban_head.*`` tensors of
``nanotrackv3.pth`` (prefix removed) load with ``strict=True``. Input: BGR, float 0..255, no normalisation;
the head reads the raw trunk outputs (NanoTrack's neck is never applied).

Grid: score cell j of a search crop sits on search pixel ``15 + 16 j`` for every crop side S (translation
equivariance: the 4×4 template kernel, rows 2..5, is centred on template pixel 56 = 63 − 7, and the padded
correlation's output j on search pixel 16 j + 8). This is the crop centre for S = 255 (15×15 cells, cell 7 on
127) and S = 287 (17×17, cell 8 on 143), as §6 states.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocean_ros.core.checkpoint import load_strict, read_nanotrack, state_part
from ocean_ros.core.model.fuse import fold_batchnorm
from ocean_ros.core.model.mobile_trunk import OUT_CHANNELS, MobileTrunk

__all__ = ["BanHead", "NanoTeacher", "TeacherMaps", "load_teacher", "TEACHER_ORIGIN", "TEACHER_STRIDE"]

TEACHER_STRIDE = 16
TEACHER_ORIGIN = 15.0  # search pixel of score cell 0 (module docstring)
_TEMPLATE_POSITIONS = 64  # 8×8 template map, pixel-wise branch
_DW_CROP = slice(2, 6)  # template rows/cols of the depth-wise kernel
_TOWER_BLOCKS = 6


class TeacherMaps(NamedTuple):
    """Teacher outputs on one batch of pairs: foreground probability [B,N,N], box distances l, t, r, b
    [B,4,N,N] (search px from the cell's point), and the grid (cell j on search pixel ``origin + stride·j``)."""

    score: Tensor
    ltrb: Tensor
    origin: float
    stride: int


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    """1×1 conv (bias) → BN (keys ``0``, ``1``)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout))


class _ChannelAttention(nn.Module):
    """out · sigmoid(fc2(ReLU(fc1(global average pool)))), fc = 1×1 convs with bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * a


class _PixelwiseCorr(nn.Module):
    """Pixel-wise branch: each of the 64 template positions correlated with every search position."""

    def __init__(self, channels: int = OUT_CHANNELS, positions: int = _TEMPLATE_POSITIONS) -> None:
        super().__init__()
        self.conv_kernel = _conv_bn(channels, channels)
        self.conv_search = _conv_bn(channels, channels)
        self.CA_layer = _ChannelAttention(positions)  # noqa: N815 (checkpoint key)
        self.conv = nn.Sequential(
            nn.Conv2d(positions, positions, 2, groups=positions, bias=False),
            nn.BatchNorm2d(positions),
            nn.ReLU6(inplace=True),
            nn.Conv2d(positions, positions, 1),
            nn.BatchNorm2d(positions),
        )

    def forward(self, zf: Tensor, xf: Tensor) -> Tensor:
        kz = self.conv_kernel(zf).flatten(2)  # [B,C,P], P row-major over the template map
        sx = self.conv_search(xf)
        b, c, h, w = sx.shape
        out = torch.bmm(kz.transpose(1, 2), sx.reshape(b, c, h * w)).reshape(b, kz.shape[2], h, w)
        return self.conv(self.CA_layer(out))


class _DepthwiseCorr(nn.Module):
    """Depth-wise branch: per-channel correlation of the search map with the 4×4 template kernel, padding 1."""

    def __init__(self, channels: int = OUT_CHANNELS) -> None:
        super().__init__()
        self.conv_kernel = _conv_bn(channels, channels)
        self.conv_search = _conv_bn(channels, channels)

    def forward(self, z4: Tensor, xf: Tensor) -> Tensor:
        kz = self.conv_kernel(z4)
        sx = self.conv_search(xf)
        b, c, h, w = sx.shape
        out = F.conv2d(sx.reshape(1, b * c, h, w), kz.reshape(b * c, 1, *kz.shape[2:]), padding=1, groups=b * c)
        return out.reshape(b, c, *out.shape[2:])


def _tower(channels: int = OUT_CHANNELS) -> nn.Sequential:
    """6 × [3×3 depth-wise conv → BN → ReLU6 → 1×1 conv (no bias) → BN]; keys 5k, 5k+1, 5k+3, 5k+4."""
    layers: list[nn.Module] = []
    for _ in range(_TOWER_BLOCKS):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        ]
    return nn.Sequential(*layers)


class BanHead(nn.Module):
    """NanoTrack v3's BAN head (training-spec §6): separate correlation branches for ``cls`` and ``reg``."""

    def __init__(self, channels: int = OUT_CHANNELS) -> None:
        super().__init__()
        fused_in = _TEMPLATE_POSITIONS + channels
        self.corr_dw_reg = _DepthwiseCorr(channels)
        self.corr_dw_cls = _DepthwiseCorr(channels)
        self.corr_pw_reg = _PixelwiseCorr(channels)
        self.corr_pw_cls = _PixelwiseCorr(channels)
        self.down_reg = nn.Sequential(nn.Conv2d(fused_in, channels, 1))
        self.down_cls = nn.Sequential(nn.Conv2d(fused_in, channels, 1))
        self.cls_tower = _tower(channels)
        self.bbox_tower = _tower(channels)
        self.cls_logits = nn.Sequential(nn.Conv2d(channels, 2, 1))
        self.bbox_pred = nn.Sequential(nn.Conv2d(channels, 4, 1))

    def forward(self, zf: Tensor, xf: Tensor) -> tuple[Tensor, Tensor]:
        """Raw trunk maps zf [B,96,8,8], xf [B,96,M,M] → (logits [B,2,M−1,M−1] (background, foreground),
        ltrb [B,4,M−1,M−1] box distances in search px, after exp)."""
        z4 = zf[:, :, _DW_CROP, _DW_CROP] if zf.shape[-1] > 4 else zf
        cls = torch.cat([self.corr_pw_cls(zf, xf), self.corr_dw_cls(z4, xf)], dim=1)
        reg = torch.cat([self.corr_pw_reg(zf, xf), self.corr_dw_reg(z4, xf)], dim=1)
        logits = self.cls_logits(self.cls_tower(self.down_cls(cls)))
        ltrb = torch.exp(self.bbox_pred(self.bbox_tower(self.down_reg(reg))))
        return logits, ltrb


class NanoTeacher(nn.Module):
    """Frozen NanoTrack v3: trunk + BAN head, always in eval mode, no gradients, float32 (autocast off).

    ``fuse=True`` folds every conv → BN pair (trunk and head) into one conv, which changes values only by
    float rounding; the modules then no longer match the checkpoint layout. :func:`load_teacher` builds one
    with the pretrained weights.
    """

    def __init__(self, trunk: MobileTrunk, head: BanHead, fuse: bool = True) -> None:
        super().__init__()
        if trunk.stride != TEACHER_STRIDE:
            raise ValueError(f"the teacher needs the stride-16 trunk, got stride {trunk.stride}")
        self.trunk = copy.deepcopy(trunk).eval()
        self.head = copy.deepcopy(head).eval()
        if fuse:
            fold_batchnorm(self.trunk)
            fold_batchnorm(self.head)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> NanoTeacher:
        """Ignores ``mode``: the teacher's BN layers always use the stored statistics."""
        return super().train(False)

    @staticmethod
    def score_size(search_size: int) -> int:
        """Side N of the teacher's score maps for a ``search_size`` px crop: ceil(S/16) − 1."""
        return -(-search_size // TEACHER_STRIDE) - 1

    @staticmethod
    def grid_origin(search_size: int) -> float:
        """Search pixel of score cell 0 (15 for every S; the crop centre for S = 255, 287)."""
        del search_size
        return TEACHER_ORIGIN

    def forward(self, z: Tensor, x: Tensor) -> TeacherMaps:
        """z [B,3,127,127], x [B,3,S,S], BGR 0..255 → :class:`TeacherMaps` (detached float32)."""
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            logits, ltrb = self.head(self.trunk(z.float()), self.trunk(x.float()))
            score = logits.softmax(dim=1)[:, 1]
        return TeacherMaps(score, ltrb, self.grid_origin(x.shape[-1]), TEACHER_STRIDE)


def load_teacher(path: str | os.PathLike[str], device: str | torch.device = "cpu", fuse: bool = True) -> NanoTeacher:
    """NanoTrack v3 teacher from ``nanotrackv3.pth``: ``backbone.*`` and ``ban_head.*`` loaded strictly
    (a :class:`CheckpointError` names the file and the missing / unexpected keys); other tensors are ignored."""
    path = Path(path)
    state = read_nanotrack(path, "teacher checkpoint")
    trunk, head = MobileTrunk(stride=TEACHER_STRIDE), BanHead()
    load_strict(trunk, state_part(state, "backbone."), path, "backbone.")
    load_strict(head, state_part(state, "ban_head."), path, "ban_head.")
    return NanoTeacher(trunk, head, fuse=fuse).to(device)
