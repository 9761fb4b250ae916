"""Which camera frames the tracker node takes, by stamp: in order, no repeats, and following a clock that steps back.

ROS-free: stamps are integer nanoseconds. Not thread-safe: the node calls it under its frame lock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TIMELINE_RESET_FRAMES", "StampGate", "StampVerdict"]

# Consecutive frames older than the newest accepted one after which the camera's clock is taken to have stepped
# back (NTP correction, driver restart): the node follows the new timeline instead of refusing every frame until
# the clock catches up. A single late frame (reordered transport) is still refused.
TIMELINE_RESET_FRAMES = 3


@dataclass(frozen=True)
class StampVerdict:
    """What to do with one frame: take it, or refuse it for ``reason`` (a counter key) explained by ``detail``.

    ``stepped_back_ns`` > 0: the frame is taken as the start of a new timeline that far behind the old one (the
    frames of the old timeline are to be forgotten).
    """

    accepted: bool
    reason: str = ""
    detail: str = ""
    stepped_back_ns: int = 0

    @property
    def new_timeline(self) -> bool:
        return self.stepped_back_ns > 0


class StampGate:
    """Takes frames whose stamp is newer than the newest taken; ``reset_after`` older ones in a row start anew."""

    def __init__(self, reset_after: int = TIMELINE_RESET_FRAMES) -> None:
        if reset_after < 1:
            raise ValueError(f"reset_after must be at least 1, got {reset_after}")
        self.reset_after = reset_after
        self.reset()

    def reset(self) -> None:
        """Forget every stamp seen: the next frame is taken whatever its stamp."""
        self.last_ns = -1  # stamp of the newest frame taken
        self._backwards = 0  # consecutive frames stamped before it

    def check(self, stamp_ns: int) -> StampVerdict:
        """The verdict on a frame stamped ``stamp_ns``; a taken frame becomes the newest."""
        if stamp_ns == self.last_ns:
            return StampVerdict(False, "duplicate_stamp", f"frame stamp {stamp_ns} ns is the last frame's")
        stepped_back = 0
        if stamp_ns < self.last_ns:
            self._backwards += 1
            if self._backwards < self.reset_after:
                return StampVerdict(
                    False, "out_of_order", f"frame stamp {stamp_ns} ns is older than the last frame's {self.last_ns}"
                )
            stepped_back = self.last_ns - stamp_ns
        self._backwards = 0
        self.last_ns = stamp_ns
        return StampVerdict(True, stepped_back_ns=stepped_back)
