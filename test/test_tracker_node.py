"""The ocean_tracker node. Its logic runs in-process: a TrackerNode in the test's own ROS session with the real
tracker on a tiny checkpoint, frames handed to its image callback, inits, resets, parameters and outputs over ROS.
Start-up, lifecycle and the shipped model run the node as its own process, driven over loopback DDS."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from tracker_harness import (
    TrackerHarness,
    make_stamp,
    node_argv,
    stamp_ns,
    start_local_tracker,
    start_tracker,
    stop_local_tracker,
)

import ocean_ros

pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")

CROSSING = Path(ocean_ros.__file__).resolve().parent / "data" / "Crossing"  # bundled with the package
_namespaces = itertools.count(1)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """An in-process node sets this process's torch threads (cpu_threads): restore them for the tests after."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def crossing():
    from ocean_ros.eval.sequences import open_sequence

    sequence = open_sequence(CROSSING)
    return [sequence.read(i) for i in range(24)], sequence.ground_truth[:24]


@pytest.fixture
def tracker(ros_session, tiny_checkpoint):
    """Factory: a TrackerNode in-process (tiny checkpoint, preset LITE without the online branch unless given)
    and a ready harness around it; both stopped after the test."""
    started = []

    def make(compressed: bool = False, probe: bool = True, weights=None, **params):
        ns = f"/t{next(_namespaces)}"
        if compressed:
            params.setdefault("image_transport", "compressed")
        params.setdefault("online", False)
        session = ros_session(f"peer{ns[2:]}")
        node = start_local_tracker(session, ns, weights or tiny_checkpoint(), **params)
        started.append((session, node))
        harness = TrackerHarness(session, ns, compressed=compressed, local=node)
        if params.get("autostart", True):
            harness.wait_ready(probe=probe)
        return harness

    yield make
    for session, node in started:
        stop_local_tracker(session, node)


def offline_boxes(checkpoint, frames, box, init_index, track_indices, **overrides):
    """What the core tracker (built as the node builds it) gives from frames[init_index] over track_indices."""
    from ocean_ros.core.build import build_tracker

    tracker = build_tracker(checkpoint, None, "cpu", online=False, **overrides)
    tracker.initialize(frames[init_index], box)
    return {i: tracker.track(frames[i]).box_xywh for i in track_indices}


def detection_box(msg):
    (det,) = msg.detections
    w, h = det.bbox.size_x, det.bbox.size_y
    return (det.bbox.center.position.x - w / 2, det.bbox.center.position.y - h / 2, w, h)


def init_first(node, frames, gt):
    """Initialise on frames[0] with its ground truth; returns the status of frames[1] (tracked)."""
    first = node.publish_and_wait(frames[0])
    assert node.init_service(stamp_ns(first.header.stamp), tuple(gt[0])).accepted
    return node.publish_and_wait(frames[1])


# --- in-process: the node's logic --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["service", "topic", "detection"])
def test_init_lands_on_the_frame_its_stamp_names(tracker, crossing, tiny_checkpoint, method):
    """A box valid only for an older frame: the node initialises there, catches up, and matches offline tracking."""
    frames, gt = crossing
    node = tracker()
    stamps = [node.publish_and_wait(frames[i]).header.stamp for i in range(4)]
    assert all(s.state == 0 for s in node.status.messages), "frames before init must be IDLE"
    old_stamp = stamp_ns(stamps[0])
    box = tuple(float(v) for v in gt[0])

    if method == "service":
        reply = node.init_service(old_stamp, box, target_id="walker", label="person")
        assert reply.accepted, reply.reason
    elif method == "topic":
        from ocean_ros_msgs.msg import TargetInit

        msg = TargetInit(x=box[0], y=box[1], width=box[2], height=box[3], target_id="walker", label="person")
        msg.header.stamp = make_stamp(old_stamp)
        node.init_pub.publish(msg)
    else:
        from vision_msgs.msg import Detection2D, ObjectHypothesisWithPose

        msg = Detection2D(id="walker")
        msg.header.stamp = make_stamp(old_stamp)
        msg.bbox.center.position.x, msg.bbox.center.position.y = box[0] + box[2] / 2, box[1] + box[3] / 2
        msg.bbox.size_x, msg.bbox.size_y = box[2], box[3]
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = "person", 0.9
        msg.results.append(hypothesis)
        node.init_det_pub.publish(msg)

    live = range(4, 9)
    statuses = [node.publish_and_wait(frames[i]) for i in live]
    assert [s.state for s in statuses] != [0] * len(statuses), "the init did not take effect"
    first_tracked = next(k for k, s in enumerate(statuses) if s.state != 0)
    for status in statuses[first_tracked:]:
        assert stamp_ns(status.init_stamp) == old_stamp
        assert (status.target_id, status.label) == ("walker", "person")
    expected = offline_boxes(tiny_checkpoint(), frames, box, 0, range(1, 9))
    for index, status in zip(live, statuses, strict=True):
        if status.state == 0:
            continue
        (array,) = node.detections_for(stamp_ns(status.header.stamp))
        np.testing.assert_allclose(detection_box(array), expected[index], atol=1e-3)
        assert array.detections[0].id == "walker"
        assert array.detections[0].results[0].hypothesis.class_id == "person"


def test_node_and_ocean_eval_give_the_same_boxes(tracker, crossing, tiny_checkpoint):
    """One checkpoint, its stored preset, one sequence: the node's detections are ocean-eval's one-pass boxes."""
    from ocean_ros.eval.runner import TrackerSpec, build_tracker, run_one_pass
    from ocean_ros.eval.sequences import open_sequence

    frames, gt = crossing
    node = tracker()  # first: the node sets the process's torch threads, which the offline run then shares
    offline = run_one_pass(build_tracker(TrackerSpec(tiny_checkpoint(), online=False)),
                           open_sequence(CROSSING).sliced(0, 10)).boxes
    statuses = [init_first(node, frames, gt)] + [node.publish_and_wait(frames[i]) for i in range(2, 10)]
    for index, status in enumerate(statuses, start=1):
        assert status.state == 1
        (array,) = node.detections_for(stamp_ns(status.header.stamp))
        # equal but for the rounding of the message's centre/size form
        np.testing.assert_allclose(detection_box(array), offline[index], rtol=0, atol=1e-9)


def test_reset_returns_to_idle_and_stops_detections(tracker, crossing):
    frames, gt = crossing
    node = tracker()
    assert init_first(node, frames, gt).state == 1
    assert node.reset().success
    after = node.publish_and_wait(frames[2])
    assert after.state == 0 and after.target_id == ""
    assert node.detections_for(stamp_ns(after.header.stamp)) == []


def test_init_refusals_carry_reasons(tracker, crossing):
    frames, gt = crossing
    node = tracker(probe=False)
    before = node.init_service(0, tuple(gt[0]))
    assert not before.accepted and "no frame received yet" in before.reason
    node.wait_ready()
    first = node.publish_and_wait(frames[0])
    stamp = stamp_ns(first.header.stamp)
    cases = {
        (float("nan"), 10.0, 20.0, 20.0): "NaN",
        (10.0, 10.0, 0.0, 20.0): "positive width and height",
        (1000.0, 1000.0, 20.0, 20.0): "outside",
    }
    for box, words in cases.items():
        reply = node.init_service(stamp, box)
        assert not reply.accepted and words in reply.reason, reply.reason
    reply = node.init_service(stamp - 10_000_000_000, tuple(gt[0]))
    assert not reply.accepted and "older than the ring" in reply.reason
    reply = node.init_service(stamp + 10_000_000_000, tuple(gt[0]))
    assert not reply.accepted and "future" in reply.reason
    assert node.local.worker.stats.rejected["bad_init"] == 6
    # the node still works: a good init on the same frame is accepted and tracking proceeds
    assert node.init_service(stamp, tuple(gt[0])).accepted
    assert node.publish_and_wait(frames[1]).state == 1


def test_bad_frames_are_refused_counted_and_tracking_continues(tracker, crossing):
    """Each bad frame is refused and counted under its reason; the next good frame is still tracked."""
    from sensor_msgs.msg import Image

    frames, gt = crossing
    node = tracker(max_image_pixels=500_000)
    last = init_first(node, frames, gt)
    assert last.state == 1
    cases = [
        ("duplicate_stamp", lambda: node.publish(frames[2], stamp=stamp_ns(last.header.stamp))),
        ("out_of_order", lambda: node.publish(frames[2], stamp=stamp_ns(last.header.stamp) - 5)),
        ("bad_image", lambda: node.publish(None, raw=Image(height=240, width=360, encoding="yuv422", step=720,
                                                           data=bytes(720 * 240)))),
        ("bad_image", lambda: node.publish(None, raw=Image(height=240, width=360, encoding="bgr8", step=1080,
                                                           data=bytes(100)))),
        ("too_large", lambda: node.publish(np.zeros((1000, 1000, 3), np.uint8))),
        ("size_changed", lambda: node.publish(frames[2][:200, :300].copy())),
    ]
    for index, (reason, send) in enumerate(cases):
        before = last.frames_rejected
        bad = send()
        last = node.publish_and_wait(frames[2 + index])
        assert last.frames_rejected == before + 1, f"{reason}: not counted once"
        assert last.state == 1, f"tracking stopped after {reason}"
        if reason != "duplicate_stamp":
            assert node.detections_for(bad.stamp_ns) == []
    assert all(len(node.detections_for(s.stamp_ns)) <= 1 for s in node.sent), "a frame produced two outputs"
    diag = node.diagnostics.wait_for(
        1, 5.0, lambda ms: any(kv.key == "rejected_size_changed" for m in ms for s in m.status for kv in s.values)
    )
    values = {kv.key: int(kv.value) for m in diag for s in m.status for kv in s.values if kv.key.startswith("rej")}
    assert values == {"rejected_bad_image": 2, "rejected_duplicate_stamp": 1, "rejected_out_of_order": 1,
                      "rejected_size_changed": 1, "rejected_too_large": 1}, values


def test_corrupt_compressed_frames_are_refused(tracker, crossing):
    from sensor_msgs.msg import CompressedImage

    frames, gt = crossing
    node = tracker(compressed=True)
    init_first(node, frames, gt)
    corrupt = node.publish(None, raw=CompressedImage(format="jpeg", data=b"\xff\xd8 definitely not a jpeg"))
    status = node.publish_and_wait(frames[2])
    assert status.state == 1 and status.frames_rejected >= 1
    assert node.detections_for(corrupt.stamp_ns) == []


def test_stale_frames_are_dropped_not_queued(tracker, crossing):
    """Frames faster than the tracker: old frames are skipped, in order, and the newest is answered promptly."""
    frames, gt = crossing
    node = tracker()
    init_first(node, frames, gt)
    sent = [node.publish(frames[i]) for i in range(2, 24)]  # a burst: conversion only, no waiting
    last = node.status_for(sent[-1].stamp_ns, timeout=30)
    processed = [m for m in node.status.messages if stamp_ns(m.header.stamp) in {s.stamp_ns for s in sent}]
    stamps = [stamp_ns(m.header.stamp) for m in processed]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "processed out of order or twice"
    assert last.frames_dropped > 0 and len(processed) < len(sent), "nothing was dropped under overload"
    for status in processed:  # each processed frame yields exactly one detection array with the image's header
        arrays = node.detections_for(stamp_ns(status.header.stamp))
        assert len(arrays) == (1 if status.state != 0 else 0)
        if arrays:
            assert arrays[0].header == status.header
    # no queue: the newest frame waits for at most the step in flight, not for a backlog
    steps = [m.crop_ms + m.network_ms + m.post_ms for m in processed]
    assert last.total_ms < 2 * max(steps) + 500, (last.total_ms, steps)


def test_runtime_parameters_apply_and_read_only_ones_refuse(tracker):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import DescribeParameters, SetParameters

    node = tracker()
    peer = node.session.node
    setter = peer.create_client(SetParameters, f"{node.ns}/ocean_tracker/set_parameters")
    describe = peer.create_client(DescribeParameters, f"{node.ns}/ocean_tracker/describe_parameters")
    assert setter.wait_for_service(timeout_sec=30)

    def set_double(name, value):
        param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
        return node.call(setter, SetParameters.Request(parameters=[param]), 10).results[0]

    assert set_double("window_influence", 0.2).successful
    assert not set_double("window_influence", 1.5).successful  # outside the declared range
    assert not set_double("context_amount", 0.4).successful  # read-only
    node.publish_and_wait(np.zeros((48, 64, 3), np.uint8))  # the worker applied the change before this frame
    assert node.local.worker.engine.tracker.config.window_influence == 0.2
    described = node.call(describe, DescribeParameters.Request(names=["lr", "checkpoint", "device"]), 10)
    lr, checkpoint, device = described.descriptors
    assert lr.floating_point_range[0].to_value == 1.0 and not lr.read_only and "size learning rate" in lr.description
    assert checkpoint.read_only and device.read_only


def test_debug_image_and_diagnostics(tracker, crossing):
    from sensor_msgs.msg import Image

    frames, gt = crossing
    node = tracker()
    debug = node.session.collector(Image, f"{node.ns}/ocean_tracker/debug_image", 10)
    init_first(node, frames, gt)
    for i in range(2, 4):
        node.publish_and_wait(frames[i])
    images = debug.wait_for(1, 10)
    assert images and (images[-1].height, images[-1].width, images[-1].encoding) == (240, 360, "bgr8")
    diag = node.diagnostics.wait_for(2, 5.0)
    ours = [s for m in diag for s in m.status if node.ns in s.name]
    assert ours, "no diagnostics from the node"
    keys = {kv.key for kv in ours[-1].values}
    assert {"state", "rate_hz", "latency_p50_ms", "latency_p99_ms", "device", "frames_dropped",
            "frames_rejected"} <= keys


def test_online_preset_reports_the_online_branch_in_status(tracker, crossing):
    """An online checkpoint and preset: the node fuses the online branch and says what it did per frame."""
    frames, gt = crossing
    node = tracker(online=True)
    statuses = [init_first(node, frames, gt)] + [node.publish_and_wait(frames[i], timeout=60) for i in range(2, 4)]
    assert all(s.online_enabled for s in statuses)
    assert all(s.online_flag in ("normal", "hard_negative", "uncertain", "not_found") for s in statuses), statuses
    assert all(s.online_ms > 0 for s in statuses)


def test_camera_clock_stepping_back_is_followed_after_a_few_frames_not_waited_out(tracker, crossing):
    """Soak finding: stamps stepping back (NTP, driver restart) made the node refuse every frame until the clock
    caught up again (a 30 s step: 30 s without tracking). A few refusals, then the new timeline, target kept."""
    frames, gt = crossing
    node = tracker()
    last = init_first(node, frames, gt)
    assert last.state == 1
    stepped = stamp_ns(last.header.stamp) - 60 * 1_000_000_000  # one minute back
    for i in range(2):  # a late frame or two is refused, as before
        before = last.frames_rejected
        node.publish(frames[2 + i], stamp=stepped + i * 33_333_333)
        last = node.publish_and_wait(frames[2 + i], stamp=stamp_ns(last.header.stamp) + 1)  # still the old clock
        assert last.frames_rejected == before + 1
    # now only the new clock: two more refusals, then the third older frame in a row starts the new timeline
    before = last.frames_rejected
    for i in range(2):
        node.publish(frames[4 + i], stamp=stepped + (10 + i) * 33_333_333)
    statuses = [node.publish_and_wait(frames[6 + i], stamp=stepped + (12 + i) * 33_333_333) for i in range(3)]
    assert statuses[0].frames_rejected == before + 2
    assert all(s.state != 0 for s in statuses), "target kept, tracking goes on along the new timeline"
    diag = node.diagnostics.wait_for(
        1, 5.0, lambda ms: any(kv.key == "timeline_resets" and kv.value == "1" for m in ms for s in m.status
                               for kv in s.values)
    )
    assert any(kv.key == "timeline_resets" and kv.value == "1" for m in diag for s in m.status for kv in s.values)


def test_a_preset_needing_a_part_the_checkpoint_lacks_fails_as_ocean_eval_does(ros_session, tiny_checkpoint):
    """No online classifier, preset LITE (online on): the node does not configure, with ocean-eval's error."""
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.core.contract import MissingPartError
    from ocean_ros.eval.runner import TrackerSpec, build_tracker
    from ocean_ros.ros.node_config import NodeConfig
    from ocean_ros.ros.tracking_engine import CheckpointTrackers

    offline = tiny_checkpoint(online_dim=0)
    with pytest.raises(MissingPartError) as by_eval:
        build_tracker(TrackerSpec(offline))
    with pytest.raises(MissingPartError) as by_node:
        CheckpointTrackers()(TrackerConfig.from_preset("LITE"), NodeConfig(checkpoint=str(offline), device="cpu"))
    assert str(by_node.value) == str(by_eval.value)
    assert "online classifier" in str(by_eval.value) and str(offline) in str(by_eval.value)
    session = ros_session("missing_part")
    node = start_local_tracker(session, "/missing_part", offline)
    try:
        assert node.worker is None, "configured although the checkpoint lacks the online classifier"
    finally:
        stop_local_tracker(session, node)


# --- processes: start-up, lifecycle, the shipped model ----------------------------------------------------------
@pytest.fixture
def tracker_process(ros_session, node_process, tiny_checkpoint):
    def make(**params):
        ns = f"/p{next(_namespaces)}"
        process = start_tracker(node_process, ns, tiny_checkpoint(), preset="LITE", online=False, **params)
        harness = TrackerHarness(ros_session(f"peer_p{ns[2:]}"), ns)
        harness.process = process
        return harness

    return make


@pytest.mark.slow
def test_lifecycle_transitions_and_silence_when_inactive(tracker_process, crossing):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    frames, gt = crossing
    node = tracker_process(autostart=False)
    peer = node.session.node
    change = peer.create_client(ChangeState, f"{node.ns}/ocean_tracker/change_state")
    get = peer.create_client(GetState, f"{node.ns}/ocean_tracker/get_state")
    assert change.wait_for_service(timeout_sec=90), node.process.tail()

    def transition(tid):
        reply = node.call(change, ChangeState.Request(transition=Transition(id=tid)), 60)
        assert reply.success, tid
        return node.call(get, GetState.Request(), 10).current_state.label

    assert node.call(get, GetState.Request(), 10).current_state.label == "unconfigured"
    assert transition(Transition.TRANSITION_CONFIGURE) == "inactive"
    assert transition(Transition.TRANSITION_ACTIVATE) == "active"
    node.wait_ready()
    assert init_first(node, frames, gt).state == 1

    assert transition(Transition.TRANSITION_DEACTIVATE) == "inactive"
    count_status, count_det = len(node.status.messages), len(node.detections.messages)
    for i in range(2, 6):
        node.publish(frames[i])
    node.status.wait_quiet(1.5, 3.0)
    assert len(node.status.messages) == count_status and len(node.detections.messages) == count_det

    assert transition(Transition.TRANSITION_ACTIVATE) == "active"
    assert node.publish_and_wait(frames[6]).state == 1, "target kept across deactivate/activate"
    assert transition(Transition.TRANSITION_DEACTIVATE) == "inactive"
    assert transition(Transition.TRANSITION_CLEANUP) == "unconfigured"


@pytest.mark.slow
def test_configuration_fails_loudly_on_missing_weights_and_on_unknown_parameters(node_process, ros_session):
    from lifecycle_msgs.srv import GetState

    missing = node_process(node_argv("/noweights", {"device": "cpu", "checkpoint": "/nonexistent/OceanV.pth"}))
    unknown = node_process(node_argv("/unknown", {"checkpoint": "/nonexistent.pth", "penalty_kk": 0.1}))
    peer = ros_session("lifecycle_peer").node
    for ns, process, words in (
        ("/noweights", missing, "checkpoint file not found: /nonexistent/OceanV.pth"),
        ("/unknown", unknown, "unknown parameter(s): penalty_kk"),
    ):
        client = peer.create_client(GetState, f"{ns}/ocean_tracker/get_state")
        assert client.wait_for_service(timeout_sec=90), process.output()
        state = TrackerHarness.call(client, GetState.Request(), 10).current_state.label
        assert state == "unconfigured", state
        assert words in process.output()
        assert process.proc.poll() is None, "the node must stay up, unconfigured"


@pytest.mark.slow
def test_without_a_checkpoint_the_node_tracks_with_the_shipped_model(ros_session, node_process, crossing):
    """No checkpoint, no preset: the shipped Ocean-Lite model with its own preset, and it really tracks."""
    from rcl_interfaces.srv import GetParameters

    from ocean_ros.eval.overlap import box_iou

    frames, gt = crossing
    ns = f"/p{next(_namespaces)}"
    process = node_process(node_argv(ns, {"device": "cpu"}))
    node = TrackerHarness(ros_session(f"peer_p{ns[2:]}"), ns)
    try:
        node.wait_ready()
    except AssertionError:
        pytest.fail(f"node did not start:\n{process.output()[-3000:]}")
    assert "using the shipped model" in process.output() and "ocean_lite.pth" in process.output()
    client = node.session.node.create_client(GetParameters, f"{ns}/ocean_tracker/get_parameters")
    assert client.wait_for_service(timeout_sec=10)
    values = TrackerHarness.call(client, GetParameters.Request(names=["preset", "total_stride"]), 10).values
    assert (values[0].string_value, values[1].integer_value) == ("LITE", 16)
    first = node.publish_and_wait(frames[0])
    assert node.init_service(stamp_ns(first.header.stamp), tuple(gt[0])).accepted
    ious = []
    for i in range(1, len(frames)):
        status = node.publish_and_wait(frames[i])
        msg = node.detections.wait_for(1, 10.0, lambda ms, s=status: any(
            stamp_ns(m.header.stamp) == stamp_ns(s.header.stamp) for m in ms))
        det = next(m for m in msg if stamp_ns(m.header.stamp) == stamp_ns(status.header.stamp))
        ious.append(float(box_iou(np.array([detection_box(det)]), np.array([gt[i]]))[0]))
    assert np.mean(ious) > 0.5, ious
