"""The Ocean network: backbone, neck, correlation head, object-aware head and the online classifier."""

from .align import AlignHead, box_offsets, deform_conv3x3
from .backbone import Backbone, ResNetTrunk
from .head import OceanHead, depthwise_xcorr
from .lite import LiteNetConfig, OceanLiteNet
from .mobile_trunk import MobileTrunk
from .neck import Neck
from .ocean import TEMPLATE_SIZE, OceanNet, OceanNetConfig, OceanOutput, score_size
from .online_classifier import (
    FilterInitializer,
    FilterOptimizer,
    InstanceL2Norm,
    OnlineClassifier,
    OptimizerTargets,
    apply_filter,
    distance_bins,
    filter_gradient,
)
from .online_net import OnlineOceanNet
from .prroi_pool import prroi_pool2d

__all__ = [
    "TEMPLATE_SIZE",
    "AlignHead",
    "Backbone",
    "FilterInitializer",
    "FilterOptimizer",
    "InstanceL2Norm",
    "LiteNetConfig",
    "MobileTrunk",
    "Neck",
    "OceanHead",
    "OceanLiteNet",
    "OceanNet",
    "OceanNetConfig",
    "OceanOutput",
    "OnlineClassifier",
    "OnlineOceanNet",
    "OptimizerTargets",
    "ResNetTrunk",
    "apply_filter",
    "box_offsets",
    "deform_conv3x3",
    "depthwise_xcorr",
    "distance_bins",
    "filter_gradient",
    "prroi_pool2d",
    "score_size",
]
