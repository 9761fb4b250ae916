"""Drive a real ``ocean_tracker`` from a test: publish frames, send inits, collect outputs.

The node is either its own process (transport and lifecycle tests) or a :class:`TrackerNode` in the test's own
session (:func:`start_local_tracker`): frames then go straight to its image callback, everything else (init and
reset services, outputs) still over ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ros_helpers import NodeProcess, RosSession, console_script

from ocean_ros.rostools.camera import CameraPublisher, camera_message, header_at
from ocean_ros.rostools.session import call_service


def stamp_ns(stamp: Any) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def make_stamp(ns: int) -> Any:
    return header_at(ns).stamp


def node_argv(namespace: str, params: dict[str, Any]) -> list[str]:
    """Command line of the tracker node in ``namespace`` with ``params`` (name -> value)."""
    argv = [console_script("ocean_tracker"), "--ros-args", "-r", f"__ns:={namespace}"]
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["-p", f"{name}:={text}"]
    return argv


@dataclass
class Sent:
    stamp_ns: int
    header: Any


class TrackerHarness:
    """A test-side peer of one tracker node: image publisher, init/reset clients, output collectors.

    With ``local`` (a TrackerNode spun by ``session``) frames are handed to its image callback directly.
    """

    def __init__(self, session: RosSession, namespace: str, compressed: bool = False, local: Any = None) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from ocean_ros_msgs.msg import TargetInit, TrackerStatus
        from ocean_ros_msgs.srv import InitTarget
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2D, Detection2DArray

        node = session.node
        self.session = session
        self.ns = namespace
        self.compressed = compressed
        self.local = local
        self.camera = None if local is not None else CameraPublisher(
            node, f"{namespace}/image" + ("/compressed" if compressed else ""), compressed=compressed, reliable=True,
            depth=50)
        base = f"{namespace}/ocean_tracker"
        self.init_pub = node.create_publisher(TargetInit, f"{base}/init", 10)
        self.init_det_pub = node.create_publisher(Detection2D, f"{base}/init_detection", 10)
        self.init_client = node.create_client(InitTarget, f"{base}/init_target")
        self.reset_client = node.create_client(Trigger, f"{base}/reset")
        self.detections = session.collector(Detection2DArray, f"{base}/detections", 100)
        self.status = session.collector(TrackerStatus, f"{base}/status", 100)
        self.diagnostics = session.collector(DiagnosticArray, "/diagnostics", 100)
        self._clock_ns = 1_700_000_000 * 1_000_000_000
        self.sent: list[Sent] = []

    def wait_ready(self, timeout: float = 90.0, probe: bool = True) -> None:
        """Wait until the node serves init requests and sees our image publisher (and answers a probe frame)."""
        assert self.init_client.wait_for_service(timeout_sec=timeout), "tracker node did not come up"
        if self.camera is not None:
            assert self.camera.wait_subscribers(1, 20), "tracker node does not subscribe to the image topic"
        if not probe:
            return
        # Outputs published before both sides matched are lost, and so are frames over the best-effort image
        # subscription: probe with small frames until one is answered, so that the test's own frames are not.
        probe = np.zeros((48, 64, 3), np.uint8)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = self.publish(probe)
            answered = lambda ms, s=sent.stamp_ns: any(stamp_ns(m.header.stamp) == s for m in ms)  # noqa: E731
            if answered(self.status.wait_for(1, 0.5, answered)):
                return
        raise AssertionError("the tracker node never answered a probe frame")

    def next_stamp(self, step_ms: float = 33.333) -> int:
        self._clock_ns += int(step_ms * 1e6)
        return self._clock_ns

    def publish(self, frame_bgr: np.ndarray, stamp: int | None = None, encoding: str = "bgr8", raw: Any = None) -> Sent:
        """Publish one frame (BGR array, or the message ``raw``) with ``stamp`` (ns; default: the next 30 Hz
        stamp); to a local node, straight into its image callback."""
        stamp = self.next_stamp() if stamp is None else stamp
        if self.camera is not None:
            header = self.camera.publish(frame_bgr, stamp, raw=raw, encoding=encoding)
        else:
            header = header_at(stamp)
            msg = raw if raw is not None else camera_message(frame_bgr, header, encoding, self.compressed)
            msg.header = header
            (self.local.on_compressed if self.compressed else self.local.on_image)(msg)
        sent = Sent(stamp, header)
        self.sent.append(sent)
        return sent

    def status_for(self, stamp: int, timeout: float = 30.0) -> Any:
        """The status message of the frame with ``stamp``; fails after ``timeout``."""
        msgs = self.status.wait_for(1, timeout, lambda ms: any(stamp_ns(m.header.stamp) == stamp for m in ms))
        found = [m for m in msgs if stamp_ns(m.header.stamp) == stamp]
        assert found, f"no status for frame {stamp} within {timeout}s (got {len(msgs)} status messages)"
        return found[0]

    def publish_and_wait(self, frame_bgr: np.ndarray, stamp: int | None = None, timeout: float = 30.0) -> Any:
        """Publish a frame and wait for its status (the node processed it)."""
        sent = self.publish(frame_bgr, stamp)
        return self.status_for(sent.stamp_ns, timeout)

    def init_service(self, stamp: int, box: tuple[float, float, float, float], target_id: str = "t1",
                     label: str = "thing", timeout: float = 10.0) -> Any:
        from ocean_ros_msgs.srv import InitTarget

        request = InitTarget.Request()
        request.target.header.stamp = make_stamp(stamp)
        request.target.x, request.target.y, request.target.width, request.target.height = map(float, box)
        request.target.target_id, request.target.label = target_id, label
        return self.call(self.init_client, request, timeout)

    def reset(self, timeout: float = 10.0) -> Any:
        from std_srvs.srv import Trigger

        return self.call(self.reset_client, Trigger.Request(), timeout)

    @staticmethod
    def call(client: Any, request: Any, timeout: float) -> Any:
        result = call_service(client, request, timeout)
        assert result is not None, f"service {client.srv_name} did not answer within {timeout}s"
        return result

    def detections_for(self, stamp: int) -> list[Any]:
        return [m for m in self.detections.messages if stamp_ns(m.header.stamp) == stamp]


def start_tracker(node_process: Any, namespace: str, checkpoint: Path, **params: Any) -> NodeProcess:
    values = {"checkpoint": str(checkpoint), "device": "cpu", "preset": "GOT10K", **params}
    return node_process(node_argv(namespace, values))


def start_local_tracker(session: RosSession, namespace: str, checkpoint: Path | str, factory: Any = None,
                        **params: Any) -> Any:
    """A TrackerNode in ``session``'s context, spun by its executor, with ``params`` (checkpoint and device cpu
    unless given); stop it with :func:`stop_local_tracker` before the session closes."""
    from rclpy.parameter import Parameter

    from ocean_ros.ros.tracker_node import TrackerNode

    values = {"checkpoint": str(checkpoint), "device": "cpu", **params}
    node = TrackerNode(factory, context=session.context, namespace=namespace,
                       parameter_overrides=[Parameter(name, value=value) for name, value in values.items()])
    session.executor.add_node(node)
    return node


def stop_local_tracker(session: RosSession, node: Any) -> None:
    session.executor.remove_node(node)
    node.trigger_shutdown()
    node.destroy_node()
