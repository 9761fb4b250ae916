"""``ocean_tracker``: the Ocean tracker as a ROS 2 lifecycle node.

Threads: the executor runs the callbacks (image conversion and checks, init/reset requests, parameters,
diagnostics); one worker thread owns the tracker and processes only the newest frame, so init and reset never
wait behind a frame in processing and stale frames are dropped, never queued.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from ocean_ros_msgs.msg import TargetInit, TrackerStatus
from ocean_ros_msgs.srv import InitTarget
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D, Detection2DArray

from ocean_ros.core.config import CUSTOM_PRESET, TrackerConfig
from ocean_ros.core.network import source_preset
from ocean_ros.core.types import TrackResult, TrackState
from ocean_ros.models import default_checkpoint
from ocean_ros.ros import params
from ocean_ros.ros.frame_ring import FrameLookupError, FrameRing, StampedFrame
from ocean_ros.ros.image_conversion import ImageConversionError, compressed_to_bgr8, image_to_bgr8
from ocean_ros.ros.messages import (
    STATE_CODES,
    InitRequest,
    detection_array,
    init_from_detection,
    init_from_target,
    stamp_to_ns,
)
from ocean_ros.ros.node_config import WEIGHTS_HELP, NodeConfig
from ocean_ros.ros.tracking_engine import TrackingEngine, build_engine

LATENCY_WINDOW = 300
# Consecutive frames older than the newest accepted one after which the camera's clock is taken to have stepped
# back (NTP correction, driver restart): the node follows the new timeline instead of refusing every frame until
# the clock catches up. A single late frame (reordered transport) is still refused.
TIMELINE_RESET_FRAMES = 3


@dataclass
class _Pending:
    """The newest accepted frame, waiting for the worker."""

    frame: StampedFrame
    received: float  # time.perf_counter() at callback entry
    convert_ms: float


class TrackerNode(LifecycleNode):
    """Lifecycle node around :class:`ocean_ros.core.tracker.OceanTracker` (see README for the interface)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(params.NODE_NAME, **kwargs)
        self._declare_parameters()
        self._cond = threading.Condition()
        self._active = False
        self._engine: TrackingEngine | None = None
        self._ring: FrameRing | None = None
        self._pending: _Pending | None = None
        self._commands: deque[tuple[str, Any]] = deque()
        self._worker: threading.Thread | None = None
        self._stop = False
        self._generation = 0
        self._last_stamp_ns = -1
        self._backwards = 0  # consecutive frames stamped before the newest accepted one
        self._entities: list[Any] = []
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._graph_failure_logged = False
        self._processed_times: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._last_warn: dict[str, float] = {}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        autostart = self.get_parameter("autostart").value
        if autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # --- parameters ---------------------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        params.declare(self, NodeConfig.parameters(), {})
        preset_spec = next(s for s in TrackerConfig.parameters() if s.name == "preset")
        params.declare(self, [preset_spec], {"preset": self._default_preset()})
        preset = self.get_parameter("preset").value
        try:
            defaults = params.tracker_defaults(preset)
        except ValueError as err:  # an unknown preset: configure reports it
            self.get_logger().error(str(err))
            defaults = {}
        params.declare(self, [s for s in TrackerConfig.parameters() if s.name != "preset"], defaults)

    def _default_preset(self) -> str:
        """The preset stored with the checkpoint in use (the shipped model's when none is given), else custom."""
        checkpoint = self.get_parameter("checkpoint").value
        if not checkpoint:
            if self.get_parameter("allow_random_weights").value:
                return CUSTOM_PRESET
            try:
                checkpoint = str(default_checkpoint())
            except FileNotFoundError:
                return CUSTOM_PRESET
        try:
            return source_preset(checkpoint) or CUSTOM_PRESET
        except (OSError, ValueError):  # configure reports an unreadable checkpoint
            return CUSTOM_PRESET

    def _read_configs(self) -> tuple[TrackerConfig, NodeConfig]:
        declared = {s.name for s in (*TrackerConfig.parameters(), *NodeConfig.parameters())}
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        unknown = sorted(
            name for name in overrides
            if name not in declared and name != "use_sim_time" and not name.startswith("qos_overrides.")
        )
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(unknown)}; see config/tracker.yaml for the known ones")
        tracker_values = params.read(self, TrackerConfig.parameters())
        node_values = params.read(self, NodeConfig.parameters())
        return TrackerConfig.from_dict(tracker_values), NodeConfig.from_dict(node_values)

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        tracker_names = {s.name for s in TrackerConfig.parameters()}
        node_names = {s.name for s in NodeConfig.parameters()}
        tracker_changes = {p.name: p.value for p in changes if p.name in tracker_names}
        node_changes = {p.name: p.value for p in changes if p.name in node_names}
        node_config = self._node_config
        try:
            if self._engine is not None and tracker_changes:
                self._engine.tracker.config.replace(**tracker_changes)  # validation only
            if node_changes and node_config is not None:
                node_config = NodeConfig.from_dict({**node_config.__dict__, **node_changes})
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if self._engine is not None and tracker_changes:
            with self._cond:
                self._commands.append(("config", tracker_changes))
                self._cond.notify()
        self._node_config = node_config
        return SetParametersResult(successful=True)

    _node_config: NodeConfig | None = None
    _image_sub: Any = None

    # --- lifecycle ----------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as err:  # noqa: BLE001 - rclpy would swallow it; say what failed
            self.get_logger().error(f"configuration failed: {type(err).__name__}: {err}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE

    def _configure(self) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            tracker_config, node_config = self._read_configs()
        except ValueError as err:
            log.error(f"configuration refused: {err}")
            return TransitionCallbackReturn.FAILURE
        if not node_config.checkpoint and not node_config.allow_random_weights:
            try:
                shipped = str(default_checkpoint())
            except FileNotFoundError as err:
                log.error(f"no checkpoint given and {err}. {WEIGHTS_HELP}")
                return TransitionCallbackReturn.FAILURE
            node_config = NodeConfig.from_dict({**node_config.__dict__, "checkpoint": shipped})
            log.info(f"no checkpoint given: using the shipped model {shipped} (preset {tracker_config.preset})")
        try:
            self._engine = build_engine(tracker_config, node_config)
        except (OSError, ValueError, RuntimeError) as err:
            log.error(f"cannot build the tracker: {err}")
            return TransitionCallbackReturn.FAILURE
        if not node_config.checkpoint:
            log.warning("RANDOM WEIGHTS: no checkpoint given and allow_random_weights is true; the boxes are "
                     f"meaningless. {WEIGHTS_HELP}")
        self._node_config = node_config
        self._ring = FrameRing(node_config.ring_size)
        self._create_interfaces(node_config)
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="ocean_tracker_worker", daemon=True)
        self._worker.start()
        log.info(f"configured: {self._engine.describe()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        with self._cond:
            self._pending = None
        self.get_logger().info("inactive: outputs paused, target kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self.get_logger().info("cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        self._active = False
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10)
        self._worker = None
        for entity in self._entities:
            self._destroy(entity)
        self._entities = []
        self._engine = None
        self._ring = None
        self._pending = None
        self._commands.clear()
        self._last_stamp_ns = -1
        self._backwards = 0

    def _destroy(self, entity: Any) -> None:
        kind = type(entity).__name__
        if kind == "Subscription":
            self.destroy_subscription(entity)
        elif kind == "Service":
            self.destroy_service(entity)
        elif kind == "Timer":
            self.destroy_timer(entity)
        elif kind == "LifecyclePublisher":
            self.destroy_lifecycle_publisher(entity)
        else:
            self.destroy_publisher(entity)

    def _create_interfaces(self, node_config: NodeConfig) -> None:
        frames = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        # Created once and kept across cleanup: its QoS-override parameters are read-only and cannot be
        # declared twice. Callbacks ignore frames while the node is not active.
        if self._image_sub is None:
            overrides = QoSOverridingOptions.with_default_policies()
            if node_config.image_transport == "compressed":
                self._image_sub = self.create_subscription(
                    CompressedImage, "image/compressed", self._on_compressed, qos_profile_sensor_data,
                    callback_group=frames, qos_overriding_options=overrides,
                )
            else:
                self._image_sub = self.create_subscription(
                    Image, "image", self._on_image, qos_profile_sensor_data,
                    callback_group=frames, qos_overriding_options=overrides,
                )
        reliable = QoSProfile(depth=10)
        self._det_pub = self.create_lifecycle_publisher(Detection2DArray, "~/detections", reliable)
        self._status_pub = self.create_lifecycle_publisher(TrackerStatus, "~/status", reliable)
        self._debug_pub = self.create_lifecycle_publisher(Image, "~/debug_image", QoSProfile(depth=1))
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", reliable)
        self._entities = [
            self.create_subscription(TargetInit, "~/init", self._on_init_msg, reliable, callback_group=control),
            self.create_subscription(
                Detection2D, "~/init_detection", self._on_init_detection, reliable, callback_group=control
            ),
            self.create_service(InitTarget, "~/init_target", self._on_init_service, callback_group=control),
            self.create_service(Trigger, "~/reset", self._on_reset_service, callback_group=control),
            self.create_timer(node_config.diagnostics_period, self._publish_diagnostics, callback_group=timers),
            self._det_pub, self._status_pub, self._debug_pub, self._diag_pub,
        ]

    # --- input --------------------------------------------------------------------------------------------
    def _reject(self, reason: str, detail: str) -> None:
        self._rejected[reason] += 1
        now = time.monotonic()
        throttle = self._node_config.log_throttle if self._node_config else 2.0
        if now - self._last_warn.get(reason, -1e9) >= throttle:
            self._last_warn[reason] = now
            self.get_logger().warning(f"refused ({reason}, {self._rejected[reason]} so far): {detail}")

    def _reject_size(self, shape: tuple[int, ...], target_shape: tuple[int, int]) -> None:
        self._reject(
            "size_changed",
            f"frame is {shape[1]}x{shape[0]}, the target was initialised on {target_shape[1]}x{target_shape[0]}; "
            "re-initialise to track at the new size",
        )

    def _on_image(self, msg: Image) -> None:
        if not self._active or self._engine is None:
            return
        received = time.perf_counter()
        limit = self._node_config.max_image_pixels
        if msg.width * msg.height > limit:
            self._reject("too_large", f"{msg.width}x{msg.height} image exceeds max_image_pixels={limit}")
            return
        try:
            frame = image_to_bgr8(msg)
        except ImageConversionError as err:
            self._reject("bad_image", str(err))
            return
        self._accept(msg.header, frame, received)

    def _on_compressed(self, msg: CompressedImage) -> None:
        if not self._active or self._engine is None:
            return
        received = time.perf_counter()
        try:
            frame = compressed_to_bgr8(msg)
        except ImageConversionError as err:
            self._reject("bad_image", str(err))
            return
        limit = self._node_config.max_image_pixels
        if frame.shape[0] * frame.shape[1] > limit:
            self._reject("too_large", f"{frame.shape[1]}x{frame.shape[0]} image exceeds max_image_pixels={limit}")
            return
        self._accept(msg.header, frame, received)

    def _accept(self, header: Any, frame: np.ndarray, received: float) -> None:
        stamp = stamp_to_ns(header.stamp)
        convert_ms = (time.perf_counter() - received) * 1000.0
        with self._cond:
            if stamp == self._last_stamp_ns:
                self._reject("duplicate_stamp", f"frame stamp {stamp} ns is the last frame's")
                return
            if stamp < self._last_stamp_ns:
                self._backwards += 1
                if self._backwards < TIMELINE_RESET_FRAMES:
                    self._reject("out_of_order",
                                 f"frame stamp {stamp} ns is older than the last frame's {self._last_stamp_ns}")
                    return
                self._new_timeline(stamp)
            self._backwards = 0
            self._last_stamp_ns = stamp
            stamped = StampedFrame(stamp, frame, header)
            self._ring.push(stamped)  # kept even at a new size: an init may name it
            engine = self._engine
            if engine.state != TrackState.IDLE and frame.shape[:2] != engine.frame_shape:
                self._reject_size(frame.shape[:2], engine.frame_shape)
                return
            if self._pending is not None:
                self._counts["dropped"] += 1
            self._pending = _Pending(stamped, received, convert_ms)
            self._cond.notify()

    def _new_timeline(self, stamp: int) -> None:
        """The camera's clock stepped back: forget the frames of the old timeline, keep the target."""
        self._counts["timeline_resets"] += 1
        self._ring = FrameRing(self._node_config.ring_size)
        self.get_logger().warning(
            f"camera stamps stepped back by {(self._last_stamp_ns - stamp) / 1e9:.3f} s for {TIMELINE_RESET_FRAMES} "
            f"frames in a row: following the new timeline (frame ring cleared, target kept; "
            f"{self._counts['timeline_resets']} so far)"
        )

    # --- init / reset ---------------------------------------------------------------------------------------
    def _request_init(self, request: InitRequest) -> str:
        """Queue an init; returns '' when accepted, else the reason. Never waits for the worker."""
        if not self._active or self._ring is None:
            return "the node is not active"
        with self._cond:
            try:
                stamped = self._ring.find(request.stamp_ns)
            except FrameLookupError as err:
                return str(err)
            height, width = stamped.frame_bgr.shape[:2]
            reason = self._engine.check_box(request.box_xywh, width, height)
            if reason:
                return reason
            self._generation += 1
            self._commands.append(("init", (request, stamped)))
            self._cond.notify()
        return ""

    def _handle_init_reason(self, reason: str, source: str) -> None:
        if reason:
            self._reject("bad_init", f"{source}: {reason}")

    def _on_init_msg(self, msg: TargetInit) -> None:
        self._handle_init_reason(self._request_init(init_from_target(msg)), "~/init")

    def _on_init_detection(self, msg: Detection2D) -> None:
        self._handle_init_reason(self._request_init(init_from_detection(msg)), "~/init_detection")

    def _on_init_service(self, request: Any, response: Any) -> Any:
        reason = self._request_init(init_from_target(request.target))
        response.accepted = not reason
        response.reason = reason
        self._handle_init_reason(reason, "~/init_target")
        return response

    def _on_reset_service(self, request: Any, response: Any) -> Any:
        if not self._active:
            response.success, response.message = False, "the node is not active"
            return response
        with self._cond:
            self._generation += 1
            self._commands.append(("reset", None))
            self._cond.notify()
        response.success, response.message = True, "target dropped; state IDLE"
        return response

    # --- worker -------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._pending is None and not self._commands:
                    self._cond.wait()
                if self._stop:
                    return
                commands = list(self._commands)
                self._commands.clear()
                pending, self._pending = self._pending, None
                generation = self._generation
            try:
                for kind, payload in commands:
                    self._run_command(kind, payload, pending)
                if pending is not None:
                    self._process(pending, generation)
            except Exception as err:  # noqa: BLE001 - the node must survive any single bad frame
                if self._stop or not self.context.ok():
                    return  # shutting down: publishers are gone, nothing failed
                self._counts["errors"] += 1
                self.get_logger().error(f"tracking step failed: {type(err).__name__}: {err}")

    def _run_command(self, kind: str, payload: Any, pending: _Pending | None) -> None:
        engine = self._engine
        if kind == "reset":
            engine.reset()
        elif kind == "config":
            engine.update_config(payload)
        elif kind == "init":
            request, stamped = payload
            limit = pending.frame.stamp_ns if pending is not None else self._last_stamp_ns + 1
            with self._cond:
                newer = [f for f in self._ring.newer_than(stamped.stamp_ns) if f.stamp_ns < limit]
            catch_up = spaced(newer, self._node_config.init_catch_up)
            target_id = request.target_id or self._node_config.default_target_id
            engine.initialize(
                stamped.frame_bgr, request.box_xywh, target_id, request.label, stamped.header.stamp, catch_up
            )
            self.get_logger().info(
                f"target '{target_id}' initialised on frame {stamped.stamp_ns} ns with box {request.box_xywh}"
                + (f", caught up over {len(catch_up)} frame(s)" if catch_up else "")
            )

    def _process(self, pending: _Pending, generation: int) -> None:
        engine = self._engine
        frame = pending.frame
        result: TrackResult | None = None
        if engine.state != TrackState.IDLE:
            if frame.frame_bgr.shape[:2] != engine.frame_shape:  # re-initialised at another size meanwhile
                self._reject_size(frame.frame_bgr.shape[:2], engine.frame_shape)
                return
            result = engine.track(frame.frame_bgr)
            if engine.tracker.graph_failure and not self._graph_failure_logged:
                self._graph_failure_logged = True
                reason = engine.tracker.graph_failure
                self.get_logger().warning(f"CUDA graph capture failed, tracking eagerly: {reason}")
        with self._cond:
            if generation != self._generation:  # an init or reset arrived while this frame was processed
                self._counts["discarded"] += 1
                return
        self._counts["processed"] += 1
        if result is not None:
            self._det_pub.publish(detection_array(frame.header, result, engine.target_id, engine.label))
        total_ms = (time.perf_counter() - pending.received) * 1000.0
        self._status_pub.publish(self._status(frame.header, result, pending.convert_ms, total_ms))
        if result is not None and self._node_config.publish_debug_image and self._debug_pub.get_subscription_count():
            self._debug_pub.publish(engine.debug_image(frame.frame_bgr, result, frame.header))
        self._latencies.append(total_ms)
        self._processed_times.append(time.monotonic())

    def _status(self, header: Any, result: TrackResult | None, convert_ms: float, total_ms: float) -> TrackerStatus:
        engine = self._engine
        status = TrackerStatus(header=header)
        state = result.state if result is not None else TrackState.IDLE
        status.state = STATE_CODES[state]
        status.score = float(result.score) if result is not None else 0.0
        if state != TrackState.IDLE:
            status.target_id, status.label = engine.target_id, engine.label
            status.init_stamp = engine.init_stamp
        status.online_enabled = engine.online_enabled
        timings = result.timings if result is not None else {}
        if result is not None:
            status.online_updated = bool(result.online_updated)
            status.online_flag = result.online_flag
        status.convert_ms = float(convert_ms)
        status.crop_ms = float(timings.get("crop", 0.0))
        status.network_ms = float(timings.get("network", 0.0))
        status.post_ms = float(timings.get("post", 0.0))
        status.online_ms = float(timings.get("online", 0.0))
        status.total_ms = float(total_ms)
        status.frames_processed = self._counts["processed"]
        status.frames_dropped = self._counts["dropped"]
        status.frames_rejected = sum(self._rejected.values())
        return status

    # --- diagnostics --------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if not self._active or self._engine is None:
            return
        engine = self._engine
        latencies = np.asarray(self._latencies) if self._latencies else np.zeros(1)
        now = time.monotonic()
        recent = [t for t in self._processed_times if now - t <= 5.0]
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: tracking", hardware_id=engine.device_name)
        state = engine.state
        if self._counts["errors"]:
            status.level = DiagnosticStatus.WARN
            status.message = f"{state.value}; {self._counts['errors']} failed steps"
        elif state == TrackState.LOST:
            status.level, status.message = DiagnosticStatus.WARN, "target lost, searching"
        else:
            status.level, status.message = DiagnosticStatus.OK, state.value
        values = {
            "state": state.value,
            "rate_hz": f"{rate:.2f}",
            "latency_p50_ms": f"{np.percentile(latencies, 50):.2f}",
            "latency_p99_ms": f"{np.percentile(latencies, 99):.2f}",
            "device": engine.device_name,
            "checkpoint": self._node_config.checkpoint or "(random weights)",
            "step_mode": engine.tracker.step_mode,
            "frames_processed": str(self._counts["processed"]),
            "frames_dropped": str(self._counts["dropped"]),
            "frames_rejected": str(sum(self._rejected.values())),
            "step_errors": str(self._counts["errors"]),
            "timeline_resets": str(self._counts["timeline_resets"]),
        }
        if engine.tracker.graph_failure:
            values["graph_capture_failed"] = engine.tracker.graph_failure
        values.update({f"rejected_{reason}": str(n) for reason, n in sorted(self._rejected.items())})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def spaced(frames: list[StampedFrame], count: int) -> list[StampedFrame]:
    """At most ``count`` of ``frames``, evenly spaced and ending with the newest (all when they fit)."""
    if count <= 0 or not frames:
        return []
    if len(frames) <= count:
        return frames
    picks = np.linspace(len(frames) - 1, 0, count, endpoint=False)[::-1]
    return [frames[int(round(i))] for i in picks]


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = TrackerNode()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._teardown()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
