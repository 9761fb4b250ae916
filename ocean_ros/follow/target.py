"""What a follower knows about the tracked target, and when it must hold still.

Pure Python (no ROS). The nodes turn ``vision_msgs/Detection2DArray`` and ``ocean_ros_msgs/TrackerStatus``
into a :class:`TrackerInput`; :func:`hold_reason` decides whether the controllers follow or hold (zero
commands, integrators reset). Times are seconds on the follower's clock (ROS time, simulated or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["IDLE", "TRACKING", "LOST", "Observation", "Refusals", "TrackerInput", "hold_reason"]

# Values of ocean_ros_msgs/TrackerStatus.state (kept here so that this module needs no message package).
IDLE = 0
TRACKING = 1
LOST = 2


@dataclass(frozen=True)
class Observation:
    """One detected box: centre ``(u, v)`` and size ``width x height`` in pixels, ``score`` in [0, 1]."""

    u: float
    v: float
    width: float
    height: float
    score: float = 1.0

    def problem(self) -> str | None:
        """Why this is not a box to steer by (the refusal reason), or None when it is one.

        A box needs a finite centre, a finite positive size and a finite positive score; anything else comes
        from a broken or foreign publisher and is refused, never followed.
        """
        if not (math.isfinite(self.u) and math.isfinite(self.v)):
            return "non-finite centre"
        if not (math.isfinite(self.width) and math.isfinite(self.height)):
            return "non-finite size"
        if self.width <= 0 or self.height <= 0:
            return "non-positive size"
        if not math.isfinite(self.score):
            return "non-finite score"
        if self.score <= 0:
            return "non-positive score"
        return None


@dataclass(frozen=True)
class TrackerInput:
    """The latest tracker output as seen by a follower.

    ``received_at``: time (s) the latest detections message arrived, empty or not (None: never);
    ``observation``: its best detection (None when the array was empty, i.e. the target is lost);
    ``state``: the latest fresh ``TrackerStatus.state`` (None when no recent status).
    """

    received_at: float | None = None
    observation: Observation | None = None
    state: int | None = None


def hold_reason(inputs: TrackerInput, now: float, timeout_s: float, min_score: float) -> str | None:
    """Why a follower must hold now, or None when it may follow ``inputs.observation``.

    Holds when nothing arrived yet, when the latest detections are older than ``timeout_s`` (or the clock
    went backwards), when the tracker reports IDLE or LOST, on an empty detection array, on a detection that is
    not a box (:meth:`Observation.problem`, the reason returned as is), and when the score is below ``min_score``.
    """
    if inputs.received_at is None:
        return "no detections received"
    age = now - inputs.received_at
    if age < 0:
        return "clock jumped backwards"
    if age > timeout_s:
        return f"no detections for {age:.2f} s"
    if inputs.state == IDLE:
        return "tracker idle"
    if inputs.state == LOST:
        return "tracker lost the target"
    observation = inputs.observation
    if observation is None:
        return "target lost (empty detections)"
    problem = observation.problem()
    if problem is not None:
        return problem
    if observation.score < min_score:
        return f"low confidence {observation.score:.2f} < {min_score:.2f}"
    return None


class Refusals:
    """Counts refused detections per reason and says when a warning is due (at most one per reason per
    ``throttle_s`` seconds of the caller's clock), so that a broken publisher cannot flood the log."""

    def __init__(self, throttle_s: float = 2.0) -> None:
        self.throttle_s = throttle_s
        self.counts: dict[str, int] = {}
        self._warned_at: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, reason: str, now: float) -> bool:
        """Count one refusal; True when it should be logged now."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        last = self._warned_at.get(reason)
        if last is not None and 0 <= now - last < self.throttle_s:
            return False
        self._warned_at[reason] = now
        return True
