"""The simulator's pure parts: target paths, joints, the stand-in tracker, and the rendered view."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ocean_ros.follow.camera import CameraModel
from ocean_ros.follow.sim_world import Joint, StandInTracker, TargetPath, World, find_background

CAMERA = CameraModel.from_fov(320, 240, math.radians(60))


def test_target_paths():
    assert TargetPath("static", 0.2, -0.1).at(123.0) == (0.2, -0.1)
    sine = TargetPath("sine", 0.2, 0.0, amplitude=0.1, period=4.0)
    assert sine.at(1.0) == pytest.approx((0.3, 0.0))
    figure_eight = TargetPath("lissajous", 0.0, 0.0, amplitude=0.2, period=4.0)
    assert figure_eight.at(0.5) == pytest.approx((0.2 * math.sin(math.pi / 4), 0.1))
    with pytest.raises(ValueError):
        TargetPath("teleport")


def test_joint_integrates_velocity_within_speed_and_position_limits():
    joint = Joint(0.0, -0.5, 0.5, max_velocity=1.0)
    joint.step_velocity(0.5, 0.1)
    assert joint.position == pytest.approx(0.05) and joint.velocity == pytest.approx(0.5)
    joint.step_velocity(10.0, 0.1)
    assert joint.position == pytest.approx(0.15)  # speed limit 1 rad/s
    for _ in range(20):
        joint.step_velocity(1.0, 0.1)
    assert joint.position == 0.5 and joint.velocity == 0.0  # stopped at the limit
    joint.step_position(0.0, 0.1)
    assert joint.position == pytest.approx(0.4)


def test_stand_in_tracker_delays_by_the_latency():
    tracker = StandInTracker(CAMERA, latency_s=0.1)
    tracker.capture(1.0, (0.0, 0.0), 20.0)
    assert tracker.release(1.05) == []
    (captured, observation), = tracker.release(1.1)
    assert captured == 1.0
    assert (observation.u, observation.v) == pytest.approx((CAMERA.cx, CAMERA.cy))


def test_stand_in_tracker_reports_lost_out_of_view_and_when_hidden():
    tracker = StandInTracker(CAMERA)
    tracker.capture(0.0, (math.radians(40), 0.0), 20.0)  # outside a 60 deg field of view
    tracker.capture(0.1, (0.0, 0.0), 20.0, visible=False)
    tracker.capture(0.2, (math.pi, 0.0), 20.0)  # behind the camera
    assert [observation for _, observation in tracker.release(1.0)] == [None, None, None]


def test_stand_in_tracker_noise_and_dropouts_have_the_configured_statistics():
    tracker = StandInTracker(CAMERA, noise_px=2.0, dropout_probability=0.2, seed=3)
    for i in range(2000):
        tracker.capture(i * 0.01, (0.0, 0.0), 20.0)
    released = tracker.release(100.0)
    assert 0.75 * 2000 < len(released) < 0.85 * 2000
    offsets = np.array([observation.u - CAMERA.cx for _, observation in released])
    assert abs(offsets.mean()) < 0.2 and offsets.std() == pytest.approx(2.0, rel=0.1)


def test_rendered_target_is_where_the_stand_in_tracker_sees_it():
    world = World(CAMERA, (-math.pi, math.pi), (-math.pi / 2, math.pi / 2))
    relative = (math.radians(10), math.radians(-5))
    u, v = CAMERA.project(*relative)
    view = world.render(0.3, 0.1, (u, v), 20.0)
    assert view.shape == (240, 320, 3) and view.dtype == np.uint8
    red = (view[:, :, 2] > 200) & (view[:, :, 1] < 60) & (view[:, :, 0] < 60)
    ys, xs = np.nonzero(red)
    assert xs.mean() == pytest.approx(u, abs=1.5) and ys.mean() == pytest.approx(v, abs=1.5)


def test_view_moves_over_the_background_with_the_joints():
    world = World(CAMERA, (-1.0, 1.0), (-0.5, 0.5))
    shift = 20 / CAMERA.fx  # 20 pixels of pan
    base = world.render(0.0, 0.0, None, 10.0).astype(np.float32)
    panned_left = world.render(shift, 0.0, None, 10.0).astype(np.float32)
    # turning left moves the scene to the right in the image
    assert np.abs(panned_left[:, 20:] - base[:, :-20]).mean() < 1.0
    assert np.abs(panned_left - base).mean() > 5.0


def test_background_from_a_real_sequence_frame(sequences_dir):
    path = find_background(str(sequences_dir.parent))
    assert path is not None and path.is_file()
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    world = World(CAMERA, (-math.pi, math.pi), (-math.pi / 2, math.pi / 2), frame)
    view = world.render(0.0, 0.0, None, 10.0)
    assert view.shape == (240, 320, 3) and view.std() > 10  # real texture, not a flat border
