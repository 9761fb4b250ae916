"""Settings of the tracker node that are not tracker hyper-parameters, in the same schema style as
:class:`ocean_ros.core.config.TrackerConfig`; the node declares its ROS parameters from both."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ocean_ros.core.config import ParamSpec, check_value, param_field, schema_of

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
WEIGHTS_HELP = (
    "official Ocean weights (OceanV.pth offline with the object-aware head, OceanV19on.pth online, ...) are "
    "published with the TracKit repository (researchmm/TracKit; dead links are redirected to the SOTS "
    "repository's model folder): download one and set the 'checkpoint' parameter to its path"
)


@dataclass(frozen=True)
class NodeConfig:
    """What the ROS node needs beyond the tracker: weights, device, inputs, robustness limits, outputs."""

    checkpoint: str = param_field(
        "", "path of the Ocean checkpoint (.pth, TracKit or ocean_ros format) or of an ocean-export folder (graph "
        "backends only); empty: the shipped Ocean-Lite model (ocean_ros/models/ocean_lite.pth). The preset defaults "
        "to the one stored with the checkpoint (or recorded in the folder)"
    )
    allow_random_weights: bool = param_field(
        False, "with no checkpoint, run random ResNet-50 Ocean weights instead of the shipped model (tests and "
        "plumbing checks only)"
    )
    device: str = param_field("auto", "compute device: auto (CUDA when available), cpu, cuda or cuda:N")
    cpu_threads: int = param_field(
        0, "threads for CPU inference (torch, and the ONNX Runtime / OpenVINO graphs); 0 = one less than the CPU "
        "cores (at least 1), leaving a core for image transport and callbacks (threads)", range=(0, 256),
    )
    image_transport: str = param_field(
        "raw", "input: 'raw' subscribes sensor_msgs/Image on 'image', 'compressed' CompressedImage on "
        "'image/compressed'", choices=("raw", "compressed"),
    )
    ring_size: int = param_field(
        30, "recent frames kept for initialisation on the frame a box was drawn on (frames)", range=(1, 1000)
    )
    init_catch_up: int = param_field(
        10, "after an init on an older frame, track up to this many of the newer buffered frames (evenly spaced, "
        "unpublished) to reach the present; 0 jumps straight to the newest frame (frames)", range=(0, 1000),
        runtime_safe=True,
    )
    max_image_pixels: int = param_field(
        16_777_216, "frames with more pixels (width*height) are refused (pixels)", range=(1, 1 << 31),
        runtime_safe=True,
    )
    default_target_id: str = param_field(
        "target", "Detection2D.id used when an init names no target id", runtime_safe=True
    )
    publish_debug_image: bool = param_field(
        True, "offer ~/debug_image (drawn only while someone subscribes)", runtime_safe=True
    )
    diagnostics_period: float = param_field(
        1.0, "period of /diagnostics messages (s)", range=(0.1, 60.0)
    )
    log_throttle: float = param_field(
        2.0, "minimum interval between repeated warnings about refused input (s)", range=(0.0, 3600.0),
        runtime_safe=True,
    )
    autostart: bool = param_field(
        True, "configure and activate at start-up, without a lifecycle manager"
    )

    def __post_init__(self) -> None:
        for spec in schema_of(type(self)):
            object.__setattr__(self, spec.name, check_value(spec, getattr(self, spec.name)))
        if not DEVICE_PATTERN.match(self.device):
            raise ValueError(f"device={self.device!r} is not one of auto, cpu, cuda, cuda:N")

    @classmethod
    def parameters(cls) -> tuple[ParamSpec, ...]:
        return schema_of(cls)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NodeConfig:
        known = {spec.name for spec in cls.parameters()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown node setting(s): {', '.join(unknown)}")
        return cls(**values)
