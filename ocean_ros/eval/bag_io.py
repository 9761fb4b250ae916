"""Writing a rosbag2 from a sequence and reading bags back, with ``rosbags`` (pure Python, mcap or sqlite3).

A sequence bag holds, per frame, the image (``sensor_msgs/Image`` bgr8 or ``CompressedImage``) and the ground
truth (``vision_msgs/Detection2DArray``, header = the image's, empty where the target has no box), plus one
``ocean_ros_msgs/TargetInit`` naming the first frame's box (stamped with that frame, written 1 ms after it).
Stamps start at ``start_ns`` and advance at the sequence's frame rate. Boxes in messages are 0-based pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ocean_ros.eval import bag_types as bt
from ocean_ros.eval.sequences import Sequence

STORAGES = ("mcap", "sqlite3")
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_GT_TOPIC = "/ground_truth"
DEFAULT_INIT_TOPIC = "/ocean_tracker/init"
DEFAULT_DETECTIONS_TOPIC = "/ocean_tracker/detections"
DEFAULT_STATUS_TOPIC = "/ocean_tracker/status"
INIT_DELAY_NS = 1_000_000
CUSTOM_PREFIX = "ocean_eval."


class BagError(ValueError):
    """A bag cannot be written or read as asked; the message names the bag and, for topics, what it has."""


@dataclass(frozen=True)
class BagWriteOptions:
    """What ``make_bag`` writes; ``image_topic`` None means ``/camera/image_raw`` (+ ``/compressed``)."""

    storage: str = "mcap"
    compressed: bool = False
    compressed_format: str = "jpeg"
    jpeg_quality: int = 95
    fps: float = 30.0
    frame_id: str = "camera"
    start_ns: int = DEFAULT_START_NS
    image_topic: str | None = None
    gt_topic: str = DEFAULT_GT_TOPIC
    init_topic: str = DEFAULT_INIT_TOPIC
    target_id: str = "target"
    label: str = ""

    def resolved_image_topic(self) -> str:
        if self.image_topic:
            return self.image_topic
        return DEFAULT_IMAGE_TOPIC + ("/compressed" if self.compressed else "")


def storage_plugin(storage: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise BagError(f"unknown bag storage {storage!r}; choose one of {', '.join(STORAGES)}")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def frame_stamps(count: int, fps: float, start_ns: int = DEFAULT_START_NS) -> np.ndarray:
    """Stamps (ns) of ``count`` frames at ``fps`` frames per second from ``start_ns``."""
    if fps <= 0:
        raise BagError(f"frame rate must be positive, got {fps}")
    return start_ns + np.round(np.arange(count) * (1e9 / fps)).astype(np.int64)


def _encoded_frame(sequence: Sequence, index: int, options: BagWriteOptions) -> tuple[bytes, str]:
    """JPEG files go in as they are (decoding gives exactly the frame the offline run reads); others are encoded."""
    path = sequence.frames[index]
    fmt = options.compressed_format.lower()
    if fmt in ("jpeg", "jpg") and path.suffix.lower() in (".jpg", ".jpeg"):
        return path.read_bytes(), "jpeg"
    ext, params = (".png", []) if fmt == "png" else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
    ok, encoded = cv2.imencode(ext, sequence.read(index), params)
    if not ok:
        raise BagError(f"cannot encode {path} as {fmt}")
    return encoded.tobytes(), "png" if ext == ".png" else "jpeg"


def make_bag(sequence: Sequence, path: str | Path, options: BagWriteOptions | None = None,
             on_frame: Callable[[], None] | None = None) -> dict[str, int]:
    """Write ``sequence`` as a rosbag2 folder at ``path`` (must not exist); returns message counts per topic."""
    from rosbags.rosbag2 import Writer

    options = options or BagWriteOptions()
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists; rosbag2 writes a new folder")
    store = bt.typestore()
    image_topic = options.resolved_image_topic()
    image_type = bt.COMPRESSED_IMAGE if options.compressed else bt.IMAGE
    stamps = frame_stamps(len(sequence), options.fps, options.start_ns)
    counts = {image_topic: 0, options.gt_topic: 0, options.init_topic: 0}
    with Writer(path, version=9, storage_plugin=storage_plugin(options.storage)) as writer:
        image_conn = writer.add_connection(image_topic, image_type, typestore=store)
        gt_conn = writer.add_connection(options.gt_topic, bt.DETECTIONS, typestore=store)
        init_conn = writer.add_connection(options.init_topic, bt.TARGET_INIT, typestore=store)
        custom = {
            "sequence": sequence.name, "layout": sequence.layout, "fps": f"{options.fps:g}",
            "annotation_offset": f"{sequence.annotation_offset:g}",
            "image_topic": image_topic, "ground_truth_topic": options.gt_topic, "init_topic": options.init_topic,
        }
        for key, value in custom.items():
            writer.set_custom_data(CUSTOM_PREFIX + key, value)
        for i, ns in enumerate(int(s) for s in stamps):
            if options.compressed:
                encoded, fmt = _encoded_frame(sequence, i, options)
                image = bt.compressed_message(encoded, fmt, ns, options.frame_id)
            else:
                image = bt.image_message(sequence.read(i), ns, options.frame_id)
            writer.write(image_conn, ns, store.serialize_cdr(image, image_type))
            box = sequence.ground_truth[i] if sequence.visible[i] else None
            gt = bt.detection_array(box, ns, options.frame_id, options.target_id, options.label)
            writer.write(gt_conn, ns, store.serialize_cdr(gt, bt.DETECTIONS))
            counts[image_topic] += 1
            counts[options.gt_topic] += 1
            if i == 0:
                init = bt.target_init(sequence.ground_truth[0], ns, options.frame_id, options.target_id,
                                      options.label)
                writer.write(init_conn, ns + INIT_DELAY_NS, store.serialize_cdr(init, bt.TARGET_INIT))
                counts[options.init_topic] += 1
            if on_frame:
                on_frame()
    return counts


# --- reading ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int


def _reader(path: Path) -> Any:
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise BagError(f"no bag at {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is not a rosbag2 folder (no metadata.yaml)")
    return Reader(path)


def bag_topics(path: str | Path) -> dict[str, TopicInfo]:
    """Topics of a bag with their message types and counts (from the bag's metadata)."""
    with _reader(Path(path)) as reader:
        return {c.topic: TopicInfo(c.topic, c.msgtype, c.msgcount) for c in reader.connections}


def bag_custom_data(path: str | Path) -> dict[str, str]:
    """The ``ocean_eval.*`` custom metadata written by :func:`make_bag` (empty for other bags)."""
    with _reader(Path(path)) as reader:
        metadata = getattr(reader.storage, "metadata", None)  # only rosbag2 folders carry custom data
        custom = getattr(metadata, "custom", None) or {}
    return {k[len(CUSTOM_PREFIX):]: v for k, v in custom.items() if k.startswith(CUSTOM_PREFIX)}


def pick_topic(topics: dict[str, TopicInfo], msgtypes: tuple[str, ...], wanted: str | None, role: str,
               prefer: str | None = None) -> str:
    """The topic for ``role``: ``wanted`` when given (checked), else the only one of ``msgtypes`` (or ``prefer``)."""
    listing = ", ".join(f"{t.topic} [{t.msgtype}]" for t in topics.values()) or "no topics"
    if wanted:
        info = topics.get(wanted)
        if info is None:
            raise BagError(f"the bag has no topic {wanted} for the {role}; it has: {listing}")
        if info.msgtype not in msgtypes:
            raise BagError(f"topic {wanted} is {info.msgtype}, not {' or '.join(msgtypes)} as the {role} needs")
        return wanted
    matching = [t.topic for t in topics.values() if t.msgtype in msgtypes]
    if prefer in matching:
        return prefer
    if len(matching) == 1:
        return matching[0]
    if not matching:
        raise BagError(f"the bag has no {' or '.join(msgtypes)} topic for the {role}; it has: {listing}")
    raise BagError(f"several topics could be the {role} ({', '.join(matching)}); name one with its option")


def read_messages(path: str | Path, topic: str, raw: bool = False) -> Iterator[tuple[int, Any]]:
    """``(bag time ns, message)`` of ``topic`` in time order; ``raw`` yields the CDR bytes instead.

    Raises when the bag's metadata counts messages that the storage does not yield (a mismatched folder).
    """
    store = bt.typestore()
    with _reader(Path(path)) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise BagError(f"{path}: no topic {topic}")
        expected = sum(c.msgcount for c in connections)
        seen = 0
        for connection, timestamp, data in reader.messages(connections=connections):
            seen += 1
            yield timestamp, (bytes(data) if raw else store.deserialize_cdr(data, connection.msgtype))
        if seen != expected:
            raise BagError(f"{path}: topic {topic} yielded {seen} messages but the metadata counts {expected}")
