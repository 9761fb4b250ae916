"""Metrics on hand-computed cases, the VOT supervised protocol, and a cross-check against the got10k toolkit."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_eval_datasets import write_got10k_sequence, write_images

from ocean_ros.eval import metrics
from ocean_ros.eval.cli import main
from ocean_ros.eval.overlap import box_iou, center_error, normalized_center_error, polygon_box_overlap
from ocean_ros.eval.results import (
    BOX,
    FAILURE,
    INIT,
    SKIPPED,
    Trajectory,
    read_trajectory,
    write_times,
    write_trajectory,
)
from ocean_ros.eval.runner import run_supervised
from ocean_ros.eval.scoring import score_one_pass, score_supervised, summarize
from ocean_ros.eval.sequences import Sequence, open_sequence, read_boxes

DIAMOND = [5, 0, 10, 5, 5, 10, 0, 5]  # area 50


def make_sequence(gt: np.ndarray, name: str = "s", resolution: tuple[int, int] = (100, 100), **kwargs) -> Sequence:
    frames = tuple(Path(f"/nonexistent/{name}/{i:04d}.jpg") for i in range(len(gt)))
    return Sequence(name, frames, np.asarray(gt, dtype=np.float64), "OTB", resolution=resolution, **kwargs)


# --- overlaps -------------------------------------------------------------------------------------------------------
def test_box_iou_hand_cases():
    pred = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4]
    gt = [[5, 0, 10, 10], [0, 0, 10, 10], [20, 20, 5, 5], [0, 0, 1, 1]]
    iou = box_iou(pred, gt)
    np.testing.assert_allclose(iou[:3], [1 / 3, 1.0, 0.0])
    assert np.isnan(iou[3])
    # GOT-10k's bound: x, y clamped into the image, then w, h cut to what is left (8 px wide image here)
    assert box_iou([0, 0, 10, 10], [0, 0, 5, 10])[0] == pytest.approx(0.5)
    assert box_iou([0, 0, 10, 10], [0, 0, 5, 10], bound=(8, 100))[0] == pytest.approx(50 / 80)


def test_center_errors():
    assert center_error([0, 0, 10, 10], [3, 4, 10, 10])[0] == pytest.approx(5.0)
    assert normalized_center_error([0, 0, 10, 20], [5, 10, 10, 20])[0] == pytest.approx(np.hypot(0.5, 0.5))
    assert normalized_center_error([0, 0, 10, 20], [5, 10, 0, 20])[0] == np.inf
    assert np.isnan(center_error([np.nan] * 4, [0, 0, 1, 1])[0])


def test_polygon_overlap_hand_cases():
    assert polygon_box_overlap(DIAMOND, [0, 0, 10, 10]) == pytest.approx(0.5)
    assert polygon_box_overlap(DIAMOND, [0, 0, 5, 5]) == pytest.approx(12.5 / 62.5)
    # inside a 4 px wide image: polygon 16, box 20, intersection 8
    assert polygon_box_overlap(DIAMOND, [0, 0, 5, 5], bound=(4, 100)) == pytest.approx(8 / 28)
    assert polygon_box_overlap(DIAMOND, [50, 50, 5, 5]) == 0.0
    square = [2, 3, 12, 3, 12, 9, 2, 9]
    assert polygon_box_overlap(square, [4, 3, 10, 6]) == pytest.approx(box_iou([2, 3, 10, 6], [4, 3, 10, 6])[0])


def test_polygon_overlap_matches_shapely_through_got10k():
    from got10k.utils.metrics import poly_iou

    rng = np.random.default_rng(3)
    for _ in range(30):
        cx, cy, w, h, angle = rng.uniform(20, 80), rng.uniform(20, 80), rng.uniform(5, 40), rng.uniform(5, 40), \
            rng.uniform(0, np.pi)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        polygon = (corners @ rot.T + [cx, cy]).reshape(-1)
        box = np.array([cx + rng.uniform(-15, 15) - 10, cy + rng.uniform(-15, 15) - 10, 20, 20])
        expected = poly_iou(polygon, box.copy(), bound=(90, 85))[0]
        assert polygon_box_overlap(polygon, box, bound=(90, 85)) == pytest.approx(expected, abs=1e-9)


# --- curves and scores ----------------------------------------------------------------------------------------------
def test_success_curve_and_auc_by_hand():
    curve = metrics.success_curve(np.array([1.0, 0.5, 0.0, np.nan]))
    assert curve[0] == 0.5 and curve[9] == 0.5  # IoU > 0 ... > 0.45
    assert curve[10] == 0.25 and curve[19] == 0.25  # strictly above 0.5 ... 0.95
    assert curve[20] == 0.0  # nothing is above 1
    assert metrics.auc(curve) == pytest.approx((10 * 0.5 + 10 * 0.25) / 21)


def test_precision_and_normalized_precision_by_hand():
    errors = np.array([0.0, 20.0, 20.5, np.inf, np.nan])
    assert metrics.precision_at(errors) == pytest.approx(2 / 5)  # at most 20 px, boundary included
    assert metrics.precision_curve(errors)[20] == pytest.approx(2 / 5)
    assert metrics.normalized_precision(np.array([0.1, 0.19, 0.21, 0.5])) == pytest.approx(0.5)


def test_ao_and_success_rates_by_hand():
    ious = np.array([0.8, 0.6, 0.4, 0.0])
    assert metrics.average_overlap(ious) == pytest.approx(0.45)
    assert metrics.success_rate(ious, 0.5) == 0.5 and metrics.success_rate(ious, 0.75) == 0.25
    assert metrics.frames_per_second(np.array([0.1, 0.3, np.nan, 0.0])) == pytest.approx(5.0)


def test_one_pass_skips_frames_without_ground_truth_and_counts_missing_boxes():
    gt = np.array([[10, 10, 10, 10], [10, 10, 10, 10], [np.nan] * 4, [10, 10, 10, 10]], dtype=float)
    boxes = np.array([[0, 0, 1, 1], [15, 10, 10, 10], [0, 0, 5, 5], [np.nan] * 4])
    score = score_one_pass(make_sequence(gt), Trajectory(boxes))
    # frame 1 is the init (replaced by the ground truth), frame 3 has no ground truth, frame 4 no box
    assert score.scored_frames == 3 and score.missing_boxes == 1
    ious = [1.0, 1 / 3, 0.0]
    assert score.auc == pytest.approx(np.mean(metrics.success_curve(np.array(ious))))
    assert score.precision == pytest.approx(2 / 3)
    assert score.ao == pytest.approx((1 / 3 + 0.0) / 2)  # frames 2..N with a visible target


def test_supervised_accuracy_burn_in_and_failures():
    n = 30
    gt = np.tile([10.0, 10.0, 10.0, 10.0], (n, 1))
    markers = np.full(n, BOX)
    markers[0], markers[12], markers[13:17], markers[17] = INIT, FAILURE, SKIPPED, INIT
    boxes = np.tile([15.0, 10.0, 10.0, 10.0], (n, 1))  # IoU 1/3 wherever it counts
    boxes[11] = [10, 10, 10, 10]  # IoU 1
    boxes[markers != BOX] = np.nan
    score = score_supervised(make_sequence(gt), Trajectory(boxes, markers))
    # counted: 10, 11 (after the 10-frame burn-in from frame 0) and 27..29 (burn-in 17..26)
    assert score.scored_frames == 5 and score.failures == 1
    assert score.accuracy == pytest.approx((1 / 3 + 1 + 3 / 3) / 5)


class ScriptedTracker:
    """Returns the ground truth, except far off on the frames in ``fail_on``; ``index`` is set by the runner's
    per-frame callback (0-based sequence index)."""

    def __init__(self, gt: np.ndarray, fail_on: set[int]) -> None:
        self.gt, self.fail_on, self.index, self.inits = gt, fail_on, 0, []

    def initialize(self, frame, box):
        self.inits.append(self.index)

    def track(self, frame):
        box = (500.0, 500.0, 5.0, 5.0) if self.index in self.fail_on else tuple(self.gt[self.index])
        return SimpleNamespace(box_xywh=box, score=0.9)


def test_run_supervised_reinitialises_five_frames_after_a_failure(monkeypatch):
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (20, 1))
    sequence = make_sequence(gt)
    monkeypatch.setattr(Sequence, "read", lambda self, i: np.zeros((100, 100, 3), np.uint8))
    tracker = ScriptedTracker(gt, {4})

    def advance():  # the scripted tracker follows the frame index the runner is on
        tracker.index = advance.calls
        advance.calls += 1

    advance.calls = 0
    trajectory = run_supervised(tracker, sequence, on_frame=advance)
    expected = [INIT, BOX, BOX, BOX, FAILURE, SKIPPED, SKIPPED, SKIPPED, SKIPPED, INIT] + [BOX] * 10
    assert trajectory.markers.tolist() == expected
    assert np.isnan(trajectory.boxes[4]).all() and np.allclose(trajectory.boxes[10], gt[10])


def test_summary_averages_curves_per_sequence_and_pools_ao():
    short = make_sequence(np.tile([0.0, 0, 10, 10], (3, 1)), "short")
    long = make_sequence(np.tile([0.0, 0, 10, 10], (5, 1)), "long")
    s1 = score_one_pass(short, Trajectory(np.tile([5.0, 0, 10, 10], (3, 1))))  # IoU 1/3 after the init
    s2 = score_one_pass(long, Trajectory(np.tile([0.0, 0, 10, 10], (5, 1))))  # IoU 1
    total = summarize([s1, s2])
    assert total.auc == pytest.approx((s1.auc + s2.auc) / 2)
    assert total.ao == pytest.approx((2 * (1 / 3) + 4 * 1.0) / 6)  # frames 2..N of both, pooled


def test_result_files_round_trip_with_offset_and_markers(tmp_path):
    boxes = np.array([[1.5, 2.25, 3, 4], [np.nan] * 4, [5, 6, 7, 8]])
    write_trajectory(tmp_path / "a.txt", Trajectory(boxes), offset=1.0)
    assert (tmp_path / "a.txt").read_text().splitlines()[0] == "2.5000,3.2500,3.0000,4.0000"
    np.testing.assert_allclose(read_trajectory(tmp_path / "a.txt", 1.0).boxes, boxes)
    markers = np.array([INIT, BOX, FAILURE])
    write_trajectory(tmp_path / "b.txt", Trajectory(boxes, markers))
    assert (tmp_path / "b.txt").read_text().split() == ["1", "nan,nan,nan,nan", "2"]
    assert read_trajectory(tmp_path / "b.txt").markers.tolist() == [INIT, BOX, FAILURE]


# --- cross-check against the got10k toolkit (test-only dependency) ----------------------------------------------------
@pytest.fixture
def got10k(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return pytest.importorskip("got10k", reason="got10k (test-only cross-check) not installed; see requirements.txt")


def noisy_boxes(gt: np.ndarray, seed: int) -> np.ndarray:
    """Predictions around the ground truth: small jitter, some drift, some far-off frames."""
    rng = np.random.default_rng(seed)
    base = np.where(np.isnan(gt), np.nanmean(gt, axis=0), gt)
    boxes = base + rng.normal(0, 1, base.shape) * [6, 6, 3, 3]
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)
    far = rng.random(len(gt)) < 0.15
    boxes[far, :2] += 400
    return boxes


def run_score(dataset: Path, results: Path, out: Path) -> dict:
    assert main(["score", str(dataset), str(results), "--output", str(out)]) == 0
    return json.loads((out / "summary.json").read_text())


def test_crosscheck_otb_success_and_precision_on_crossing(sequences_dir, tmp_path, got10k):
    from got10k.experiments import ExperimentOTB
    from got10k.utils.metrics import center_error as g_center_error
    from got10k.utils.metrics import rect_iou

    sequence = open_sequence(sequences_dir / "Crossing")
    results = tmp_path / "results"
    write_trajectory(results / "Crossing.txt", Trajectory(noisy_boxes(sequence.ground_truth, 1)), offset=1.0)
    ours = run_score(sequences_dir / "Crossing", results, tmp_path / "report")["overall"]

    # the toolkit's report arithmetic on the same files, as ExperimentOTB.report does it
    gt_text = (sequences_dir / "Crossing" / "groundtruth_rect.txt").read_text()
    anno = np.loadtxt(io.StringIO(gt_text.replace(",", " ")))
    boxes = np.loadtxt(results / "Crossing.txt", delimiter=",")
    boxes[0] = anno[0]
    experiment = object.__new__(ExperimentOTB)
    experiment.nbins_iou, experiment.nbins_ce = 21, 51
    succ, prec = experiment._calc_curves(rect_iou(boxes, anno), g_center_error(boxes, anno))
    assert ours["auc"] == pytest.approx(np.mean(succ), abs=1e-6)
    assert ours["precision"] == pytest.approx(prec[20], abs=1e-6)
    assert ours["success_50"] == pytest.approx(succ[10], abs=1e-6)
    np.testing.assert_allclose(ours["success_curve"], succ, atol=1e-6)
    np.testing.assert_allclose(ours["precision_curve"], prec, atol=1e-6)


def test_crosscheck_uav123_report_with_nan_rows(tmp_path, got10k):
    from got10k.experiments import ExperimentUAV123

    root = tmp_path / "UAV123"
    results = tmp_path / "results" / "UAV123" / "Ocean"
    rng = np.random.default_rng(7)
    for seed, (name, frames) in enumerate((("uav5", 139), ("uav6", 109))):
        write_images(root / "data_seq" / "UAV123" / name, frames, "{:06d}.jpg")
        gt = np.column_stack([rng.uniform(50, 300, (frames, 2)), rng.uniform(10, 60, (frames, 2))])
        gt[rng.random(frames) < 0.1] = np.nan
        gt[0] = [100, 100, 30, 30]
        anno = root / "anno" / "UAV123" / f"{name}.txt"
        anno.parent.mkdir(parents=True, exist_ok=True)
        anno.write_text("".join(",".join("NaN" if np.isnan(v) else f"{v:.3f}" for v in row) + "\n" for row in gt))
        zero_based, _ = read_boxes(anno, 1.0)
        write_trajectory(results / f"{name}.txt", Trajectory(noisy_boxes(zero_based, seed)), offset=1.0)
    for filler in ("a", "b"):  # the toolkit wants more than 3 entries in the root folder
        (root / filler).write_text("")
    ours = run_score(root, results, tmp_path / "report")

    experiment = ExperimentUAV123(str(root), "UAV123", str(tmp_path / "results"), str(tmp_path / "got10k_reports"))
    theirs = experiment.report(["Ocean"])["Ocean"]
    assert ours["overall"]["auc"] == pytest.approx(theirs["overall"]["success_score"], abs=1e-6)
    assert ours["overall"]["precision"] == pytest.approx(theirs["overall"]["precision_score"], abs=1e-6)
    assert ours["overall"]["success_50"] == pytest.approx(theirs["overall"]["success_rate"], abs=1e-6)
    for seq in ours["sequences"]:
        assert seq["auc"] == pytest.approx(theirs["seq_wise"][seq["name"]]["success_score"], abs=1e-6)
        assert seq["precision"] == pytest.approx(theirs["seq_wise"][seq["name"]]["precision_score"], abs=1e-6)


def test_crosscheck_got10k_ao_and_success_rates(tmp_path, got10k):
    from got10k.experiments import ExperimentGOT10k
    from got10k.utils.metrics import rect_iou

    root = tmp_path / "GOT-10k"
    results = tmp_path / "results" / "GOT-10k" / "Ocean"
    rng = np.random.default_rng(11)
    names = []
    for k, frames in enumerate((40, 25)):
        name = f"GOT-10k_Val_{k + 1:06d}"
        names.append(name)
        gt = np.column_stack([rng.uniform(-20, 600, (frames, 2)), rng.uniform(20, 120, (frames, 2))])
        cover = rng.integers(0, 9, frames)
        cover[0] = 8
        write_got10k_sequence(root / "val" / name, gt.tolist(), (cover == 0).astype(int).tolist(), cover.tolist(),
                              (640, 360))
        write_trajectory(results / name / f"{name}_001.txt", Trajectory(noisy_boxes(gt, 20 + k)))
        write_times(results / name / f"{name}_time.txt", np.full(frames, 0.02))  # the toolkit needs the file
    (root / "val" / "list.txt").write_text("\n".join(names) + "\n")
    ours = run_score(root / "val", results, tmp_path / "report")

    experiment = ExperimentGOT10k(str(root), "val", str(tmp_path / "results"), str(tmp_path / "got10k_reports"))
    theirs = experiment.report(["Ocean"])["Ocean"]
    assert ours["overall"]["ao"] == pytest.approx(theirs["overall"]["ao"], abs=1e-6)
    assert ours["overall"]["sr_50"] == pytest.approx(theirs["overall"]["sr"], abs=1e-6)
    pooled = []
    for seq in ours["sequences"]:
        assert seq["ao"] == pytest.approx(theirs["seq_wise"][seq["name"]]["ao"], abs=1e-6)
        assert seq["sr_50"] == pytest.approx(theirs["seq_wise"][seq["name"]]["sr"], abs=1e-6)
        anno = np.loadtxt(root / "val" / seq["name"] / "groundtruth.txt", delimiter=",")
        boxes = np.loadtxt(results / seq["name"] / f"{seq['name']}_001.txt", delimiter=",")
        cover = np.loadtxt(root / "val" / seq["name"] / "cover.label")[1:]
        ious = rect_iou(boxes[1:], anno[1:], bound=(640, 360))[cover > 0]
        assert seq["sr_75"] == pytest.approx(np.mean(ious > 0.75), abs=1e-6)
        pooled.append(ious)
    assert ours["overall"]["sr_75"] == pytest.approx(np.mean(np.concatenate(pooled) > 0.75), abs=1e-6)
