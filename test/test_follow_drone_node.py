"""``drone_follower`` as a process: disarmed zeros, REP-103 Twist signs, limits, watchdog, disarm, shutdown."""

from __future__ import annotations

import math
import time

import pytest
import yaml
from conftest import REPO_ROOT
from ros_helpers import console_script

pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")

CONFIG = REPO_ROOT / "config" / "follow_drone.yaml"
PARAMS = yaml.safe_load(CONFIG.read_text())["/**/drone_follower"]["ros__parameters"]
WIDTH, HEIGHT, FX = 320, 240, 250.0


class FakeTracker:
    """Publishes camera_info, detections and status at 30 Hz from the probe node; ``scene`` sets the box."""

    def __init__(self, node) -> None:
        from ocean_ros_msgs.msg import TrackerStatus
        from sensor_msgs.msg import CameraInfo
        from vision_msgs.msg import Detection2DArray

        self.scene: tuple[float, float, float] | None = None  # u, v, box height (pixels); None: silent
        self.last_publish = 0.0
        self._det = node.create_publisher(Detection2DArray, "/ocean_tracker/detections", 10)
        self._status = node.create_publisher(TrackerStatus, "/ocean_tracker/status", 10)
        self._info = node.create_publisher(CameraInfo, "/camera_info", 10)
        self._node = node
        node.create_timer(1 / 30, self._publish)

    def _publish(self) -> None:
        from ocean_ros_msgs.msg import TrackerStatus
        from sensor_msgs.msg import CameraInfo
        from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

        info = CameraInfo(width=WIDTH, height=HEIGHT)
        info.k = [FX, 0.0, WIDTH / 2, 0.0, FX, HEIGHT / 2, 0.0, 0.0, 1.0]
        self._info.publish(info)
        if self.scene is None:
            return
        u, v, size = self.scene
        detection = Detection2D(id="1")
        detection.bbox.center.position.x, detection.bbox.center.position.y = u, v
        detection.bbox.size_x = detection.bbox.size_y = size
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.score = 0.9
        detection.results = [hypothesis]
        self._status.publish(TrackerStatus(state=TrackerStatus.TRACKING, score=0.9))
        self._det.publish(Detection2DArray(detections=[detection]))
        self.last_publish = time.monotonic()


def call_arm(session, value: bool) -> None:
    from std_srvs.srv import SetBool

    client = session.node.create_client(SetBool, "/drone_follower/arm")
    assert client.wait_for_service(timeout_sec=60.0)
    future = client.call_async(SetBool.Request(data=value))
    deadline = time.monotonic() + 30.0
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert future.done() and future.result().success


def twist_values(msg) -> tuple[float, ...]:
    return (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)


@pytest.mark.slow
def test_drone_follower_twist_signs_limits_watchdog_disarm_and_shutdown(ros_session, node_process):
    from geometry_msgs.msg import Twist

    follower = node_process([console_script("drone_follower"), "--ros-args", "--params-file", str(CONFIG)])
    session = ros_session("drone_probe")
    tracker = FakeTracker(session.node)
    cmd_vel = session.collector(Twist, "/cmd_vel", 1000)
    desired = PARAMS["desired_size"] * HEIGHT

    # target right of centre, above it, and smaller than desired; disarmed: zero Twists only
    tracker.scene = (WIDTH / 2 + 60, HEIGHT / 2 - 40, desired / 2)
    assert len(cmd_vel.wait_for(10, 60.0)) >= 10, follower.output()
    call_arm(session, False)  # the service is up: the follower has been running with the target in view
    time.sleep(0.3)
    assert all(twist_values(m) == (0.0,) * 6 for m in cmd_vel.messages)

    call_arm(session, True)
    start = len(cmd_vel.messages)
    time.sleep(1.5)
    last = cmd_vel.messages[-1]
    print(f"\nright/above/small target: forward {last.linear.x:.3f} m/s, vertical {last.linear.z:.3f} m/s, "
          f"yaw rate {last.angular.z:.3f} rad/s")
    assert last.angular.z < 0, "target right of centre must give a negative (clockwise) yaw rate"
    assert last.linear.z > 0, "target above centre must give a positive vertical speed"
    assert last.linear.x > 0, "target smaller than desired must give a positive forward speed"
    assert (last.linear.y, last.angular.x, last.angular.y) == (0.0, 0.0, 0.0)
    rising = [abs(m.angular.z) for m in cmd_vel.messages[start:]]
    assert rising[0] <= PARAMS["yaw"]["rate_limit"] * 2 / PARAMS["control_rate"] + 1e-9  # ramps, no jump

    # extreme input: every axis saturates at its limit, never beyond
    tracker.scene = (-1e6, 1e6, 1e-3)
    start = len(cmd_vel.messages)
    time.sleep(1.5)
    extreme = cmd_vel.messages[start:]
    for msg in extreme:
        assert abs(msg.angular.z) <= PARAMS["yaw"]["limit"] + 1e-9
        assert abs(msg.linear.z) <= PARAMS["vertical"]["limit"] + 1e-9
        assert abs(msg.linear.x) <= PARAMS["forward"]["limit"] + 1e-9
        assert all(math.isfinite(x) for x in twist_values(msg))
    assert extreme[-1].angular.z > 0 and extreme[-1].linear.z < 0  # far left and below: turn left, descend

    # detections stop: zero Twist once the timeout has passed, without waiting longer than a control period
    tracker.scene = None
    stop = time.monotonic()
    time.sleep(PARAMS["timeout_s"] + 0.6)
    last_detection = tracker.last_publish
    first_zero = next(t for m, t in zip(cmd_vel.messages, cmd_vel.receive_times, strict=False)
                      if t > stop and twist_values(m) == (0.0,) * 6)
    delay = first_zero - last_detection
    print(f"watchdog: zero Twist {delay:.3f} s after the last detection (wall clock)")
    assert delay <= PARAMS["timeout_s"] + 1 / PARAMS["control_rate"] + 0.25  # loaded-machine scheduling slack
    tail = [m for m, t in zip(cmd_vel.messages, cmd_vel.receive_times, strict=False) if t > first_zero]
    assert all(twist_values(m) == (0.0,) * 6 for m in tail)

    # disarm while following: zero at once, whatever the input
    tracker.scene = (0.0, 0.0, desired / 4)
    time.sleep(1.0)
    assert cmd_vel.messages[-1].angular.z != 0.0
    call_arm(session, False)
    start = len(cmd_vel.messages)
    time.sleep(0.5)
    assert all(twist_values(m) == (0.0,) * 6 for m in cmd_vel.messages[start:])

    # shut down while following: the last word is a zero Twist
    call_arm(session, True)
    time.sleep(0.5)
    assert cmd_vel.messages[-1].angular.z != 0.0
    assert follower.stop() == 0, follower.output()
    assert twist_values(cmd_vel.wait_quiet(0.3, 5.0)[-1]) == (0.0,) * 6
