"""``ocean-eval bag make`` -> ``bag replay`` through a real ``ocean_tracker`` process, compared with ``ocean-eval run``.

Every process here uses the loopback-only DDS environment (conftest applies it; the replay applies it to the node).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocean_ros.eval.cli import main
from ocean_ros.eval.results import read_trajectory

pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")
pytestmark = pytest.mark.slow

FRAMES = 15


def overall(folder):
    return json.loads((folder / "summary.json").read_text())["overall"]


def test_lockstep_replay_matches_the_offline_run(sequences_dir, golden_dir, tmp_path):
    checkpoint = str(golden_dir / "ocean_random_seed1.pth")
    bag, offline, replay, record = tmp_path / "bag", tmp_path / "offline", tmp_path / "replay", tmp_path / "record"
    assert main(["bag", "make", str(sequences_dir / "Crossing"), str(bag), "--frames", f"0:{FRAMES}",
                 "--no-progress"]) == 0
    assert main(["run", str(sequences_dir / "Crossing"), "--checkpoint", checkpoint, "--frames", f"0:{FRAMES}",
                 "--output", str(offline), "--name", "ocean", "--no-progress"]) == 0
    code = main(["bag", "replay", str(bag), "--checkpoint", checkpoint, "--lockstep", "--output", str(replay),
                 "--record", str(record), "--timeout", "120", "--no-progress"])
    log = (replay / "ocean_tracker.log").read_text() if (replay / "ocean_tracker.log").exists() else "(no log)"
    assert code == 0, f"replay failed; node log:\n{log[-3000:]}"

    # Both files are written in the dataset's convention (OTB: 1-based), named after the sequence.
    ros = read_trajectory(replay / "Crossing.txt", 1.0).boxes
    core = read_trajectory(offline / "ocean" / "Crossing.txt", 1.0).boxes
    assert ros.shape == core.shape == (FRAMES, 4)
    assert np.abs(ros - core).max() < 0.01, f"replay and offline boxes differ:\n{ros - core}"

    live, reference = overall(replay), overall(offline / "ocean")
    assert live["dropped"] == 0 and live["lost"] == 0 and live["node_dropped"] == 0
    for key in ("auc", "precision", "norm_precision", "success_50", "ao", "sr_50", "sr_75"):
        assert live[key] == pytest.approx(reference[key], abs=1e-6), key
    for key in ("node_ms_p50", "node_ms_p90", "node_ms_p99", "e2e_ms_p50", "e2e_ms_p99"):
        assert live[key] > 0, key

    # The recording (ground truth + what the node published) scores the same without the ROS graph.
    scored = tmp_path / "scored"
    assert main(["bag", "score", str(record), "--output", str(scored)]) == 0
    assert overall(scored)["auc"] == pytest.approx(live["auc"], abs=1e-9)
    assert overall(scored)["dropped"] == 0


def test_compressed_bag_on_another_topic_in_real_time(sequences_dir, golden_dir, tmp_path):
    """JPEG frames under a non-default topic, played at twice the camera rate into a CPU node: it drops frames."""
    bag, replay = tmp_path / "bag", tmp_path / "replay"
    frames = 10
    assert main(["bag", "make", str(sequences_dir / "Crossing"), str(bag), "--frames", f"0:{frames}", "--compressed",
                 "--image-topic", "/front/camera/compressed", "--storage", "sqlite3", "--no-progress"]) == 0
    code = main(["bag", "replay", str(bag), "--checkpoint", str(golden_dir / "ocean_random_seed1.pth"),
                 "--image-topic", "/front/camera/compressed", "--rate", "2.0", "--output", str(replay),
                 "--timeout", "60", "--no-progress"])
    log = (replay / "ocean_tracker.log").read_text() if (replay / "ocean_tracker.log").exists() else "(no log)"
    assert code == 0, f"replay failed; node log:\n{log[-3000:]}"
    live = overall(replay)
    answered = frames - 1 - live["dropped"]
    assert answered >= 1 and live["dropped"] >= 0
    boxes = read_trajectory(replay / "Crossing.txt", 1.0).boxes
    assert np.isfinite(boxes[1:]).all(axis=1).sum() == answered
    assert live["node_ms_p50"] > 0
