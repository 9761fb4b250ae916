"""Pan-tilt follower controller: camera-frame angular errors to pan/tilt joint velocity or position targets.

Pure Python (no ROS). Sign conventions: the PID outputs are camera turn rates in REP-103 terms (pan > 0 turns
the view left, tilt > 0 turns it up); ``AxisConfig.direction`` maps them to joint space (-1 for a joint whose
positive direction turns the view right / down, e.g. a tilt joint rotating about +y). Commands are joint-space:
rad/s in velocity mode, rad in position mode (the rate integrated into a position target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .camera import CameraModel
from .pid import Pid, PidConfig
from .target import TrackerInput, hold_reason

__all__ = ["VELOCITY", "POSITION", "AxisConfig", "PanTiltConfig", "PanTiltCommand", "PanTiltController"]

VELOCITY = "velocity"
POSITION = "position"


@dataclass(frozen=True)
class AxisConfig:
    """One joint: its PID (error in rad, output in rad/s), joint limits (rad) and direction (+1 or -1)."""

    pid: PidConfig = field(default_factory=PidConfig)
    lower: float = -math.inf
    upper: float = math.inf
    direction: float = 1.0

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"joint limits need lower < upper, got [{self.lower}, {self.upper}]")
        if self.direction not in (1.0, -1.0):
            raise ValueError(f"joint direction must be +1 or -1, got {self.direction}")


@dataclass(frozen=True)
class PanTiltConfig:
    """Both axes, the command mode, and the hold rules (``timeout_s`` in s, ``min_score`` in [0, 1])."""

    pan: AxisConfig = field(default_factory=AxisConfig)
    tilt: AxisConfig = field(default_factory=AxisConfig)
    mode: str = VELOCITY
    timeout_s: float = 0.5
    min_score: float = 0.3

    def __post_init__(self) -> None:
        if self.mode not in (VELOCITY, POSITION):
            raise ValueError(f"mode must be {VELOCITY!r} or {POSITION!r}, got {self.mode!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class PanTiltCommand:
    """Joint-space command ``[pan, tilt]`` (rad/s or rad); ``valid`` False means: send nothing."""

    pan: float
    tilt: float
    following: bool
    reason: str
    valid: bool = True


class _Axis:
    def __init__(self, config: AxisConfig) -> None:
        self.config = config
        self.pid = Pid(config.pid)
        self.target: float | None = None  # position mode: joint position target, rad

    def rate_bounds(self, position: float | None, dt: float) -> tuple[float, float]:
        """Camera-rate bounds (rad/s) that keep the joint inside its limits within one step."""
        if position is None:
            return -math.inf, math.inf
        cfg = self.config
        joint_low = min(0.0, (cfg.lower - position) / dt)
        joint_high = max(0.0, (cfg.upper - position) / dt)
        if cfg.direction > 0:
            return joint_low, joint_high
        return -joint_high, -joint_low


class PanTiltController:
    """Follows the target with a pan-tilt head; holds (zero velocity / current position) when told to.

    Call :meth:`update` once per control period. While holding, both PIDs are reset, so following again
    starts from zero output without an integral kick and ramps up under the rate limit.
    """

    def __init__(self, config: PanTiltConfig) -> None:
        self.config = config
        self._pan = _Axis(config.pan)
        self._tilt = _Axis(config.tilt)
        self._last_time: float | None = None

    def configure(self, config: PanTiltConfig) -> None:
        """Change gains and limits, keeping the controller state (the mode must not change)."""
        if config.mode != self.config.mode:
            raise ValueError("the command mode cannot change while running")
        self.config = config
        for axis, axis_config in ((self._pan, config.pan), (self._tilt, config.tilt)):
            axis.config = axis_config
            axis.pid.config = axis_config.pid

    def reset(self) -> None:
        """Forget everything: PIDs, position targets and timing (call on arming and disarming)."""
        for axis in (self._pan, self._tilt):
            axis.pid.reset()
            axis.target = None
        self._last_time = None

    def update(
        self,
        now: float,
        inputs: TrackerInput,
        camera: CameraModel,
        joints: tuple[float, float] | None = None,
    ) -> PanTiltCommand:
        """The command for time ``now`` (s) from the tracker input and the measured joints (rad) if known."""
        cfg = self.config
        dt = 0.0 if self._last_time is None else min(max(now - self._last_time, 0.0), cfg.timeout_s)
        self._last_time = now
        reason = hold_reason(inputs, now, cfg.timeout_s, cfg.min_score)
        if reason is None and cfg.mode == POSITION and joints is None and self._pan.target is None:
            reason = "waiting for joint states"
        if reason is not None:
            return self._hold(reason, joints)

        assert inputs.observation is not None
        azimuth, elevation = camera.angles(inputs.observation.u, inputs.observation.v)
        values = []
        for index, (axis, error) in enumerate(((self._pan, azimuth), (self._tilt, elevation))):
            measured = None if joints is None else joints[index]
            if cfg.mode == VELOCITY:
                low, high = axis.rate_bounds(measured, dt) if dt > 0 else (-math.inf, math.inf)
                values.append(axis.config.direction * axis.pid.update(error, dt, low, high))
            else:
                if axis.target is None:
                    axis.target = measured
                assert axis.target is not None
                low, high = axis.rate_bounds(axis.target, dt) if dt > 0 else (-math.inf, math.inf)
                rate = axis.pid.update(error, dt, low, high)
                axis.target = min(max(axis.target + axis.config.direction * rate * dt, axis.config.lower),
                                  axis.config.upper)
                values.append(axis.target)
        return PanTiltCommand(values[0], values[1], True, "following")

    def _hold(self, reason: str, joints: tuple[float, float] | None) -> PanTiltCommand:
        for index, axis in enumerate((self._pan, self._tilt)):
            was_following = axis.pid.output != 0.0 or axis.pid.filtered is not None
            axis.pid.reset()
            if self.config.mode == POSITION and joints is not None and (axis.target is None or was_following):
                axis.target = joints[index]  # stop where the joint is, not where it was heading
        if self.config.mode == VELOCITY:
            return PanTiltCommand(0.0, 0.0, False, reason)
        if self._pan.target is None or self._tilt.target is None:
            return PanTiltCommand(0.0, 0.0, False, reason, valid=False)
        return PanTiltCommand(self._pan.target, self._tilt.target, False, reason)
