"""The ``rosbags`` type store with this project's interfaces, and builders of the messages bags hold.

``vision_msgs`` and ``ocean_ros_msgs`` are not in rosbags' built-in stores; their ``.msg`` files are registered
from the installed share folders (``<prefix>/share/<package>/msg``) or, in a source checkout, from ``msg/msg`` and
``scripts/vision_msgs_compat/msg``. Everything here is pure Python (no rclpy).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ocean_ros.eval.validation_set import REPO_ROOT

CUSTOM_TYPES: dict[str, tuple[str, ...]] = {
    "vision_msgs": (
        "Point2D", "Pose2D", "BoundingBox2D", "ObjectHypothesis", "ObjectHypothesisWithPose", "Detection2D",
        "Detection2DArray",
    ),
    "ocean_ros_msgs": ("TargetInit", "TrackerStatus"),
}
SOURCE_FOLDERS = {
    "vision_msgs": REPO_ROOT / "scripts" / "vision_msgs_compat" / "msg",
    "ocean_ros_msgs": REPO_ROOT / "msg" / "msg",
}

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
TARGET_INIT = "ocean_ros_msgs/msg/TargetInit"
TRACKER_STATUS = "ocean_ros_msgs/msg/TrackerStatus"


def msg_folder(package: str) -> Path:
    """The folder holding ``package``'s .msg files: installed share folders first, then this source tree."""
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    candidates = [Path(p) / "share" / package / "msg" for p in prefixes if p] + [SOURCE_FOLDERS[package]]
    for folder in candidates:
        if all((folder / f"{name}.msg").is_file() for name in CUSTOM_TYPES[package]):
            return folder
    raise FileNotFoundError(f"no .msg files of {package}; looked in {', '.join(map(str, candidates))}")


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """rosbags' ROS 2 Kilted type store plus vision_msgs (2D) and ocean_ros_msgs."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    definitions: dict[str, Any] = {}
    for package, names in CUSTOM_TYPES.items():
        folder = msg_folder(package)
        for name in names:
            definitions.update(get_types_from_msg((folder / f"{name}.msg").read_text(), f"{package}/msg/{name}"))
    store.register(definitions)
    return store


def _types() -> Any:
    return typestore().types


def stamp(ns: int) -> Any:
    """builtin_interfaces/Time from integer nanoseconds."""
    return _types()["builtin_interfaces/msg/Time"](sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def stamp_ns(time_msg: Any) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time (rosbags or rclpy)."""
    return int(time_msg.sec) * 1_000_000_000 + int(time_msg.nanosec)


def header(ns: int, frame_id: str) -> Any:
    return _types()["std_msgs/msg/Header"](stamp=stamp(ns), frame_id=frame_id)


def image_message(frame_bgr: np.ndarray, ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image, encoding bgr8, tight rows."""
    height, width = frame_bgr.shape[:2]
    data = np.ascontiguousarray(frame_bgr, dtype=np.uint8).reshape(-1)
    return _types()[IMAGE](header=header(ns, frame_id), height=height, width=width, encoding="bgr8",
                           is_bigendian=0, step=width * 3, data=data)


def compressed_message(encoded: bytes, fmt: str, ns: int, frame_id: str) -> Any:
    """sensor_msgs/CompressedImage holding already encoded bytes (``fmt`` 'jpeg' or 'png')."""
    return _types()[COMPRESSED_IMAGE](header=header(ns, frame_id), format=fmt,
                                      data=np.frombuffer(encoded, dtype=np.uint8))


def detection_array(box_xywh: np.ndarray | None, ns: int, frame_id: str, target_id: str, label: str,
                    score: float = 1.0) -> Any:
    """vision_msgs/Detection2DArray with one detection of ``box_xywh`` (0-based px), or none when None/NaN."""
    t = _types()
    head = header(ns, frame_id)
    detections = []
    if box_xywh is not None and np.all(np.isfinite(box_xywh)):
        x, y, w, h = (float(v) for v in box_xywh)
        pose = t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
            covariance=np.zeros(36),
        )
        hypothesis = t["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=label, score=float(score)), pose=pose
        )
        bbox = t["vision_msgs/msg/BoundingBox2D"](
            center=t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=x + w / 2, y=y + h / 2),
                                               theta=0.0),
            size_x=w, size_y=h,
        )
        detections.append(t["vision_msgs/msg/Detection2D"](header=head, results=[hypothesis], bbox=bbox, id=target_id))
    return t[DETECTIONS](header=head, detections=detections)


def target_init(box_xywh: np.ndarray, ns: int, frame_id: str, target_id: str, label: str) -> Any:
    """ocean_ros_msgs/TargetInit naming ``box_xywh`` (0-based px) on the frame stamped ``ns``."""
    x, y, w, h = (float(v) for v in box_xywh)
    return _types()[TARGET_INIT](header=header(ns, frame_id), x=x, y=y, width=w, height=h,
                                 target_id=target_id, label=label)


def detection_box(array: Any) -> np.ndarray:
    """The first detection's box of a Detection2DArray as xywh (0-based px); NaN when it holds none."""
    if not array.detections:
        return np.full(4, np.nan)
    bbox = array.detections[0].bbox
    w, h = float(bbox.size_x), float(bbox.size_y)
    return np.array([bbox.center.position.x - w / 2, bbox.center.position.y - h / 2, w, h], dtype=np.float64)


def detection_score(array: Any) -> float:
    """Score of the first detection's first hypothesis; NaN when there is none."""
    if not array.detections or not array.detections[0].results:
        return float("nan")
    return float(array.detections[0].results[0].hypothesis.score)
