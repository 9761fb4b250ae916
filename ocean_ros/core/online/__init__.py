"""The online classifier at run time (spec §6): samples, first-frame augmentation, memory, flags and the branch.

Modules: :mod:`.sampling` (window, crop, normalisation, target boxes), :mod:`.augmentation` (first-frame transforms and
dropout copies), :mod:`.memory` (the training memory and its weight rule), :mod:`.flags` (localisation flags),
:mod:`.branch` (:class:`OnlineBranch`: the per-target state, trained on the first frame and updated inside the
step). The tunables are :class:`~ocean_ros.core.config.OnlineParams` (re-exported here).
"""

from ..config import OnlineParams
from .augmentation import AugmentationDraws, Transform, augment, draw_augmentation, draw_transforms, dropout_copies
from .branch import AUGMENTATION_EXPANSION, INSIDE_RATIO, OnlineBranch, OnlineScore
from .flags import FLAGS, HARD_NEGATIVE, NORMAL, NOT_FOUND, UNCERTAIN, flag_name, localize
from .memory import SampleMemory
from .sampling import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SAMPLE_SIZE,
    SampleWindow,
    crop_sample,
    normalise,
    sample_window,
    target_box,
    window_shape,
)

__all__ = [
    "AUGMENTATION_EXPANSION",
    "FLAGS",
    "HARD_NEGATIVE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INSIDE_RATIO",
    "NORMAL",
    "NOT_FOUND",
    "SAMPLE_SIZE",
    "UNCERTAIN",
    "AugmentationDraws",
    "OnlineBranch",
    "OnlineParams",
    "OnlineScore",
    "SampleMemory",
    "SampleWindow",
    "Transform",
    "augment",
    "crop_sample",
    "draw_augmentation",
    "draw_transforms",
    "dropout_copies",
    "flag_name",
    "localize",
    "normalise",
    "sample_window",
    "target_box",
    "window_shape",
]
