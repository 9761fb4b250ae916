"""The step with device numbers (static and graph modes: fixed buffers, CUDA-graph ready) against the same step with
host numbers (classic mode, OpenCV crops): parity, buffer reuse, fallback, async.

On CPU the device-number step runs eagerly, so every number it produces is checked here in CI; the golden ResNet
runs are checked in lockstep inside ``test_tracker.test_parity_with_golden_run``. The CUDA tests skip without a GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from lockstep import MemoNet

from ocean_ros.core.checkpoint import checkpoint_preset, load_model
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.graphs import GraphCache, GraphCaptureError, capture_graph
from ocean_ros.core.tracker import OceanTracker
from ocean_ros.eval.sequences import open_sequence
from ocean_ros.models import DEFAULT_MODEL

VALIDATION = ("Crossing", "bag", "ball1", "Surfing06")
STATIC_TOLERANCE_PX = 1e-4
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible to torch)")


@pytest.fixture(scope="module")
def lite_net():
    net, _ = load_model(DEFAULT_MODEL, device="cpu", dtype=torch.float32)
    return net


@pytest.fixture(scope="module")
def lite_config() -> TrackerConfig:
    return TrackerConfig.from_preset(checkpoint_preset(DEFAULT_MODEL) or "LITE")


def first_frames(sequences_dir: Path, name: str, count: int | None = None) -> tuple[list[np.ndarray], tuple]:
    sequence = open_sequence(sequences_dir / name)
    n = len(sequence) if count is None else min(count, len(sequence))
    return [sequence.read(i) for i in range(n)], tuple(float(v) for v in sequence.ground_truth[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", VALIDATION)
def test_static_step_reproduces_the_light_model_on_its_validation_runs(name, lite_net, lite_config, sequences_dir):
    frames, box = first_frames(sequences_dir, name)
    memo = MemoNet(lite_net)
    config = lite_config.replace(redetect=False)  # one network call per frame; test_redetect covers the probes
    classic = OceanTracker(memo, config, "cpu", step_mode="classic")
    static = OceanTracker(memo, config, "cpu", step_mode="static")
    classic.initialize(frames[0], box)
    static.initialize(frames[0], box)
    worst = 0.0
    for frame in frames[1:]:
        a, b = classic.track(frame), static.track(frame)
        worst = max(worst, float(np.abs(np.subtract(a.box_xywh, b.box_xywh)).max()))
        assert (a.peak, a.crop_side, a.state) == (b.peak, b.crop_side, b.state)
        assert b.score == pytest.approx(a.score, abs=1e-12) and b.scale_z == pytest.approx(a.scale_z, rel=1e-15)
    assert worst <= STATIC_TOLERANCE_PX
    assert memo.hits == len(frames) - 1  # the device crop equalled the OpenCV crop on every frame


def test_buffers_are_reused_across_frames_and_targets(lite_net, lite_config, sequences_dir):
    frames, box = first_frames(sequences_dir, "Crossing", 12)
    tracker = OceanTracker(lite_net, lite_config, "cpu", step_mode="static")
    tracker.initialize(frames[0], box)
    (step,) = tracker.steps

    def addresses() -> list[int]:
        zf = [step.zf] if isinstance(step.zf, torch.Tensor) else list(step.zf)
        buffers = [step.frame, step.state.tensor, step.result.tensor, step.params.tensor, step.fill, *zf]
        return [t.data_ptr() for t in buffers]

    before = addresses()
    for frame in frames[1:6]:
        tracker.track(frame)
    assert addresses() == before
    tracker.initialize(frames[6], box)  # a new target of the same search size: same step, same buffers
    for frame in frames[7:]:
        tracker.track(frame)
    assert tracker.steps == (step,)
    assert addresses() == before
    assert tracker.crop_backend == "torch"


def test_graph_mode_without_cuda_falls_back_once_with_a_warning(lite_net, lite_config, sequences_dir, caplog):
    frames, box = first_frames(sequences_dir, "ball1", 8)
    graph = OceanTracker(lite_net, lite_config, "cpu", step_mode="graph")
    static = OceanTracker(lite_net, lite_config, "cpu", step_mode="static")
    graph.initialize(frames[0], box)
    static.initialize(frames[0], box)
    with caplog.at_level(logging.WARNING, logger="ocean_ros.core.tracker"):
        results = [(graph.track(f).box_xywh, static.track(f).box_xywh) for f in frames[1:]]
        graph.initialize(frames[0], (box[0], box[1], box[2] * 6, box[3] * 6))  # another search size
        graph.track(frames[1])
    warnings = [r for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(warnings) == 1 and "CUDA device" in warnings[0].getMessage()
    assert graph.graph_failure is not None
    assert all(not step.graphed and not step.use_graph for step in graph.steps)
    assert len(graph.steps) == 2
    for a, b in results:
        assert a == b


def test_capture_graph_refuses_a_cpu_device():
    with pytest.raises(GraphCaptureError, match="CUDA device"):
        capture_graph(lambda: None, torch.device("cpu"))


def test_graph_cache_runs_the_work_exactly_once_per_call_when_capture_fails():
    runs = []
    cache = GraphCache(torch.device("cpu"), limit=2)
    cache.run("a", lambda: runs.append("a"))
    assert runs == ["a"] and "CUDA device" in cache.error and len(cache) == 0
    cache.run("b", lambda: runs.append("b"))
    cache.run("b", lambda: runs.append("b"), capture=False)
    assert runs == ["a", "b", "b"] and len(cache) == 0


def test_default_step_mode_is_classic_on_cpu_and_graph_on_cuda(lite_net, lite_config):
    assert OceanTracker(lite_net, lite_config, "cpu").step_mode == "classic"
    assert OceanTracker.resolve_step_mode(None, lite_config, torch.device("cuda")) == "graph"
    off = lite_config.replace(cuda_graphs=False)
    assert OceanTracker.resolve_step_mode(None, off, torch.device("cuda")) == "classic"
    with pytest.raises(ValueError, match="step_mode must be one of"):
        OceanTracker(lite_net, lite_config, "cpu", step_mode="fast")


def test_runtime_tunables_reach_the_device_buffers(lite_net, lite_config, sequences_dir):
    frames, box = first_frames(sequences_dir, "bag", 10)
    classic = OceanTracker(lite_net, lite_config, "cpu", step_mode="classic")
    static = OceanTracker(lite_net, lite_config, "cpu", step_mode="static")
    for tracker in (classic, static):
        tracker.initialize(frames[0], box)
    for k, frame in enumerate(frames[1:], start=1):
        if k == 4:  # run-time-safe changes reach the device buffers without a rebuild
            for tracker in (classic, static):
                tracker.update_config(penalty_k=0.3, window_influence=0.1, lr=0.6)
        expected, got = classic.track(frame), static.track(frame)
        np.testing.assert_allclose(got.box_xywh, expected.box_xywh, atol=STATIC_TOLERANCE_PX)
        assert got.frame_index == expected.frame_index == k
    assert set(static.track(frames[3]).timings) >= {"crop", "network", "post", "total"}


def test_static_step_with_nan_weights_keeps_the_box_inside_the_image(lite_config, sequences_dir):
    frames, box = first_frames(sequences_dir, "Crossing", 3)
    net, _ = load_model(DEFAULT_MODEL, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        for p in net.connect_model.parameters():
            p.fill_(float("nan"))
    classic = OceanTracker(net, lite_config, "cpu", step_mode="classic")
    static = OceanTracker(net, lite_config, "cpu", step_mode="static")
    for tracker in (classic, static):
        tracker.initialize(frames[0], box)
    a, b = classic.track(frames[1]), static.track(frames[1])
    assert a.box_xywh == b.box_xywh  # NaN clips to the image the way the host step clips it
    assert np.isnan(b.score) and b.state == a.state


@pytest.mark.slow
def test_static_step_with_the_online_branch_matches_the_classic_step(online_checkpoint, sequences_dir):
    """ResNet-50 Ocean with the online branch: the online score, flag and memory update inside the static step."""
    frames, box = first_frames(sequences_dir, "Crossing", 12)
    net, _ = load_model(online_checkpoint, device="cpu", dtype=torch.float32)
    memo = MemoNet(net)
    config = TrackerConfig.from_preset("ONLINE", **{"online.update_interval": 3})
    classic = OceanTracker(memo, config, "cpu", step_mode="classic")
    static = OceanTracker(memo, config, "cpu", step_mode="static")
    for tracker in (classic, static):
        tracker.initialize(frames[0], box)
    updates = 0
    for frame in frames[1:]:
        a, b = classic.track(frame), static.track(frame)
        np.testing.assert_allclose(b.box_xywh, a.box_xywh, atol=STATIC_TOLERANCE_PX)
        assert (b.peak, b.online_flag, b.online_updated) == (a.peak, a.online_flag, a.online_updated)
        updates += a.online_updated
        assert "online" in b.timings
    assert updates >= 2  # the filter was re-optimised on the way
    assert static.online_branch.memory.stored == classic.online_branch.memory.stored
    torch.testing.assert_close(static.online_branch.filter, classic.online_branch.filter, atol=1e-6, rtol=1e-5)


# --- CUDA (skip without a GPU)
@cuda
def test_cuda_graph_matches_eager_and_allocates_nothing_per_frame(lite_config, sequences_dir):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    frames, box = first_frames(sequences_dir, "Crossing", 40)
    net, _ = load_model(DEFAULT_MODEL, device="cuda", dtype=torch.float32)
    graph = OceanTracker(net, lite_config, "cuda", step_mode="graph")
    eager = OceanTracker(net, lite_config, "cuda", step_mode="static")
    for tracker in (graph, eager):
        tracker.initialize(frames[0], box)
    for frame in frames[1:6]:
        graph.track(frame), eager.track(frame)
    assert graph.graph_failure is None and all(s.graphed for s in graph.steps)
    torch.cuda.synchronize()
    allocs = torch.cuda.memory_stats()["allocation.all.allocated"]
    boxes = [graph.track(f).box_xywh for f in frames[6:]]
    torch.cuda.synchronize()
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == allocs
    for f, b in zip(frames[6:], boxes, strict=True):
        np.testing.assert_allclose(b, eager.track(f).box_xywh, atol=0.01)


@cuda
def test_cuda_graph_golden_parity_float32_and_float16_iou(golden_dir, sequences_dir):
    import cv2
    from test_online_tracker import iou
    from test_tracker import RUNS, initial_box, sequence_frames

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for run, (seq, folder, preset) in RUNS.items():
        ref = np.loadtxt(golden_dir / f"{run}.txt", delimiter=",")
        frames = [cv2.imread(str(p)) for p in sequence_frames(sequences_dir, seq, folder)]
        box = initial_box(sequences_dir, seq)
        boxes = {}
        for half in (False, True):
            dtype = torch.float16 if half else torch.float32
            net, _ = load_model(golden_dir / "ocean_random_seed1.pth", device="cuda", dtype=dtype)
            tracker = OceanTracker(net, TrackerConfig.from_preset(preset, half=half), "cuda", step_mode="graph")
            tracker.initialize(frames[0], box)
            boxes[half] = np.array([tracker.track(f).box_xywh for f in frames[1:]])
            assert tracker.graph_failure is None
        tolerance = 0.05 if run.startswith("ball1") else 0.01
        assert np.abs(boxes[False] - ref[1:]).max() <= tolerance, run
        assert np.mean([iou(a, b) for a, b in zip(boxes[True], boxes[False], strict=True)]) >= 0.98, run
