"""The tracker node's ROS-free parts: the stamp gate, the worker hand-over, counters and diagnostics, catch-up
spacing, and the tracking worker itself driven with the real tracker on a tiny checkpoint (no ROS at all)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import modules_loaded_by_importing

import ocean_ros
from ocean_ros.core.types import TrackState
from ocean_ros.ros.commands import ConfigCommand, InitCommand, PendingFrame, ResetCommand, WorkQueue
from ocean_ros.ros.frame_ring import StampedFrame, spaced
from ocean_ros.ros.messages import InitRequest
from ocean_ros.ros.node_config import NodeConfig
from ocean_ros.ros.node_stats import NodeStats
from ocean_ros.ros.stamp_gate import TIMELINE_RESET_FRAMES, StampGate

ROS_FREE = ["ocean_ros.ros.stamp_gate", "ocean_ros.ros.commands", "ocean_ros.ros.node_stats",
            "ocean_ros.ros.tracking_worker"]
ROS_PREFIXES = ("rclpy", "rosidl", "sensor_msgs", "std_msgs", "vision_msgs", "ocean_ros_msgs", "diagnostic_msgs")
CROSSING = Path(ocean_ros.__file__).resolve().parent / "data" / "Crossing"


def frame(stamp_ns: int, shape: tuple[int, int] = (48, 64)) -> StampedFrame:
    return StampedFrame(stamp_ns, np.zeros((*shape, 3), np.uint8), header(stamp_ns))


def header(stamp_ns: int) -> SimpleNamespace:
    """What the worker reads of a message header (the node passes the image's)."""
    return SimpleNamespace(stamp=stamp_ns)


def test_the_node_logic_modules_load_no_ros_and_the_node_loads_no_tool_helpers():
    loaded = modules_loaded_by_importing(ROS_FREE)
    assert [m for m in loaded if m.startswith(ROS_PREFIXES)] == []
    pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable")
    node = modules_loaded_by_importing(["ocean_ros.ros.tracker_node"])
    assert [m for m in node if m.startswith("ocean_ros.rostools")] == []


# --- stamp gate ------------------------------------------------------------------------------------------------
def test_stamp_gate_takes_newer_frames_and_refuses_repeats_and_late_ones():
    gate = StampGate()
    assert gate.check(100).accepted and gate.check(200).accepted
    duplicate, late = gate.check(200), gate.check(150)
    assert (duplicate.accepted, duplicate.reason) == (False, "duplicate_stamp")
    assert (late.accepted, late.reason) == (False, "out_of_order") and "older than the last frame's 200" in late.detail
    assert gate.check(300).accepted and gate.last_ns == 300
    assert gate.check(250).reason == "out_of_order"  # one late frame after a good one counts from one again


def test_stamp_gate_follows_a_clock_that_stepped_back_after_a_few_frames():
    gate = StampGate()
    gate.check(10_000)
    verdicts = [gate.check(1_000 + i) for i in range(TIMELINE_RESET_FRAMES)]
    assert [v.accepted for v in verdicts] == [False] * (TIMELINE_RESET_FRAMES - 1) + [True]
    assert verdicts[-1].new_timeline and verdicts[-1].stepped_back_ns == 10_000 - 1_002
    assert gate.check(1_003).accepted and not gate.check(1_004).new_timeline
    gate.reset()
    assert gate.check(5).accepted and gate.last_ns == 5
    with pytest.raises(ValueError):
        StampGate(reset_after=0)


# --- hand-over to the worker -----------------------------------------------------------------------------------
def test_work_queue_keeps_commands_in_order_and_only_the_newest_frame():
    queue = WorkQueue()
    request = InitRequest(0, (1.0, 2.0, 3.0, 4.0), "t", "l")
    first, second = PendingFrame(frame(1), 0.0, 0.0), PendingFrame(frame(2), 0.0, 0.0)
    assert not queue.put_frame(first) and queue.put_frame(second)  # the second drops the first
    queue.put(ConfigCommand({"lr": 0.5}))
    queue.put(InitCommand(request, frame(1)))
    queue.put(ResetCommand())
    work = queue.take()
    assert [type(c) for c in work.commands] == [ConfigCommand, InitCommand, ResetCommand]
    assert work.frame is second and work.generation == 2  # the config change starts no generation
    assert queue.is_current(2)
    queue.put(ResetCommand())
    assert not queue.is_current(2), "a reset after the frame was taken makes its output stale"


def test_work_queue_blocks_until_work_and_stop_wakes_the_worker_for_good():
    queue = WorkQueue()
    taken = []
    worker = threading.Thread(target=lambda: taken.append(queue.take()))
    worker.start()
    time.sleep(0.05)
    assert worker.is_alive() and not taken
    queue.put_frame(PendingFrame(frame(1), 0.0, 0.0))
    worker.join(2)
    assert taken[0].frame.frame.stamp_ns == 1
    queue.put(ResetCommand())
    queue.stop()
    assert queue.stopped and queue.take() is None
    queue.restart()
    queue.discard_frame()
    assert not queue.stopped


def test_spaced_catch_up_ends_with_the_newest_frame():
    frames = [frame(i) for i in range(10)]
    assert [f.stamp_ns for f in spaced(frames, 3)] == [3, 6, 9]
    assert spaced(frames, 20) == frames and spaced(frames, 0) == [] and spaced([], 3) == []


# --- counters and diagnostics ----------------------------------------------------------------------------------
def test_refusals_are_counted_always_and_logged_at_most_once_per_throttle():
    stats = NodeStats()
    logged = [stats.refuse("bad_image", t, throttle=2.0) for t in (0.0, 1.0, 2.5)]
    assert logged == [True, False, True] and stats.rejected["bad_image"] == 3
    assert stats.refuse("too_large", 1.0, 2.0) and stats.rejected_total == 4


def test_diagnosis_levels_rate_latency_and_values():
    stats = NodeStats()
    ok = stats.diagnose(TrackState.IDLE, 0.0, {"device": "cpu"})
    assert (ok.level, ok.message, ok.values["rate_hz"], ok.values["latency_p99_ms"]) == ("OK", "IDLE", "0.00", "0.00")
    for i in range(11):
        stats.processed(10.0 + i, now=100.0 + 0.1 * i)
    stats.counts["dropped"] += 2
    stats.refuse("out_of_order", 0.0, 2.0)
    lost = stats.diagnose(TrackState.LOST, 101.0, {"device": "cpu"}, graph_failure="no capture")
    assert (lost.level, lost.message) == ("WARN", "target lost, searching")
    assert lost.values["rate_hz"] == "10.00" and lost.values["latency_p50_ms"] == "15.00"
    assert (lost.values["frames_processed"], lost.values["frames_dropped"], lost.values["frames_rejected"]) == (
        "11", "2", "1")
    assert lost.values["device"] == "cpu" and lost.values["graph_capture_failed"] == "no capture"
    assert lost.values["rejected_out_of_order"] == "1"
    stats.counts["errors"] += 1
    assert stats.diagnose(TrackState.TRACKING, 101.0, {}).message == "TRACKING; 1 failed steps"


# --- the worker with the real tracker ----------------------------------------------------------------------------
@pytest.fixture
def worker(tiny_checkpoint):
    """A started TrackingWorker on the tiny checkpoint (LITE, online off), its outputs collected in a list."""
    from ocean_ros.core.build import build_tracker
    from ocean_ros.ros.tracking_engine import TrackingEngine
    from ocean_ros.ros.tracking_worker import TrackingWorker

    outputs, done = [], threading.Condition()

    def publish(processed):
        with done:
            outputs.append(processed)
            done.notify_all()

    def wait_for(count, timeout=30.0):
        with done:
            assert done.wait_for(lambda: len(outputs) >= count, timeout), f"{len(outputs)} of {count} outputs"
        return outputs[count - 1]

    tracker = build_tracker(tiny_checkpoint(), device="cpu", online=False)
    worker = TrackingWorker(TrackingEngine(tracker, "tiny"), NodeConfig(init_catch_up=2), publish,
                            logging.getLogger("test_node_logic"))
    worker.outputs, worker.wait_for = outputs, wait_for
    worker.start()
    yield worker
    worker.stop()


def test_worker_initialises_on_the_named_frame_catches_up_and_tracks(worker):
    from ocean_ros.core.build import build_from_config
    from ocean_ros.eval.sequences import open_sequence

    sequence = open_sequence(CROSSING)
    images = [sequence.read(i) for i in range(6)]
    box = tuple(float(v) for v in sequence.ground_truth[0])
    for i in range(4):
        worker.offer(1000 + i, images[i], header(1000 + i), time.perf_counter())
        assert worker.wait_for(i + 1).result is None  # no target yet: processed, nothing to report
    assert worker.request_init(InitRequest(1000, box, "", "thing"), "test") == ""
    worker.offer(1004, images[4], header(1004), time.perf_counter())
    tracked = worker.wait_for(5)
    assert tracked.result.state == TrackState.TRACKING and worker.engine.target_id == "target"  # the default id
    offline = build_from_config(worker.engine.tracker.model, worker.engine.tracker.config, "cpu")
    offline.initialize(images[0], box)
    expected = [offline.track(images[i]).box_xywh for i in (2, 3, 4)]  # init_catch_up=2: frames 2 and 3, then 4
    np.testing.assert_allclose(tracked.result.box_xywh, expected[-1], atol=1e-6)
    assert worker.stats.counts["processed"] == 5


def test_worker_refuses_counts_and_survives(worker):
    assert worker.request_init(InitRequest(0, (1.0, 1.0, 5.0, 5.0), "", ""), "test") == "no frame received yet"
    worker.offer(10, np.zeros((48, 64, 3), np.uint8), header(10), time.perf_counter())
    assert worker.wait_for(1).result is None
    worker.offer(10, np.zeros((48, 64, 3), np.uint8), header(10), time.perf_counter())
    assert "outside" in worker.request_init(InitRequest(10, (500.0, 500.0, 5.0, 5.0), "", ""), "test")
    assert worker.too_large(5000, 5000) and not worker.too_large(64, 48)
    assert dict(worker.stats.rejected) == {"bad_init": 2, "duplicate_stamp": 1, "too_large": 1}
    assert worker.request_init(InitRequest(10, (10.0, 10.0, 20.0, 20.0), "a", ""), "test") == ""
    worker.offer(20, np.zeros((48, 64, 3), np.uint8), header(20), time.perf_counter())
    assert worker.wait_for(2).result is not None
    worker.offer(30, np.zeros((96, 64, 3), np.uint8), header(30), time.perf_counter())  # another size: refused
    worker.offer(40, np.zeros((48, 64, 3), np.uint8), header(40), time.perf_counter())
    assert worker.wait_for(3).result.state != TrackState.IDLE
    assert worker.stats.rejected["size_changed"] == 1 and worker.stats.counts["errors"] == 0


def test_stats_count_losses_probes_and_reacquisitions_and_diagnose_them():
    from ocean_ros.core.types import TrackResult

    stats = NodeStats()
    T, L = TrackState.TRACKING, TrackState.LOST

    def frame(state: TrackState, searching: bool = False, reacquired: bool = False) -> TrackResult:
        return TrackResult((0.0, 0.0, 1.0, 1.0), 0.5, state, searching=searching, reacquired=reacquired)

    sequence = [(T, frame(T)), (T, frame(L, True)), (L, frame(L, True)), (L, frame(T, True, True)),
                (T, frame(L, True)), (L, frame(T))]  # the second loss ends through the local search
    for before, result in sequence:
        stats.tracked(result, before)
    assert (stats.counts["losses"], stats.counts["redetect_probes"], stats.counts["reacquisitions"]) == (2, 4, 1)
    values = stats.diagnose(TrackState.LOST, time.monotonic(), {}).values
    assert (values["losses"], values["redetect_probes"], values["reacquisitions"]) == ("2", "4", "1")
