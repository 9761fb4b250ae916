"""A PID controller for one axis: measurement smoothing, deadband, output and rate limits, anti-windup.

Pure Python (no ROS). The error is ``setpoint - measurement`` in whatever unit the caller uses (rad for angular
errors); the output is in the actuator's unit (rad/s, m/s). Positive error gives positive output for positive
gains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PidConfig", "Pid"]


@dataclass(frozen=True)
class PidConfig:
    """Gains and limits of one axis; every limit is symmetric about zero and ``inf`` means none.

    - ``kp`` output per unit of error, ``ki`` output per unit of error·s, ``kd`` output per unit of error/s;
    - ``output_limit``: ``|output| <= output_limit``;
    - ``rate_limit``: ``|d output / dt| <= rate_limit`` (output units per second), also from zero after a reset;
    - ``integral_limit``: ``|ki · integral| <= integral_limit`` (output units);
    - ``deadband``: while the smoothed error is inside ``|e| < deadband`` the output is zero (a target that is
      close enough is not chased; the integral is frozen, not lost);
    - ``smoothing_s``: time constant (s) of a first-order low-pass on the error; 0 disables it.
    """

    kp: float = 1.0
    ki: float = 0.0
    kd: float = 0.0
    output_limit: float = math.inf
    rate_limit: float = math.inf
    integral_limit: float = math.inf
    deadband: float = 0.0
    smoothing_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("kp", "ki", "kd", "output_limit", "rate_limit", "integral_limit", "deadband", "smoothing_s"):
            value = getattr(self, name)
            if math.isnan(value) or value < 0:
                raise ValueError(f"PID {name} must be >= 0, got {value}")
        for name in ("kp", "ki", "kd", "deadband", "smoothing_s"):
            if math.isinf(getattr(self, name)):
                raise ValueError(f"PID {name} must be finite")
        if self.output_limit == 0 or self.rate_limit == 0:
            raise ValueError("PID output_limit and rate_limit must be > 0 (use inf for no limit)")


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class Pid:
    """Discrete PID, updated once per control period with the latest error (zero-order hold).

    Anti-windup by conditional integration: the integral does not grow while the output is held at a limit
    (output limit, rate limit or the caller's bounds) in the direction the error pushes. The derivative acts
    on the smoothed error and is zero on the first update after a reset, so re-acquiring a target gives no
    kick; the rate limit then ramps the output up from zero.
    """

    def __init__(self, config: PidConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the integral, the filter and the derivative history; the output becomes 0."""
        self.integral = 0.0
        self.output = 0.0
        self.filtered: float | None = None
        self._previous: float | None = None

    def update(self, error: float, dt: float, low: float = -math.inf, high: float = math.inf) -> float:
        """One control step: ``error`` (caller's unit), ``dt`` (s) since the last step; returns the output.

        ``low``/``high`` are extra output bounds for this step (e.g. from joint limits); they take part in the
        anti-windup like the configured limits. A non-finite error or ``dt <= 0`` leaves the state unchanged.
        """
        cfg = self.config
        if not (math.isfinite(error) and math.isfinite(dt)) or dt <= 0:
            return self.output
        if self.filtered is None or cfg.smoothing_s <= 0:
            self.filtered = error
        else:
            self.filtered += dt / (cfg.smoothing_s + dt) * (error - self.filtered)
        smoothed = self.filtered
        derivative = 0.0 if self._previous is None else (smoothed - self._previous) / dt
        self._previous = smoothed
        inside_deadband = abs(smoothed) < cfg.deadband
        effective = 0.0 if inside_deadband else smoothed

        integral = self.integral + effective * dt
        if cfg.ki > 0 and math.isfinite(cfg.integral_limit):
            bound = cfg.integral_limit / cfg.ki
            integral = _clip(integral, -bound, bound)
        wanted = 0.0 if inside_deadband else cfg.kp * effective + cfg.ki * integral + cfg.kd * derivative

        low = max(low, -cfg.output_limit)
        high = min(high, cfg.output_limit)
        if low > high:  # contradictory bounds: stop rather than pick a side
            low = high = 0.0
        step = cfg.rate_limit * dt
        limited = _clip(_clip(wanted, low, high), self.output - step, self.output + step)
        pushing_into_limit = (limited < wanted and effective > 0) or (limited > wanted and effective < 0)
        if not pushing_into_limit:
            self.integral = integral
        self.output = limited
        return limited
