"""The followers' camera model: intrinsics or field of view, pixel offsets to REP-103 angles and back."""

from __future__ import annotations

import math

import pytest

from ocean_ros.follow.camera import CameraModel


def test_from_fov_gives_the_pinhole_focal_length_and_a_centred_axis():
    camera = CameraModel.from_fov(640, 480, math.radians(90))
    assert camera.fx == pytest.approx(320.0)  # (w/2) / tan(45 deg)
    assert camera.fy == camera.fx
    assert (camera.cx, camera.cy) == (320.0, 240.0)
    assert camera.horizontal_fov == pytest.approx(math.radians(90))


def test_image_centre_has_zero_error():
    camera = CameraModel(500.0, 500.0, 320.0, 240.0, 640, 480)
    assert camera.angles(320.0, 240.0) == (0.0, 0.0)


def test_angles_are_atan_of_offset_over_focal_length_with_rep103_signs():
    camera = CameraModel(400.0, 500.0, 300.0, 200.0, 640, 480)
    azimuth, elevation = camera.angles(300.0 + 100.0, 200.0 - 50.0)  # right of and above the principal point
    assert azimuth == pytest.approx(-math.atan(100.0 / 400.0))  # right: negative (REP-103 y points left)
    assert elevation == pytest.approx(math.atan(50.0 / 500.0))  # above: positive (z points up)
    azimuth, elevation = camera.angles(0.0, 480.0)  # left, below
    assert azimuth > 0 > elevation


def test_principal_point_not_at_the_image_centre_is_honoured():
    camera = CameraModel(500.0, 500.0, 300.0, 250.0, 640, 480)
    assert camera.angles(300.0, 250.0) == (0.0, 0.0)
    assert camera.angles(320.0, 240.0) != (0.0, 0.0)


def test_project_inverts_angles():
    camera = CameraModel(450.0, 440.0, 310.0, 235.0, 640, 480)
    for u, v in ((0.0, 0.0), (639.0, 479.0), (100.5, 300.25)):
        assert camera.project(*camera.angles(u, v)) == pytest.approx((u, v))


@pytest.mark.parametrize(
    "args",
    [(0.0, 500.0, 320.0, 240.0, 640, 480), (500.0, -1.0, 320.0, 240.0, 640, 480),
     (500.0, 500.0, math.nan, 240.0, 640, 480), (500.0, 500.0, 320.0, 240.0, 0, 480)],
)
def test_invalid_intrinsics_are_refused(args):
    with pytest.raises(ValueError):
        CameraModel(*args)


@pytest.mark.parametrize("fov", [0.0, math.pi, -0.5])
def test_invalid_field_of_view_is_refused(fov):
    with pytest.raises(ValueError):
        CameraModel.from_fov(640, 480, fov)
