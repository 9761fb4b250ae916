"""The tracker as the node drives it: target identity, catch-up and debug drawing; and the node's default way
of building it from the weights its parameters name (:class:`CheckpointTrackers`).

Holds no ROS state besides building the debug image message; the node owns threads and messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from ocean_ros.core.build import build_from_config, default_preset, resolve_device
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.model import OceanNet, OceanNetConfig
from ocean_ros.core.network import Weights, read_weights
from ocean_ros.core.tracker import OceanTracker, check_init_box
from ocean_ros.core.types import TrackResult, TrackState
from ocean_ros.models import default_checkpoint
from ocean_ros.ros.node_config import NodeConfig

STATE_COLOURS = {TrackState.TRACKING: (0, 220, 0), TrackState.LOST: (0, 0, 255), TrackState.IDLE: (160, 160, 160)}
RANDOM_WEIGHTS = "RANDOM (allow_random_weights)"


class TrackingEngine:
    """One :class:`OceanTracker` plus what the node publishes about its target."""

    def __init__(self, tracker: OceanTracker, source: str) -> None:
        self.tracker = tracker
        self.device = tracker.device
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
        return self.tracker.track(frame_bgr)

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


def weights_path(node_config: NodeConfig) -> str:
    """The weights the node runs: its checkpoint, else the shipped model ('' for random weights, when allowed).

    FileNotFoundError when none is given and the shipped model is missing."""
    if node_config.checkpoint or node_config.allow_random_weights:
        return node_config.checkpoint
    return str(default_checkpoint())


class TrackerFactory(Protocol):
    """What the node builds its tracker with: the preset its weights imply, and the tracker itself."""

    def default_preset(self, node_config: NodeConfig) -> str: ...

    def __call__(self, config: TrackerConfig, node_config: NodeConfig) -> OceanTracker: ...


class CheckpointTrackers:
    """The node's default :class:`TrackerFactory`: :func:`weights_path` built by
    :func:`ocean_ros.core.build.build_tracker`; random ResNet-50 weights only with ``allow_random_weights``.

    The weights read for the preset default are kept for the build that follows, so the file is read once.
    """

    def __init__(self) -> None:
        self._weights: Weights | None = None

    def _read(self, path: str) -> Weights:
        if self._weights is None or str(self._weights.path) != path:
            self._weights = read_weights(path)
        return self._weights

    def default_preset(self, node_config: NodeConfig) -> str:
        """The preset stored with the weights, else the build's default (also when they cannot be read: then
        configuration reports why)."""
        try:
            path = weights_path(node_config)
            return default_preset(self._read(path) if path else None)
        except (OSError, ValueError):
            return default_preset(None)

    def __call__(self, config: TrackerConfig, node_config: NodeConfig) -> OceanTracker:
        device = resolve_device(node_config.device)
        if device.type == "cpu":
            torch.set_num_threads(node_config.cpu_threads or max(1, (os.cpu_count() or 2) - 1))
        path = weights_path(node_config)
        if path:
            weights, self._weights = self._read(path), None  # the build holds the tensors no longer than needed
        else:
            torch.manual_seed(0)
            weights = OceanNet(OceanNetConfig(align=config.align))
        return build_from_config(weights, config, device)
