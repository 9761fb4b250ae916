"""``ocean-eval`` end to end on a few real frames: run (core tracker), score, plot, bag make; errors and flags."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from ocean_ros.eval.cli import main, parse_frames
from ocean_ros.eval.results import read_trajectory

FRAMES = 6


@pytest.fixture(scope="module")
def crossing_run(sequences_dir, golden_dir, tmp_path_factory):
    """``ocean-eval run`` on the first frames of Crossing with the reference (random) weights."""
    out = tmp_path_factory.mktemp("run")
    argv = ["run", str(sequences_dir / "Crossing"), "--checkpoint", str(golden_dir / "ocean_random_seed1.pth"),
            "--frames", f"0:{FRAMES}", "--output", str(out), "--name", "ocean", "--no-progress"]
    assert main(argv) == 0
    return out / "ocean"


def test_run_writes_results_in_the_dataset_convention_and_a_summary(crossing_run, sequences_dir, golden_dir):
    import torch

    from ocean_ros.core.checkpoint import load_model
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.core.tracker import OceanTracker
    from ocean_ros.eval.sequences import open_sequence

    lines = (crossing_run / "Crossing.txt").read_text().splitlines()
    assert len(lines) == FRAMES
    gt_first = (sequences_dir / "Crossing" / "groundtruth_rect.txt").read_text().split()[:4]
    assert [float(v) for v in lines[0].split(",")] == [float(v) for v in gt_first]  # 1-based, like the file
    assert len((crossing_run / "times" / "Crossing_time.txt").read_text().split()) == FRAMES

    # the boxes are the core tracker's, initialised on the 0-based first box
    sequence = open_sequence(sequences_dir / "Crossing")
    net, _ = load_model(golden_dir / "ocean_random_seed1.pth", device="cpu", dtype=torch.float32)
    tracker = OceanTracker(net, TrackerConfig.from_preset("OTB2015", crop_backend="opencv"), "cpu")
    tracker.initialize(sequence.read(0), tuple(sequence.ground_truth[0]))
    expected = [tracker.track(sequence.read(i)).box_xywh for i in range(1, 3)]
    np.testing.assert_allclose(read_trajectory(crossing_run / "Crossing.txt", 1.0).boxes[1:3], expected, atol=1e-3)

    document = json.loads((crossing_run / "summary.json").read_text())
    assert document["meta"]["preset"] == "OTB2015" and document["meta"]["frames"] == f"0:{FRAMES}"
    (seq,) = document["sequences"]
    assert seq["name"] == "Crossing" and seq["frames"] == FRAMES and len(seq["success_curve"]) == 21
    assert 0.0 <= document["overall"]["auc"] <= 1.0 and document["overall"]["fps"] > 0
    rows = list(csv.DictReader((crossing_run / "summary.csv").open()))
    assert [r["name"] for r in rows] == ["Crossing", "OVERALL"]
    assert float(rows[1]["auc"]) == pytest.approx(document["overall"]["auc"])


def test_score_reproduces_the_run_summary(crossing_run, sequences_dir, tmp_path, capsys):
    assert main(["score", str(sequences_dir / "Crossing"), str(crossing_run), "--frames", f"0:{FRAMES}",
                 "--output", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "AUC" in table and "P@20" in table and "OVERALL" in table
    ours = json.loads((tmp_path / "summary.json").read_text())["overall"]
    theirs = json.loads((crossing_run / "summary.json").read_text())["overall"]
    for key in ("auc", "precision", "norm_precision", "ao", "sr_50", "sr_75"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-4)  # files hold 4 decimals


def test_plot_draws_curves_and_renders_a_gif(crossing_run, sequences_dir, tmp_path):
    png, gif = tmp_path / "curves.png", tmp_path / "crossing.gif"
    assert main(["plot", str(sequences_dir / "Crossing"), str(crossing_run), str(crossing_run), "--names", "a", "b",
                 "--frames", f"0:{FRAMES}", "-o", str(png), "--video", str(gif), "--scale", "0.5"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames == FRAMES and image.size == (180, 120)


def test_online_flag_reaches_the_core(sequences_dir, golden_dir, tmp_path, capsys, monkeypatch):
    """--online becomes TrackerConfig(online=True); the tracker factory refuses it for offline weights, and the
    tool reports that in one line."""
    from ocean_ros.core import build

    seen = {}
    original = build.require_parts

    def spy(config, **parts):
        seen["online"], seen["align"] = config.online, config.align
        return original(config, **parts)

    monkeypatch.setattr(build, "require_parts", spy)
    argv = ["run", str(sequences_dir / "Crossing"), "--checkpoint", str(golden_dir / "ocean_random_seed1.pth"),
            "--frames", "0:3", "--preset", "VOT2019", "--online", "--output", str(tmp_path), "--no-progress"]
    assert main(argv) == 2
    assert seen == {"online": True, "align": False}
    err = capsys.readouterr().err
    assert "no online classifier" in err and "Traceback" not in err


def test_errors_are_reported_without_tracebacks(tmp_path, capsys, sequences_dir):
    assert main(["score", str(tmp_path), str(tmp_path)]) == 2
    assert "holds no sequence of a known layout" in capsys.readouterr().err
    assert main(["score", str(sequences_dir / "Crossing"), str(tmp_path)]) == 2
    assert "no result for sequence Crossing" in capsys.readouterr().err
    assert main(["bag", "make", str(sequences_dir / "Crossing"), str(tmp_path / "b"), "--frames", "1-2"]) == 2
    assert "START:STOP" in capsys.readouterr().err
    assert parse_frames("3:") == (3, None) and parse_frames(":7") == (0, 7)


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "ocean_ros.eval.cli", "bag", "replay", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--lockstep", "--rate", "--no-loopback", "--image-topic", "--record", "real deployments"):
        assert option in result.stdout


def test_validation_run_writes_confidence_groups_and_scores_back(sequences_dir, tmp_path, monkeypatch, capsys):
    """``run --validation`` on a data root holding one sequence per folder (shipped model, a few frames): one-pass
    on the VOT folder too, results per folder with confidence files, mean rows per folder; ``score --validation``
    gives the same summary from the files."""
    from conftest import need_data

    root = tmp_path / "data"
    (root / "sequences").mkdir(parents=True)
    (root / "validation").mkdir()
    (root / "sequences" / "Crossing").symlink_to(sequences_dir / "Crossing")
    (root / "validation" / "tiger").symlink_to(need_data("validation", "tiger"))
    monkeypatch.setenv("OCEAN_ROS_DATA", str(root))
    out = tmp_path / "out"
    assert main(["run", "--validation", "--frames", "0:5", "--output", str(out), "--name", "lite",
                 "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "mean sequences (1)" in table and "mean validation (1)" in table and "worst:" in table
    confidence = (out / "lite" / "sequences" / "confidence" / "Crossing_confidence.txt").read_text().split()
    assert len(confidence) == 5 and float(confidence[0]) == 1.0 and all(0 <= float(c) <= 1 for c in confidence)
    assert (out / "lite" / "validation" / "tiger.txt").is_file()  # one-pass, not baseline/
    run_doc = json.loads((out / "lite" / "summary.json").read_text())
    assert run_doc["meta"]["protocol"] == "one-pass" and set(run_doc["groups"]) == {"sequences", "validation"}
    assert len(run_doc["sequences"][0]["frame_score"]) == 5
    assert main(["score", "--validation", str(out / "lite"), "--frames", "0:5", "--output", str(tmp_path / "s")]) == 0
    scored = json.loads((tmp_path / "s" / "summary.json").read_text())
    for key in ("auc", "precision", "lost_frames"):
        assert scored["overall"][key] == pytest.approx(run_doc["overall"][key], abs=1e-4)
    assert [s["frame_score"] for s in scored["sequences"]] == [s["frame_score"] for s in run_doc["sequences"]]
