"""A short stamp-indexed ring of recent frames, so that an init lands on the frame its box was drawn on."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StampedFrame:
    """A converted frame with its image header stamp (integer nanoseconds) and the original header."""

    stamp_ns: int
    frame_bgr: np.ndarray
    header: Any


class FrameLookupError(LookupError):
    """No frame in the ring fits the requested stamp; the message says why."""


class FrameRing:
    """The last ``capacity`` frames in arrival (= stamp) order. Not thread-safe: guard it with a lock."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1, got {capacity}")
        self._frames: deque[StampedFrame] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: StampedFrame) -> None:
        self._frames.append(frame)

    def latest(self) -> StampedFrame:
        if not self._frames:
            raise FrameLookupError("no frame received yet")
        return self._frames[-1]

    def find(self, stamp_ns: int) -> StampedFrame:
        """The frame with exactly this stamp; 0 means the latest frame."""
        if stamp_ns == 0:
            return self.latest()
        if not self._frames:
            raise FrameLookupError("no frame received yet")
        oldest, newest = self._frames[0].stamp_ns, self._frames[-1].stamp_ns
        if stamp_ns < oldest:
            raise FrameLookupError(
                f"stamp {format_stamp(stamp_ns)} is older than the ring of {len(self._frames)} frames "
                f"(oldest {format_stamp(oldest)}); raise ring_size or send the init sooner"
            )
        if stamp_ns > newest:
            raise FrameLookupError(
                f"stamp {format_stamp(stamp_ns)} is in the future: the newest frame is {format_stamp(newest)}"
            )
        for frame in reversed(self._frames):
            if frame.stamp_ns == stamp_ns:
                return frame
        raise FrameLookupError(
            f"no frame with stamp {format_stamp(stamp_ns)} in the ring (between {format_stamp(oldest)} and "
            f"{format_stamp(newest)}); the stamp must be copied from the image header"
        )

    def newer_than(self, stamp_ns: int) -> list[StampedFrame]:
        """Frames stamped after ``stamp_ns``, oldest first."""
        return [f for f in self._frames if f.stamp_ns > stamp_ns]


def format_stamp(stamp_ns: int) -> str:
    """Seconds.nanoseconds, as ROS tools print stamps."""
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


def spaced(frames: list[StampedFrame], count: int) -> list[StampedFrame]:
    """At most ``count`` of ``frames``, evenly spaced and ending with the newest (all when they fit)."""
    if count <= 0 or not frames:
        return []
    if len(frames) <= count:
        return frames
    picks = np.linspace(len(frames) - 1, 0, count, endpoint=False)[::-1]
    return [frames[int(round(i))] for i in picks]
