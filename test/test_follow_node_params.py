"""Follower nodes in-process: declared parameters (descriptions, ranges), validated run-time changes, start disarmed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")


@pytest.fixture
def context() -> Iterator[object]:
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make(kind: str, context):
    if kind == "pan_tilt":
        from ocean_ros.follow.pan_tilt_node import PARAMS, PanTiltFollower

        return PanTiltFollower(context=context), PARAMS
    from ocean_ros.follow.drone_node import PARAMS, DroneFollower

    return DroneFollower(context=context), PARAMS


@pytest.mark.parametrize("kind", ["pan_tilt", "drone"])
def test_every_parameter_has_a_description_and_numbers_have_ranges(kind, context):
    node, params = make(kind, context)
    try:
        for param in params:
            descriptor = node.describe_parameter(param.name)
            assert descriptor.description, param.name
            if isinstance(param.default, float):
                (span,) = descriptor.floating_point_range
                assert span.from_value <= param.default <= span.to_value, param.name
            elif isinstance(param.default, int) and not isinstance(param.default, bool):
                assert len(descriptor.integer_range) == 1, param.name
        assert not node._arm.armed  # starts disarmed
    finally:
        node.destroy_node()


def test_run_time_changes_are_validated_and_applied(context):
    from rclpy.parameter import Parameter

    node, _ = make("pan_tilt", context)
    try:
        ok = node.set_parameters([Parameter("pan.kp", value=3.0), Parameter("tilt.deadband", value=0.02)])
        assert all(r.successful for r in ok)
        assert node.controller.config.pan.pid.kp == 3.0 and node.controller.config.tilt.pid.deadband == 0.02
        refused = [
            Parameter("pan.kp", value=-1.0),  # outside the declared range
            Parameter("pan.min_position", value=4.0),  # above max_position (pi): refused by the controller config
            Parameter("pan.direction", value=0),  # only -1 or +1
            Parameter("mode", value="position"),  # read-only
        ]
        for change in refused:
            (result,) = node.set_parameters([change])
            assert not result.successful, change.name
        assert node.controller.config.pan.pid.kp == 3.0 and node.controller.config.pan.lower < 0
    finally:
        node.destroy_node()


def test_drone_size_measure_is_validated(context):
    from rclpy.parameter import Parameter

    node, _ = make("drone", context)
    try:
        assert node.set_parameters([Parameter("size_measure", value="area")])[0].successful
        assert not node.set_parameters([Parameter("size_measure", value="volume")])[0].successful
        assert node.controller.config.size_measure == "area"
    finally:
        node.destroy_node()


def test_docs_mention_every_parameter():
    from conftest import REPO_ROOT

    from ocean_ros.follow import drone_node, pan_tilt_node, sim_node

    doc = (REPO_ROOT / "docs" / "followers.md").read_text()
    missing = []
    for param in [*pan_tilt_node.PARAMS, *drone_node.PARAMS, *sim_node.PARAMS]:
        prefix, _, suffix = param.name.rpartition(".")
        if f"`{param.name}`" in doc:
            continue
        if prefix in ("pan", "tilt") and f"`<axis>.{suffix}`" in doc:
            continue
        if prefix in ("yaw", "vertical", "forward") and f"`{prefix}.*`" in doc and f"`{suffix}`" in doc:
            continue
        missing.append(param.name)
    assert not missing, f"docs/followers.md does not describe: {missing}"
