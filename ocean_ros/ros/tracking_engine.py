"""The tracker as the node drives it: device choice, weights, target identity, catch-up and debug drawing.

Holds no ROS state besides building the debug image message; the node owns threads and messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.model import OceanNet, OceanNetConfig
from ocean_ros.core.network import load_network
from ocean_ros.core.tracker import OceanTracker, check_init_box
from ocean_ros.core.types import TrackResult, TrackState
from ocean_ros.ros.node_config import NodeConfig

STATE_COLOURS = {TrackState.TRACKING: (0, 220, 0), TrackState.LOST: (0, 0, 255), TrackState.IDLE: (160, 160, 160)}


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda[:N]' must exist. Raises ValueError with the reason."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name} requested but CUDA is not available (torch {torch.__version__})")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {name} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


class TrackingEngine:
    """One :class:`OceanTracker` plus what the node publishes about its target."""

    def __init__(self, tracker: OceanTracker, device: torch.device, source: str) -> None:
        self.tracker = tracker
        self.device = device
        self.source = source
        self.target_id = ""
        self.label = ""
        self.init_stamp: Any = None  # header stamp of the frame the target was initialised on
        self.frame_shape: tuple[int, int] = (0, 0)

    @property
    def state(self) -> TrackState:
        return self.tracker.state

    @property
    def online_enabled(self) -> bool:
        return bool(self.tracker.config.online)

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return "cpu"

    def describe(self) -> str:
        cfg = self.tracker.config
        return (
            f"preset {cfg.preset}, weights {self.source}, device {self.device_name}, network {self.tracker.backend}, "
            f"crop {self.tracker.crop_backend}, "
            f"step {self.tracker.step_mode}, {'float16' if cfg.half else 'float32'}, align {cfg.align}, "
            f"online {cfg.online}"
        )

    @staticmethod
    def check_box(box_xywh: Sequence[float], width: int, height: int) -> str:
        """'' when ``box_xywh`` is a valid init box for a ``width`` x ``height`` frame, else the reason."""
        try:
            check_init_box(box_xywh, width, height)
        except ValueError as err:
            return str(err)
        return ""

    def initialize(
        self,
        frame_bgr: np.ndarray,
        box_xywh: Sequence[float],
        target_id: str,
        label: str,
        init_stamp: Any = None,
        catch_up: Sequence[Any] = (),
    ) -> None:
        """Initialise on ``frame_bgr``, then track silently through ``catch_up`` frames (StampedFrame, in order)."""
        self.tracker.initialize(frame_bgr, box_xywh)
        self.frame_shape = frame_bgr.shape[:2]
        self.target_id, self.label, self.init_stamp = target_id, label, init_stamp
        for stamped in catch_up:
            if stamped.frame_bgr.shape[:2] == self.frame_shape:
                self.tracker.track(stamped.frame_bgr)

    def track(self, frame_bgr: np.ndarray) -> TrackResult:
        """Track one frame; on CUDA the wait is on the step's result event, not a device-wide synchronise."""
        return self.tracker.track_async(frame_bgr).result()

    def reset(self) -> None:
        self.tracker.reset()
        self.target_id = self.label = ""
        self.init_stamp = None

    def update_config(self, changes: dict[str, Any]) -> None:
        self.tracker.update_config(**changes)

    def debug_image(self, frame_bgr: np.ndarray, result: TrackResult, header: Any) -> Any:
        """The frame with the box, state and score drawn, as a bgr8 sensor_msgs/Image."""
        from ocean_ros.ros.image_conversion import array_to_image

        canvas = frame_bgr.copy()
        x, y, w, h = result.box_xywh
        colour = STATE_COLOURS[result.state]
        cv2.rectangle(canvas, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))), colour, 2)
        text = f"{self.target_id} {result.state.value} {result.score:.2f}"
        cv2.putText(canvas, text, (int(x), max(int(y) - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        return array_to_image(canvas, "bgr8", header)


def build_engine(tracker_config: TrackerConfig, node_config: NodeConfig) -> TrackingEngine:
    """Load the weights (or random ones when allowed) on the configured device and build the tracker."""
    device = resolve_device(node_config.device)
    if device.type == "cpu":
        torch.set_num_threads(node_config.cpu_threads or max(1, (os.cpu_count() or 2) - 1))
    if tracker_config.half and device.type != "cuda":
        raise ValueError(f"half precision needs CUDA; the device is {device}")
    dtype = torch.float16 if tracker_config.half else torch.float32
    if node_config.checkpoint:
        net, _ = load_network(node_config.checkpoint, tracker_config, device)
        source = node_config.checkpoint
    else:
        if tracker_config.backend not in ("auto", "torch"):
            raise ValueError(
                f"allow_random_weights runs the torch network; backend {tracker_config.backend!r} needs a checkpoint"
            )
        torch.manual_seed(0)
        net = OceanNet(OceanNetConfig(align=tracker_config.align)).to(device=device, dtype=dtype).eval()
        source = "RANDOM (allow_random_weights)"
    if tracker_config.align and not net.has_align:
        raise ValueError(
            f"preset {tracker_config.preset} uses the object-aware head but {source} has none; "
            "set align:=false or use a checkpoint with align_head weights"
        )
    return TrackingEngine(OceanTracker(net, tracker_config, device), device, source)
