"""The online branch inside the step with device numbers: device window and crop, masked memory writes, flag in the
readout, fixed-memory optimiser, graph fallback. On CPU the step runs eagerly, so its numbers are checked here in CI
against the same step with host numbers (classic mode), whose online numbers the golden runs pin
(test_online_tracker.py).
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch
from lockstep import MemoNet
from sync_probe import host_ops
from test_static_step import STATIC_TOLERANCE_PX, VALIDATION, cuda, first_frames

from ocean_ros.core import online as ol
from ocean_ros.core.checkpoint import load_model
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.tracker import OceanTracker
from ocean_ros.models import DEFAULT_MODEL


@pytest.fixture(scope="module")
def lite_net():
    net, _ = load_model(DEFAULT_MODEL, device="cpu", dtype=torch.float32)
    return net


def lite_online(**changes) -> TrackerConfig:
    return TrackerConfig.from_preset("LITE").replace(**{"online": True, "online.update_interval": 3, **changes})


def run_side_by_side(net, config, frames, box, changes_at: dict[int, dict] | None = None) -> dict[str, int]:
    """Classic and static trackers frame by frame; asserts they agree and returns the flag counts."""
    memo = MemoNet(net)
    classic = OceanTracker(memo, config, "cpu", step_mode="classic")
    static = OceanTracker(memo, config, "cpu", step_mode="static")
    for tracker in (classic, static):
        tracker.initialize(frames[0], box)
    flags: dict[str, int] = {}
    for k, frame in enumerate(frames[1:], start=1):
        for tracker in (classic, static):
            if changes_at and k in changes_at:
                tracker.update_config(**changes_at[k])
        a, b = classic.track(frame), static.track(frame)
        np.testing.assert_allclose(b.box_xywh, a.box_xywh, atol=STATIC_TOLERANCE_PX, rtol=0)
        assert (b.peak, b.online_flag, b.online_updated, b.state) == (a.peak, a.online_flag, a.online_updated, a.state)
        flags[a.online_flag] = flags.get(a.online_flag, 0) + 1
    online, branch = static.online_branch, classic.online_branch
    assert online.memory.stored == branch.memory.stored and online.frame_num == branch.frame_num
    assert online.target_scale == branch.target_scale
    np.testing.assert_allclose(online.target.read(), branch.target.read(), atol=STATIC_TOLERANCE_PX)
    n = branch.memory.stored
    torch.testing.assert_close(online.memory.weights[:n], branch.memory.weights[:n], atol=1e-7, rtol=0)
    torch.testing.assert_close(online.memory.boxes[:n], branch.memory.boxes[:n], atol=1e-4, rtol=0)
    torch.testing.assert_close(online.filter, branch.filter, atol=1e-6, rtol=1e-5)
    return flags


def test_device_window_and_crop_equal_the_host_ones():
    frame = torch.randint(0, 256, (97, 131, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    rng = random.Random(5)
    for _ in range(200):  # centres inside and far outside the frame, sides from 2 to 12 output sizes
        pos = (rng.uniform(-150, 250), rng.uniform(-150, 280))
        side = rng.uniform(20, 2700)
        window = ol.sample_window(pos, side, 224)
        device = ol.sample_window(torch.tensor(pos, dtype=torch.float64).unbind(), side, 224)
        assert (device.step, device.size, device.scale) == (window.step, window.size, window.scale)
        assert [int(device.top), int(device.left)] == [window.top, window.left]
        assert [int(v) for v in device.offset] == list(window.offset)
        assert [float(v) for v in device.pos] == list(window.pos)
        host = ol.crop_sample(frame, window, 224)
        assert torch.equal(ol.crop_sample(frame, device, 224), host)


@pytest.mark.slow
@pytest.mark.parametrize("name", VALIDATION)
def test_static_online_step_reproduces_the_classic_online_tracker(name, lite_net, sequences_dir):
    frames, box = first_frames(sequences_dir, name, 80)
    flags = run_side_by_side(lite_net, lite_online(), frames, box)
    assert flags.get("normal", 0) > 0


def test_not_found_uncertain_and_hard_negative_frames_and_a_full_memory(lite_net, sequences_dir):
    """Every flag's path (frozen target, no write, hard-negative rate), the argmin slot of a full memory, a
    learning rate of 1 (keep only the new sample) and tunables changed while tracking."""
    frames, box = first_frames(sequences_dir, "bag", 40)
    config = lite_online(**{"online.memory_size": 33, "online.hard_negative_threshold": 0.0})  # 30 initial samples
    changes = {
        12: {"online.not_found_threshold": 100.0},  # every frame not_found
        16: {"online.not_found_threshold": 0.0, "online.distractor_threshold": 0.0, "online.displacement_scale": 0.0,
             "online.neighborhood_scale": 0.0},  # the second peak is next to the first: a distractor, uncertain
        20: {"online.distractor_threshold": 100.0, "online.neighborhood_scale": 2.2, "online.learning_rate": 1.0,
             "online.hard_negative_learning_rate": 1.0},
        24: {"online.learning_rate": 0.0075, "online.hard_negative_learning_rate": 0.02},
    }
    flags = run_side_by_side(lite_net, config, frames, box, changes)
    assert flags.get("not_found", 0) >= 4 and flags.get("uncertain", 0) > 0 and flags.get("hard_negative", 0) > 0


def test_online_buffers_are_reused_and_the_flag_is_part_of_the_one_read(lite_net, sequences_dir):
    frames, box = first_frames(sequences_dir, "Crossing", 10)
    tracker = OceanTracker(lite_net, lite_online(), "cpu", step_mode="static")
    tracker.initialize(frames[0], box)
    online = tracker.online_branch
    memory = online.memory
    buffers = [online.target.tensor, online.filter, memory.features, memory.boxes, memory.weights, memory.count_t]
    before = [t.data_ptr() for t in buffers]
    for frame in frames[1:5]:
        result = tracker.track(frame)
        (step,) = tracker.steps
        assert ol.FLAGS[int(step.result.tensor[-1])] == result.online_flag
    tracker.initialize(frames[5], box)  # a new target: the same buffers, reloaded
    assert tracker.online_branch is online and online.frame_num == 1 and online.memory.stored == 30
    for frame in frames[6:]:
        tracker.track(frame)
    assert [t.data_ptr() for t in buffers] == before


def test_fixed_memory_optimiser_matches_the_occupied_slots(lite_net, sequences_dir):
    """What the captured optimiser computes (every slot, unused ones at zero weight) equals the classic sum over
    the occupied slots up to float32 summation order."""
    frames, box = first_frames(sequences_dir, "ball1", 12)
    tracker = OceanTracker(lite_net, lite_online(**{"online.update_interval": 1000}), "cpu", step_mode="static")
    tracker.initialize(frames[0], box)
    for frame in frames[1:]:
        tracker.track(frame)
    online = tracker.online_branch
    assert 30 < online.memory.stored < online.memory.capacity
    start = online.filter.clone()
    results = []
    with torch.inference_mode():  # the buffers are inference tensors (made inside initialize)
        for fixed in (False, True):
            online.filter.copy_(start)
            online.fixed_memory = fixed
            online.optimise(3)
            results.append(online.filter.clone())
    assert not torch.equal(results[0], start)
    torch.testing.assert_close(results[1], results[0], atol=1e-6, rtol=1e-4)


def test_graph_mode_on_cpu_falls_back_with_the_online_branch(lite_net, sequences_dir, caplog):
    frames, box = first_frames(sequences_dir, "bag", 8)
    graph = OceanTracker(lite_net, lite_online(), "cpu", step_mode="graph")
    static = OceanTracker(lite_net, lite_online(), "cpu", step_mode="static")
    for tracker in (graph, static):
        tracker.initialize(frames[0], box)
    assert graph.online_branch.fixed_memory and graph.online_branch.use_graph
    with caplog.at_level(logging.WARNING, logger="ocean_ros.core.tracker"):
        for frame in frames[1:]:
            a, b = graph.track(frame), static.track(frame)
            assert (a.box_xywh, a.online_flag, a.online_updated) == (b.box_xywh, b.online_flag, b.online_updated)
    assert sum("CUDA graph capture failed" in r.getMessage() for r in caplog.records) == 1
    online = graph.online_branch
    assert not online.use_graph and not online.fixed_memory and online.optimiser_graphs == 0


def test_the_probe_sees_host_reads():
    t = torch.arange(4.0)
    assert host_ops(lambda: t[torch.argmax(t)]) == {"aten.item": 1}
    assert host_ops(lambda: t[t > 1]) == {"aten.index (boolean mask)": 1}
    assert host_ops(lambda: torch.tensor([1.0, 2.0]) + t[:2]) == {"aten.lift_fresh": 1}
    assert host_ops(lambda: bool(t.sum() > 0)) == {"aten.is_nonzero": 1}


@pytest.mark.parametrize("online", [False, True])
def test_the_step_and_the_optimiser_read_nothing_on_the_host(online, lite_net, sequences_dir):
    """What a CUDA graph needs, checked on CPU: no host read or host-data tensor in the per-frame step (online
    branch included) or in the fixed-memory optimiser."""
    frames, box = first_frames(sequences_dir, "bag", 3)
    config = lite_online() if online else TrackerConfig.from_preset("LITE")
    tracker = OceanTracker(lite_net, config, "cpu", step_mode="static")
    tracker.initialize(frames[0], box)
    tracker.track(frames[1])
    (step,) = tracker.steps
    with torch.inference_mode():
        step.upload(frames[2])
    assert host_ops(step.compute) == {}
    if online:
        tracker.online_branch.fixed_memory = True
        assert host_ops(lambda: tracker.online_branch._optimise(3)) == {}


# --- CUDA (skip without a GPU)
@cuda
def test_cuda_online_graph_matches_eager_and_allocates_nothing_per_frame(sequences_dir):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    frames, box = first_frames(sequences_dir, "bag", 60)
    net, _ = load_model(DEFAULT_MODEL, device="cuda", dtype=torch.float32)
    graph = OceanTracker(net, lite_online(), "cuda", step_mode="graph")
    eager = OceanTracker(net, lite_online(), "cuda", step_mode="static")
    for tracker in (graph, eager):
        tracker.initialize(frames[0], box)
    for frame in frames[1:12]:
        graph.track(frame), eager.track(frame)
    assert graph.graph_failure is None and graph.online_branch.optimiser_graphs >= 1
    torch.cuda.synchronize()
    allocs = torch.cuda.memory_stats()["allocation.all.allocated"]
    results = [graph.track(f) for f in frames[12:]]
    torch.cuda.synchronize()
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == allocs
    agree = 0
    for f, r in zip(frames[12:], results, strict=True):
        e = eager.track(f)
        agree += r.online_flag == e.online_flag
        np.testing.assert_allclose(r.box_xywh, e.box_xywh, atol=0.05)
    assert agree == len(results)
