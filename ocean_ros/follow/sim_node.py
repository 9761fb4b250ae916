"""``pan_tilt_sim``: a virtual pan-tilt camera for closed-loop tests of ``pan_tilt_follower``.

Time: the simulator owns a simulated clock. Each physics step advances it by ``1/rate`` s and publishes it on
``/clock``; steps are paced by a wall timer at ``rate * real_time_factor`` Hz. Run the follower with
``use_sim_time:=true``: its timers, timeouts and PID steps then follow the simulated clock, so a loaded
machine slows the whole loop down instead of adding unmodelled delay to the simulation's physics, and a
``real_time_factor`` above 1 runs long scenarios faster than real time. With ``publish_clock:=false`` the
simulator stamps with the wall clock and integrates the elapsed wall time instead.

Publishes ``image`` (sensor_msgs/Image bgr8, only while subscribed), ``camera_info``, ``joint_states``
(position and applied velocity), the stand-in tracker's ``ocean_tracker/detections`` and
``ocean_tracker/status`` (with ``publish_detections:=true``; turn them off to feed a real tracker with
``image`` instead), and ground truth: ``~/target_error`` (geometry_msgs/Vector3Stamped: x azimuth,
y elevation of the target relative to the optical axis, rad, REP-103 signs) and ``~/target_box``
(vision_msgs/Detection2D, the exact box of each frame; with ``init_tracker:=true`` it is also sent once to
``ocean_tracker/init_detection``). Subscribes ``pan_tilt_controller/commands`` (std_msgs/Float64MultiArray
``[pan, tilt]``, rad/s or rad per ``command_mode``). Services (std_srvs/SetBool): ``~/detections_enabled``
(false: the stand-in tracker goes silent) and ``~/target_visible`` (false: it reports the target lost, with
empty detection arrays).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import cv2
from geometry_msgs.msg import Vector3Stamped
from ocean_ros_msgs.msg import TrackerStatus
from rclpy.clock import Clock as SteadyClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header
from std_srvs.srv import SetBool
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from ..ros.image_conversion import array_to_image
from .camera import CameraModel
from .node_common import Param, declare_parameters, parameter_values, run
from .sim_world import PATHS, Joint, StandInTracker, TargetPath, World, find_background, observe
from .target import Observation

PARAMS = [
    Param("rate", 100.0, "physics steps (and /clock messages) per simulated second, Hz", 1.0, 1000.0, read_only=True),
    Param("real_time_factor", 1.0, "simulated seconds per wall-clock second", 0.01, 100.0, read_only=True),
    Param("publish_clock", True, "publish /clock (simulated time); false: stamp with the wall clock",
          read_only=True),
    Param("width", 320, "image width, pixels", 16, 4096, read_only=True),
    Param("height", 240, "image height, pixels", 16, 4096, read_only=True),
    Param("horizontal_fov", 1.0472, "horizontal field of view, rad", 0.05, 3.0, read_only=True),
    Param("camera_rate", 30.0, "frames per simulated second, Hz", 0.1, 1000.0, read_only=True),
    Param("frame_id", "camera_optical_frame", "frame_id of images, camera_info and detections", read_only=True),
    Param("background", "", "background image file; empty: the first frame under $OCEAN_ROS_DATA/sequences/*/, "
          "else a generated texture", read_only=True),
    Param("pan_joint", "pan_joint", "name of the pan joint", read_only=True),
    Param("tilt_joint", "tilt_joint", "name of the tilt joint", read_only=True),
    Param("command_mode", "velocity", "how commands are read: 'velocity' (rad/s) or 'position' (rad)",
          read_only=True),
    Param("initial_pan", 0.0, "initial pan angle, rad (> 0 left)", -6.3, 6.3, read_only=True),
    Param("initial_tilt", 0.0, "initial tilt angle, rad (> 0 up)", -3.2, 3.2, read_only=True),
    Param("pan_limit", math.pi, "pan joint limit: |pan| <= this, rad", 0.0, 6.3, read_only=True),
    Param("tilt_limit", math.pi / 2, "tilt joint limit: |tilt| <= this, rad", 0.0, 3.2, read_only=True),
    Param("max_joint_velocity", 3.0, "joint speed limit, rad/s", 0.01, 100.0, read_only=True),
    Param("target_path", "static", f"target motion: {', '.join(PATHS)}", read_only=True),
    Param("target_azimuth", math.radians(15.0), "target direction (centre of its path), rad, > 0 left",
          -6.3, 6.3, read_only=True),
    Param("target_elevation", 0.0, "target direction (centre of its path), rad, > 0 up", -3.2, 3.2,
          read_only=True),
    Param("path_amplitude", 0.0, "amplitude of the target path, rad", 0.0, 3.2, read_only=True),
    Param("path_period", 10.0, "period of the target path, s", 0.1, 1000.0, read_only=True),
    Param("target_size", 0.1, "angular diameter of the target, rad", 0.001, 1.5, read_only=True),
    Param("publish_detections", True, "publish the stand-in tracker's detections and status", read_only=True),
    Param("init_tracker", False, "once, from 1 s on and as soon as someone subscribes: send the true box of that "
          "frame to ocean_tracker/init_detection (starts a real tracker fed with 'image')", read_only=True),
    Param("latency_s", 0.0, "stand-in tracker latency from capture to publication, s", 0.0, 10.0,
          read_only=True),
    Param("noise_px", 0.0, "standard deviation of the stand-in tracker's box centre noise, pixels", 0.0, 1000.0,
          read_only=True),
    Param("dropout_probability", 0.0, "probability that a frame yields no detection message", 0.0, 1.0,
          read_only=True),
    Param("score", 0.9, "score of the stand-in tracker's detections", 0.0, 1.0, read_only=True),
    Param("seed", 0, "random seed of noise and dropouts", 0, 2**31 - 1, read_only=True),
]


class PanTiltSim(Node):
    """The simulator node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("pan_tilt_sim", **kwargs)
        declare_parameters(self, PARAMS)
        p = self.p = parameter_values(self, PARAMS)
        if p["command_mode"] not in ("velocity", "position"):
            raise ValueError(f"command_mode must be 'velocity' or 'position', got {p['command_mode']!r}")
        self.camera = CameraModel.from_fov(p["width"], p["height"], p["horizontal_fov"])
        self.path = TargetPath(p["target_path"], p["target_azimuth"], p["target_elevation"],
                               p["path_amplitude"], p["path_period"])
        self.pan = Joint(p["initial_pan"], -p["pan_limit"], p["pan_limit"], p["max_joint_velocity"])
        self.tilt = Joint(p["initial_tilt"], -p["tilt_limit"], p["tilt_limit"], p["max_joint_velocity"])
        self.tracker = StandInTracker(self.camera, p["latency_s"], p["noise_px"], p["dropout_probability"],
                                      p["score"], p["seed"])
        self._world: World | None = None  # built on the first subscribed frame
        self._command: tuple[float, float] | None = None
        self.detections_enabled = True
        self.target_visible = True
        self.dt = 1.0 / p["rate"]
        self.t = 0.0 if p["publish_clock"] else self.get_clock().now().nanoseconds * 1e-9
        self._step_index = 0
        self._next_frame = self.t

        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if p["publish_clock"] else None
        self._image_pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self._joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self._error_pub = self.create_publisher(Vector3Stamped, "~/target_error", 10)
        self._detections_pub = self._status_pub = None
        if p["publish_detections"]:
            self._detections_pub = self.create_publisher(Detection2DArray, "ocean_tracker/detections", 10)
            self._status_pub = self.create_publisher(TrackerStatus, "ocean_tracker/status", 10)
        self._truth_pub = self.create_publisher(Detection2D, "~/target_box", 10)
        self._init_pub = self.create_publisher(Detection2D, "ocean_tracker/init_detection", 10)
        self._init_sent = not p["init_tracker"]
        self.create_subscription(Float64MultiArray, "pan_tilt_controller/commands", self._on_command, 10)
        self.create_service(SetBool, "~/detections_enabled", self._set_detections_enabled)
        self.create_service(SetBool, "~/target_visible", self._set_target_visible)
        # paced by the steady clock even if started with use_sim_time (it would otherwise wait for its own /clock)
        self.create_timer(1.0 / (p["rate"] * p["real_time_factor"]), self._step,
                          clock=SteadyClock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"pan-tilt sim: {p['width']}x{p['height']} at {p['camera_rate']} Hz, physics {p['rate']} Hz, "
            f"real-time factor {p['real_time_factor']}, stand-in detections {p['publish_detections']}"
        )

    def _on_command(self, msg: Float64MultiArray) -> None:
        if len(msg.data) >= 2:
            self._command = (float(msg.data[0]), float(msg.data[1]))

    def _set_detections_enabled(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.detections_enabled = bool(request.data)
        response.success, response.message = True, f"detections enabled: {self.detections_enabled}"
        return response

    def _set_target_visible(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.target_visible = bool(request.data)
        response.success, response.message = True, f"target visible: {self.target_visible}"
        return response

    def header(self, t: float) -> Header:
        return Header(stamp=Time(nanoseconds=int(round(t * 1e9))).to_msg(), frame_id=self.p["frame_id"])

    def relative_target(self, t: float) -> tuple[float, float]:
        """Target direction relative to the optical axis at time ``t``: (azimuth, elevation), rad."""
        azimuth, elevation = self.path.at(t)
        return azimuth - self.pan.position, elevation - self.tilt.position

    def _step(self) -> None:
        self._step_index += 1
        previous = self.t
        if self.p["publish_clock"]:
            self.t = self._step_index * self.dt
        else:
            self.t = self.get_clock().now().nanoseconds * 1e-9
        dt = self.t - previous
        pan_cmd, tilt_cmd = self._command if self._command is not None else (None, None)
        for joint, command in ((self.pan, pan_cmd), (self.tilt, tilt_cmd)):
            if command is None or dt <= 0:
                joint.velocity = 0.0
            elif self.p["command_mode"] == "velocity":
                joint.step_velocity(command, dt)
            else:
                joint.step_position(command, dt)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=self.header(self.t).stamp))
        header = self.header(self.t)
        self._joint_pub.publish(JointState(
            header=header, name=[self.p["pan_joint"], self.p["tilt_joint"]],
            position=[self.pan.position, self.tilt.position], velocity=[self.pan.velocity, self.tilt.velocity],
        ))
        relative = self.relative_target(self.t)
        error = Vector3Stamped(header=header)
        error.vector.x, error.vector.y = relative
        self._error_pub.publish(error)
        if self.t + 1e-9 >= self._next_frame:
            self._next_frame += 1.0 / self.p["camera_rate"]
            self._capture(header, relative)
        for captured, observation in self.tracker.release(self.t):
            self._publish_detection(self.header(captured), observation)

    def _size_px(self) -> float:
        return self.camera.fx * self.p["target_size"]

    def _capture(self, header: Header, relative: tuple[float, float]) -> None:
        self._info_pub.publish(self.camera_info(header))
        if self._image_pub.get_subscription_count() > 0:
            self._image_pub.publish(array_to_image(self.render(relative), "bgr8", header))
        truth = self.true_box(header, relative)
        if truth is not None:
            self._truth_pub.publish(truth)
            if not self._init_sent and self.t >= 1.0 and self._init_pub.get_subscription_count() > 0:
                self._init_pub.publish(truth)
                self._init_sent = True
                self.get_logger().info("sent the true target box to ocean_tracker/init_detection")
        if self._detections_pub is not None and self.detections_enabled:
            self.tracker.capture(self.t, relative, self._size_px(), self.target_visible)

    def true_box(self, header: Header, relative: tuple[float, float]) -> Detection2D | None:
        """The exact target box of this frame (None when the target is out of view)."""
        observation = observe(self.camera, relative, self._size_px(), self.target_visible)
        return None if observation is None else self.detection(header, observation)

    def detection(self, header: Header, observation: Observation) -> Detection2D:
        detection = Detection2D(header=header, id="1")
        detection.bbox = BoundingBox2D(size_x=observation.width, size_y=observation.height)
        detection.bbox.center.position.x, detection.bbox.center.position.y = observation.u, observation.v
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = "target", observation.score
        detection.results = [hypothesis]
        return detection

    def render(self, relative: tuple[float, float]) -> Any:
        """The current camera view (BGR array) with the target drawn where it is."""
        if self._world is None:
            background = None
            path = self.p["background"] or find_background(os.environ.get("OCEAN_ROS_DATA"))
            if path:
                background = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if background is None:
                    self.get_logger().warning(f"cannot read background {path}; using a generated texture")
            self._world = World(self.camera, (self.pan.lower, self.pan.upper), (self.tilt.lower, self.tilt.upper),
                                background)
        u, v = self.camera.project(*relative)
        visible = abs(relative[0]) < math.pi / 2 and abs(relative[1]) < math.pi / 2
        return self._world.render(self.pan.position, self.tilt.position, (u, v) if visible else None,
                                  self._size_px())

    def camera_info(self, header: Header) -> CameraInfo:
        cam = self.camera
        info = CameraInfo(header=header, width=cam.width, height=cam.height, distortion_model="plumb_bob")
        info.d = [0.0] * 5
        info.k = [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [cam.fx, 0.0, cam.cx, 0.0, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def _publish_detection(self, header: Header, observation: Observation | None) -> None:
        assert self._detections_pub is not None and self._status_pub is not None
        status = TrackerStatus(header=header)
        array = Detection2DArray(header=header)
        if observation is None:
            status.state = TrackerStatus.LOST
        else:
            status.state, status.score, status.target_id = TrackerStatus.TRACKING, observation.score, "1"
            array.detections = [self.detection(header, observation)]
        self._status_pub.publish(status)
        self._detections_pub.publish(array)

    def stop(self) -> None:
        """Nothing to send on shutdown."""


def main(args: list[str] | None = None) -> int:
    """Console script ``pan_tilt_sim``."""
    return run(PanTiltSim, args)


if __name__ == "__main__":
    sys.exit(main())
