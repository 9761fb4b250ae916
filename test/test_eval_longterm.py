"""Long-term evaluation: VOT-LT and episode metrics on hand-computed cases, the out-of-view generator's geometry,
determinism and errors, reported flags through the runner and the result files, and the CLI's long-term report."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
from conftest import need_data

from ocean_ros.core.types import TrackResult, TrackState
from ocean_ros.eval.longterm import (
    EpisodeRules,
    has_absences,
    longterm_frames,
    score_longterm,
    summarize_longterm,
)
from ocean_ros.eval.make_longterm import (
    PLAN_FILE,
    VISIBLE,
    LongTermError,
    LongTermOptions,
    make_longterm,
    plan_longterm,
)
from ocean_ros.eval.results import Trajectory, load_result, reported_path, write_reported, write_trajectory
from ocean_ros.eval.runner import run_one_pass
from ocean_ros.eval.scoring import score_one_pass
from ocean_ros.eval.sequences import open_sequence

NAN4 = [np.nan] * 4
A = [0.0, 0.0, 10.0, 10.0]


def lt(boxes, conf, reported, gt, **rules):
    frames = longterm_frames(np.asarray(boxes, float), None if conf is None else np.asarray(conf, float),
                             None if reported is None else np.asarray(reported, bool), np.asarray(gt, float))
    return score_longterm(frames, EpisodeRules(**rules))


# --- metrics --------------------------------------------------------------------------------------------------------
def test_vot_lt_precision_recall_f_on_a_hand_computed_case():
    # frame 0 init; 1, 2 present; 3, 4 absent; 5 present
    gt = [A, A, A, NAN4, NAN4, A]
    boxes = [A, A, [5.0, 0, 10, 10], [50.0, 50, 10, 10], [50.0, 50, 10, 10], A]  # IoUs 1, 1/3, -, -, 1
    conf = [1.0, 0.9, 0.5, 0.8, 0.7, 0.3]
    reported = [True, True, True, True, False, True]
    score = lt(boxes, conf, reported, gt)
    # tau 0.3: Pr = (1 + 1/3 + 0 + 1) / 4 = 7/12, Re = (7/3) / 3 = 7/9, F = 2/3 (beats 4/9, 0.4 and 0.5)
    assert score.f_score == pytest.approx(2 / 3)
    assert (score.threshold, score.precision, score.recall) == (0.3, pytest.approx(7 / 12), pytest.approx(7 / 9))
    assert (score.frames, score.absent_frames, score.absences, score.returns) == (5, 2, 1, 1)
    assert score.absent_empty_rate == 0.5  # frame 4 empty, frame 3 not
    assert score.delays == (0,) and score.reacquired == 1 and score.reacquired_rate == 1.0
    assert score.false_reacquisitions == 0 and score.absence_spans == ((3, 4),)  # one wrong frame < 5
    assert json.dumps(score.as_dict())  # JSON-ready


def test_empty_predictions_score_zero_f_and_a_perfect_empty_rate():
    gt = [A, A, NAN4, NAN4, A, A]
    score = lt([A] + [NAN4] * 5, None, None, gt)
    assert score.f_score == 0.0 and score.recall == 0.0 and math.isnan(score.precision)
    assert score.absent_empty_rate == 1.0 and score.returns == 1 and score.missed == 1 and score.delays == (None,)
    assert math.isnan(score.delay_median)
    # zero-size ground truth is an absence too
    assert has_absences(np.array([A, [3.0, 3, 0, 0]])) and not has_absences(np.array([A, A]))


def test_all_absent_frames():
    gt = [A] + [NAN4] * 9
    silent = lt([A] + [NAN4] * 9, None, None, gt)
    assert math.isnan(silent.f_score) and silent.absent_empty_rate == 1.0
    assert (silent.returns, silent.absences, silent.false_reacquisitions) == (0, 1, 0)
    assert math.isnan(silent.reacquired_rate)
    talking = lt([A] * 10, np.full(10, 0.9), None, gt)  # a box on the background all along
    assert talking.precision == 0.0 and math.isnan(talking.f_score) and talking.absent_empty_rate == 0.0
    assert talking.false_reacquisitions == 1 and talking.false_reacquisition_rate == 1.0
    assert talking.false_spans == ((1, 9),)


def _false_case(wrong_frames: int):
    """Present 1-9, absent 10-19, present 20-39; lost 10-14, a wrong box from 15 for ``wrong_frames``, then on."""
    n = 40
    gt = np.array([A] * n)
    gt[10:20] = np.nan
    boxes = np.array([A] * n)
    reported = np.ones(n, dtype=bool)
    reported[10:15] = False
    boxes[15:15 + wrong_frames] = [100.0, 100, 10, 10]
    return boxes, reported, gt


def test_a_false_reacquisition_and_its_delay():
    boxes, reported, gt = _false_case(10)  # wrong 15-24: 5 absent + 5 present frames
    score = lt(boxes, None, reported, gt)
    assert score.false_spans == ((15, 24),) and score.false_reacquisitions == 1
    assert score.false_reacquisition_rate == 1.0 and score.false_after_loss == 0
    assert score.delays == (5,) and score.reacquired == 1  # the return at 20, the first hit at 25
    assert score.absent_empty_rate == 0.5
    boxes, reported, _ = _false_case(5)
    reported[15] = False  # wrong 16-19 only: 4 frames are not enough
    short = lt(boxes, None, reported, gt)
    assert short.false_reacquisitions == 0 and short.false_spans == () and short.delays == (0,)
    boxes, reported, _ = _false_case(10)
    assert lt(boxes, None, reported, gt, persist=11).false_reacquisitions == 0


def test_reacquisition_window_boundary_and_losses():
    n = 60
    gt = np.array([A] * n)
    gt[10:20] = np.nan
    boxes = np.array([A] * n)
    boxes[10:35] = np.nan  # no box until frame 35: the return at 20 is found 15 frames late
    assert lt(boxes, None, None, gt).delays == (15,) and lt(boxes, None, None, gt).reacquired == 1
    boxes[35] = np.nan  # 16 frames late: missed with the default window, found with a window of 16
    assert lt(boxes, None, None, gt).missed == 1 and lt(boxes, None, None, gt).delay_max == 16
    assert lt(boxes, None, None, gt, window=16).reacquired == 1
    # a loss while the target stays in view, then a distractor for 7 frames: counted after the loss
    gt = np.array([A] * 40)
    boxes = np.array([A] * 40)
    reported = np.ones(40, dtype=bool)
    reported[10:13] = False
    boxes[13:20] = [100.0, 100, 10, 10]
    score = lt(boxes, None, reported, gt)
    assert score.false_after_loss == 1 and score.false_spans == ((13, 19),) and score.false_reacquisitions == 0
    assert math.isnan(score.false_reacquisition_rate) and math.isnan(score.absent_empty_rate)


def test_summary_averages_curves_over_sequences_and_pools_episodes():
    gt = np.array([A, A, A])
    good = longterm_frames(np.array([A, A, A]), np.array([1.0, 0.5, 0.5]), None, gt, "good")
    bad = longterm_frames(np.array([A, [50.0, 50, 10, 10], NAN4]), np.array([1.0, 0.9, np.nan]), None, gt, "bad")
    overall = summarize_longterm([good, bad])
    # tau 0.5: Pr (1 + 0) / 2, Re (1 + 0) / 2 -> F 0.5; tau 0.9: good has no prediction, Pr 0, Re 0 -> F 0
    assert (overall.f_score, overall.threshold, overall.precision, overall.recall) == (0.5, 0.5, 0.5, 0.5)
    one = score_longterm(good)
    assert summarize_longterm([good]).f_score == one.f_score == 1.0
    boxes, reported, lt_gt = _false_case(10)
    a = longterm_frames(boxes, None, reported, lt_gt, "a")
    b = longterm_frames(np.array([A] * 40), None, None, lt_gt, "b")  # a box kept on the background
    pooled = summarize_longterm([a, b])
    assert (pooled.absences, pooled.returns, pooled.false_reacquisitions) == (2, 2, 2)
    assert pooled.absent_empty_rate == 0.25 and pooled.delays == () and pooled.delay_median == 2.5


def test_bad_metric_input_names_the_array():
    with pytest.raises(ValueError, match="confidence array has shape"):
        longterm_frames(np.zeros((3, 4)), np.zeros(2), None, np.zeros((3, 4)), "toy")
    with pytest.raises(ValueError, match=r"ground truth has shape"):
        longterm_frames(np.zeros((3, 4)), None, None, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no sequence"):
        summarize_longterm([])


# --- reported flags -------------------------------------------------------------------------------------------------
class _ScriptedTracker:
    """Reports LOST on the frames listed, TRACKING elsewhere."""

    def __init__(self, lost: set[int]):
        self.lost, self.frame = lost, 0

    def initialize(self, frame, box):
        self.box = box

    def track(self, frame):
        self.frame += 1
        state = TrackState.LOST if self.frame in self.lost else TrackState.TRACKING
        return TrackResult(self.box, 0.2 if state == TrackState.LOST else 0.9, state)


def test_runner_records_reported_flags_and_the_result_files_keep_them(tmp_path):
    folder = _write_sequence(tmp_path / "src" / "toy", frames=8)
    sequence = open_sequence(folder)
    trajectory = run_one_pass(_ScriptedTracker({3, 4}), sequence)
    assert trajectory.reported.tolist() == [True, True, True, False, False, True, True, True]
    results = tmp_path / "results"
    write_trajectory(results / "toy.txt", trajectory, 1.0)
    write_reported(reported_path(results, "toy", "OTB"), trajectory.reported)
    assert (results / "reported" / "toy_reported.txt").read_text().split() == ["1", "1", "1", "0", "0", "1", "1", "1"]
    assert load_result(results, "toy", 1.0).reported.tolist() == trajectory.reported.tolist()
    write_trajectory(results / "old.txt", trajectory, 1.0)
    assert load_result(results, "old", 1.0).reported is None  # results without flags


# --- the generator --------------------------------------------------------------------------------------------------
RED = (0, 0, 255)
SIDE = 24


def _target_box(k: int) -> tuple[float, float]:
    return 150.0 + 40 * math.cos(k / 15), 110.0 + 30 * math.sin(k / 20)


def _write_sequence(folder, frames=150, size=(320, 240), target=SIDE):
    """An OTB folder: a red square on a seeded texture free of red (PNG, so crops compare exactly)."""
    rng = np.random.default_rng(7)
    background = rng.integers(0, 200, (size[1], size[0], 3), dtype=np.uint8)
    background[:, :, 2] //= 2
    (folder / "img").mkdir(parents=True)
    lines = []
    for k in range(frames):
        x, y = _target_box(k)
        image = background.copy()
        image[int(y):int(y) + target, int(x):int(x) + target] = RED
        cv2.imwrite(str(folder / "img" / f"{k + 1:04d}.png"), image)
        lines.append(f"{int(x) + 1},{int(y) + 1},{target},{target}")
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return _write_sequence(tmp_path_factory.mktemp("lt") / "toy")


def _red(image: np.ndarray) -> np.ndarray:
    return np.all(image == RED, axis=2)


def expected_truth(source_gt: np.ndarray, offsets: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The target box seen through each window, computed here from the reported offsets."""
    out = np.full_like(source_gt, np.nan)
    for k, ((x, y, w, h), (ox, oy)) in enumerate(zip(source_gt, offsets, strict=True)):
        x0, y0 = max(x - ox, 0), max(y - oy, 0)
        x1, y1 = min(x - ox + w, size[0]), min(y - oy + h, size[1])
        inside = max(x1 - x0, 0) * max(y1 - y0, 0)
        if inside >= VISIBLE * w * h:
            out[k] = [x0, y0, x1 - x0, y1 - y0]
    return out


def test_pan_ground_truth_equals_the_window_geometry(synthetic, tmp_path):
    source = open_sequence(synthetic)
    plan = make_longterm(source, tmp_path, LongTermOptions(absence_s=1.0, image_format="png"))
    made = open_sequence(tmp_path / "toy-pan-1s")
    info = json.loads((tmp_path / "toy-pan-1s" / PLAN_FILE).read_text())
    offsets, frames = np.array(info["offsets"]), np.array(info["source_frames"])
    size = (info["width"], info["height"])
    assert len(made) == len(source) == len(frames) and frames.tolist() == list(range(len(source)))
    np.testing.assert_allclose(made.ground_truth, expected_truth(source.ground_truth[frames], offsets, size),
                               atol=1e-4)
    absent = np.flatnonzero(np.isnan(made.ground_truth[:, 0]))
    first, last = info["absence"]
    assert absent.tolist() == list(range(first, last + 1)) and abs(len(absent) - 30) <= 1 and first == 50
    for k in range(len(made)):  # every frame is the source's pixels at its offset
        image, ox, oy = made.read(k), *offsets[k]
        src = source.read(frames[k])
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + size[0], 320), min(oy + size[1], 240)
        np.testing.assert_array_equal(image[y0 - oy:y1 - oy, x0 - ox:x1 - ox], src[y0:y1, x0:x1])
        if k in absent and np.all(offsets[k] == offsets[(first + last) // 2]):
            assert not _red(image).any()  # held away: nothing of the target in view
        if np.isfinite(made.ground_truth[k, 0]):
            x, y, w, h = made.ground_truth[k].astype(int)
            assert _red(image[y:y + h, x:x + w]).all()
    # the target comes back elsewhere in the window
    before = made.ground_truth[first - plan.ramp - 2, :2]
    after = made.ground_truth[last + plan.ramp + 4, :2]
    assert np.abs(after - before).max() > 0.1 * min(size)


def test_occlusion_hides_the_target_and_keeps_the_rest(synthetic, tmp_path):
    source = open_sequence(synthetic)
    plan = make_longterm(source, tmp_path, LongTermOptions(mode="occlude", absence_s=0.5, image_format="png"))
    made = open_sequence(tmp_path / plan.name)
    assert plan.name == "toy-occlude-0.5s" and plan.absence == (50, 64) and plan.patch_origin is not None
    assert np.isnan(made.ground_truth[50:65]).all()
    np.testing.assert_allclose(np.delete(made.ground_truth, range(50, 65), 0),
                               np.delete(source.ground_truth, range(50, 65), 0))
    for k in (49, 50, 57, 64, 65):
        image = made.read(k)
        assert _red(image).any() == (k not in range(50, 65))
        if k not in range(50, 65):
            np.testing.assert_array_equal(image, source.read(k))


def test_generation_is_deterministic(synthetic, tmp_path):
    source = open_sequence(synthetic)
    for run in ("a", "b"):
        for mode in ("pan", "occlude"):
            make_longterm(source, tmp_path / run, LongTermOptions(mode=mode, absence_s=0.5))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * (150 + 2)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_extend_plays_short_sequences_back_and_forth(synthetic):
    source = open_sequence(synthetic).sliced(0, 60)
    with pytest.raises(LongTermError, match="--extend"):
        plan_longterm(source, LongTermOptions(absence_s=1.0))
    plan = plan_longterm(source, LongTermOptions(absence_s=1.0, extend=True))
    frames = plan.source_frames
    assert len(frames) == 35 + 30 + 30 and plan.notes["extended"]
    turn = 35 + 15
    assert frames[:turn + 1].tolist() == list(range(turn + 1)) and np.all(np.diff(frames[turn:]) == -1)
    assert np.isnan(plan.ground_truth[35:65, 0]).sum() >= 29


def test_bad_input_fails_with_a_message(synthetic, tmp_path):
    source = open_sequence(synthetic)
    with pytest.raises(LongTermError, match="shorter than the sequence"):
        plan_longterm(source, LongTermOptions(absence_s=10.0, extend=True))
    with pytest.raises(LongTermError, match="needs 170 frames .* the sequence has 150"):
        plan_longterm(source, LongTermOptions(absence_s=3.0))
    with pytest.raises(LongTermError, match="cannot start at frame 10"):
        plan_longterm(source, LongTermOptions(start=10))
    with pytest.raises(LongTermError, match="too small for the virtual window"):
        plan_longterm(open_sequence(_write_sequence(tmp_path / "tiny", 100, (100, 80), 8)), LongTermOptions())
    big = dataclasses.replace(source, ground_truth=source.ground_truth * [1, 1, 4, 4])
    with pytest.raises(LongTermError, match="too large for a window of 0.3"):
        plan_longterm(big, LongTermOptions(window=0.3))
    with pytest.raises(LongTermError, match="unknown mode"):
        plan_longterm(source, LongTermOptions(mode="zoom"))


def test_cli_makes_scores_and_reports_long_term(synthetic, tmp_path, capsys):
    from ocean_ros.eval.cli import main

    assert main(["make-longterm", str(synthetic), "--out", str(tmp_path / "lt"), "--absence-s", "20"]) == 2
    assert "shorter than the sequence" in capsys.readouterr().err
    assert main(["make-longterm", str(synthetic), "--out", str(tmp_path / "lt"), "--mode", "occlude"]) == 0
    made = open_sequence(tmp_path / "lt" / "toy-occlude-1s")
    results = tmp_path / "results"
    gt = made.ground_truth
    boxes = np.where(np.isnan(gt), 0.0, gt)  # a box on every frame, on target when visible
    write_trajectory(results / "toy-occlude-1s.txt", Trajectory(boxes), 1.0)
    assert main(["score", str(tmp_path / "lt" / "toy-occlude-1s"), str(results)]) == 0
    out = capsys.readouterr().out
    assert "long-term" in out and "summary_longterm.csv" in out
    document = json.loads((results / "summary_longterm.json").read_text())
    (row,) = document["sequences"]
    assert row["absent_frames"] == 30 and row["returns"] == 1 and row["delays"] == [0]
    assert row["absent_empty_rate"] == 0.0 and row["false_reacquisitions"] == 1  # it never said "lost"
    assert row["recall"] == pytest.approx(1.0) and document["overall"]["f_score"] == pytest.approx(
        2 * (119 / 149) / (1 + 119 / 149))


def test_one_real_sequence_plans_and_scores_without_its_absent_frames():
    source = open_sequence(need_data("sequences", "Crossing"))
    plan = plan_longterm(source, LongTermOptions(absence_s=1.0))
    assert plan.absence == (40, 69) and plan.size == (216, 144)
    np.testing.assert_allclose(plan.ground_truth, expected_truth(source.ground_truth, plan.offsets, plan.size))
    made = dataclasses.replace(source, ground_truth=plan.ground_truth, visible=None)
    score = score_one_pass(made, Trajectory(np.nan_to_num(plan.ground_truth)))
    assert score.scored_frames == len(source) - 30 and score.auc == pytest.approx(20 / 21)
