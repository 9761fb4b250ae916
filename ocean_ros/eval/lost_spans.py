"""Where a one-pass run lost its target: runs of consecutive frames with zero overlap.

A lost span is at least :data:`MIN_LOST_FRAMES` (10) consecutive frames whose IoU with the ground truth is 0 (a
frame without a predicted box counts as 0). Frames without ground truth (NaN IoU) end a span. Spans are
``(first, last)`` frame indices, 0-based (as ``--frames``) and inclusive.
"""

from __future__ import annotations

import numpy as np

MIN_LOST_FRAMES = 10


def lost_spans(ious: np.ndarray, min_frames: int = MIN_LOST_FRAMES) -> list[tuple[int, int]]:
    """``(first, last)`` of every run of at least ``min_frames`` frames with IoU == 0 (NaN IoU ends a run)."""
    zero = np.asarray(ious, dtype=np.float64).reshape(-1) == 0.0
    edges = np.diff(np.concatenate([[0], zero.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b) - 1) for a, b in zip(starts, stops, strict=True) if b - a >= min_frames]


def lost_frame_count(spans: list[tuple[int, int]]) -> int:
    """Frames inside the spans."""
    return int(sum(last - first + 1 for first, last in spans))


def format_spans(spans: list[tuple[int, int]]) -> str:
    """``"12-40 88-120"``; ``""`` when there is none."""
    return " ".join(f"{first}-{last}" for first, last in spans)
