"""NanoTrack v3 trunk: MobileNetV3-small truncated after its 96-channel stage (training-spec §3).

Keys follow the NanoTrack checkpoint (`features.N...` under the owner's `backbone.` attribute), so
`nanotrackv3.pth` loads strictly. Input: BGR, 0..255, no normalisation. Total stride 16 (127 → 8×8,
255 → 16×16); with ``stride=8`` stage 4 runs at stride 1 and stages 5-9 are dilated by 2 (127 → 16×16,
255 → 32×32) at about four times the cost.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class StageSpec(NamedTuple):
    """One inverted-residual stage: kernel, expansion width, output width, SE squeeze width (0: none),
    h-swish (else ReLU), stride."""

    kernel: int
    expand: int
    out: int
    squeeze: int
    hswish: bool
    stride: int


# Stages 1..9 (stage 0 is the 3×3 stride-2 stem to 16 channels, h-swish).
STAGES: tuple[StageSpec, ...] = (
    StageSpec(3, 16, 16, 8, False, 2),
    StageSpec(3, 72, 24, 0, False, 2),
    StageSpec(3, 88, 24, 0, False, 1),
    StageSpec(5, 96, 40, 24, True, 2),
    StageSpec(5, 240, 40, 64, True, 1),
    StageSpec(5, 240, 40, 64, True, 1),
    StageSpec(5, 120, 48, 32, True, 1),
    StageSpec(5, 144, 48, 40, True, 1),
    StageSpec(5, 288, 96, 72, True, 1),
)
OUT_CHANNELS = 96
_DILATED_FROM = 4  # first stage whose stride is removed in the stride-8 variant


class SqueezeExcite(nn.Module):
    """Global pool → Linear → ReLU → Linear → h-sigmoid → channel gate (keys `fc.0`, `fc.2`)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, squeeze), nn.ReLU(inplace=True), nn.Linear(squeeze, channels), nn.Hardsigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


def _act(hswish: bool) -> nn.Module:
    return nn.Hardswish() if hswish else nn.ReLU(inplace=True)


class InvertedResidual(nn.Module):
    """A MobileNetV3 block in NanoTrack's order: SE sits between the depth-wise BN and its activation."""

    def __init__(self, in_ch: int, spec: StageSpec, stride: int, dilation: int) -> None:
        super().__init__()
        k = spec.kernel
        pad = dilation * (k - 1) // 2
        self.residual = stride == 1 and in_ch == spec.out
        dw = nn.Conv2d(spec.expand, spec.expand, k, stride, pad, dilation=dilation, groups=spec.expand, bias=False)
        if in_ch == spec.expand:  # stage 1: no expansion; act then SE
            layers = [dw, nn.BatchNorm2d(spec.expand), _act(spec.hswish),
                      SqueezeExcite(spec.expand, spec.squeeze) if spec.squeeze else nn.Identity()]
        else:
            layers = [
                nn.Conv2d(in_ch, spec.expand, 1, bias=False), nn.BatchNorm2d(spec.expand), _act(spec.hswish),
                dw, nn.BatchNorm2d(spec.expand),
                SqueezeExcite(spec.expand, spec.squeeze) if spec.squeeze else nn.Identity(),
                _act(spec.hswish),
            ]
        layers += [nn.Conv2d(spec.expand, spec.out, 1, bias=False), nn.BatchNorm2d(spec.out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


class MobileTrunk(nn.Module):
    """The 10-stage trunk: [B,3,S,S] BGR 0..255 → [B,96,ceil(S/stride),ceil(S/stride)]."""

    def __init__(self, stride: int = 16) -> None:
        super().__init__()
        if stride not in (8, 16):
            raise ValueError(f"trunk stride must be 8 or 16, got {stride}")
        self.stride = stride
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        ]
        in_ch = 16
        for index, spec in enumerate(STAGES, start=1):
            s, d = spec.stride, 1
            if stride == 8 and index >= _DILATED_FROM:
                s = 1
                d = 1 if index == _DILATED_FROM else 2
            layers.append(InvertedResidual(in_ch, spec, s, d))
            in_ch = spec.out
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
