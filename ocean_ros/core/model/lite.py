"""Ocean-Lite: the NanoTrack v3 trunk under Ocean's neck, multi-dilation correlation head and object-aware head.

Same contract as :class:`~ocean_ros.core.model.ocean.OceanNet` (stateless; ``template`` returns the template
features that ``track`` takes back), at a width and stride chosen in :class:`LiteNetConfig`. The score grid
comes from the network's geometry (:meth:`OceanLiteNet.score_size`, :meth:`OceanLiteNet.grid_origin`), never
from constants in the tracker.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .align import AlignHead
from .head import OceanHead
from .mobile_trunk import OUT_CHANNELS, STAGES, MobileTrunk
from .ocean import TEMPLATE_SIZE, OceanOutput
from .online_classifier import FEATURE_STRIDE, OnlineClassifier, initialise_untrained

ARCH = "ocean_lite"
# Template feature rows/cols kept after the neck, per trunk stride: (first index c0, side K).
# Stride 16: 8×8 → rows/cols 1..6 (training-spec §5.2/5.4: crops holding row 7 pull the peak to a corner).
# Stride 8: 16×16 → rows/cols 4..11.
_TEMPLATE_CROP = {16: (1, 6), 8: (4, 8)}
_TEMPLATE_CENTRE = (TEMPLATE_SIZE - 1) / 2  # 63: pixel of the target centre in the template crop
_FIRST_STRIDE16_STAGE = 4  # trunk stages 4..9 run at stride 16 (stride-16 trunk)
# ImageNet statistics of the online samples (RGB, 0..1); the trunk itself takes BGR 0..255.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LiteNetConfig:
    """Shape of an Ocean-Lite network (stored in its checkpoints)."""

    stride: int = 16  # trunk total stride: 16 (NanoTrack as trained) or 8 (stage 4 undecimated, dilated after)
    channels: int = 64  # neck output and head width
    tower_depth: int = 2  # conv-BN-ReLU layers per tower
    align: bool = True  # object-aware head
    online_dim: int = 0  # width of the online classifier's features (0: no online classifier)
    online_layer: int = 9  # trunk stage whose output feeds the online projection (4..9, all at stride 16)

    def __post_init__(self) -> None:
        if self.stride not in _TEMPLATE_CROP:
            raise ValueError(f"stride must be one of {sorted(_TEMPLATE_CROP)}, got {self.stride}")
        if not 8 <= self.channels <= 512:
            raise ValueError(f"channels must be in [8, 512], got {self.channels}")
        if not 1 <= self.tower_depth <= 8:
            raise ValueError(f"tower_depth must be in [1, 8], got {self.tower_depth}")
        if self.online_dim:
            if self.stride != FEATURE_STRIDE:
                raise ValueError(
                    f"the online classifier needs stride {FEATURE_STRIDE} features, got stride {self.stride}"
                )
            if not 8 <= self.online_dim <= 512:
                raise ValueError(f"online_dim must be 0 or in [8, 512], got {self.online_dim}")
        if not _FIRST_STRIDE16_STAGE <= self.online_layer <= len(STAGES):
            raise ValueError(
                f"online_layer must be in [{_FIRST_STRIDE16_STAGE}, {len(STAGES)}], got {self.online_layer}"
            )

    @property
    def online_in_dim(self) -> int:
        """Channels of the trunk stage the online projection reads."""
        return STAGES[self.online_layer - 1].out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LiteNetConfig:
        known = {"stride", "channels", "tower_depth", "align", "online_dim", "online_layer"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Ocean-Lite net key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)


class LiteNeck(nn.Module):
    """1×1 conv (no bias) + BN from 96 trunk channels to the head width; template maps cropped to K×K."""

    def __init__(self, channels: int, crop: tuple[int, int]) -> None:
        super().__init__()
        self.crop = crop
        self.downsample = nn.Sequential(nn.Conv2d(OUT_CHANNELS, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor, template: bool = False) -> Tensor:
        if template:
            c0, k = self.crop
            x = x[:, :, c0:c0 + k, c0:c0 + k]  # pointwise conv + BN commute with the crop
        return self.downsample(x)


class OceanLiteNet(nn.Module):
    """NanoTrack v3 trunk (``backbone.*``) → neck → Ocean head (→ object-aware head).

    Inputs are raw BGR images in 0..255; any input dtype is cast to the weights' dtype.
    """

    arch = ARCH
    backend = "torch"  # the runtime computing the maps (ocean_ros.core.contract.OceanModel)
    search_sizes = None  # any search size the geometry allows

    def __init__(self, config: LiteNetConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else LiteNetConfig()
        cfg = self.config
        self.stride = cfg.stride
        self.template_crop = _TEMPLATE_CROP[cfg.stride]
        self.backbone = MobileTrunk(cfg.stride)
        self.neck = LiteNeck(cfg.channels, self.template_crop)
        self.connect_model = OceanHead(cfg.channels, cfg.tower_depth)
        # Initial distances ≈ 2 cells instead of e ≈ 2.7 px: the IoU loss starts from sensible boxes.
        with torch.no_grad():
            self.connect_model.bias.fill_(math.log(2.0 * cfg.stride))
        self.align_head = AlignHead(cfg.channels, cfg.channels) if cfg.align else None
        if cfg.online_dim:
            self.classifier = initialise_untrained(OnlineClassifier(cfg.online_in_dim, cfg.online_dim))
        self._trunk_channels_last = False
        self.register_buffer("_rgb_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_rgb_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def use_channels_last_trunk(self) -> OceanLiteNet:
        """Run the trunk in channels-last layout (about 1.4× faster on CPU for its depth-wise convs); in place."""
        self.backbone.to(memory_format=torch.channels_last)
        self._trunk_channels_last = True
        return self

    def _trunk(self, image: Tensor, trunk: nn.Module | None) -> Tensor:
        if trunk is None and self._trunk_channels_last:
            return self.backbone(image.contiguous(memory_format=torch.channels_last)).contiguous()
        return (trunk or self.backbone)(image)

    # --- geometry -------------------------------------------------------------------------------------
    def feature_size(self, side: int) -> int:
        """Trunk map side for an input of ``side`` px: ceil(side / stride)."""
        return -(-side // self.stride)

    def score_size(self, search_size: int) -> int:
        """Side N of the score maps for a search crop of ``search_size`` px."""
        n = self.feature_size(search_size) - self.template_crop[1] + 1
        if n < 2:
            raise ValueError(f"search size {search_size} gives a {n}-cell score map; use a larger search crop")
        return n

    def grid_origin(self, search_size: int) -> float:
        """Search-crop pixel of score cell 0: cell u sits on 63 + stride·(u - c0) (translation equivariance)."""
        del search_size  # the origin does not depend on the search size
        return _TEMPLATE_CENTRE - self.stride * self.template_crop[0]

    @property
    def has_align(self) -> bool:
        """True when the object-aware head is built."""
        return self.align_head is not None

    @property
    def has_classifier(self) -> bool:
        """True when the online classifier (``classifier.*``) is built (``config.online_dim > 0``)."""
        return self.config.online_dim > 0

    # --- online classifier ----------------------------------------------------------------------------
    def online_trunk_features(self, x: Tensor) -> Tensor:
        """ImageNet-normalised RGB samples [N,3,S,S] → trunk stage ``online_layer`` output [N,C,S/16,S/16].

        The samples are mapped back to the trunk's input (BGR, 0..255) first; the trunk runs in the weights'
        dtype and layout. 224-px samples give 14×14 maps.
        """
        weight = self.backbone.features[0][0].weight
        x = x.to(device=weight.device, dtype=torch.float32)
        image = ((x * self._rgb_std.to(x.device) + self._rgb_mean.to(x.device)) * 255.0).flip(1)
        image = image.to(weight.dtype)
        layer = self.config.online_layer
        if layer == len(STAGES):
            return self._trunk(image, None)
        stages = self.backbone.features[: layer + 1]
        if self._trunk_channels_last:
            return stages(image.contiguous(memory_format=torch.channels_last)).contiguous()
        return stages(image)

    def classification_features(self, x: Tensor) -> Tensor:
        """ImageNet-normalised RGB samples [N,3,224,224] → online classification features [N,online_dim,14,14]
        (float32, stride 16): trunk stage → 3×3 projection → instance L2 norm."""
        if not self.has_classifier:
            raise RuntimeError("this Ocean-Lite network has no online classifier (config.online_dim = 0)")
        return self.classifier.extract_features(self.online_trunk_features(x))

    # --- forward --------------------------------------------------------------------------------------
    def _prepare(self, image: Tensor, name: str) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[2] != image.shape[3]:
            raise ValueError(f"{name} must be [B,3,S,S], got {tuple(image.shape)}")
        weight = self.backbone.features[0][0].weight
        if image.dtype != weight.dtype or image.device != weight.device:
            image = image.to(device=weight.device, dtype=weight.dtype)
        return image

    def template(self, z: Tensor, trunk: nn.Module | None = None) -> tuple[Tensor, ...]:
        """Template crop z [B,3,127,127] (BGR, 0..255) → template features: the six encoded template branches
        of the head (cls then reg; dilations 11, 12, 21), computed once per target instead of every frame.

        ``trunk`` replaces ``self.backbone`` for this call (training uses a BN-fused copy while it is frozen).
        """
        z = self._prepare(z, "template")
        if z.shape[-1] != TEMPLATE_SIZE:
            raise ValueError(f"template crop must be {TEMPLATE_SIZE}×{TEMPLATE_SIZE}, got {tuple(z.shape[-2:])}")
        return self.connect_model.encode_template(self.neck(self._trunk(z, trunk), template=True))

    def track(
        self, x: Tensor, zf: tuple[Tensor, ...], use_align: bool = True, trunk: nn.Module | None = None
    ) -> OceanOutput:
        """Search crop x [B,3,S,S] (BGR 0..255), template features zf (from :meth:`template`) → maps of side N.

        Cell (i, j) ↔ search pixel (grid_origin + stride·j, grid_origin + stride·i); ``reg`` holds the
        distances l, t, r, b from that pixel to the box sides in search-crop pixels.
        """
        x = self._prepare(x, "search")
        search_size = x.shape[-1]
        xf = self.neck(self._trunk(x, trunk))
        cls, reg, reg_feat = self.connect_model(xf, zf)
        align = None
        if use_align and self.align_head is not None:
            align = self.align_head(
                reg_feat, reg, search_size, self.stride, self.grid_origin(search_size)
            ).contiguous()
        return OceanOutput(cls.contiguous(), reg.contiguous(), align)

    def forward(self, z: Tensor, x: Tensor, trunk: nn.Module | None = None) -> OceanOutput:
        """Template and search crops together (training): ``track(x, template(z))`` with the object-aware head."""
        return self.track(x, self.template(z, trunk), use_align=True, trunk=trunk)

    def trunk_parameters(self) -> list[nn.Parameter]:
        """The pretrained trunk's parameters (trained at a lower rate, or frozen)."""
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Every Siamese parameter outside the trunk (neck, correlation head, object-aware head)."""
        other = {id(p) for p in self.backbone.parameters()} | {id(p) for p in self.online_parameters()}
        return [p for p in self.parameters() if id(p) not in other]

    def online_parameters(self) -> list[nn.Parameter]:
        """The online classifier's parameters (projection, initialiser, optimiser); empty without one."""
        return list(self.classifier.parameters()) if self.has_classifier else []
