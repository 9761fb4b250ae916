"""Run the core Ocean tracker over sequences offline: one-pass (OTB, UAV, LaSOT, GOT-10k) or VOT-supervised.

The tracker is :class:`ocean_ros.core.tracker.OceanTracker`, the same object the ROS node drives. Boxes are
``xywh`` in 0-based pixels; per-frame times are the wall time of ``initialize``/``track`` alone (frame decoding
excluded), seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocean_ros.core.types import TrackState
from ocean_ros.eval.overlap import box_iou, polygon_box_overlap
from ocean_ros.eval.results import BOX, FAILURE, INIT, SKIPPED, Trajectory
from ocean_ros.eval.sequences import Sequence

SKIP_AFTER_FAILURE = 5  # VOT: re-initialise this many frames after a failure


@dataclass(frozen=True)
class TrackerSpec:
    """How ``ocean-eval`` builds its tracker: weights, preset, device and options, passed to
    :func:`ocean_ros.core.build.build_tracker` (whose rules decide what None and 'auto' mean)."""

    checkpoint: Path | None  # None: the shipped model
    preset: str | None = None  # None: the one stored with the checkpoint, else OTB2015
    device: str = "cpu"
    online: bool | None = None  # None: as the preset says; True also turns the object-aware head off (TracKit)
    crop_backend: str = "auto"
    half: bool = False
    backend: str = "auto"  # network runtime (TrackerConfig.backend)
    overrides: tuple[tuple[str, Any], ...] = ()  # further TrackerConfig fields (flat names), applied last

    @property
    def name(self) -> str:
        """A default tracker name for result folders, e.g. ``Ocean-OTB2015``."""
        return f"Ocean-{self.preset or 'default'}" + ("-online" if self.online else "")


def build_tracker(spec: TrackerSpec) -> Any:
    """The :class:`~ocean_ros.core.tracker.OceanTracker` ``spec`` describes; a checkpoint lacking a part the
    configuration uses (object-aware head, online classifier) raises the factory's MissingPartError."""
    from ocean_ros.core.build import build_tracker as build

    overrides: dict[str, Any] = {"crop_backend": spec.crop_backend, "half": spec.half}
    if spec.online is not None:
        overrides["online"] = spec.online
        if spec.online:
            overrides["align"] = False
    overrides.update(spec.overrides)
    return build(spec.checkpoint, spec.preset, spec.device, spec.backend, **overrides)


def _first_box(sequence: Sequence) -> tuple[float, float, float, float]:
    box = sequence.ground_truth[0]
    if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{sequence.name}: the first frame has no ground-truth box to initialise on ({box})")
    return tuple(float(v) for v in box)


def run_one_pass(tracker: Any, sequence: Sequence, on_frame: Callable[[], None] | None = None) -> Trajectory:
    """Initialise on frame 1's ground truth and track every later frame, never re-initialising."""
    n = len(sequence)
    boxes = np.full((n, 4), np.nan)
    times = np.full(n, np.nan)
    scores = np.full(n, np.nan)
    reported = np.ones(n, dtype=bool)  # the node publishes a box only in state TRACKING
    init_box = _first_box(sequence)
    frame = sequence.read(0)
    start = time.perf_counter()
    tracker.initialize(frame, init_box)
    times[0] = time.perf_counter() - start
    boxes[0], scores[0] = init_box, 1.0
    if on_frame:
        on_frame()
    for i in range(1, n):
        frame = sequence.read(i)
        start = time.perf_counter()
        result = tracker.track(frame)
        times[i] = time.perf_counter() - start
        boxes[i], scores[i] = result.box_xywh, result.score
        reported[i] = result.state == TrackState.TRACKING
        if on_frame:
            on_frame()
    return Trajectory(boxes, None, times, scores, reported)


def frame_overlap(sequence: Sequence, index: int, box: np.ndarray, bound: tuple[float, float]) -> float:
    """Overlap of ``box`` with frame ``index``'s ground truth (its polygon when there is one), inside the image.

    NaN when the frame has no ground truth.
    """
    if sequence.polygons is not None and np.all(np.isfinite(sequence.polygons[index])):
        return polygon_box_overlap(sequence.polygons[index], box, bound)
    return float(box_iou(box, sequence.ground_truth[index], bound)[0])


def run_supervised(tracker: Any, sequence: Sequence, on_frame: Callable[[], None] | None = None,
                   skip: int = SKIP_AFTER_FAILURE) -> Trajectory:
    """VOT's supervised protocol: a frame with zero overlap is a failure; re-initialise ``skip`` frames later.

    Markers: INIT on (re)initialisation frames, FAILURE on failure frames, SKIPPED in between; boxes elsewhere.
    """
    n = len(sequence)
    bound = sequence.image_size()
    boxes = np.full((n, 4), np.nan)
    times = np.full(n, np.nan)
    scores = np.full(n, np.nan)
    markers = np.full(n, BOX, dtype=np.int64)
    next_init = 0
    for i in range(n):
        if on_frame:
            on_frame()
        if i < next_init:
            markers[i] = SKIPPED
            continue
        if i == next_init:
            gt = sequence.ground_truth[i]
            if not (np.all(np.isfinite(gt)) and gt[2] > 0 and gt[3] > 0):
                markers[i], next_init = SKIPPED, i + 1  # no box to initialise on: try the next frame
                continue
            frame = sequence.read(i)
            start = time.perf_counter()
            tracker.initialize(frame, tuple(float(v) for v in gt))
            times[i] = time.perf_counter() - start
            markers[i] = INIT
            continue
        frame = sequence.read(i)
        start = time.perf_counter()
        result = tracker.track(frame)
        times[i] = time.perf_counter() - start
        box = np.asarray(result.box_xywh, dtype=np.float64)
        if frame_overlap(sequence, i, box, bound) <= 0.0:  # NaN (no ground truth) is never a failure
            markers[i], next_init = FAILURE, i + skip
        else:
            boxes[i], scores[i] = box, result.score
    return Trajectory(boxes, markers, times, scores)
