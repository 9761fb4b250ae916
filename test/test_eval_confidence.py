"""Confidence AUROC, lost-threshold choice and lost spans by hand; their place in scores, files and tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ocean_ros.eval.confidence import auroc, balanced_accuracy, choose_lost_threshold, confidence_auroc
from ocean_ros.eval.lost_spans import format_spans, lost_frame_count, lost_spans
from ocean_ros.eval.results import Trajectory, confidence_path, load_result, write_confidence, write_trajectory
from ocean_ros.eval.sequences import Sequence

# on-target scores 0.9, 0.5, 0.3 and off-target 0.5, 0.1; one frame in between, one without score, one without IoU
SCORES = np.array([0.9, 0.5, 0.3, 0.5, 0.1, 0.7, np.nan, 0.2])
IOUS = np.array([0.6, 0.5, 0.9, 0.05, 0.0, 0.3, 0.8, np.nan])


def test_auroc_by_hand_ties_count_half():
    # pairs (pos, neg): (.9,.5) 1, (.9,.1) 1, (.5,.5) 1/2, (.5,.1) 1, (.3,.5) 0, (.3,.1) 1 -> 4.5 / 6
    assert auroc(np.array([0.9, 0.5, 0.3]), np.array([0.5, 0.1])) == pytest.approx(0.75)
    assert confidence_auroc(SCORES, IOUS) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == pytest.approx(0.5)
    assert auroc(np.array([0.2]), np.array([0.3, 0.4])) == 0.0


def test_auroc_of_an_empty_class_is_nan():
    assert math.isnan(auroc(np.array([]), np.array([0.1])))
    assert math.isnan(auroc(np.array([0.1]), np.array([])))
    assert math.isnan(confidence_auroc(np.array([0.9, 0.8]), np.array([0.7, 0.6])))  # no off-target frame


def test_lost_threshold_maximises_balanced_accuracy():
    # candidates between distinct scores .1 .3 .5 .9: t=.2 keeps all on (TPR 1) and drops .1 (TNR 1/2) -> 0.75;
    # t=.4: 2/3 and 1/2; t=.7: 1/3 and 1 -> 0.667; beyond the ends 0.5
    choice = choose_lost_threshold(SCORES, IOUS)
    assert choice.threshold == pytest.approx(0.2)
    assert choice.balanced_accuracy == pytest.approx(0.75)
    assert (choice.on_frames, choice.off_frames) == (3, 2)
    assert balanced_accuracy(SCORES, IOUS, 0.7) == pytest.approx(2 / 3)
    assert math.isnan(choose_lost_threshold(np.array([0.5]), np.array([0.9])).threshold)


def test_lost_spans_need_ten_zero_frames_and_nan_ends_a_span():
    ious = np.concatenate([[1.0], np.zeros(10), [0.5], np.zeros(9), [0.3, np.nan], np.zeros(12)])
    spans = lost_spans(ious)
    assert spans == [(1, 10), (23, 34)]
    assert lost_frame_count(spans) == 22 and format_spans(spans) == "1-10 23-34"
    assert lost_spans(np.concatenate([np.zeros(5), [np.nan], np.zeros(5)])) == []
    assert lost_spans(np.zeros(10)) == [(0, 9)]


def _sequence(n: int) -> Sequence:
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (n, 1))
    return Sequence("toy", tuple(Path(f"{i}.jpg") for i in range(n)), gt, "OTB", 1.0, resolution=(100, 100))


def test_one_pass_score_holds_lost_spans_and_auroc_and_the_summary_pools_them():
    from ocean_ros.eval.report import format_table, summary_document
    from ocean_ros.eval.scoring import score_one_pass, summarize

    n = 30
    seq = _sequence(n)
    boxes = np.tile([10.0, 10.0, 20.0, 20.0], (n, 1))
    boxes[5:17] = [60.0, 60.0, 20.0, 20.0]  # 12 frames off the target
    scores = np.full(n, 0.9)
    scores[5:17] = 0.2
    scores[17] = 0.1  # on target but low: one of 12 * 18 pairs the wrong way
    score = score_one_pass(seq, Trajectory(boxes, None, None, scores))
    assert score.lost_spans == [(5, 16)] and score.lost_frames == 12
    assert score.conf_auroc == pytest.approx(1 - 12 / (17 * 12))  # frame 0 (the init) left out: 17 on frames
    assert score.as_dict()["lost_spans"] == "5-16"
    assert score.as_dict(curves=True)["lost_spans"] == [[5, 16]]
    assert len(score.as_dict(curves=True)["frame_score"]) == n

    other = score_one_pass(seq, Trajectory(np.tile([10.0, 10.0, 20.0, 20.0], (n, 1)), None, None, np.ones(n)))
    summary = summarize([score, other])
    assert summary.lost_frames == 12
    assert summary.conf_auroc == pytest.approx(1 - 12 / (46 * 12))  # other's 29 frames at 1.0 all beat 0.2
    groups = {"a": summarize([score]), "b": summarize([other])}
    table = format_table([score, other], summary, None, groups)
    assert "mean a (1)" in table and "mean b (1)" in table and "5-16" in table and "AUROC" in table
    assert table.splitlines()[-1].startswith("worst: toy")
    document = summary_document([score, other], summary, None, {}, groups)
    assert document["groups"]["a"]["lost_frames"] == 12 and document["worst"]["name"] == "toy"


def test_confidence_files_round_trip_beside_the_boxes(tmp_path):
    boxes = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], [np.nan] * 4])
    scores = np.array([1.0, 0.25, np.nan])
    write_trajectory(tmp_path / "toy.txt", Trajectory(boxes), 1.0)
    write_confidence(confidence_path(tmp_path, "toy", "OTB"), scores)
    assert (tmp_path / "confidence" / "toy_confidence.txt").read_text().splitlines()[2] == "nan"
    loaded = load_result(tmp_path, "toy", 1.0)
    np.testing.assert_array_equal(loaded.scores, scores)
    assert confidence_path(tmp_path, "toy", "GOT-10k") == tmp_path / "toy" / "toy_confidence.txt"
    assert confidence_path(tmp_path, "toy", "VOT-supervised").name == "toy_001_confidence.value"


def test_validation_flag_resolves_both_folders_from_the_data_root(tmp_path, monkeypatch, capsys):
    from ocean_ros.eval.cli import main
    from ocean_ros.eval.validation_set import validation_paths

    monkeypatch.setenv("OCEAN_ROS_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="OCEAN_ROS_DATA"):
        validation_paths()
    (tmp_path / "sequences").mkdir()
    (tmp_path / "validation").mkdir()
    assert validation_paths() == [tmp_path / "sequences", tmp_path / "validation"]
    assert main(["run", "--no-progress"]) == 2
    assert "--validation" in capsys.readouterr().err
    assert main(["score", "--validation", str(tmp_path), str(tmp_path)]) == 2
    assert "either DATASET RESULTS or --validation" in capsys.readouterr().err
