"""Conversions between tracker values and ROS messages (vision_msgs, ocean_ros_msgs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocean_ros.core.types import TrackResult, TrackState

STATE_CODES = {TrackState.IDLE: 0, TrackState.TRACKING: 1, TrackState.LOST: 2}


@dataclass(frozen=True)
class InitRequest:
    """A target named on a frame: stamp (ns, 0 = latest frame), box xywh in that image's pixels (0-based)."""

    stamp_ns: int
    box_xywh: tuple[float, float, float, float]
    target_id: str
    label: str


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def init_from_target(msg: Any) -> InitRequest:
    """ocean_ros_msgs/TargetInit -> InitRequest."""
    box = (float(msg.x), float(msg.y), float(msg.width), float(msg.height))
    return InitRequest(stamp_to_ns(msg.header.stamp), box, msg.target_id, msg.label)


def init_from_detection(msg: Any) -> InitRequest:
    """vision_msgs/Detection2D -> InitRequest: centre/size box, id, and the best hypothesis' class as label."""
    w, h = float(msg.bbox.size_x), float(msg.bbox.size_y)
    cx, cy = float(msg.bbox.center.position.x), float(msg.bbox.center.position.y)
    label = ""
    if msg.results:
        best = max(msg.results, key=lambda r: r.hypothesis.score)
        label = best.hypothesis.class_id
    return InitRequest(stamp_to_ns(msg.header.stamp), (cx - w / 2, cy - h / 2, w, h), msg.id, label)


def detection_array(header: Any, result: TrackResult | None, target_id: str, label: str) -> Any:
    """Detection2DArray with the image's header: one detection while TRACKING, none otherwise."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    array = Detection2DArray(header=header)
    if result is None or result.state != TrackState.TRACKING:
        return array
    x, y, w, h = result.box_xywh
    detection = Detection2D(header=header, id=target_id)
    detection.bbox.center.position.x = x + w / 2
    detection.bbox.center.position.y = y + h / 2
    detection.bbox.center.theta = 0.0
    detection.bbox.size_x = float(w)
    detection.bbox.size_y = float(h)
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = label
    hypothesis.hypothesis.score = float(result.score)
    detection.results.append(hypothesis)
    array.detections.append(detection)
    return array



def tracker_status(header: Any, result: TrackResult | None, engine: Any, counts: tuple[int, ...],
                   convert_ms: float, total_ms: float) -> Any:
    """ocean_ros_msgs/TrackerStatus of one processed frame (``result`` None: no target). ``engine`` gives the
    target's identity and the online flag (a TrackingEngine); ``counts`` are frames (processed, dropped, refused)
    and then losses and re-acquisitions."""
    from ocean_ros_msgs.msg import TrackerStatus

    status = TrackerStatus(header=header)
    state = result.state if result is not None else TrackState.IDLE
    status.state = STATE_CODES[state]
    status.online_enabled = engine.online_enabled
    if result is not None:
        status.score = float(result.score)
        status.online_updated = bool(result.online_updated)
        status.online_flag = result.online_flag
        status.searching, status.reacquired = bool(result.searching), bool(result.reacquired)
    if state != TrackState.IDLE:
        status.target_id, status.label = engine.target_id, engine.label
        status.init_stamp = engine.init_stamp
    timings = result.timings if result is not None else {}
    status.convert_ms = float(convert_ms)
    status.crop_ms = float(timings.get("crop", 0.0))
    status.network_ms = float(timings.get("network", 0.0))
    status.post_ms = float(timings.get("post", 0.0))
    status.online_ms = float(timings.get("online", 0.0))
    status.redetect_ms = float(timings.get("redetect", 0.0))
    status.total_ms = float(total_ms)
    (status.frames_processed, status.frames_dropped, status.frames_rejected, status.losses,
     status.reacquisitions) = counts
    return status
