"""``ocean_tracker``: the Ocean tracker as a ROS 2 lifecycle node.

Threads: the executor runs the callbacks (image conversion and checks, init/reset requests, parameters,
diagnostics); one worker thread (:class:`~ocean_ros.ros.tracking_worker.TrackingWorker`, ROS-free, as are the
stamp gate, commands and counters it uses) owns the tracker and processes only the newest frame, so init and reset
never wait behind a frame in processing and stale frames are dropped, never queued. This module converts messages,
publishes and runs the lifecycle.
"""

from __future__ import annotations

import sys
import time
from typing import Any

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

from ocean_ros.core.config import TrackerConfig
from ocean_ros.ros import params
from ocean_ros.ros.image_conversion import ImageConversionError, compressed_to_bgr8, image_to_bgr8
from ocean_ros.ros.messages import detection_array, init_from_detection, init_from_target, stamp_to_ns, tracker_status
from ocean_ros.ros.node_config import WEIGHTS_HELP, NodeConfig
from ocean_ros.ros.tracking_engine import (
    RANDOM_WEIGHTS,
    CheckpointTrackers,
    TrackerFactory,
    TrackingEngine,
    weights_path,
)
from ocean_ros.ros.tracking_worker import Processed, TrackingWorker

LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN}


class TrackerNode(LifecycleNode):
    """Lifecycle node around :class:`ocean_ros.core.tracker.OceanTracker` (see README for the interface).

    ``tracker_factory`` builds the tracker at configuration (default: :class:`CheckpointTrackers`, the weights the
    ``checkpoint`` parameter names); other keyword arguments go to rclpy's node (context, parameter overrides, ...).
    """

    def __init__(self, tracker_factory: TrackerFactory | None = None, **kwargs: Any) -> None:
        super().__init__(params.NODE_NAME, **kwargs)
        self._factory = tracker_factory or CheckpointTrackers()
        self._active = False
        self._worker: TrackingWorker | None = None
        self._node_config: NodeConfig | None = None
        self._entities: list[Any] = []
        self._image_sub: Any = None
        self._declare_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter("autostart").value and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @property
    def worker(self) -> TrackingWorker | None:
        """The frame handling of the configured node (None while unconfigured)."""
        return self._worker

    # --- parameters ---------------------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        params.declare(self, NodeConfig.parameters(), {})
        weights = NodeConfig(checkpoint=self.get_parameter("checkpoint").value,
                             allow_random_weights=self.get_parameter("allow_random_weights").value)
        preset_spec = next(s for s in TrackerConfig.parameters() if s.name == "preset")
        params.declare(self, [preset_spec], {"preset": self._factory.default_preset(weights)})
        try:
            defaults = params.tracker_defaults(self.get_parameter("preset").value)
        except ValueError as err:  # an unknown preset: configure reports it
            self.get_logger().error(str(err))
            defaults = {}
        params.declare(self, [s for s in TrackerConfig.parameters() if s.name != "preset"], defaults)

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        tracker_changes = {p.name: p.value for p in changes if p.name in {s.name for s in TrackerConfig.parameters()}}
        node_changes = {p.name: p.value for p in changes if p.name in {s.name for s in NodeConfig.parameters()}}
        worker, node_config = self._worker, self._node_config
        try:
            if worker is not None and tracker_changes:
                worker.engine.tracker.config.replace(**tracker_changes)  # validation only
            if node_changes and node_config is not None:
                node_config = NodeConfig.from_dict({**node_config.__dict__, **node_changes})
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if worker is not None:
            if tracker_changes:
                worker.request_config(tracker_changes)
            worker.config = node_config
        self._node_config = node_config
        return SetParametersResult(successful=True)

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
            tracker_config, node_config = params.read_configs(self)
            path = weights_path(node_config)
        except FileNotFoundError as err:
            log.error(f"no checkpoint given and {err}. {WEIGHTS_HELP}")
            return TransitionCallbackReturn.FAILURE
        except ValueError as err:
            log.error(f"configuration refused: {err}")
            return TransitionCallbackReturn.FAILURE
        if path and not node_config.checkpoint:
            log.info(f"no checkpoint given: using the shipped model {path} (preset {tracker_config.preset})")
        try:
            tracker = self._factory(tracker_config, node_config)
        except (OSError, ValueError, RuntimeError) as err:
            log.error(f"cannot build the tracker: {err}")
            return TransitionCallbackReturn.FAILURE
        if not path:
            log.warning(f"RANDOM WEIGHTS: no checkpoint given and allow_random_weights is true; the boxes are "
                        f"meaningless. {WEIGHTS_HELP}")
        self._node_config = node_config
        self._worker = TrackingWorker(TrackingEngine(tracker, path or RANDOM_WEIGHTS), node_config, self._publish, log)
        self._create_interfaces(node_config)
        self._worker.start()
        log.info(f"configured: {self._worker.engine.describe()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self._worker is not None:
            self._worker.queue.discard_frame()
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
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        destroyers = {"Subscription": self.destroy_subscription, "Service": self.destroy_service,
                      "Timer": self.destroy_timer, "LifecyclePublisher": self.destroy_lifecycle_publisher}
        for entity in self._entities:
            destroyers.get(type(entity).__name__, self.destroy_publisher)(entity)
        self._entities = []

    def _create_interfaces(self, node_config: NodeConfig) -> None:
        control, timers = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        # Created once and kept across cleanup: its QoS-override parameters are read-only and cannot be
        # declared twice. Callbacks ignore frames while the node is not active.
        if self._image_sub is None:
            compressed = node_config.image_transport == "compressed"
            self._image_sub = self.create_subscription(
                CompressedImage if compressed else Image, "image/compressed" if compressed else "image",
                self.on_compressed if compressed else self.on_image, qos_profile_sensor_data,
                callback_group=MutuallyExclusiveCallbackGroup(),
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        reliable = QoSProfile(depth=10)
        self._det_pub = self.create_lifecycle_publisher(Detection2DArray, "~/detections", reliable)
        self._status_pub = self.create_lifecycle_publisher(TrackerStatus, "~/status", reliable)
        self._debug_pub = self.create_lifecycle_publisher(Image, "~/debug_image", QoSProfile(depth=1))
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", reliable)
        self._entities = [
            self.create_subscription(TargetInit, "~/init", self.on_init_msg, reliable, callback_group=control),
            self.create_subscription(
                Detection2D, "~/init_detection", self.on_init_detection, reliable, callback_group=control
            ),
            self.create_service(InitTarget, "~/init_target", self.on_init_service, callback_group=control),
            self.create_service(Trigger, "~/reset", self.on_reset_service, callback_group=control),
            self.create_timer(node_config.diagnostics_period, self._publish_diagnostics, callback_group=timers),
            self._det_pub, self._status_pub, self._debug_pub, self._diag_pub,
        ]

    # --- input --------------------------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        """The ``image`` callback (also callable directly, e.g. by tests): size limit, conversion, hand-over."""
        self._take(msg, image_to_bgr8, (msg.width, msg.height))

    def on_compressed(self, msg: CompressedImage) -> None:
        """The ``image/compressed`` callback: decoding, size limit, hand-over."""
        self._take(msg, compressed_to_bgr8, None)

    def _take(self, msg: Any, convert: Any, size: tuple[int, int] | None) -> None:
        """Convert ``msg`` (``size``: known before decoding) and hand the frame to the worker, or refuse it."""
        worker = self._worker
        if not self._active or worker is None or (size is not None and worker.too_large(*size)):
            return
        received = time.perf_counter()
        try:
            frame = convert(msg)
        except ImageConversionError as err:
            worker.reject("bad_image", str(err))
            return
        if not worker.too_large(frame.shape[1], frame.shape[0]):
            worker.offer(stamp_to_ns(msg.header.stamp), frame, msg.header, received)

    def _request_init(self, request: Any, source: str) -> str:
        if not self._active or self._worker is None:
            return "the node is not active"
        return self._worker.request_init(request, source)

    def on_init_msg(self, msg: TargetInit) -> None:
        self._request_init(init_from_target(msg), "~/init")

    def on_init_detection(self, msg: Detection2D) -> None:
        self._request_init(init_from_detection(msg), "~/init_detection")

    def on_init_service(self, request: Any, response: Any) -> Any:
        response.reason = self._request_init(init_from_target(request.target), "~/init_target")
        response.accepted = not response.reason
        return response

    def on_reset_service(self, request: Any, response: Any) -> Any:
        if not self._active or self._worker is None:
            response.success, response.message = False, "the node is not active"
            return response
        self._worker.request_reset()
        response.success, response.message = True, "target dropped; state IDLE"
        return response

    # --- output -------------------------------------------------------------------------------------------
    def _publish(self, out: Processed) -> None:
        """Called by the worker thread for every processed frame: detections, status, debug image."""
        worker = self._worker
        if worker is None:
            return
        engine, header, result = worker.engine, out.frame.header, out.result
        if result is not None:
            self._det_pub.publish(detection_array(header, result, engine.target_id, engine.label))
        stats = worker.stats
        counts = (stats.counts["processed"], stats.counts["dropped"], stats.rejected_total, stats.counts["losses"],
                  stats.counts["reacquisitions"])
        self._status_pub.publish(tracker_status(header, result, engine, counts, out.convert_ms, out.total_ms))
        if result is not None and worker.config.publish_debug_image and self._debug_pub.get_subscription_count():
            self._debug_pub.publish(engine.debug_image(out.frame.frame_bgr, result, header))

    def _publish_diagnostics(self) -> None:
        worker = self._worker
        if not self._active or worker is None:
            return
        engine = worker.engine
        facts = {"device": engine.device_name, "checkpoint": engine.source, "step_mode": engine.tracker.step_mode}
        diagnosis = worker.stats.diagnose(engine.state, time.monotonic(), facts, engine.tracker.graph_failure)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: tracking", hardware_id=engine.device_name,
                                  level=LEVELS[diagnosis.level], message=diagnosis.message,
                                  values=[KeyValue(key=k, value=v) for k, v in diagnosis.values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


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
