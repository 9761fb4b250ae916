"""The Ocean network: backbone, neck, correlation head and object-aware head."""

from .align import AlignHead, box_offsets, deform_conv3x3
from .backbone import Backbone, ResNetTrunk
from .head import OceanHead, depthwise_xcorr
from .neck import Neck
from .ocean import TEMPLATE_SIZE, OceanNet, OceanNetConfig, OceanOutput, score_size

__all__ = [
    "TEMPLATE_SIZE",
    "AlignHead",
    "Backbone",
    "Neck",
    "OceanHead",
    "OceanNet",
    "OceanNetConfig",
    "OceanOutput",
    "ResNetTrunk",
    "box_offsets",
    "deform_conv3x3",
    "depthwise_xcorr",
    "score_size",
]
