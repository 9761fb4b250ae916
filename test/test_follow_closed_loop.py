"""Closed loop in real processes: ``pan_tilt_sim`` (stand-in tracker) + ``pan_tilt_follower`` on simulated time.

All times below are simulated seconds, read from the simulator's stamps; the follower runs with
``use_sim_time`` and the shipped ``config/follow_pan_tilt.yaml``.
"""

from __future__ import annotations

import math
import time

import pytest
import yaml
from conftest import REPO_ROOT
from ros_helpers import console_script

pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")

CONFIG = REPO_ROOT / "config" / "follow_pan_tilt.yaml"
PARAMS = yaml.safe_load(CONFIG.read_text())["/**/pan_tilt_follower"]["ros__parameters"]
WIDTH, HFOV = 320, math.radians(60)
FX = (WIDTH / 2) / math.tan(HFOV / 2)
PERIOD = 1 / PARAMS["control_rate"]
TIMEOUT = PARAMS["timeout_s"]
DEADBAND = PARAMS["pan"]["deadband"]
RATE_LIMIT = PARAMS["pan"]["rate_limit"]
START_S = 60.0  # wall-clock allowance for processes to start on a loaded machine


def stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Loop:
    """The simulator and the follower as processes, and a probe session that watches and calls services."""

    def __init__(self, ros_session, node_process, follower_args: tuple[str, ...] = (), **sim_params) -> None:
        from geometry_msgs.msg import Vector3Stamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray
        from vision_msgs.msg import Detection2DArray

        params = {"width": WIDTH, "height": 240, "horizontal_fov": HFOV, "rate": 100.0, **sim_params}
        args = [f"{name}:={value}" for name, value in params.items()]
        self.sim = node_process([console_script("pan_tilt_sim"), "--ros-args",
                                 *[x for arg in args for x in ("-p", arg)]])
        self.follower = node_process([console_script("pan_tilt_follower"), "--ros-args", "--params-file",
                                      str(CONFIG), "-p", "use_sim_time:=true", *follower_args])
        self.session = ros_session("follow_probe")
        self.errors = self.session.collector(Vector3Stamped, "/pan_tilt_sim/target_error", 1000)
        self.joints = self.session.collector(JointState, "/joint_states", 1000)
        self.commands = self.session.collector(Float64MultiArray, "/pan_tilt_controller/commands", 1000)
        self.detections = self.session.collector(Detection2DArray, "/ocean_tracker/detections", 1000)
        self.call("/pan_tilt_follower/arm", False, timeout=START_S)  # waits until the follower is up
        self.wait_until(0.3, START_S)

    def logs(self) -> str:
        return f"--- sim:\n{self.sim.output()}\n--- follower:\n{self.follower.output()}"

    def call(self, service: str, value: bool, timeout: float = 30.0) -> None:
        from std_srvs.srv import SetBool

        client = self.session.node.create_client(SetBool, service)
        assert client.wait_for_service(timeout_sec=timeout), f"no service {service}\n{self.logs()}"
        future = client.call_async(SetBool.Request(data=value))
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done() and future.result().success, f"{service} failed\n{self.logs()}"
        self.session.node.destroy_client(client)

    def now(self) -> float:
        """Latest simulated time seen by the probe."""
        messages = self.errors.wait_for(1, START_S)
        assert messages, self.logs()
        return stamp(messages[-1])

    def wait_until(self, t: float, wall_timeout: float = 120.0) -> None:
        """Block until the simulation has reached simulated time ``t``."""
        got = self.errors.wait_for(1, wall_timeout, lambda msgs: stamp(msgs[-1]) >= t)
        assert got and stamp(got[-1]) >= t, f"simulation stalled before t={t}\n{self.logs()}"

    def error_trace(self, start: float, end: float = math.inf) -> list[tuple[float, float]]:
        """(t, azimuth error in rad) of the ground truth between two simulated times."""
        return [(stamp(m), m.vector.x) for m in list(self.errors.messages) if start <= stamp(m) <= end]

    def velocity_trace(self, start: float, end: float = math.inf) -> list[tuple[float, float, float]]:
        """(t, pan, tilt) joint velocities applied by the simulator, rad/s."""
        return [(stamp(m), m.velocity[0], m.velocity[1]) for m in list(self.joints.messages)
                if start <= stamp(m) <= end]


def first_zero_after(trace: list[tuple[float, float, float]], t: float) -> float:
    """Time of the first sample after ``t`` from which the applied velocity stays zero (inf if never)."""
    zero_since = math.inf
    for time_s, pan, tilt in trace:
        if time_s <= t:
            continue
        zero_since = min(zero_since, time_s) if pan == 0.0 and tilt == 0.0 else math.inf
    return zero_since


@pytest.mark.slow
def test_step_response_from_15_degrees_settles_fast_without_overshoot(ros_session, node_process):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from vision_msgs.msg import Detection2D

    loop = Loop(ros_session, node_process, target_path="static", target_azimuth=math.radians(15.0),
                init_tracker=True)
    session = loop.session
    init = session.collector(Detection2D, "/ocean_tracker/init_detection")
    assert len(init.wait_for(1, 30.0)) == 1, loop.logs()  # sent at t = 1 s, for a real tracker fed with 'image'
    expected_u = WIDTH / 2 - FX * math.tan(math.radians(15.0))
    assert init.messages[0].bbox.center.position.x == pytest.approx(expected_u)
    assert init.messages[0].bbox.center.position.y == pytest.approx(120.0)
    # while disarmed the follower publishes zeros although the target is 15 degrees off
    images = session.collector(Image, "/image", qos_profile_sensor_data)
    info = session.collector(CameraInfo, "/camera_info", qos_profile_sensor_data)
    assert len(images.wait_for(2, 30.0)) >= 2 and info.wait_for(1, 10.0), loop.logs()
    session.node.destroy_subscription(images.subscription)  # rendering stops without subscribers
    image = images.messages[-1]
    assert (image.width, image.height, image.encoding) == (WIDTH, 240, "bgr8")
    assert info.messages[-1].k[0] == pytest.approx(FX)
    disarmed_errors = loop.error_trace(0.0)
    assert all(abs(e - math.radians(15.0)) < 1e-9 for _, e in disarmed_errors)
    disarmed_commands = loop.commands.wait_for(3, 10.0)
    assert len(disarmed_commands) >= 3 and all(list(c.data) == [0.0, 0.0] for c in disarmed_commands)

    t_arm = loop.now()
    loop.call("/pan_tilt_follower/arm", True)
    loop.wait_until(t_arm + 4.5)
    trace = loop.error_trace(t_arm)
    e0 = math.radians(15.0)
    band = math.atan(0.02 * WIDTH / FX)  # 2 % of the image width, as an angle
    outside = [t for t, e in trace if abs(e) >= band]
    settling = (outside[-1] if outside else t_arm) - t_arm
    overshoot = max(0.0, max(-e for _, e in trace)) / e0
    steady = max(abs(e) for t, e in trace if t >= t_arm + 3.5)
    print(f"\nstep 15 deg: settling {settling:.2f} s (2 % band), overshoot {100 * overshoot:.1f} %, "
          f"steady-state error {math.degrees(steady):.3f} deg = {FX * math.tan(steady):.2f} px "
          f"(deadband {math.degrees(DEADBAND):.2f} deg)")
    assert settling < 3.0, loop.logs()
    assert overshoot < 0.10
    assert steady <= DEADBAND + 1e-6


@pytest.mark.slow
def test_dropout_lost_and_disarm_zero_the_commands_and_reacquisition_is_smooth(ros_session, node_process):
    loop = Loop(ros_session, node_process, target_path="sine", target_azimuth=0.0,
                path_amplitude=math.radians(10.0), path_period=6.0)
    t_arm = loop.now()
    loop.call("/pan_tilt_follower/arm", True)
    loop.wait_until(t_arm + 2.0)
    assert any(abs(pan) > 0.05 for _, pan, _ in loop.velocity_trace(t_arm)), "not following the moving target"
    slack = 0.1  # transport and scheduling on a loaded machine, simulated seconds

    # 1. detections stop (silence): the watchdog zeroes the commands
    loop.call("/pan_tilt_sim/detections_enabled", False)
    t_off = loop.now()
    loop.wait_until(t_off + TIMEOUT + 0.7)
    t_last = max(stamp(m) for m in loop.detections.messages)
    t_zero = first_zero_after(loop.velocity_trace(t_last, t_off + TIMEOUT + 0.7), t_last)
    print(f"\nwatchdog: zero {t_zero - t_last:.3f} s after the last detection "
          f"(timeout {TIMEOUT} s + period {PERIOD:.3f} s)")
    assert t_zero - t_last <= TIMEOUT + PERIOD + slack, loop.logs()

    # 2. detections return: the follower ramps up from zero under the rate limit and re-centres
    t_on = loop.now()  # before the call: the head is still holding
    loop.call("/pan_tilt_sim/detections_enabled", True)
    loop.wait_until(t_on + 2.0)
    resumed = loop.velocity_trace(t_on)
    jumps = [abs(b[1] - a[1]) for a, b in zip(resumed, resumed[1:], strict=False)]
    print(f"re-acquisition: largest velocity step {max(jumps):.3f} rad/s "
          f"(rate limit {RATE_LIMIT} rad/s^2 x period = {RATE_LIMIT * PERIOD:.3f})")
    assert resumed[0][1] == 0.0
    assert max(jumps) <= 2 * RATE_LIMIT * PERIOD + 1e-6
    # re-centred: the target moves at up to 10.5 deg/s, so the lag alone is a few degrees; 5 deg leaves room for
    # late transport on a loaded 2-core machine (4.004 deg was seen there) while still far below the 10+ deg
    # offset the head accumulated while holding
    assert max(abs(e) for _, e in loop.error_trace(t_on + 1.5)) < math.radians(5.0)

    # 3. the tracker reports LOST (empty arrays): zero within a control period of the first LOST message
    t_hide = loop.now()
    loop.call("/pan_tilt_sim/target_visible", False)
    loop.wait_until(t_hide + 0.6)
    t_lost = min(stamp(m) for m in loop.detections.messages if stamp(m) >= t_hide and not m.detections)
    t_zero = first_zero_after(loop.velocity_trace(t_hide, t_hide + 0.6), t_hide)
    print(f"lost: zero {t_zero - t_lost:.3f} s after the first empty detection array")
    assert t_zero - t_lost <= PERIOD + slack

    # 4. disarmed while following: zero at once and whatever the input
    loop.call("/pan_tilt_sim/target_visible", True)
    loop.wait_until(loop.now() + 1.0)
    t_request = loop.now()
    loop.call("/pan_tilt_follower/arm", False)
    t_disarm = loop.now()  # the response has arrived: disarmed by now
    loop.wait_until(t_disarm + 1.0)
    assert any(pan != 0.0 for _, pan, _ in loop.velocity_trace(t_request - 0.2, t_request))
    t_zero = first_zero_after(loop.velocity_trace(t_request - 0.2, t_disarm + 1.0), t_request - 0.2)
    print(f"disarm: zero {t_zero - t_request:.3f} s after the request (response seen {t_disarm - t_request:.3f} s)")
    assert t_zero <= t_disarm + slack
    # the head stays still while the target moves on: its position is frozen and the error changes by the
    # target's motion alone (a 10 deg, 6 s sine moves >= 1 deg in any 0.9 s; the error's value at one instant
    # says nothing, since the target may be crossing the head's line of sight just then)
    still = [m.position[0] for m in list(loop.joints.messages) if t_disarm + slack <= stamp(m) <= t_disarm + 1.0]
    assert len(still) > 10 and max(still) - min(still) == 0.0, still
    drift = [e for _, e in loop.error_trace(t_disarm + slack, t_disarm + 1.0)]
    assert max(drift) - min(drift) > math.radians(0.5), drift


@pytest.mark.slow
def test_latency_noise_and_dropouts_stay_stable_for_30_s(ros_session, node_process):
    loop = Loop(ros_session, node_process, rate=50.0, real_time_factor=3.0, target_path="sine",
                target_azimuth=math.radians(15.0), path_amplitude=math.radians(10.0), path_period=8.0,
                latency_s=0.1, noise_px=2.0, dropout_probability=0.05, seed=7)
    t_arm = loop.now()
    wall = time.monotonic()
    loop.call("/pan_tilt_follower/arm", True)
    loop.wait_until(t_arm + 30.0, wall_timeout=240.0)
    wall = time.monotonic() - wall

    def window(a: float, b: float) -> tuple[float, float]:
        errors = [e for _, e in loop.error_trace(t_arm + a, t_arm + b)]
        return math.sqrt(sum(e * e for e in errors) / len(errors)), max(abs(e) for e in errors)

    early_rms, early_peak = window(6.0, 14.0)  # one period of the path each
    late_rms, late_peak = window(22.0, 30.0)
    print(f"\n30 s with 100 ms latency, 2 px noise, 5 % dropouts ({wall:.1f} s wall): error RMS "
          f"{math.degrees(early_rms):.2f} -> {math.degrees(late_rms):.2f} deg, peak "
          f"{math.degrees(early_peak):.2f} -> {math.degrees(late_peak):.2f} deg")
    assert late_rms <= 1.25 * early_rms + math.radians(0.2), loop.logs()
    assert late_peak <= 1.25 * early_peak + math.radians(0.3)
    assert late_peak < math.radians(8.0)


@pytest.mark.slow
def test_position_mode_centres_the_target_through_a_position_controller(ros_session, node_process):
    loop = Loop(ros_session, node_process, follower_args=("-p", "mode:=position"), command_mode="position",
                target_path="static", target_azimuth=math.radians(-12.0), target_elevation=math.radians(6.0))
    assert loop.commands.messages == []  # position mode sends nothing while disarmed
    t_arm = loop.now()
    loop.call("/pan_tilt_follower/arm", True)
    loop.wait_until(t_arm + 3.0)
    final = loop.errors.messages[-1].vector
    band = math.atan(0.02 * WIDTH / FX)
    print(f"\nposition mode: error after 3 s {math.degrees(final.x):.2f}, {math.degrees(final.y):.2f} deg")
    assert abs(final.x) < band and abs(final.y) < band, loop.logs()
    pan, tilt = loop.commands.messages[-1].data
    assert pan < -0.15 and tilt > 0.05  # absolute joint targets (rad): right is negative, up positive
