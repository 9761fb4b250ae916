"""``drone_follower``: fly a multicopter so that the tracked target stays centred at a wanted apparent size.

Subscribes ``ocean_tracker/detections`` (vision_msgs/Detection2DArray), ``ocean_tracker/status`` (ocean_ros_msgs/
TrackerStatus) and ``camera_info`` (sensor_msgs/CameraInfo) of a forward-looking camera; publishes
``cmd_vel`` (geometry_msgs/Twist, REP-103 body frame: linear.x forward m/s, linear.z up m/s, angular.z yaw
rate rad/s, counter-clockwise positive) at a fixed rate. Starts disarmed; the ``~/arm`` service
(std_srvs/SetBool) arms it. PX4 and MAVROS wiring: docs/followers.md.
"""

from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import Twist
from rclpy.duration import Duration
from rclpy.node import Node

from .drone import SIZE_MEASURES, BodyVelocity, DroneConfig, DroneController
from .node_common import (
    COMMON_PARAMS,
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
from .pid import PidConfig

YAW_PID = PidConfig(kp=1.5, ki=0.1, output_limit=1.0, rate_limit=2.0, integral_limit=0.3, deadband=0.01,
                    smoothing_s=0.1)
VERTICAL_PID = PidConfig(kp=1.0, ki=0.0, output_limit=1.0, rate_limit=1.0, integral_limit=0.3, deadband=0.02,
                         smoothing_s=0.1)
FORWARD_PID = PidConfig(kp=1.5, ki=0.0, output_limit=2.0, rate_limit=1.0, integral_limit=0.5, deadband=0.05,
                        smoothing_s=0.2)

PARAMS = [
    *COMMON_PARAMS,
    Param("desired_size", 0.3, "wanted apparent target size, fraction of the image height", 0.01, 2.0),
    Param("size_measure", "height", f"which box size is compared with desired_size: {', '.join(SIZE_MEASURES)} "
          "(area: square root of width·height)"),
    *pid_params("yaw", YAW_PID, "rad", "rad/s"),
    *pid_params("vertical", VERTICAL_PID, "rad", "m/s"),
    *pid_params("forward", FORWARD_PID, "ln(desired/apparent size)", "m/s"),
]


def config_from(values: dict[str, Any]) -> DroneConfig:
    """The controller configuration from parameter values (raises ValueError on an invalid one)."""
    return DroneConfig(
        yaw=pid_config(values, "yaw"),
        vertical=pid_config(values, "vertical"),
        forward=pid_config(values, "forward"),
        desired_size=values["desired_size"],
        size_measure=values["size_measure"],
        timeout_s=values["timeout_s"],
        min_score=values["min_score"],
    )


def to_twist(command: BodyVelocity) -> Twist:
    """REP-103 body-frame Twist of a command (non-finite values become 0)."""
    twist = Twist()
    twist.linear.x = finite(command.forward)
    twist.linear.z = finite(command.vertical)
    twist.angular.z = finite(command.yaw_rate)
    return twist


class DroneFollower(Node):
    """The drone follower node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("drone_follower", **kwargs)
        declare_parameters(self, PARAMS)
        self._values = parameter_values(self, PARAMS)
        self.controller = DroneController(config_from(self._values))
        watch_parameters(self, PARAMS, self._apply)
        self._inputs = TrackerInputs(self)
        self._log_reason = ReasonLogger(self)
        self._publisher = self.create_publisher(Twist, "cmd_vel", 10)
        self._arm = ArmSwitch(self, self._on_arm)
        self.create_timer(1.0 / self._values["control_rate"], self._tick)
        self.get_logger().info("drone follower ready, disarmed: call ~/arm to start")

    def _apply(self, values: dict[str, Any]) -> None:
        self.controller.configure(config_from(values))
        self._values = values

    def _on_arm(self, armed: bool) -> None:
        self.controller.reset()
        if not armed:
            self._publisher.publish(Twist())

    def _tick(self) -> None:
        values = self._values
        if not self._arm.armed:
            if values["publish_when_disarmed"]:
                self._publisher.publish(Twist())
            return
        now = now_s(self)
        camera = self._inputs.camera(
            values["fallback.image_width"], values["fallback.image_height"], values["fallback.horizontal_fov"]
        )
        command = self.controller.update(now, self._inputs.snapshot(now, values["timeout_s"]), camera)
        self._log_reason(command.reason)
        self._publisher.publish(to_twist(command))

    def stop(self) -> None:
        """Last words on shutdown: a zero Twist."""
        self._publisher.publish(Twist())
        self._publisher.wait_for_all_acked(Duration(seconds=0.5))


def main(args: list[str] | None = None) -> int:
    """Console script ``drone_follower``."""
    return run(DroneFollower, args)


if __name__ == "__main__":
    sys.exit(main())
