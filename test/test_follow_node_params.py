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


class RecordingLogger:
    """Stands in for the node's logger: keeps (level, message)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.records.append(("info", message))

    def warning(self, message: str) -> None:
        self.records.append(("warning", message))


def detections(u: float, v: float, width: float, height: float, score: float | None):
    """A Detection2DArray with one box (centre u, v; no hypothesis when ``score`` is None)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    detection = Detection2D(id="foreign")
    detection.bbox.center.position.x, detection.bbox.center.position.y = u, v
    detection.bbox.size_x, detection.bbox.size_y = width, height
    if score is not None:
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.score = score
        detection.results = [hypothesis]
    return Detection2DArray(detections=[detection])


@pytest.mark.parametrize("kind", ["pan_tilt", "drone"])
@pytest.mark.parametrize(
    ("box", "reason"),
    [
        ((100.0, 100.0, -40.0, 30.0, 0.9), "non-positive size"),
        ((100.0, 100.0, 40.0, 0.0, 0.9), "non-positive size"),
        ((100.0, 100.0, float("nan"), 30.0, 0.9), "non-finite size"),
        ((100.0, 100.0, 40.0, 30.0, float("nan")), "non-finite score"),
        ((100.0, 100.0, 40.0, 30.0, -1.0), "non-positive score"),
        ((float("nan"), 100.0, 40.0, 30.0, 0.9), "non-finite centre"),
    ],
)
def test_nodes_refuse_count_and_log_detections_that_are_not_boxes(kind, box, reason, context, monkeypatch):
    """Armed, fed a foreign detection that is not a box: zero commands, the refusal counted, one warning."""
    node, _ = make(kind, context)
    try:
        logger = RecordingLogger()
        monkeypatch.setattr(node, "get_logger", lambda: logger)
        published: list = []
        monkeypatch.setattr(node._publisher, "publish", published.append)
        node._arm.armed = True
        valid = detections(100.0, 100.0, 40.0, 30.0, 0.9)  # left of and above centre: the follower moves
        for _ in range(10):
            node._inputs._on_detections(valid)
            node._tick()
        moving = published[-1]
        assert (moving.data[0] if kind == "pan_tilt" else moving.angular.z) > 0, "the valid box was not followed"

        published.clear()
        for _ in range(20):
            node._inputs._on_detections(detections(*box))
            node._tick()
        if kind == "pan_tilt":
            assert all(list(msg.data) == [0.0, 0.0] for msg in published)
        else:
            assert all((m.linear.x, m.linear.z, m.angular.z) == (0.0, 0.0, 0.0) for m in published)
        assert len(published) == 20
        assert node._inputs.refusals.counts == {reason: 20}
        warnings = [text for level, text in logger.records if level == "warning"]
        assert len(warnings) == 1 and reason in warnings[0], logger.records  # throttled: once per 2 s
        assert ("info", f"holding: {reason}") in logger.records

        node._inputs._on_detections(valid)  # a real box again: followed
        node._tick()
        assert published[-1] != published[0]
    finally:
        node.destroy_node()


def test_nodes_follow_the_valid_box_of_an_array_and_count_the_refused_one(context):
    from vision_msgs.msg import Detection2DArray

    node, _ = make("pan_tilt", context)
    try:
        mixed = Detection2DArray(detections=[
            detections(300.0, 300.0, -40.0, 30.0, 0.99).detections[0],  # refused, whatever its score
            detections(100.0, 100.0, 40.0, 30.0, 0.8).detections[0],
        ])
        node._inputs._on_detections(mixed)
        observation = node._inputs.snapshot(0.0, 1.0).observation
        assert (observation.u, observation.v, observation.score) == (100.0, 100.0, 0.8)
        assert node._inputs.refusals.counts == {"non-positive size": 1}
    finally:
        node.destroy_node()
