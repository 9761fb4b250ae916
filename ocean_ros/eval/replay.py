"""Replay a sequence bag through the real ``ocean_tracker`` node and collect what it publishes.

The node runs as its own process (the console script, or ``node_command``); this process plays the bag's images
into the node's input (``<ns>/image`` or ``<ns>/image/compressed``, whatever the bag's topic is called), sends the
init through the ``~/init_target`` service and records ``~/detections`` and ``~/status``. Pacing:

- ``rate > 0``: frames leave at their stamps' spacing divided by ``rate`` (1.0 = real time); a node slower than
  the camera skips frames, as it would live;
- ``rate == 0`` (lockstep): each frame waits for the node's answer to the previous one: as fast as the node
  answers, nothing dropped.

By default both the node and this process use :func:`ocean_ros.rostools.dds.loopback_environment` (loopback only, one
random domain); ``loopback=False`` keeps the caller's DDS settings, for real deployments.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocean_ros.eval import bag_types as bt
from ocean_ros.eval.bag_io import (
    DEFAULT_GT_TOPIC,
    BagError,
    bag_custom_data,
    bag_topics,
    pick_topic,
    read_messages,
)
from ocean_ros.eval.bag_scoring import BagRun, ground_truth_frames, image_resolution, start_index
from ocean_ros.ros.params import NODE_NAME
from ocean_ros.rostools.session import NodeProcess, RosSession, call_service

RESEND_AFTER_S = 3.0


class ReplayError(RuntimeError):
    """The node did not start or answer as needed; the message carries the end of its log."""


@dataclass(frozen=True)
class ReplayOptions:
    """Node settings, pacing, topics and environment of a replay (see the module docstring)."""

    checkpoint: Path | None
    preset: str = "OTB2015"
    device: str = "cpu"
    crop_backend: str = "auto"
    online: bool | None = None
    lost_threshold: float = 0.0  # 0: the node reports a box on every frame, as benchmark protocols need
    rate: float = 1.0
    namespace: str = "/ocean_eval"
    image_topic: str | None = None
    gt_topic: str | None = None
    init_topic: str | None = None
    node_params: tuple[tuple[str, str], ...] = ()
    loopback: bool = True
    frame_timeout_s: float = 60.0
    startup_timeout_s: float = 180.0
    node_command: tuple[str, ...] | None = None
    log_path: Path | None = None
    record: Path | None = None
    record_storage: str = "mcap"


def cdr_stamp_ns(raw: bytes) -> int:
    """Header stamp (ns) of a serialized message whose first field is a ``std_msgs/Header``."""
    little = raw[1] == 1  # CDR encapsulation id: 0x0001 little endian, 0x0000 big endian
    sec, nanosec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def node_argv(options: ReplayOptions, compressed: bool) -> list[str]:
    """Command line of the tracker node for ``options``."""
    if options.node_command:
        command = list(options.node_command)
    else:
        import shutil
        import sys

        local = Path(sys.executable).parent / "ocean_tracker"
        command = [str(local) if local.exists() else (shutil.which("ocean_tracker") or "ocean_tracker")]
    params: dict[str, str] = {
        "device": options.device, "preset": options.preset, "crop_backend": options.crop_backend,
        "lost_threshold": f"{options.lost_threshold:g}" if options.lost_threshold else "0.0",
        "image_transport": "compressed" if compressed else "raw",
    }
    if options.checkpoint is not None:
        params["checkpoint"] = str(options.checkpoint)
    if options.online is not None:
        params["online"] = str(options.online).lower()
        if options.online:
            params["align"] = "false"
    params.update(dict(options.node_params))
    argv = command + ["--ros-args", "-r", f"__ns:={options.namespace}"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={value}"]
    return argv


@dataclass
class _Outputs:
    """What the node published, by image stamp, with receive times (time.monotonic)."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    detections: dict[int, Any] = field(default_factory=dict)
    status: dict[int, Any] = field(default_factory=dict)
    status_time: dict[int, float] = field(default_factory=dict)
    recorded: list[tuple[str, int, Any]] = field(default_factory=list)  # (topic, wall ns, message)
    last_time: float = 0.0

    def on_detections(self, msg: Any) -> None:
        with self.cond:
            self.detections[bt.stamp_ns(msg.header.stamp)] = msg
            self.recorded.append(("detections", time.time_ns(), msg))
            self.last_time = time.monotonic()
            self.cond.notify_all()

    def on_status(self, msg: Any) -> None:
        with self.cond:
            stamp = bt.stamp_ns(msg.header.stamp)
            self.status[stamp] = msg
            self.status_time[stamp] = time.monotonic()
            self.recorded.append(("status", time.time_ns(), msg))
            self.last_time = time.monotonic()
            self.cond.notify_all()

    def wait_answer(self, stamp: int, timeout: float) -> bool:
        """Wait until the frame ``stamp`` has its status and, unless IDLE, its detections; False on timeout."""
        deadline = time.monotonic() + timeout

        def done() -> bool:
            status = self.status.get(stamp)
            return status is not None and (status.state == 0 or stamp in self.detections)

        with self.cond:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.5))
            return True


class _Peer(RosSession):
    """This process' side of the graph: image publisher, init client, output subscriptions."""

    def __init__(self, namespace: str, compressed: bool, outputs: _Outputs, domain_id: int | None) -> None:
        from ocean_ros_msgs.msg import TrackerStatus
        from ocean_ros_msgs.srv import InitTarget
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        super().__init__("ocean_eval_replay", domain_id)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        image_type, suffix = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        base = f"{namespace.rstrip('/')}/{NODE_NAME}"
        self.image_pub = self.node.create_publisher(image_type, f"{namespace.rstrip('/')}/{suffix}",
                                                    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.init_client = self.node.create_client(InitTarget, f"{base}/init_target")
        self.node.create_subscription(Detection2DArray, f"{base}/detections", outputs.on_detections, reliable)
        self.node.create_subscription(TrackerStatus, f"{base}/status", outputs.on_status, reliable)

    def init(self, target: Any, timeout: float) -> Any:
        """Call ``~/init_target`` with a TargetInit (rosbags message); returns the response or None on timeout."""
        from ocean_ros_msgs.srv import InitTarget

        request = InitTarget.Request()
        request.target.header.stamp.sec = int(target.header.stamp.sec)
        request.target.header.stamp.nanosec = int(target.header.stamp.nanosec)
        request.target.header.frame_id = target.header.frame_id
        request.target.x, request.target.y = float(target.x), float(target.y)
        request.target.width, request.target.height = float(target.width), float(target.height)
        request.target.target_id, request.target.label = target.target_id, target.label
        return call_service(self.init_client, request, timeout)


def _wait_ready(peer: _Peer, node: NodeProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not peer.init_client.service_is_ready() or peer.image_pub.get_subscription_count() < 1:
        if not node.alive():
            raise ReplayError(f"the tracker node exited with code {node.proc.returncode}:\n{node.tail()}")
        if time.monotonic() > deadline:
            raise ReplayError(f"the tracker node was not ready within {timeout:.0f} s:\n{node.tail()}")
        time.sleep(0.05)


def _init_message(bag: Path, topics: dict[str, Any], init_topic: str | None, stamps: np.ndarray,
                  gt: np.ndarray) -> Any:
    """The bag's TargetInit, or one built from the first frame with a ground-truth box."""
    candidates = [init_topic] if init_topic else [t for t, i in topics.items() if i.msgtype == bt.TARGET_INIT]
    for topic in candidates:
        if topic not in topics:
            raise BagError(f"the bag has no init topic {topic}")
        for _, msg in read_messages(bag, topic):
            return msg
    first = start_index(stamps, gt, None)
    return bt.target_init(gt[first], int(stamps[first]), "", "target", "")


def replay_bag(bag: str | Path, options: ReplayOptions, on_frame: Callable[[], None] | None = None) -> BagRun:
    """Play ``bag`` into a fresh tracker node process and return its outputs aligned with the ground truth."""
    from ocean_ros.rostools.dds import loopback_environment

    bag = Path(bag)
    topics = bag_topics(bag)
    custom = bag_custom_data(bag)
    image_topic = pick_topic(topics, (bt.IMAGE, bt.COMPRESSED_IMAGE), options.image_topic, "images",
                             prefer=custom.get("image_topic"))
    compressed = topics[image_topic].msgtype == bt.COMPRESSED_IMAGE
    gt_topic = pick_topic(topics, (bt.DETECTIONS,), options.gt_topic, "ground truth",
                          prefer=custom.get("ground_truth_topic", DEFAULT_GT_TOPIC))
    stamps, gt = ground_truth_frames(bag, gt_topic)
    init = _init_message(bag, topics, options.init_topic or custom.get("init_topic"), stamps, gt)
    init_ns = bt.stamp_ns(init.header.stamp)
    first = start_index(stamps, gt, init_ns)

    env = loopback_environment() if options.loopback else dict(os.environ)
    if options.loopback:
        os.environ.update(env)  # this process' participant joins the node's loopback-only domain
    log_path = options.log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"ocean_eval_node_{os.getpid()}.log"
    node = NodeProcess(node_argv(options, compressed), env, log_path)
    outputs = _Outputs()
    published: dict[int, float] = {}
    peer = None
    try:
        domain = int(env["ROS_DOMAIN_ID"]) if env.get("ROS_DOMAIN_ID") else None
        peer = _Peer(options.namespace, compressed, outputs, domain)
        _wait_ready(peer, node, options.startup_timeout_s)
        _play(bag, image_topic, init, init_ns, options, peer, node, outputs, published, on_frame)
    finally:
        if peer is not None:
            peer.close()
        node.stop()

    run = _collect(bag, stamps[first:], gt[first:], outputs, published)
    run.name = custom.get("sequence", run.name)
    run.annotation_offset = float(custom.get("annotation_offset", 0.0))
    run.resolution = image_resolution(bag, image_topic)
    if options.record is not None:
        _record(options.record, options.record_storage, bag, gt_topic, init, outputs, run.resolution, custom)
    return run


def _play(bag: Path, image_topic: str, init: Any, init_ns: int, options: ReplayOptions, peer: _Peer,
          node: NodeProcess, outputs: _Outputs, published: dict[int, float],
          on_frame: Callable[[], None] | None) -> None:
    lockstep = options.rate <= 0
    clock_origin: tuple[float, int] | None = None  # (monotonic time, stamp) that pacing counts from
    initialised = False
    for _, raw in read_messages(bag, image_topic, raw=True):
        stamp = cdr_stamp_ns(raw)
        if not node.alive():
            raise ReplayError(f"the tracker node exited with code {node.proc.returncode}:\n{node.tail()}")
        if initialised and not lockstep and clock_origin is not None:
            delay = clock_origin[0] + (stamp - clock_origin[1]) / 1e9 / options.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        peer.image_pub.publish(raw)
        published[stamp] = time.monotonic()
        if on_frame:
            on_frame()
        if not initialised:
            # Frames up to the init frame: wait until the node holds each, so the init finds its frame.
            if not _answer_with_retries(peer, raw, stamp, outputs, options.frame_timeout_s):
                raise ReplayError(f"no status for frame {stamp} before the init:\n{node.tail()}")
            if stamp == init_ns:
                response = peer.init(init, options.frame_timeout_s)
                if response is None or not response.accepted:
                    reason = "no answer" if response is None else response.reason
                    raise ReplayError(f"the node refused the init ({reason}):\n{node.tail()}")
                initialised = True
                clock_origin = (time.monotonic(), stamp)
            continue
        if lockstep:
            _answer_with_retries(peer, raw, stamp, outputs, options.frame_timeout_s)
    if not initialised:
        raise ReplayError(f"the bag has no image stamped {init_ns} ns, the frame the init names")
    if not lockstep:
        # Let the last frames through: wait until the node has been quiet for a while.
        quiet = 2.0
        deadline = time.monotonic() + options.frame_timeout_s
        while time.monotonic() < deadline:
            with outputs.cond:
                last = max(outputs.last_time, max(published.values()))
            if time.monotonic() - last > quiet:
                break
            time.sleep(0.05)


def _answer_with_retries(peer: _Peer, raw: bytes, stamp: int, outputs: _Outputs, timeout: float) -> bool:
    """Wait for the frame's answer, publishing it again every few seconds without one.

    The node's image subscription is best effort: a frame sent right after discovery can be lost. A frame that
    did arrive is refused again as a duplicate stamp, so re-sending is harmless.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if outputs.wait_answer(stamp, min(RESEND_AFTER_S, max(remaining, 0.0))):
            return True
        if time.monotonic() >= deadline:
            return False
        peer.image_pub.publish(raw)


def _collect(bag: Path, stamps: np.ndarray, gt: np.ndarray, outputs: _Outputs, published: dict[int, float]
             ) -> BagRun:
    n = len(stamps)
    boxes, scores = np.full((n, 4), np.nan), np.full(n, np.nan)
    answered = np.zeros(n, dtype=bool)
    states, node_ms, e2e_ms = np.full(n, -1, dtype=np.int64), np.full(n, np.nan), np.full(n, np.nan)
    last_status = None
    with outputs.cond:
        for i, s in enumerate(int(v) for v in stamps):
            det, status = outputs.detections.get(s), outputs.status.get(s)
            if det is not None:
                boxes[i], scores[i] = bt.detection_box(det), bt.detection_score(det)
            if status is not None:
                answered[i] = True
                states[i], node_ms[i] = int(status.state), float(status.total_ms)
                if s in published:
                    e2e_ms[i] = (outputs.status_time[s] - published[s]) * 1000.0
                last_status = status
    dropped = int(last_status.frames_dropped) if last_status is not None else None
    return BagRun(bag.name, stamps, gt, boxes, scores, answered, states, node_ms, e2e_ms,
                  frames_dropped_counter=dropped)


def _record(path: Path, storage: str, bag: Path, gt_topic: str, init: Any, outputs: _Outputs,
            resolution: tuple[int, int] | None, custom: dict[str, str]) -> None:
    """Write the ground truth, the init and what the node published to a new bag (scored by ``bag score``)."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer

    from ocean_ros.eval.bag_io import (
        CUSTOM_PREFIX,
        DEFAULT_DETECTIONS_TOPIC,
        DEFAULT_INIT_TOPIC,
        DEFAULT_STATUS_TOPIC,
        storage_plugin,
    )

    store = bt.typestore()
    if path.exists():
        raise BagError(f"{path} exists; rosbag2 writes a new folder")
    with Writer(path, version=9, storage_plugin=storage_plugin(storage)) as writer:
        gt_conn = writer.add_connection(gt_topic, bt.DETECTIONS, typestore=store)
        init_conn = writer.add_connection(DEFAULT_INIT_TOPIC, bt.TARGET_INIT, typestore=store)
        det_conn = writer.add_connection(DEFAULT_DETECTIONS_TOPIC, bt.DETECTIONS, typestore=store)
        status_conn = writer.add_connection(DEFAULT_STATUS_TOPIC, bt.TRACKER_STATUS, typestore=store)
        for key in ("sequence", "layout", "annotation_offset"):
            if key in custom:
                writer.set_custom_data(CUSTOM_PREFIX + key, custom[key])
        if resolution is not None:
            writer.set_custom_data(CUSTOM_PREFIX + "resolution", f"{resolution[0]}x{resolution[1]}")
        for timestamp, raw in read_messages(bag, gt_topic, raw=True):
            writer.write(gt_conn, timestamp, raw)
        init_ns = bt.stamp_ns(init.header.stamp)
        writer.write(init_conn, init_ns, store.serialize_cdr(init, bt.TARGET_INIT))
        connections = {"detections": det_conn, "status": status_conn}
        with outputs.cond:
            recorded = sorted(outputs.recorded, key=lambda item: item[1])
        for kind, wall_ns, msg in recorded:
            writer.write(connections[kind], wall_ns, serialize_message(msg))
