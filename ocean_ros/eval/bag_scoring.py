"""Score tracker output held in a bag (recorded anywhere, e.g. ``ros2 bag record``) against the bag's ground truth.

Frames are the ground-truth messages (one ``Detection2DArray`` per image, matched to outputs by header stamp).
The run starts at the frame the init message names (else the first frame with a box); that frame's prediction is
the ground truth (one-pass convention). A frame without a detection is a miss; frames with no output at all are
counted as dropped. Latency percentiles come from ``TrackerStatus.total_ms`` (receipt to publication in the node)
and, for live replays, from the replay's own clock (publication to the status' arrival).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ocean_ros.eval import bag_types as bt
from ocean_ros.eval.bag_io import (
    DEFAULT_DETECTIONS_TOPIC,
    DEFAULT_GT_TOPIC,
    DEFAULT_STATUS_TOPIC,
    BagError,
    TopicInfo,
    bag_custom_data,
    bag_topics,
    pick_topic,
    read_messages,
)
from ocean_ros.eval.results import Trajectory
from ocean_ros.eval.scoring import SequenceScore, score_one_pass
from ocean_ros.eval.sequences import Sequence

STATE_TRACKING, STATE_LOST = 1, 2
PERCENTILES = (50, 90, 99)


@dataclass
class BagRun:
    """One target's frames with ground truth and the tracker's outputs, aligned by stamp (ns)."""

    name: str
    stamps: np.ndarray
    ground_truth: np.ndarray  # [N, 4] xywh 0-based, NaN where the ground truth has no box
    boxes: np.ndarray  # [N, 4] predictions, NaN where none
    scores: np.ndarray
    answered: np.ndarray  # bool [N]: the tracker published something for the frame
    states: np.ndarray  # int [N]: TrackerStatus.state, -1 where no status
    node_ms: np.ndarray  # TrackerStatus.total_ms, NaN where no status
    e2e_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    resolution: tuple[int, int] | None = None
    frames_dropped_counter: int | None = None  # the node's own counter at the last status
    annotation_offset: float = 0.0  # of the dataset the bag was made from: result files are written in it

    def sequence(self) -> Sequence:
        """The ground truth as a :class:`Sequence` (frame paths are placeholders; nothing reads them)."""
        frames = tuple(Path(f"{self.name}@{int(s)}") for s in self.stamps)
        return Sequence(self.name, frames, self.ground_truth, "bag", 0.0, resolution=self.resolution)

    def trajectory(self) -> Trajectory:
        times = np.where(np.isfinite(self.node_ms), self.node_ms / 1000.0, np.nan)
        return Trajectory(self.boxes.copy(), None, times, self.scores.copy())


def percentiles(values: np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix_p50: ..., prefix_p90: ..., prefix_p99: ...}`` over finite values (ms); empty when none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {}
    return {f"{prefix}_p{p}": float(np.percentile(finite, p)) for p in PERCENTILES}


def score_bag_run(run: BagRun) -> tuple[SequenceScore, dict[str, float | int]]:
    """One-pass scores of the run plus extras: dropped and lost frames, latency percentiles (ms)."""
    score = score_one_pass(run.sequence(), run.trajectory())
    tracked = slice(1, None)
    extras: dict[str, float | int] = {
        "dropped": int(np.sum(~run.answered[tracked])),
        "lost": int(np.sum(run.states[tracked] == STATE_LOST)),
    }
    if run.frames_dropped_counter is not None:
        extras["node_dropped"] = int(run.frames_dropped_counter)
    extras.update(percentiles(run.node_ms[tracked], "node_ms"))
    if run.e2e_ms.size:
        extras.update(percentiles(run.e2e_ms[tracked], "e2e_ms"))
    return score, extras


def ground_truth_frames(path: Path, gt_topic: str) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (ns, sorted) and boxes (0-based xywh, NaN for empty arrays) of the ground-truth topic."""
    by_stamp: dict[int, np.ndarray] = {}
    for _, msg in read_messages(path, gt_topic):
        by_stamp[bt.stamp_ns(msg.header.stamp)] = bt.detection_box(msg)
    if not by_stamp:
        raise BagError(f"{path}: the ground-truth topic {gt_topic} holds no message")
    stamps = np.array(sorted(by_stamp), dtype=np.int64)
    return stamps, np.array([by_stamp[s] for s in stamps]).reshape(-1, 4)


def init_stamp(path: Path, topics: dict[str, TopicInfo], init_topic: str | None) -> int | None:
    """Header stamp of the bag's first TargetInit (on ``init_topic`` or the only such topic), else None."""
    candidates = [init_topic] if init_topic else [t for t, i in topics.items() if i.msgtype == bt.TARGET_INIT]
    for topic in candidates:
        if topic in topics:
            for _, msg in read_messages(path, topic):
                return bt.stamp_ns(msg.header.stamp)
    return None


def image_resolution(path: Path, image_topic: str) -> tuple[int, int] | None:
    """(width, height) of the first image on ``image_topic`` (decoded for compressed images)."""
    import cv2

    for _, msg in read_messages(path, image_topic):
        if hasattr(msg, "width"):
            return int(msg.width), int(msg.height)
        decoded = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        return (int(decoded.shape[1]), int(decoded.shape[0])) if decoded is not None else None
    return None


def start_index(stamps: np.ndarray, boxes: np.ndarray, init_ns: int | None) -> int:
    """Index of the frame the run starts on: the init's stamp when it is a frame, else the first with a box."""
    if init_ns is not None and init_ns in set(stamps.tolist()):
        return int(np.searchsorted(stamps, init_ns))
    with_box = np.flatnonzero(np.all(np.isfinite(boxes), axis=1))
    if with_box.size == 0:
        raise BagError("the ground truth has no box on any frame")
    return int(with_box[0])


def read_bag_run(path: str | Path, gt_topic: str | None = None, detections_topic: str | None = None,
                 status_topic: str | None = None, init_topic: str | None = None, image_topic: str | None = None,
                 name: str | None = None) -> BagRun:
    """Align the ground truth, detections and (optional) status of a recorded bag by header stamp."""
    path = Path(path)
    topics = bag_topics(path)
    gt_topic = pick_topic(topics, (bt.DETECTIONS,), gt_topic, "ground truth", prefer=DEFAULT_GT_TOPIC)
    others = {t: i for t, i in topics.items() if t != gt_topic}
    det_topic = pick_topic(others, (bt.DETECTIONS,), detections_topic, "detections",
                           prefer=DEFAULT_DETECTIONS_TOPIC)
    if status_topic is None:
        statuses = [t for t, i in topics.items() if i.msgtype == bt.TRACKER_STATUS]
        status_topic = DEFAULT_STATUS_TOPIC if DEFAULT_STATUS_TOPIC in statuses else (
            statuses[0] if len(statuses) == 1 else None)
    elif status_topic not in topics:
        raise BagError(f"the bag has no status topic {status_topic}")

    stamps, gt = ground_truth_frames(path, gt_topic)
    first = start_index(stamps, gt, init_stamp(path, topics, init_topic))
    stamps, gt = stamps[first:], gt[first:]
    index = {int(s): i for i, s in enumerate(stamps)}
    n = len(stamps)
    boxes, scores = np.full((n, 4), np.nan), np.full(n, np.nan)
    answered = np.zeros(n, dtype=bool)
    states, node_ms = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    for _, msg in read_messages(path, det_topic):
        i = index.get(bt.stamp_ns(msg.header.stamp))
        if i is not None:
            boxes[i], scores[i], answered[i] = bt.detection_box(msg), bt.detection_score(msg), True
    dropped_counter = None
    if status_topic is not None:
        for _, msg in read_messages(path, status_topic):
            i = index.get(bt.stamp_ns(msg.header.stamp))
            if i is not None:
                states[i], node_ms[i], answered[i] = int(msg.state), float(msg.total_ms), True
            dropped_counter = int(msg.frames_dropped)
    images = [t for t, i in topics.items() if i.msgtype in (bt.IMAGE, bt.COMPRESSED_IMAGE)]
    if image_topic is None and len(images) == 1:
        image_topic = images[0]
    resolution = image_resolution(path, image_topic) if image_topic else None
    custom = bag_custom_data(path)
    stated = custom.get("resolution", "")
    if resolution is None and "x" in stated:
        width, height = stated.split("x", 1)
        resolution = (int(width), int(height))
    return BagRun(name or custom.get("sequence", path.name), stamps, gt, boxes, scores, answered, states, node_ms,
                  resolution=resolution, frames_dropped_counter=dropped_counter,
                  annotation_offset=float(custom.get("annotation_offset", 0.0)))
