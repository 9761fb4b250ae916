"""The one camera publisher of the tools, benchmarks and tests: BGR frames out as a camera driver sends them.

Frames leave as ``sensor_msgs/Image`` in a chosen encoding (``bgr8``, ``rgb8``, ``mono8``) or as JPEG
``sensor_msgs/CompressedImage``, stamped with the node's clock unless a stamp is given; QoS is sensor data (best
effort, depth 1) unless ``reliable``. :func:`camera_message` builds the message alone, for callers that hand it to
a node's callback in-process.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from ocean_ros.ros.image_conversion import array_to_image, bgr8_to_compressed

__all__ = ["ENCODINGS", "CameraPublisher", "camera_message", "header_at", "to_encoding"]

ENCODINGS = ("bgr8", "rgb8", "mono8")
JPEG_QUALITY = 95


def to_encoding(frame_bgr: np.ndarray, encoding: str) -> np.ndarray:
    """A BGR frame in the array layout of ``encoding`` (one of :data:`ENCODINGS`)."""
    if encoding == "rgb8":
        return np.ascontiguousarray(frame_bgr[:, :, ::-1])
    if encoding == "mono8":
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    if encoding != "bgr8":
        raise ValueError(f"camera encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return frame_bgr


def header_at(stamp_ns: int, frame_id: str = "camera") -> Any:
    """A std_msgs/Header stamped ``stamp_ns`` (integer nanoseconds)."""
    from std_msgs.msg import Header

    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header


def camera_message(frame_bgr: np.ndarray, header: Any, encoding: str = "bgr8", compressed: bool = False) -> Any:
    """The Image (``encoding``) or JPEG CompressedImage of a BGR frame, with ``header``."""
    if compressed:
        return bgr8_to_compressed(frame_bgr, "jpeg", JPEG_QUALITY, header)
    return array_to_image(to_encoding(frame_bgr, encoding), encoding, header)


class CameraPublisher:
    """Publishes frames on ``topic`` from ``node`` (Image, or CompressedImage with ``compressed``)."""

    def __init__(self, node: Any, topic: str, *, encoding: str = "bgr8", compressed: bool = False,
                 reliable: bool = False, depth: int = 1, frame_id: str = "camera") -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image

        to_encoding(np.zeros((1, 1, 3), np.uint8), encoding)  # refuse an unknown encoding now
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        self.node, self.encoding, self.compressed, self.frame_id = node, encoding, compressed, frame_id
        self.publisher = node.create_publisher(CompressedImage if compressed else Image, topic, qos)

    @property
    def topic(self) -> str:
        return self.publisher.topic_name

    def now_ns(self) -> int:
        """The node clock's time, integer nanoseconds."""
        return int(self.node.get_clock().now().nanoseconds)

    def publish(self, frame_bgr: np.ndarray | None, stamp_ns: int | None = None, *, raw: Any = None,
                encoding: str | None = None) -> Any:
        """Publish ``frame_bgr`` (or the prepared message ``raw``, given this header) stamped ``stamp_ns``
        (default: now); returns the header sent."""
        header = header_at(self.now_ns() if stamp_ns is None else stamp_ns, self.frame_id)
        if raw is not None:
            raw.header = header
            msg = raw
        else:
            msg = camera_message(frame_bgr, header, encoding or self.encoding, self.compressed)
        self.publisher.publish(msg)
        return header

    def wait_subscribers(self, count: int = 1, timeout: float = 30.0) -> bool:
        """True once ``count`` subscriptions matched, False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.publisher.get_subscription_count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def destroy(self) -> None:
        self.node.destroy_publisher(self.publisher)
