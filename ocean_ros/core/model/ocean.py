"""The assembled Ocean network (TracKit `Ocean`): backbone, neck, head and optional object-aware head.

The network is stateless with respect to targets: `template` returns the template features and the caller
passes them back to `track`, so several trackers can share one network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from .align import AlignHead
from .backbone import Backbone
from .head import OceanHead
from .neck import Neck

TEMPLATE_SIZE = 127
STRIDE = 8


def score_size(search_size: int) -> int:
    """Side N of the score / regression maps for a search crop of side S pixels: (S - 127)//8 + 1 + 8."""
    return (search_size - TEMPLATE_SIZE) // STRIDE + 1 + 8


@dataclass(frozen=True)
class OceanNetConfig:
    """Which optional parts are built."""

    align: bool = True  # object-aware head (`align_head.*`)
    online: bool = False  # backbone `layeronline` (stride-16 features for the online classifier)


class OceanOutput(NamedTuple):
    """Per-frame network output; N = score_size(S)."""

    cls: Tensor  # [B,1,N,N] classification logits, already ×0.1, before sigmoid
    reg: Tensor  # [B,4,N,N] distances l,t,r,b from each cell's grid point, search-crop pixels
    align: Tensor | None  # [B,1,N,N] object-aware logits, None when not computed


class OceanNet(nn.Module):
    """Ocean: ResNet-50 (to layer3) → neck → multi-dilation depth-wise correlation head (+ object-aware head).

    Inputs are raw BGR images in 0..255 (no mean/std); any input dtype is cast to the weights' dtype.
    """

    def __init__(self, config: OceanNetConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else OceanNetConfig()
        self.features = Backbone(online=self.config.online)
        self.neck = Neck(1024, 256)
        self.connect_model = OceanHead(256)
        self.align_head = AlignHead(256, 256) if self.config.align else None

    @property
    def has_align(self) -> bool:
        """True when the object-aware head is built (and its weights loaded)."""
        return self.align_head is not None

    @property
    def has_classifier(self) -> bool:
        """False: the online classifier comes with :class:`OnlineOceanNet`."""
        return False

    backend = "torch"  # the runtime computing the maps (ocean_ros.core.contract.OceanModel)
    search_sizes = None  # any search size the geometry allows

    # --- geometry (the tracker's score grid comes from here)
    stride = STRIDE
    arch = "ocean_resnet50"

    def score_size(self, search_size: int) -> int:
        """Side N of the score maps for a search crop of ``search_size`` px."""
        return score_size(search_size)

    def grid_origin(self, search_size: int) -> float:
        """Search-crop pixel of score cell 0: TracKit's grid (j - N//2)·8 + S//2 at j = 0."""
        return float(search_size // 2 - STRIDE * (score_size(search_size) // 2))

    def _prepare(self, image: Tensor, name: str) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[2] != image.shape[3]:
            raise ValueError(f"{name} must be [B,3,S,S], got {tuple(image.shape)}")
        weight = self.features.features.conv1.weight
        if image.dtype != weight.dtype or image.device != weight.device:
            image = image.to(device=weight.device, dtype=weight.dtype)
        return image

    def template(self, z: Tensor) -> Tensor:
        """Template crop z [B,3,127,127] (BGR, 0..255) → template features [B,256,7,7]."""
        z = self._prepare(z, "template")
        if z.shape[-1] != TEMPLATE_SIZE:
            raise ValueError(
                f"template crop must be {TEMPLATE_SIZE}×{TEMPLATE_SIZE}, got {tuple(z.shape[-2:])}"
            )
        return self.neck(self.features(z), crop=True)

    def track(self, x: Tensor, zf: Tensor, use_align: bool = True) -> OceanOutput:
        """Search crop x [B,3,S,S] (BGR 0..255; S = 255, 271 or 287), template features zf [B or 1,256,7,7].

        Returns maps of side N = (S - 127)//8 + 1 + 8; `align` is computed only if `use_align` and the
        object-aware head exists. Cell (i, j) ↔ search pixel ((j - N//2)·8 + S//2, (i - N//2)·8 + S//2).
        """
        x = self._prepare(x, "search")
        search_size = x.shape[-1]
        xf = self.neck(self.features(x))
        cls, reg, reg_feat = self.connect_model(xf, zf)
        align = None
        if use_align and self.align_head is not None:
            align = self.align_head(reg_feat, reg, search_size).contiguous()
        # Hand back plain NCHW maps even if a caller switched the net to channels-last.
        return OceanOutput(cls.contiguous(), reg.contiguous(), align)

    def online_features(self, x: Tensor) -> Tensor:
        """Online-branch backbone features: RGB ImageNet-normalised [B,3,H,W] → [B,1024,h,w] (stride 16)."""
        weight = self.features.features.conv1.weight
        return self.features.forward_online(x.to(device=weight.device, dtype=weight.dtype))
