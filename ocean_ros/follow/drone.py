"""Drone follower controller: yaw rate, vertical speed and forward speed from a forward-looking camera.

Pure Python (no ROS). Outputs are a body-frame velocity in REP-103 (x forward, y left, z up):
- yaw rate (rad/s, > 0 turns left) from the horizontal angular error: a target right of centre gives < 0;
- vertical speed (m/s, > 0 climbs) from the vertical angular error: a target above centre gives > 0;
- forward speed (m/s, > 0 flies forward) from the size error ``ln(desired_size / apparent_size)``, positive
  when the target looks smaller than desired (too far away). Sizes are fractions of the image height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .camera import CameraModel
from .pid import Pid, PidConfig
from .target import Observation, TrackerInput, hold_reason

__all__ = [
    "SIZE_MEASURES", "DroneConfig", "BodyVelocity", "DroneController", "apparent_size", "body_to_px4_ned", "size_error",
]

SIZE_MEASURES = ("height", "width", "area")
_MIN_SIZE = 1e-3  # fraction of the image height; keeps the logarithm finite for degenerate boxes


@dataclass(frozen=True)
class DroneConfig:
    """PIDs per axis (errors in rad, rad and unitless; outputs rad/s, m/s, m/s) and the follow rules.

    ``desired_size``: wanted apparent size, fraction of the image height in (0, 2]; ``size_measure``:
    ``height`` (box height), ``width`` (box width) or ``area`` (square root of width·height).
    """

    yaw: PidConfig = field(default_factory=PidConfig)
    vertical: PidConfig = field(default_factory=PidConfig)
    forward: PidConfig = field(default_factory=PidConfig)
    desired_size: float = 0.3
    size_measure: str = "height"
    timeout_s: float = 0.5
    min_score: float = 0.3

    def __post_init__(self) -> None:
        if self.size_measure not in SIZE_MEASURES:
            raise ValueError(f"size_measure must be one of {SIZE_MEASURES}, got {self.size_measure!r}")
        if not 0 < self.desired_size <= 2:
            raise ValueError(f"desired_size must be in (0, 2] image heights, got {self.desired_size}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class BodyVelocity:
    """REP-103 body-frame command: ``forward`` (m/s, +x), ``vertical`` (m/s, +z), ``yaw_rate`` (rad/s, about +z)."""

    forward: float
    vertical: float
    yaw_rate: float
    following: bool
    reason: str


def apparent_size(observation: Observation, camera: CameraModel, measure: str) -> float:
    """Apparent size of the box as a fraction of the image height (unitless)."""
    if measure == "height":
        pixels = observation.height
    elif measure == "width":
        pixels = observation.width
    else:
        pixels = math.sqrt(max(observation.width, 0.0) * max(observation.height, 0.0))
    return pixels / camera.height


def size_error(apparent: float, desired: float) -> float:
    """``ln(desired / apparent)``: > 0 when the target looks too small (far), < 0 when too big (close)."""
    return math.log(desired / max(apparent, _MIN_SIZE))


class DroneController:
    """Follows the target with yaw, climb and forward speed; holds (all zero) when told to."""

    def __init__(self, config: DroneConfig) -> None:
        self.config = config
        self._yaw = Pid(config.yaw)
        self._vertical = Pid(config.vertical)
        self._forward = Pid(config.forward)
        self._last_time: float | None = None

    def configure(self, config: DroneConfig) -> None:
        """Change gains, limits and rules, keeping the controller state."""
        self.config = config
        self._yaw.config, self._vertical.config, self._forward.config = config.yaw, config.vertical, config.forward

    def reset(self) -> None:
        """Forget PIDs and timing (call on arming and disarming)."""
        for pid in (self._yaw, self._vertical, self._forward):
            pid.reset()
        self._last_time = None

    def update(self, now: float, inputs: TrackerInput, camera: CameraModel) -> BodyVelocity:
        """The body-frame command for time ``now`` (s) from the tracker input."""
        cfg = self.config
        dt = 0.0 if self._last_time is None else min(max(now - self._last_time, 0.0), cfg.timeout_s)
        self._last_time = now
        reason = hold_reason(inputs, now, cfg.timeout_s, cfg.min_score)
        if reason is not None:
            for pid in (self._yaw, self._vertical, self._forward):
                pid.reset()
            return BodyVelocity(0.0, 0.0, 0.0, False, reason)
        observation = inputs.observation
        assert observation is not None
        azimuth, elevation = camera.angles(observation.u, observation.v)
        size = size_error(apparent_size(observation, camera, cfg.size_measure), cfg.desired_size)
        return BodyVelocity(
            forward=self._forward.update(size, dt),
            vertical=self._vertical.update(elevation, dt),
            yaw_rate=self._yaw.update(azimuth, dt),
            following=True,
            reason="following",
        )


def body_to_px4_ned(command: BodyVelocity, heading: float) -> tuple[float, float, float, float]:
    """PX4 ``TrajectorySetpoint`` values ``(v_north, v_east, v_down, yawspeed)`` for a REP-103 body command.

    PX4 velocity setpoints live in the local NED world frame and its yaw rate turns about NED's down axis, so:
    ``heading`` (rad) is PX4's NED yaw (0 = north, > 0 clockwise seen from above, from
    ``VehicleLocalPosition.heading``); forward speed is rotated by it, up becomes down (sign flip), and a
    REP-103 yaw rate (> 0 counter-clockwise) becomes a NED yawspeed of opposite sign. Units: m/s and rad/s.
    """
    return (
        command.forward * math.cos(heading),
        command.forward * math.sin(heading),
        -command.vertical,
        -command.yaw_rate,
    )
