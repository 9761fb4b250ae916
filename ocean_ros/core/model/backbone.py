"""ResNet-50 trunk up to layer3 with Ocean's padding / stride / dilation rules (total stride 8).

Parameter names follow TracKit's layout: the model stores a `Backbone` under `features`, which stores the
trunk under `features` again, hence keys `features.features.layer3.0.conv1.weight` and so on.
"""

from __future__ import annotations

from torch import Tensor, nn

EXPANSION = 4


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5)


def _middle_geometry(stride: int, dilation: int, has_downsample: bool) -> tuple[int, int]:
    """(padding, dilation) of a bottleneck's 3×3 conv.

    Stride-2 blocks use an un-padded 3×3 conv. The first block of a dilated stage (the one with a downsample)
    runs at half the stage dilation, so the stage's spatial size is preserved.
    """
    if dilation > 1:
        d = dilation // 2 if has_downsample else dilation
        return d, d
    return (0 if stride == 2 else 1), 1


def _downsample(inplanes: int, outplanes: int, stride: int, dilation: int) -> nn.Sequential:
    """Shortcut projection: 1×1 in plain stages, 3×3 (un-padded if strided) in strided or dilated ones."""
    if stride == 1 and dilation == 1:
        conv = nn.Conv2d(inplanes, outplanes, 1, stride=1, bias=False)
    elif dilation > 1:
        d = dilation // 2
        conv = nn.Conv2d(inplanes, outplanes, 3, stride=stride, padding=d, dilation=d, bias=False)
    else:
        conv = nn.Conv2d(inplanes, outplanes, 3, stride=stride, padding=0, bias=False)
    return nn.Sequential(conv, _bn(outplanes))


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 bottleneck (expansion 4), BN after each conv, ReLU after the first two and the sum."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        padding, mid_dilation = _middle_geometry(stride, dilation, downsample is not None)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=padding, dilation=mid_dilation, bias=False
        )
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = _bn(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        # An un-padded strided 3×3 shortcut and main path give the same size, so no cropping is needed.
        return self.relu(out + identity)


def _make_stage(inplanes: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    outplanes = planes * EXPANSION
    downsample = None
    if stride != 1 or inplanes != outplanes:
        downsample = _downsample(inplanes, outplanes, stride, dilation)
    layers = [Bottleneck(inplanes, planes, stride, dilation, downsample)]
    layers += [Bottleneck(outplanes, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNetTrunk(nn.Module):
    """conv1 (7×7/2, no padding) → maxpool → layer1 → layer2 (/2) → layer3 (dilation 2); layer4 is not built.

    With `online=True` it also builds `layeronline`: 6 bottlenecks, stride 2, fed by layer2 (total stride 16).
    """

    def __init__(self, online: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=0, bias=False)
        self.bn1 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _make_stage(64, 64, 3)
        self.layer2 = _make_stage(256, 128, 4, stride=2)
        self.layer3 = _make_stage(512, 256, 6, stride=1, dilation=2)
        self.layeronline = _make_stage(512, 256, 6, stride=2) if online else None

    def forward_layer2(self, x: Tensor) -> Tensor:
        """Image [B,3,H,W] → layer2 features [B,512,h,w] (stride 8)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))

    def forward(self, x: Tensor) -> Tensor:
        """Image [B,3,H,W] → layer3 features [B,1024,h,w] (stride 8; 127 → 15, 255 → 31, 271 → 33)."""
        return self.layer3(self.forward_layer2(x))

    def forward_online(self, x: Tensor) -> Tensor:
        """Image [B,3,H,W] → layeronline features [B,1024,h,w] (stride 16; 224 → 13)."""
        if self.layeronline is None:
            raise RuntimeError("backbone was built without the online layer (online=False)")
        return self.layeronline(self.forward_layer2(x))


class Backbone(nn.Module):
    """Wrapper holding the trunk as `features` (reproduces the checkpoint's doubled `features.` prefix)."""

    def __init__(self, online: bool = False) -> None:
        super().__init__()
        self.features = ResNetTrunk(online=online)

    @property
    def has_online(self) -> bool:
        return self.features.layeronline is not None

    def forward(self, x: Tensor) -> Tensor:
        """Siamese features: raw BGR 0..255 image [B,3,H,W] → layer3 [B,1024,h,w]."""
        return self.features(x)

    def forward_online(self, x: Tensor) -> Tensor:
        """Online-branch features: RGB, ImageNet-normalised image [B,3,H,W] → layeronline [B,1024,h,w]."""
        return self.features.forward_online(x)
