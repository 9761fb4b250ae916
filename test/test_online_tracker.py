"""OceanTracker with the online branch: integration, offline equivalence when it is off, golden online runs.

The golden online runs cannot be reproduced box for box (the reference draws its augmentation from a global
RNG), and with these random weights they cannot be followed for long at all: the online optimiser amplifies
rounding. Starting from the reference's own initial filter and memory, a 1-ulp change of that filter changes
the bag filter by ~1e-6 at frame 30, ~7e-4 at frame 40 and ~5e-3 at frame 47 (the hard-negative updates of
frames 27-47 amplify it), so any implementation, TracKit on another machine included, parts from the reference
after a few dozen frames. What each slow run asserts is in its docstring.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ocean_ros.core import geometry as g
from ocean_ros.core import online as ol
from ocean_ros.core.checkpoint import load_model
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.tracker import OceanTracker
from ocean_ros.core.types import TrackState

SEQUENCES = {  # sequence -> (image folder, online preset)
    "Crossing": ("img", "ONLINE"),
    "bag": ("color", "VOT2019ON"),
    "Surfing06": ("img", "ONLINE"),
    "ball1": ("color", "VOT2018ON"),
}


def frames_of(sequences_dir: Path, seq: str) -> list[Path]:
    return sorted((sequences_dir / seq / SEQUENCES[seq][0]).glob("*.jpg"))


def initial_box(sequences_dir: Path, seq: str) -> tuple[float, ...]:
    """First ground-truth entry: OTB/DTB x,y,w,h as is, VOT polygons by the area-preserving rule."""
    gt_file = next((sequences_dir / seq).glob("groundtruth*.txt"))
    first = gt_file.read_text().splitlines()[0].replace("\t", ",").replace(" ", ",")
    values = [float(v) for v in first.split(",") if v]
    return g.polygon_to_xywh(values) if len(values) == 8 else tuple(values)


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def checkpoints(online_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """(merged online checkpoint as the golden README builds it, the same Siamese weights without online)."""
    offline = tmp_path_factory.mktemp("online_tracker") / "offline.pth"
    merged = torch.load(online_checkpoint, weights_only=True)
    torch.save({k: v for k, v in merged.items() if not k.startswith(("classifier.", "features.features.layeronline"))},
               offline)
    return online_checkpoint, offline


@pytest.fixture(scope="module")
def online_net(checkpoints):
    return load_model(checkpoints[0])[0]


def reference_draws(data) -> ol.AugmentationDraws:
    """The reference's augmentation: its shifts (transform_shifts) and the dropout masks read off init_feat."""

    def draw(params: ol.OnlineParams, channels: int) -> ol.AugmentationDraws:
        kinds = ol.draw_transforms(params, torch.Generator().manual_seed(0))
        transforms = [ol.Transform(t.kind, (int(s[0]), int(s[1])), t.sigma, t.angle)
                      for t, s in zip(kinds, data["transform_shifts"], strict=False)]
        copies = data["init_feat"][len(transforms):]
        keep = torch.from_numpy(np.abs(copies).reshape(len(copies), channels, -1).max(axis=2) > 0)
        return ol.AugmentationDraws(transforms, keep)

    return draw


# ------------------------------------------------------------------------------------------ integration
@pytest.mark.parametrize("seq", list(SEQUENCES))
def test_online_preset_runs_on_every_golden_sequence(seq, online_net, sequences_dir):
    frames = frames_of(sequences_dir, seq)
    tracker = OceanTracker(online_net, TrackerConfig.from_preset(SEQUENCES[seq][1]))
    tracker.initialize(cv2.imread(str(frames[0])), initial_box(sequences_dir, seq))
    branch = tracker.online_branch
    assert branch is not None and branch.memory is not None and branch.memory.stored == 30
    for path in frames[1:3]:
        result = tracker.track(cv2.imread(str(path)))
        assert result.online_flag in ol.FLAGS
        assert isinstance(result.online_updated, bool)
        assert result.timings["online"] > 0 and "online_update" not in result.timings
        assert np.isfinite(result.box_xywh).all() and result.state is not TrackState.IDLE


def test_online_disabled_reproduces_the_offline_tracker_exactly(checkpoints, online_net, sequences_dir):
    offline_net = load_model(checkpoints[1])[0]
    config = TrackerConfig.from_preset("VOT2019ON", online=False)
    frames = [cv2.imread(str(p)) for p in frames_of(sequences_dir, "bag")[:6]]
    box = initial_box(sequences_dir, "bag")
    with_online_weights = OceanTracker(online_net, config)
    offline = OceanTracker(offline_net, config)
    assert with_online_weights.online_branch is None
    for tracker in (with_online_weights, offline):
        tracker.initialize(frames[0], box)
    for frame in frames[1:]:
        a, b = with_online_weights.track(frame), offline.track(frame)
        assert (a.box_xywh, a.score, a.peak, a.pscore) == (b.box_xywh, b.score, b.peak, b.pscore)
        assert a.online_flag == "" and not a.online_updated and "online" not in a.timings


def test_online_config_needs_the_classifier(checkpoints):
    offline_net = load_model(checkpoints[1])[0]
    with pytest.raises(ValueError, match="no online classifier"):
        OceanTracker(offline_net, TrackerConfig.from_preset("VOT2019ON"))


def test_online_settings_at_run_time_and_reset(online_net, sequences_dir):
    frames = frames_of(sequences_dir, "Crossing")
    config = TrackerConfig.from_preset("ONLINE", **{"online.augmentation": False, "online.init_iterations": 5})
    tracker = OceanTracker(online_net, config)
    tracker.initialize(cv2.imread(str(frames[0])), initial_box(sequences_dir, "Crossing"))
    assert tracker.online_branch.memory.stored == 1
    tracker.update_config(online_ratio=0.5, **{"online.learning_rate": 0.01, "online.hard_negative_threshold": 0.6})
    assert tracker.online_branch.params.learning_rate == 0.01
    assert tracker.online_branch.params.hard_negative_threshold == 0.6
    with pytest.raises(ValueError, match="online.memory_size"):
        tracker.update_config(**{"online.memory_size": 100})
    tracker.track(cv2.imread(str(frames[1])))
    tracker.reset()
    assert tracker.state is TrackState.IDLE and tracker.online_branch.filter is None
    tracker.initialize(cv2.imread(str(frames[1])), initial_box(sequences_dir, "Crossing"))
    assert tracker.track(cv2.imread(str(frames[2]))).online_flag in ol.FLAGS


def test_config_rejects_a_memory_smaller_than_the_initial_samples():
    with pytest.raises(ValueError, match="online.memory_size=30"):
        TrackerConfig.from_preset("ONLINE", **{"online.memory_size": 30})
    assert TrackerConfig.from_preset("ONLINE", **{"online.memory_size": 2, "online.augmentation": False})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_online_tracker_stays_close(checkpoints, sequences_dir):
    frames = [cv2.imread(str(p)) for p in frames_of(sequences_dir, "bag")[:6]]
    box = initial_box(sequences_dir, "bag")
    results = []
    for device, half in (("cpu", False), ("cuda", True)):
        net = load_model(checkpoints[0], device=device, dtype=torch.float16 if half else torch.float32)[0]
        tracker = OceanTracker(net, TrackerConfig.from_preset("VOT2019ON", half=half), device)
        tracker.initialize(frames[0], box)
        results.append([tracker.track(f).box_xywh for f in frames[1:]])
    for a, b in zip(*results, strict=True):
        assert iou(a, b) > 0.9


# ------------------------------------------------------------------------------------ golden online runs
def run_golden(net, golden_dir, sequences_dir, name: str, seq: str, preset: str, draws=None):
    data = np.load(golden_dir / f"{name}.npz")
    reference = np.loadtxt(golden_dir / f"{name}.txt", delimiter=",")
    frames = frames_of(sequences_dir, seq)
    assert len(frames) == len(reference)
    tracker = OceanTracker(net, TrackerConfig.from_preset(preset))
    if draws is not None:
        tracker.online_branch.draw = draws(data)
    tracker.initialize(cv2.imread(str(frames[0])), initial_box(sequences_dir, seq))
    ious, flags = [], []
    for path, ref in zip(frames[1:], reference[1:], strict=True):
        result = tracker.track(cv2.imread(str(path)))
        ious.append(iou(result.box_xywh, ref))
        flags.append(result.online_flag)
    agreement = float(np.mean([a == b for a, b in zip(flags, data["flags"], strict=True)]))
    return np.array(ious), agreement


@pytest.mark.slow
def test_ball1_online_run_stays_close_to_the_reference(online_net, golden_dir, sequences_dir):
    """Own seeded augmentation; mean IoU with the reference boxes over the 104 tracked frames >= 0.8."""
    ious, agreement = run_golden(online_net, golden_dir, sequences_dir, "ball1_VOT2018ON", "ball1", "VOT2018ON")
    print(f"ball1 VOT2018ON: mean IoU {ious.mean():.3f}, flags agree on {agreement:.1%} of frames")
    assert ious.mean() >= 0.8
    assert agreement >= 0.9


@pytest.mark.slow
def test_bag_online_run_follows_the_reference_while_it_is_reproducible(online_net, golden_dir, sequences_dir):
    """With the reference's augmentation draws the run matches the reference box for box over its first 30
    frames (IoU >= 0.95) and the flags agree on >= 90 % of all 195 frames. The run's mean IoU over all frames
    is printed, not asserted: after the divergence (~frame 38) the boxes shrink to the 10 px minimum on both
    sides, where a few pixels apart is IoU 0 (see the module docstring)."""
    ious, agreement = run_golden(
        online_net, golden_dir, sequences_dir, "bag_VOT2019ON", "bag", "VOT2019ON", draws=reference_draws
    )
    print(f"bag VOT2019ON: IoU frames 1-30 min {ious[:30].min():.3f}, mean over the run {ious.mean():.3f}, "
          f"flags agree on {agreement:.1%} of frames")
    assert ious[:30].min() >= 0.95
    assert agreement >= 0.9
