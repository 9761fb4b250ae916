"""ROS plumbing shared by the follower nodes: declared parameters, tracker and camera inputs, arming, main().

Uses only rclpy API common to Humble, Jazzy and Kilted. The control math lives in the pure modules.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ocean_ros_msgs.msg import TrackerStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo
from std_srvs.srv import SetBool
from vision_msgs.msg import Detection2DArray

from .camera import CameraModel
from .pid import PidConfig
from .target import Observation, Refusals, TrackerInput

# Best effort matches publishers of either reliability; a follower only needs the newest message.
INPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
REFUSAL_LOG_THROTTLE_S = 2.0  # the tracker node's default log_throttle


@dataclass(frozen=True)
class Param:
    """A parameter to declare: default, description (with its unit), range, and whether it is fixed at start."""

    name: str
    default: float | int | str | bool
    description: str
    low: float | None = None
    high: float | None = None
    step: int = 0
    read_only: bool = False


def declare_parameters(node: Node, params: Iterable[Param]) -> None:
    """Declare every parameter with a descriptor; floats and ints get their range."""
    for param in params:
        descriptor = ParameterDescriptor(name=param.name, description=param.description, read_only=param.read_only)
        if isinstance(param.default, float) and param.low is not None and param.high is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(param.low), to_value=float(param.high), step=0.0)
            ]
        elif isinstance(param.default, int) and not isinstance(param.default, bool) and param.low is not None:
            descriptor.integer_range = [
                IntegerRange(from_value=int(param.low), to_value=int(param.high), step=int(param.step))
            ]
        node.declare_parameter(param.name, param.default, descriptor)


def parameter_values(node: Node, params: Iterable[Param]) -> dict[str, Any]:
    """Current values of the given parameters by name."""
    return {param.name: node.get_parameter(param.name).value for param in params}


def watch_parameters(
    node: Node, params: list[Param], apply: Callable[[dict[str, Any]], None]
) -> None:
    """Re-apply the configuration on every parameter change; a change that ``apply`` rejects (ValueError) fails."""
    names = {param.name for param in params}

    def on_set(changes: list[Any]) -> SetParametersResult:
        relevant = [change for change in changes if change.name in names]
        if not relevant:
            return SetParametersResult(successful=True)
        values = parameter_values(node, params)
        values.update({change.name: change.value for change in relevant})
        try:
            apply(values)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def pid_params(prefix: str, defaults: PidConfig, error_unit: str, output_unit: str) -> list[Param]:
    """The parameters of one PID axis, named ``<prefix>.kp`` etc., with units in the descriptions."""
    out, err = output_unit, error_unit
    return [
        Param(f"{prefix}.kp", defaults.kp, f"proportional gain, ({out}) per ({err})", 0.0, 100.0),
        Param(f"{prefix}.ki", defaults.ki, f"integral gain, ({out}) per ({err}·s)", 0.0, 100.0),
        Param(f"{prefix}.kd", defaults.kd, f"derivative gain, ({out}) per ({err}/s)", 0.0, 100.0),
        Param(f"{prefix}.limit", defaults.output_limit, f"maximum |output|, {out}", 1e-3, 100.0),
        Param(f"{prefix}.rate_limit", defaults.rate_limit, f"maximum |change of output| per second, {out}/s",
              1e-3, 1000.0),
        Param(f"{prefix}.integral_limit", defaults.integral_limit,
              f"maximum |integral contribution| (anti-windup clamp), {out}", 0.0, 100.0),
        Param(f"{prefix}.deadband", defaults.deadband, f"errors smaller than this give zero output, {err}",
              0.0, 10.0),
        Param(f"{prefix}.smoothing_s", defaults.smoothing_s,
              "time constant of the low-pass filter on the error, s (0: off)", 0.0, 5.0),
    ]


def pid_config(values: dict[str, Any], prefix: str) -> PidConfig:
    """Build a PidConfig from the values of :func:`pid_params`."""
    return PidConfig(
        kp=values[f"{prefix}.kp"],
        ki=values[f"{prefix}.ki"],
        kd=values[f"{prefix}.kd"],
        output_limit=values[f"{prefix}.limit"],
        rate_limit=values[f"{prefix}.rate_limit"],
        integral_limit=values[f"{prefix}.integral_limit"],
        deadband=values[f"{prefix}.deadband"],
        smoothing_s=values[f"{prefix}.smoothing_s"],
    )


COMMON_PARAMS = [
    Param("control_rate", 30.0, "rate of the control loop and of the published commands, Hz", 1.0, 500.0,
          read_only=True),
    Param("timeout_s", 0.5, "hold (zero commands) when no detections arrived for this long, s", 0.01, 10.0),
    Param("min_score", 0.3, "hold when the detection score is below this, [0, 1]", 0.0, 1.0),
    Param("publish_when_disarmed", True, "publish zero commands at the control rate while disarmed"),
    Param("fallback.horizontal_fov", 1.0472, "horizontal field of view used until a valid camera_info "
          "arrives, rad", 0.01, 3.14),
    Param("fallback.image_width", 640, "image width used until a valid camera_info arrives, pixels", 1, 100000),
    Param("fallback.image_height", 480, "image height used until a valid camera_info arrives, pixels", 1, 100000),
]


def now_s(node: Node) -> float:
    """The node's clock (ROS time: simulated under use_sim_time) in seconds."""
    return node.get_clock().now().nanoseconds * 1e-9


class TrackerInputs:
    """Subscribes to the tracker's ``ocean_tracker/detections`` and ``ocean_tracker/status`` and to ``camera_info``.

    Topic names are relative: remap them (``--ros-args -r ocean_tracker/detections:=...``) or push the node into a
    namespace. An empty detection array means the tracker lost the target. Detections that are not boxes
    (non-finite centre, non-finite or non-positive size or score) are refused: counted per reason in
    :attr:`refusals`, logged at most once per reason every 2 s, never followed.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self.refusals = Refusals(REFUSAL_LOG_THROTTLE_S)
        self._received_at: float | None = None
        self._observation: Observation | None = None
        self._status: TrackerStatus | None = None
        self._status_at: float | None = None
        self._info: CameraInfo | None = None
        node.create_subscription(Detection2DArray, "ocean_tracker/detections", self._on_detections, INPUT_QOS)
        node.create_subscription(TrackerStatus, "ocean_tracker/status", self._on_status, INPUT_QOS)
        node.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data)

    def _on_status(self, msg: TrackerStatus) -> None:
        self._status, self._status_at = msg, now_s(self._node)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._info = msg

    def _on_detections(self, msg: Detection2DArray) -> None:
        self._received_at = now_s(self._node)
        best: Observation | None = None
        refused: Observation | None = None
        for detection in msg.detections:
            observation = self._observation_of(detection)
            problem = observation.problem()
            if problem is not None:
                self._refuse(problem, observation)
                if refused is None:
                    refused = observation
            elif best is None or observation.score > best.score:
                best = observation
        # only refused boxes: keep one, so that the controllers hold and say why (not "target lost")
        self._observation = best if best is not None else refused

    def _observation_of(self, detection: Any) -> Observation:
        scores = [float(result.hypothesis.score) for result in detection.results]
        score = max(scores, key=lambda x: x if math.isfinite(x) else -math.inf) if scores else self._status_score()
        box = detection.bbox
        return Observation(box.center.position.x, box.center.position.y, box.size_x, box.size_y, score)

    def _refuse(self, reason: str, observation: Observation) -> None:
        if self.refusals.add(reason, time.monotonic()):
            self._node.get_logger().warning(
                f"refused detection ({reason}, {self.refusals.counts[reason]} so far): centre "
                f"({observation.u:g}, {observation.v:g}), size {observation.width:g} x {observation.height:g}, "
                f"score {observation.score:g}; holding"
            )

    def _status_score(self) -> float:
        """Score of the latest status for detections without hypotheses (1.0 without a status)."""
        return 1.0 if self._status is None else float(self._status.score)

    def snapshot(self, now: float, status_timeout: float) -> TrackerInput:
        """The latest tracker input; a status older than ``status_timeout`` (s) is ignored."""
        state = None
        if self._status is not None and self._status_at is not None and 0 <= now - self._status_at <= status_timeout:
            state = int(self._status.state)
        return TrackerInput(self._received_at, self._observation, state)

    def camera(self, width: int, height: int, horizontal_fov: float) -> CameraModel:
        """The camera model from the latest valid camera_info (K), else from the fallback size and field of view."""
        info = self._info
        if info is not None and info.width > 0 and info.height > 0 and info.k[0] > 0 and info.k[4] > 0:
            return CameraModel(info.k[0], info.k[4], info.k[2], info.k[5], int(info.width), int(info.height))
        if info is not None and info.width > 0 and info.height > 0:
            width, height = int(info.width), int(info.height)
        return CameraModel.from_fov(width, height, horizontal_fov)


class ArmSwitch:
    """The ``~/arm`` service (std_srvs/SetBool): true arms, false disarms. Starts disarmed."""

    def __init__(self, node: Node, on_change: Callable[[bool], None]) -> None:
        self.armed = False
        self._node = node
        self._on_change = on_change
        node.create_service(SetBool, "~/arm", self._on_request)

    def _on_request(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.armed = bool(request.data)
        self._on_change(self.armed)
        response.success = True
        response.message = "armed" if self.armed else "disarmed"
        self._node.get_logger().info(response.message)
        return response


class ReasonLogger:
    """Logs when the follower switches between following and holding, with the reason, once per change."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._last: str | None = None

    def __call__(self, reason: str) -> None:
        if reason != self._last:
            self._node.get_logger().info(f"{'following' if reason == 'following' else 'holding: ' + reason}")
            self._last = reason


def finite(value: float) -> float:
    """``value`` when finite, else 0.0: nothing non-finite ever reaches an actuator."""
    return value if math.isfinite(value) else 0.0


def run(make_node: Callable[[], Any], args: list[str] | None = None) -> int:
    """Create the node and spin it; on SIGINT/SIGTERM it publishes a last zero command before exiting."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # rclpy's own handler would shut the context down before the node could publish its last zero command.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, interrupt)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok():
            # a bounded wait returns to Python, where SIGINT is raised, even when no timer fires (a stopped /clock)
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # a second signal during the clean-up would abort the final zero command half-way: ignore it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            try:
                node.stop()
            except Exception as exc:  # noqa: BLE001 - shutting down anyway; say why the last command failed
                node.get_logger().warning(f"could not publish the final zero command: {exc}")
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
