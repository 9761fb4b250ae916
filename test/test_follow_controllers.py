"""Pure follower controllers: hold rules, pan-tilt signs and joint limits, drone sign conventions and limits,
and the purity of the modules (no ROS imports)."""

from __future__ import annotations

import ast
import math

import pytest
from conftest import REPO_ROOT, modules_loaded_by_importing

from ocean_ros.follow.camera import CameraModel
from ocean_ros.follow.drone import BodyVelocity, DroneConfig, DroneController, body_to_px4_ned, size_error
from ocean_ros.follow.pan_tilt import POSITION, AxisConfig, PanTiltConfig, PanTiltController
from ocean_ros.follow.pid import PidConfig
from ocean_ros.follow.target import IDLE, LOST, TRACKING, Observation, Refusals, TrackerInput, hold_reason

CAMERA = CameraModel.from_fov(320, 240, math.radians(60))
PERIOD = 1 / 30
PID = PidConfig(kp=2.0, ki=0.5, output_limit=1.5, rate_limit=4.0, integral_limit=0.3, deadband=0.0087)
PURE_MODULES = ("camera", "pid", "target", "pan_tilt", "drone", "sim_world")
ROS_PREFIXES = ("rclpy", "rosidl", "rcl_interfaces", "sensor_msgs", "std_msgs", "std_srvs", "geometry_msgs",
                "vision_msgs", "ocean_ros_msgs", "rosgraph_msgs", "launch", "ament_index_python")


def seen(u: float, v: float, now: float, score: float = 0.9, size: float = 30.0, state: int | None = TRACKING):
    """Tracker input of a box centred at (u, v) pixels that arrived at ``now``."""
    return TrackerInput(now, Observation(u, v, size, size, score), state)


def drive(controller, inputs_at, start: float, duration: float, **kwargs):
    """Update ``controller`` every control period; ``inputs_at(t)`` gives the tracker input at t."""
    commands, t = [], start
    while t < start + duration - 1e-9:
        commands.append(controller.update(t, inputs_at(t), CAMERA, **kwargs))
        t += PERIOD
    return commands


# --- hold rules ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "now", "reason"),
    [
        (TrackerInput(), 1.0, "no detections received"),
        (seen(100, 100, 1.0), 1.6, "no detections for"),
        (seen(100, 100, 1.0), 0.5, "clock jumped backwards"),
        (seen(100, 100, 1.0, state=IDLE), 1.1, "tracker idle"),
        (seen(100, 100, 1.0, state=LOST), 1.1, "tracker lost"),
        (TrackerInput(1.0, None, TRACKING), 1.1, "target lost (empty detections)"),
        (seen(100, 100, 1.0, score=0.1), 1.1, "low confidence"),
        (seen(math.nan, 100, 1.0), 1.1, "non-finite"),
    ],
)
def test_hold_reasons(inputs, now, reason):
    assert hold_reason(inputs, now, timeout_s=0.5, min_score=0.3).startswith(reason)


NOT_A_BOX = [
    pytest.param(Observation(60, 60, -30, 30, 0.9), "non-positive size", id="negative-width"),
    pytest.param(Observation(60, 60, 30, -30, 0.9), "non-positive size", id="negative-height"),
    pytest.param(Observation(60, 60, 0, 30, 0.9), "non-positive size", id="zero-width"),
    pytest.param(Observation(60, 60, math.nan, 30, 0.9), "non-finite size", id="nan-width"),
    pytest.param(Observation(60, 60, 30, math.inf, 0.9), "non-finite size", id="inf-height"),
    pytest.param(Observation(60, 60, 30, 30, math.nan), "non-finite score", id="nan-score"),
    pytest.param(Observation(60, 60, 30, 30, math.inf), "non-finite score", id="inf-score"),
    pytest.param(Observation(60, 60, 30, 30, -0.5), "non-positive score", id="negative-score"),
    pytest.param(Observation(60, 60, 30, 30, 0.0), "non-positive score", id="zero-score"),
    pytest.param(Observation(math.nan, 60, 30, 30, 0.9), "non-finite centre", id="nan-centre"),
]


@pytest.mark.parametrize(("observation", "reason"), NOT_A_BOX)
def test_a_detection_that_is_not_a_box_is_refused_with_its_reason(observation, reason):
    assert observation.problem() == reason
    # refused even where min_score would let any score through
    assert hold_reason(TrackerInput(1.0, observation, TRACKING), 1.1, timeout_s=0.5, min_score=0.0) == reason


@pytest.mark.parametrize(("observation", "reason"), NOT_A_BOX)
def test_both_controllers_hold_still_on_a_refused_detection(observation, reason):
    """A foreign client's negative size once made the pan-tilt follower command -0.61 rad/s towards the box."""
    pan_tilt_controller, drone_controller = pan_tilt(), drone()
    valid = lambda t: seen(60, 60, t)  # noqa: E731 - left of and above centre: both controllers move
    assert drive(pan_tilt_controller, valid, 0.0, 0.5)[-1].pan > 0
    assert drive(drone_controller, valid, 0.0, 0.5)[-1].yaw_rate > 0
    refused = TrackerInput(0.5, observation, TRACKING)
    for _ in range(3):
        held = pan_tilt_controller.update(0.5, refused, CAMERA)
        assert (held.pan, held.tilt, held.following, held.reason) == (0.0, 0.0, False, reason)
        flown = drone_controller.update(0.5, refused, CAMERA)
        assert (flown.forward, flown.vertical, flown.yaw_rate, flown.following) == (0.0, 0.0, 0.0, False)
        assert flown.reason == reason
    assert pan_tilt_controller._pan.pid.integral == 0.0  # held means reset: no kick when a real box returns


def test_refusals_are_counted_per_reason_and_logged_at_most_once_per_throttle_period():
    refusals = Refusals(throttle_s=2.0)
    logged = [refusals.add("non-positive size", t * 0.1) for t in range(45)]  # 4.4 s at 10 Hz
    assert logged.count(True) == 3 and logged[0] and logged[20] and logged[40]
    assert refusals.add("non-finite score", 4.4)  # another reason has its own throttle
    assert refusals.counts == {"non-positive size": 45, "non-finite score": 1} and refusals.total == 46
    assert refusals.add("non-positive size", 1.0)  # the clock went backwards: log rather than go silent


def test_follows_a_fresh_confident_detection_with_or_without_status():
    assert hold_reason(seen(100, 100, 1.0), 1.4, 0.5, 0.3) is None
    assert hold_reason(seen(100, 100, 1.0, state=None), 1.4, 0.5, 0.3) is None


# --- pan-tilt -----------------------------------------------------------------------------------------------


def pan_tilt(mode: str = "velocity", **axis) -> PanTiltController:
    return PanTiltController(PanTiltConfig(AxisConfig(PID, **axis), AxisConfig(PID, **axis), mode=mode))


def test_pan_tilt_turns_towards_the_target():
    controller = pan_tilt()
    left_above = drive(controller, lambda t: seen(60, 60, t), 0.0, 0.5)[-1]
    assert left_above.following and left_above.pan > 0 and left_above.tilt > 0  # turn left, turn up
    controller.reset()
    right_below = drive(controller, lambda t: seen(260, 200, t), 0.0, 0.5)[-1]
    assert right_below.pan < 0 and right_below.tilt < 0


def test_pan_tilt_direction_flips_joint_signs():
    flipped = drive(pan_tilt(direction=-1.0), lambda t: seen(60, 60, t), 0.0, 0.5)[-1]
    assert flipped.pan < 0 and flipped.tilt < 0


def test_pan_tilt_centred_target_gives_zero_command():
    assert drive(pan_tilt(), lambda t: seen(CAMERA.cx + 1, CAMERA.cy - 1, t), 0.0, 1.0)[-1].pan == 0.0


def test_pan_tilt_respects_joint_limits_in_velocity_mode():
    controller = pan_tilt(lower=-0.5, upper=0.5)
    target_left = lambda t: seen(0, CAMERA.cy, t)  # noqa: E731 - far left: wants positive pan
    at_limit = drive(controller, target_left, 0.0, 1.0, joints=(0.5, 0.0))
    assert all(c.pan == 0.0 for c in at_limit)
    near = drive(pan_tilt(lower=-0.5, upper=0.5), target_left, 0.0, 1.0, joints=(0.49, 0.0))
    assert all(0.49 + c.pan * PERIOD <= 0.5 + 1e-9 for c in near)  # never beyond the limit in one period
    away = drive(pan_tilt(lower=-0.5, upper=0.5), lambda t: seen(320, CAMERA.cy, t), 0.0, 1.0, joints=(0.5, 0.0))
    assert away[-1].pan < 0  # moving back inside is allowed


def test_pan_tilt_position_mode_integrates_a_target_within_limits():
    controller = pan_tilt(POSITION, lower=-0.3, upper=0.3)
    assert not controller.update(0.0, seen(60, 60, 0.0), CAMERA).valid  # no joint state: nothing to send
    commands = drive(controller, lambda t: seen(0, CAMERA.cy, t), 0.0, 3.0, joints=(0.1, -0.2))
    assert commands[0].pan == pytest.approx(0.1) and commands[0].tilt == pytest.approx(-0.2)
    assert commands[10].pan > 0.1
    assert max(c.pan for c in commands) <= 0.3 + 1e-12
    held = controller.update(10.0, TrackerInput(), CAMERA, joints=(0.25, -0.2))
    assert not held.following and held.valid and held.pan == pytest.approx(0.25)  # stop where the joint is


@pytest.mark.parametrize(
    "lose",
    [
        pytest.param(lambda t: TrackerInput(t, None, LOST), id="lost"),
        pytest.param(lambda t: seen(60, 60, t, score=0.05), id="low-score"),
        pytest.param(lambda t: seen(60, 60, 1.0), id="timeout"),  # nothing new after t = 1.0
    ],
)
def test_pan_tilt_holds_resets_and_reacquires_like_a_fresh_controller(lose):
    controller = pan_tilt()
    drive(controller, lambda t: seen(40, 40, t), 0.0, 1.0)
    assert controller._pan.pid.integral != 0.0
    held = drive(controller, lose, 1.0, 1.0)
    timeout_hold = [c for c in held if c.pan == 0.0 and c.tilt == 0.0 and not c.following]
    assert held[-1].pan == held[-1].tilt == 0.0 and not held[-1].following
    assert len(held) - len(timeout_hold) <= math.ceil(0.5 / PERIOD) + 1  # timeout: holds after 0.5 s + 1 period
    assert controller._pan.pid.integral == 0.0 and controller._tilt.pid.integral == 0.0
    resumed = drive(controller, lambda t: seen(250, 190, t), 2.0, 0.5)
    fresh = pan_tilt()
    fresh.update(2.0 - PERIOD, TrackerInput(), CAMERA)
    expected = drive(fresh, lambda t: seen(250, 190, t), 2.0, 0.5)
    flat = [x for c in resumed for x in (c.pan, c.tilt)]
    assert flat == pytest.approx([x for c in expected for x in (c.pan, c.tilt)])
    assert abs(resumed[0].pan) <= 4.0 * PERIOD + 1e-9  # ramps up under the rate limit: no kick


def test_pan_tilt_timeout_zeroes_within_one_control_period():
    controller = pan_tilt()
    drive(controller, lambda t: seen(40, 40, min(t, 1.0)), 0.0, 1.0)
    assert controller.update(1.49, seen(40, 40, 1.0), CAMERA).pan != 0.0
    assert controller.update(1.49 + PERIOD, seen(40, 40, 1.0), CAMERA).pan == 0.0


# --- drone --------------------------------------------------------------------------------------------------


def drone(**pids) -> DroneController:
    fast = PidConfig(kp=1.0, output_limit=2.0)
    return DroneController(DroneConfig(yaw=pids.get("yaw", fast), vertical=pids.get("vertical", fast),
                                       forward=pids.get("forward", fast), desired_size=0.3))


def drone_command(u: float, v: float, size: float, controller: DroneController | None = None) -> BodyVelocity:
    controller = controller or drone()
    return drive(controller, lambda t: seen(u, v, t, size=size), 0.0, 0.5)[-1]


def test_drone_target_right_of_centre_gives_negative_yaw_rate():
    assert drone_command(CAMERA.cx + 50, CAMERA.cy, 72).yaw_rate < 0
    assert drone_command(CAMERA.cx - 50, CAMERA.cy, 72).yaw_rate > 0


def test_drone_target_above_centre_gives_positive_vertical_speed():
    assert drone_command(CAMERA.cx, CAMERA.cy - 40, 72).vertical > 0
    assert drone_command(CAMERA.cx, CAMERA.cy + 40, 72).vertical < 0


def test_drone_target_smaller_than_desired_gives_positive_forward_speed():
    desired_px = 0.3 * CAMERA.height  # 72 px
    assert drone_command(CAMERA.cx, CAMERA.cy, desired_px / 2).forward > 0
    assert drone_command(CAMERA.cx, CAMERA.cy, desired_px * 2).forward < 0
    centred = drone_command(CAMERA.cx, CAMERA.cy, desired_px)
    assert (centred.forward, centred.vertical, centred.yaw_rate) == pytest.approx((0.0, 0.0, 0.0))


def test_size_error_is_log_ratio():
    assert size_error(0.15, 0.3) == pytest.approx(math.log(2))
    assert size_error(0.0, 0.3) == pytest.approx(math.log(300))  # degenerate box: finite


@pytest.mark.parametrize(
    ("u", "v", "size"),
    [(-1e6, -1e6, 1e-6), (1e6, 1e6, 1e6), (0, 0, 0), (320, 240, 1e9), (CAMERA.cx, CAMERA.cy, -5.0)],
)
def test_drone_limits_hold_under_extreme_input(u, v, size):
    limits = {"yaw": 0.8, "vertical": 0.5, "forward": 1.2}
    controller = drone(**{name: PidConfig(kp=50.0, ki=20.0, kd=5.0, output_limit=limit, rate_limit=100.0)
                          for name, limit in limits.items()})
    commands = drive(controller, lambda t: seen(u, v, t, size=size), 0.0, 2.0)
    for command in commands:
        assert abs(command.yaw_rate) <= 0.8 and abs(command.vertical) <= 0.5 and abs(command.forward) <= 1.2
        assert all(math.isfinite(x) for x in (command.yaw_rate, command.vertical, command.forward))


def test_drone_holds_with_zero_commands_when_lost():
    controller = drone()
    drive(controller, lambda t: seen(20, 20, t, size=10), 0.0, 1.0)
    command = controller.update(1.0, TrackerInput(1.0, None, LOST), CAMERA)
    assert (command.forward, command.vertical, command.yaw_rate, command.following) == (0.0, 0.0, 0.0, False)


def test_px4_conversion_flips_vertical_and_yaw_and_rotates_forward_by_heading():
    command = BodyVelocity(forward=2.0, vertical=1.0, yaw_rate=0.5, following=True, reason="")
    assert body_to_px4_ned(command, 0.0) == pytest.approx((2.0, 0.0, -1.0, -0.5))  # facing north
    assert body_to_px4_ned(command, math.pi / 2) == pytest.approx((0.0, 2.0, -1.0, -0.5))  # facing east


# --- purity -------------------------------------------------------------------------------------------------


def test_pure_controller_modules_import_no_ros():
    for name in PURE_MODULES:
        path = REPO_ROOT / "ocean_ros" / "follow" / f"{name}.py"
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("..ros"):
                modules = ["ocean_ros.ros"]
            bad = [m for m in modules if m.startswith(ROS_PREFIXES) or m.startswith("ocean_ros.ros")]
            assert not bad, f"{path.name} imports {bad}"


def test_importing_the_pure_modules_loads_no_ros_in_a_fresh_interpreter():
    loaded = modules_loaded_by_importing([f"ocean_ros.follow.{name}" for name in PURE_MODULES])
    assert [name for name in loaded if name.startswith(ROS_PREFIXES)] == []
