"""Plain value types shared by the core and the outside world: boxes, tracker states, per-frame results."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Box", "TrackResult", "TrackState"]


class Box(NamedTuple):
    """Axis-aligned box ``x, y, w, h`` in 0-based pixels; (x, y) is the top-left corner."""

    x: float
    y: float
    w: float
    h: float

    @classmethod
    def from_xywh(cls, xywh: Sequence[float]) -> Box:
        """From any 4-sequence ``x, y, w, h`` (values converted to float, nothing validated)."""
        if len(xywh) != 4:
            raise ValueError(f"a box needs 4 values x, y, w, h; got {len(xywh)}")
        x, y, w, h = (float(v) for v in xywh)
        return cls(x, y, w, h)

    @classmethod
    def from_center(cls, cx: float, cy: float, w: float, h: float) -> Box:
        """From centre ``cx, cy`` and size ``w, h`` (pixels): x = cx - w/2, y = cy - h/2."""
        return cls(cx - w / 2, cy - h / 2, w, h)

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(cx, cy)`` = (x + w/2, y + h/2), pixels."""
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def area(self) -> float:
        """w·h in square pixels."""
        return self.w * self.h

    def is_finite(self) -> bool:
        """True when all four values are finite numbers."""
        return all(math.isfinite(v) for v in self)

    def intersects_image(self, width: int, height: int) -> bool:
        """True when the box overlaps the image ``[0, width) x [0, height)`` with a positive area."""
        return self.x < width and self.y < height and self.x + self.w > 0 and self.y + self.h > 0

    def as_tuple(self) -> tuple[float, float, float, float]:
        """Plain tuple ``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)


class TrackState(str, enum.Enum):
    """What the outside world sees: no target, target followed, or target lost (still searching)."""

    IDLE = "IDLE"
    TRACKING = "TRACKING"
    LOST = "LOST"


@dataclass(frozen=True)
class TrackResult:
    """Outcome of one tracked frame.

    ``box_xywh`` is in 0-based frame pixels and not clamped to the image (TracKit writes cx - w/2 as is).
    ``score`` is the fused classification sigmoid at the chosen cell, in [0, 1]. ``timings`` holds
    milliseconds per stage: ``crop``, ``network``, ``post``, ``total``, plus ``online`` (sampling, scoring,
    memory and filter update of the online classifier) when it is enabled.
    """

    box_xywh: tuple[float, float, float, float]
    score: float
    state: TrackState
    timings: dict[str, float] = field(default_factory=dict)
    search_size: int = 0
    """side of the search crop fed to the network (px)"""
    crop_side: int = 0
    """side of the frame region that was resized to ``search_size`` (frame px)"""
    scale_z: float = 1.0
    """crop pixels per frame pixel of the search crop"""
    peak: tuple[int, int] = (0, 0)
    """(row, col) of the chosen score cell"""
    pscore: float = 0.0
    """the selection score at the peak (penalised, windowed, fused), unitless"""
    frame_index: int = 0
    """frames processed since initialize (1 = first tracked frame)"""
    online_flag: str = ""
    """online localisation flag: normal, hard_negative, uncertain or not_found; "" when online is off"""
    online_updated: bool = False
    """True when the online filter was re-optimised on this frame (scheduled or hard-negative update)"""
    searching: bool = False
    """True when the target was LOST on this frame and a re-detection probe scanned the frame for it"""
    reacquired: bool = False
    """True when this frame's probe confirmed the target: the box is the re-detection, the state TRACKING again"""

    @property
    def box(self) -> Box:
        """The result box as a :class:`Box`."""
        return Box(*self.box_xywh)
