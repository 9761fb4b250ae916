"""Losing and finding the target again: the loss hysteresis and the frame scan run while the target is lost.

:class:`LossHysteresis` turns per-frame confidences into TRACKING / LOST: LOST after a sustained low score (or
the online branch's ``not_found``), TRACKING again only after a sustained confident one, so a distractor of
middling score does not end a loss. While LOST the tracker spends one extra network pass per frame on a
:class:`Redetector` probe: a search crop at the lost target's scale somewhere in the frame (:class:`ScanPlan`:
tiles covering the whole frame, nearest the last position first, one scale per pass), its peak taken with the
cosine window off. A probe whose peak is confident becomes a candidate; the next probes go to the candidate
and it is adopted once ``found_frames`` probes in a row agree (confident, overlapping boxes). With the online
branch on, :func:`online_agrees` has the last word on every end of a loss: the filter must respond at the new box
(and, for a re-detection, more than at the local box), which turns down distractors the Siamese score likes.

Boxes are ``x, y, w, h`` in 0-based frame pixels; centres ``(x, y)`` frame pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .types import Box, TrackState

__all__ = ["LossHysteresis", "Probe", "Redetector", "ScanPlan", "box_iou", "online_agrees"]

SCAN_SCALES = (1.0, 0.8, 1.25)  # target scale of each scan pass: as lost, then one scale step either way
AGREE_IOU = 0.3  # successive confirming probes must overlap at least this much (IoU)


class _Responds(Protocol):
    def response_at(self, frame_t: Any, center_xy: tuple[float, float]) -> float: ...


def online_agrees(online: _Responds | None, frame_t: Any, center_xy: tuple[float, float], threshold: float,
                  rival_xy: tuple[float, float] | None = None) -> bool:
    """The online filter's verdict on ending a loss at ``center_xy`` (frame px): its response there reaches
    ``threshold`` and, with ``rival_xy``, exceeds its response there; True without an online branch."""
    if online is None:
        return True
    response = online.response_at(frame_t, center_xy)
    return response >= threshold and (rival_xy is None or response > online.response_at(frame_t, rival_xy))


class _Rules(Protocol):
    lost_threshold: float
    lost_frames: int
    found_threshold: float
    found_frames: int


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.w * a.h + b.w * b.h - inter)


class LossHysteresis:
    """TRACKING → LOST after ``lost_frames`` low frames in a row (score < ``lost_threshold``, a NaN score, or the
    online ``not_found`` flag); LOST → TRACKING after ``found_frames`` confident frames in a row (score ≥
    ``found_threshold``) or when a re-detection is adopted (:meth:`found`)."""

    def __init__(self, lost_threshold: float, lost_frames: int, found_threshold: float, found_frames: int) -> None:
        self.state = TrackState.TRACKING
        self._run = 0  # low frames in a row while TRACKING, confident ones while LOST
        self._set(lost_threshold, lost_frames, found_threshold, found_frames)

    @classmethod
    def of(cls, config: _Rules) -> LossHysteresis:
        """The hysteresis of a tracker configuration (its lost_* and found_* fields)."""
        return cls(config.lost_threshold, config.lost_frames, config.found_threshold, config.found_frames)

    def retune(self, config: _Rules) -> None:
        """New thresholds from a changed configuration; the state and counters are kept."""
        self._set(config.lost_threshold, config.lost_frames, config.found_threshold, config.found_frames)

    def _set(self, lost_threshold: float, lost_frames: int, found_threshold: float, found_frames: int) -> None:
        """ValueError when found_threshold < lost_threshold or a frame count is below 1."""
        if found_threshold < lost_threshold:
            raise ValueError(f"found_threshold {found_threshold} is below lost_threshold {lost_threshold}")
        if lost_frames < 1 or found_frames < 1:
            raise ValueError(f"lost_frames and found_frames must be >= 1, got {lost_frames}, {found_frames}")
        self.lost_threshold = lost_threshold
        self.lost_frames = lost_frames
        self.found_threshold = found_threshold
        self.found_frames = found_frames

    def reset(self) -> None:
        """A new target: TRACKING, counters cleared."""
        self.state = TrackState.TRACKING
        self._run = 0  # low frames in a row while TRACKING, confident ones while LOST

    def observe(self, score: float, not_found: bool = False, verify: Callable[[], bool] | None = None) -> TrackState:
        """Count one frame's confidence and return the state after it; ``verify`` (when given) must also agree
        before a loss ends (otherwise the confident run starts over)."""
        if self.state is TrackState.TRACKING:
            low = not_found or not score >= self.lost_threshold  # NaN counts as low
            self._run = self._run + 1 if low else 0
            if self._run >= self.lost_frames:
                self.state, self._run = TrackState.LOST, 0
        else:
            confident = not not_found and score >= self.found_threshold
            self._run = self._run + 1 if confident else 0
            if self._run >= self.found_frames:
                if verify is None or verify():
                    self.found()
                else:
                    self._run = 0
        return self.state

    def found(self) -> TrackState:
        """The target is found again (a re-detection was adopted): TRACKING."""
        self.state, self._run = TrackState.TRACKING, 0
        return self.state


@dataclass(frozen=True)
class Probe:
    """Where one re-detection pass looks: a search crop centred on ``center`` (frame px) for a target of
    ``size`` (w, h frame px)."""

    center: tuple[float, float]
    size: tuple[float, float]


def _tile_centres(extent: float, reach: float) -> list[float]:
    """Centres along one axis of tiles ``reach`` px wide that cover [0, extent] (evenly spread)."""
    count = max(1, math.ceil(extent / reach))
    if count == 1:
        return [extent / 2]
    first, last = reach / 2, extent - reach / 2
    return [first + i * (last - first) / (count - 1) for i in range(count)]


class ScanPlan:
    """Probes tiling the frame at the lost target's scale, one per call to :meth:`next`.

    A probe's score map covers ``reach(size)`` frame px per side (a function of the target size: the grid
    span of a search crop for that size); the tiles of one pass cover the whole frame, nearest
    ``last_center`` first; successive passes cycle through ``scales`` (multipliers of the lost size).
    """

    def __init__(
        self,
        image_wh: tuple[int, int],
        last_center: tuple[float, float],
        lost_size: tuple[float, float],
        reach: Callable[[tuple[float, float]], float],
        scales: tuple[float, ...] = SCAN_SCALES,
    ) -> None:
        if image_wh[0] <= 0 or image_wh[1] <= 0:
            raise ValueError(f"image size must be positive, got {image_wh}")
        self.image_wh = image_wh
        self.last_center = last_center
        self.lost_size = lost_size
        self.reach = reach
        self.scales = scales
        self.passes = 0
        self._queue: list[Probe] = []

    def _pass(self) -> list[Probe]:
        scale = self.scales[self.passes % len(self.scales)]
        size = (self.lost_size[0] * scale, self.lost_size[1] * scale)
        reach = max(1.0, float(self.reach(size)))
        xs = _tile_centres(self.image_wh[0], reach)
        ys = _tile_centres(self.image_wh[1], reach)
        lx, ly = self.last_center
        tiles = sorted(((x, y) for y in ys for x in xs), key=lambda c: ((c[0] - lx) ** 2 + (c[1] - ly) ** 2, c))
        return [Probe(c, size) for c in tiles]

    def next(self) -> Probe:
        """The next probe (a new pass starts, at the next scale, when one is done)."""
        if not self._queue:
            self._queue = self._pass()
            self.passes += 1
        return self._queue.pop(0)

    def pass_length(self) -> int:
        """Probes in the pass under way (the frames one full scan of the frame takes)."""
        return len(self._pass()) if not self._queue else len(self._queue)


class Redetector:
    """The search while LOST: probes from a :class:`ScanPlan`, a confident probe becomes a candidate that the
    following probes re-examine; :meth:`report` returns the box to adopt once ``found_frames`` probes in a row
    agree on it (each confident, each overlapping the previous by ``AGREE_IOU``)."""

    def __init__(self, plan: ScanPlan, found_threshold: float, found_frames: int) -> None:
        self.plan = plan
        self.found_threshold = found_threshold
        self.found_frames = found_frames
        self.probes = 0
        self.candidates = 0
        self._candidate: Box | None = None
        self._agreed = 0

    def next_probe(self) -> Probe:
        """Where to look this frame: at the candidate while one awaits confirmation, else the scan's next tile."""
        if self._candidate is not None:
            c = self._candidate
            return Probe(c.center, (c.w, c.h))
        return self.plan.next()

    def report(self, score: float, box: Box) -> Box | None:
        """The peak of this frame's probe (score 0..1, box frame px); the box to adopt when it is confirmed."""
        self.probes += 1
        confident = score >= self.found_threshold and box.w > 0 and box.h > 0
        if not confident:
            self._candidate, self._agreed = None, 0
            return None
        if self._candidate is not None and box_iou(box, self._candidate) < AGREE_IOU:
            self._agreed = 0  # another place: a new candidate
        if self._agreed == 0:
            self.candidates += 1
        self._candidate, self._agreed = box, self._agreed + 1
        if self._agreed >= self.found_frames:
            self._candidate, self._agreed = None, 0
            return box
        return None
