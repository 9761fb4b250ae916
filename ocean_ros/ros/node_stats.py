"""What the tracker node counts and reports: frames processed, dropped, refused (by reason), latency, rate, and the
diagnostics built from them. ROS-free: the node turns a :class:`Diagnosis` into a ``diagnostic_msgs`` message.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ocean_ros.core.types import TrackResult, TrackState

__all__ = ["LATENCY_WINDOW", "RATE_WINDOW_S", "Diagnosis", "NodeStats"]

LATENCY_WINDOW = 300  # processed frames whose latency and time the statistics cover
RATE_WINDOW_S = 5.0  # the processing rate is measured over this many recent seconds


@dataclass(frozen=True)
class Diagnosis:
    """One diagnostics status: ``level`` 'OK' or 'WARN', a one-line message and key/value pairs."""

    level: str
    message: str
    values: dict[str, str]


class NodeStats:
    """Counters (``processed``, ``dropped``, ``discarded``, ``errors``, ``timeline_resets``), refusals by reason,
    and the latency (callback entry to outputs published, ms) and times of the recently processed frames."""

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=window)
        self._processed_at: deque[float] = deque(maxlen=window)
        self._last_warned: dict[str, float] = {}

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def refuse(self, reason: str, now: float, throttle: float) -> bool:
        """Count one refused input under ``reason``; True when it should be logged (not within ``throttle`` s of
        the last logged refusal for that reason)."""
        self.rejected[reason] += 1
        if now - self._last_warned.get(reason, -float("inf")) < throttle:
            return False
        self._last_warned[reason] = now
        return True

    def processed(self, latency_ms: float, now: float) -> None:
        """Count one processed frame that took ``latency_ms``, finished at monotonic time ``now`` (s)."""
        self.counts["processed"] += 1
        self._latencies.append(latency_ms)
        self._processed_at.append(now)

    def tracked(self, result: TrackResult, before: TrackState) -> None:
        """Count a tracked frame's losses (TRACKING → LOST), re-acquisitions and re-detection probes."""
        if result.state is TrackState.LOST and before is TrackState.TRACKING:
            self.counts["losses"] += 1
        self.counts["redetect_probes"] += int(result.searching)
        self.counts["reacquisitions"] += int(result.reacquired)

    def rate_hz(self, now: float) -> float:
        """Frames processed per second over the last :data:`RATE_WINDOW_S` seconds (0 with fewer than two)."""
        recent = [t for t in self._processed_at if now - t <= RATE_WINDOW_S]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def latency_ms(self, percentile: float) -> float:
        """A percentile of the recent latencies (0 before the first frame)."""
        return float(np.percentile(self._latencies, percentile)) if self._latencies else 0.0

    def diagnose(self, state: TrackState, now: float, facts: Mapping[str, str],
                 graph_failure: str | None = None) -> Diagnosis:
        """The diagnostics status: WARN after failed steps or while the target is lost; ``facts`` (device,
        weights, ...) are reported as they are."""
        errors = self.counts["errors"]
        if errors:
            level, message = "WARN", f"{state.value}; {errors} failed steps"
        elif state == TrackState.LOST:
            level, message = "WARN", "target lost, searching"
        else:
            level, message = "OK", state.value
        values = {
            "state": state.value,
            "rate_hz": f"{self.rate_hz(now):.2f}",
            "latency_p50_ms": f"{self.latency_ms(50):.2f}",
            "latency_p99_ms": f"{self.latency_ms(99):.2f}",
            **facts,
            "frames_processed": str(self.counts["processed"]),
            "frames_dropped": str(self.counts["dropped"]),
            "frames_rejected": str(self.rejected_total),
            "step_errors": str(errors),
            "timeline_resets": str(self.counts["timeline_resets"]),
            "losses": str(self.counts["losses"]),
            "reacquisitions": str(self.counts["reacquisitions"]),
            "redetect_probes": str(self.counts["redetect_probes"]),
        }
        if graph_failure:
            values["graph_capture_failed"] = graph_failure
        values.update({f"rejected_{reason}": str(n) for reason, n in sorted(self.rejected.items())})
        return Diagnosis(level, message, values)
