"""``pan_tilt_follower``: steer a pan-tilt head so that the tracked target stays in the image centre.

Subscribes ``ocean_tracker/detections`` (vision_msgs/Detection2DArray), ``ocean_tracker/status`` (ocean_ros_msgs/
TrackerStatus), ``camera_info`` (sensor_msgs/CameraInfo) and ``joint_states`` (sensor_msgs/JointState);
publishes ``pan_tilt_controller/commands`` (std_msgs/Float64MultiArray, ``[pan, tilt]``, rad/s in velocity
mode or rad in position mode) for a ros2_control forward command controller. Starts disarmed; the
``~/arm`` service (std_srvs/SetBool) arms it. See docs/followers.md.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from .node_common import (
    COMMON_PARAMS,
    INPUT_QOS,
    ArmSwitch,
    Param,
    ReasonLogger,
    TrackerInputs,
    declare_parameters,
    finite,
    now_s,
    parameter_values,
    pid_config,
    pid_params,
    run,
    watch_parameters,
)
from .pan_tilt import VELOCITY, AxisConfig, PanTiltConfig, PanTiltController
from .pid import PidConfig

DEFAULT_PID = PidConfig(
    kp=2.0, ki=0.2, kd=0.0, output_limit=1.5, rate_limit=4.0, integral_limit=0.3, deadband=0.0087,
    smoothing_s=0.05,
)


def axis_params(name: str, lower: float, upper: float) -> list[Param]:
    """PID, joint limits and direction of one joint (``pan`` or ``tilt``)."""
    turn = "left" if name == "pan" else "up"
    return [
        *pid_params(name, DEFAULT_PID, "rad", "rad/s"),
        Param(f"{name}.min_position", lower, f"lower joint limit of the {name} joint, rad", -100.0, 100.0),
        Param(f"{name}.max_position", upper, f"upper joint limit of the {name} joint, rad", -100.0, 100.0),
        Param(f"{name}.direction", 1, f"+1 when a positive {name} joint motion turns the view {turn}, else -1",
              -1, 1, step=2),
    ]


PARAMS = [
    Param("mode", VELOCITY, "command mode: 'velocity' (rad/s, forward velocity controller) or 'position' "
          "(rad, forward position controller)", read_only=True),
    Param("pan_joint", "pan_joint", "name of the pan joint in joint_states", read_only=True),
    Param("tilt_joint", "tilt_joint", "name of the tilt joint in joint_states", read_only=True),
    *COMMON_PARAMS,
    *axis_params("pan", -math.pi, math.pi),
    *axis_params("tilt", -math.pi / 2, math.pi / 2),
]


def config_from(values: dict[str, Any]) -> PanTiltConfig:
    """The controller configuration from parameter values (raises ValueError on an invalid one)."""

    def axis(name: str) -> AxisConfig:
        return AxisConfig(
            pid=pid_config(values, name),
            lower=values[f"{name}.min_position"],
            upper=values[f"{name}.max_position"],
            direction=float(values[f"{name}.direction"]),
        )

    return PanTiltConfig(
        pan=axis("pan"), tilt=axis("tilt"), mode=values["mode"], timeout_s=values["timeout_s"],
        min_score=values["min_score"],
    )


class PanTiltFollower(Node):
    """The pan-tilt follower node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("pan_tilt_follower", **kwargs)
        declare_parameters(self, PARAMS)
        self._values = parameter_values(self, PARAMS)
        self.controller = PanTiltController(config_from(self._values))
        watch_parameters(self, PARAMS, self._apply)
        self._joint_names = (self._values["pan_joint"], self._values["tilt_joint"])
        self._joints: tuple[float, float] | None = None
        self._inputs = TrackerInputs(self)
        self._log_reason = ReasonLogger(self)
        self._publisher = self.create_publisher(Float64MultiArray, "pan_tilt_controller/commands", 10)
        self.create_subscription(JointState, "joint_states", self._on_joint_state, INPUT_QOS)
        self._arm = ArmSwitch(self, self._on_arm)
        self.create_timer(1.0 / self._values["control_rate"], self._tick)
        self.get_logger().info(
            f"pan-tilt follower ready ({self._values['mode']} mode), disarmed: call ~/arm to start"
        )

    def _apply(self, values: dict[str, Any]) -> None:
        self.controller.configure(config_from(values))
        self._values = values

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            indices = [list(msg.name).index(name) for name in self._joint_names]
            self._joints = (float(msg.position[indices[0]]), float(msg.position[indices[1]]))
        except (ValueError, IndexError):
            return  # another publisher's joints, or no positions

    def _on_arm(self, armed: bool) -> None:
        self.controller.reset()
        if not armed and self._values["mode"] == VELOCITY:
            self._publish(0.0, 0.0)

    def _publish(self, pan: float, tilt: float) -> None:
        self._publisher.publish(Float64MultiArray(data=[finite(pan), finite(tilt)]))

    def _tick(self) -> None:
        values = self._values
        if not self._arm.armed:
            if values["mode"] == VELOCITY and values["publish_when_disarmed"]:
                self._publish(0.0, 0.0)
            return
        now = now_s(self)
        camera = self._inputs.camera(
            values["fallback.image_width"], values["fallback.image_height"], values["fallback.horizontal_fov"]
        )
        command = self.controller.update(now, self._inputs.snapshot(now, values["timeout_s"]), camera, self._joints)
        self._log_reason(command.reason)
        if command.valid:
            self._publish(command.pan, command.tilt)

    def stop(self) -> None:
        """Last words on shutdown: zero velocity (position mode: nothing, the controller holds)."""
        if self._values["mode"] == VELOCITY:
            self._publish(0.0, 0.0)
            self._publisher.wait_for_all_acked(Duration(seconds=0.5))


def main(args: list[str] | None = None) -> int:
    """Console script ``pan_tilt_follower``."""
    return run(PanTiltFollower, args)


if __name__ == "__main__":
    sys.exit(main())
