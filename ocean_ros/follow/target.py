"""What a follower knows about the tracked target, and when it must hold still.

Pure Python (no ROS). The nodes turn ``vision_msgs/Detection2DArray`` and ``ocean_ros_msgs/TrackerStatus``
into a :class:`TrackerInput`; :func:`hold_reason` decides whether the controllers follow or hold (zero
commands, integrators reset). Times are seconds on the follower's clock (ROS time, simulated or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["IDLE", "TRACKING", "LOST", "Observation", "TrackerInput", "hold_reason"]

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

    def is_finite(self) -> bool:
        """True when every field is a finite number."""
        return all(math.isfinite(x) for x in (self.u, self.v, self.width, self.height, self.score))


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
    went backwards), when the tracker reports IDLE or LOST, on an empty detection array, and when the score
    is below ``min_score``.
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
    if not observation.is_finite():
        return "non-finite detection"
    if observation.score < min_score:
        return f"low confidence {observation.score:.2f} < {min_score:.2f}"
    return None
