"""Neck: 1×1 conv 1024→256 + BN; template maps are centre-cropped to 7×7."""

from __future__ import annotations

from torch import Tensor, nn

# Template maps narrower than this are cropped [4:-4] (15×15 → 7×7); only 127-px templates are supported.
_CROP_BELOW = 20
_CROP = 4


class Neck(nn.Module):
    """`neck.downsample.0` (conv, no bias) and `neck.downsample.1` (BN); no activation."""

    def __init__(self, in_channels: int = 1024, out_channels: int = 256) -> None:
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor, crop: bool = False) -> Tensor:
        """[B,1024,h,w] → [B,256,h,w]; with `crop`, a template map 15×15 → [B,256,7,7]."""
        if crop:
            if x.shape[-1] >= _CROP_BELOW:
                raise ValueError(
                    f"template feature map {tuple(x.shape[-2:])} is too large to crop (127-px templates only)"
                )
            # The 1×1 conv + BN is pointwise, so cropping first gives the same numbers for less work.
            x = x[:, :, _CROP:-_CROP, _CROP:-_CROP]
        return self.downsample(x)
