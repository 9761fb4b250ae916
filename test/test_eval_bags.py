"""Bags: written from a sequence in each storage and read back; other topic names and compressed images; scoring
a bag that holds detections recorded elsewhere (pure rosbags, no ROS graph)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ocean_ros.eval import bag_types as bt
from ocean_ros.eval.bag_io import (
    DEFAULT_START_NS,
    BagError,
    BagWriteOptions,
    bag_custom_data,
    bag_topics,
    make_bag,
    pick_topic,
    read_messages,
    storage_plugin,
)
from ocean_ros.eval.bag_scoring import read_bag_run, score_bag_run
from ocean_ros.eval.cli import main
from ocean_ros.eval.results import Trajectory
from ocean_ros.eval.scoring import score_one_pass
from ocean_ros.eval.sequences import open_sequence

FRAMES = 5


@pytest.fixture(scope="module")
def crossing(sequences_dir):
    return open_sequence(sequences_dir / "Crossing").sliced(0, FRAMES)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_raw_bag_reads_back_with_the_same_messages_and_stamps(crossing, tmp_path, storage):
    bag = tmp_path / "bag"
    counts = make_bag(crossing, bag, BagWriteOptions(storage=storage, fps=25.0, label="person"))
    assert counts == {"/camera/image_raw": FRAMES, "/ground_truth": FRAMES, "/ocean_tracker/init": 1}
    files = [p.suffix for p in bag.iterdir()]
    assert (".mcap" if storage == "mcap" else ".db3") in files
    topics = bag_topics(bag)
    assert {t: (i.msgtype, i.count) for t, i in topics.items()} == {
        "/camera/image_raw": (bt.IMAGE, FRAMES), "/ground_truth": (bt.DETECTIONS, FRAMES),
        "/ocean_tracker/init": (bt.TARGET_INIT, 1),
    }
    expected_stamps = [DEFAULT_START_NS + i * 40_000_000 for i in range(FRAMES)]  # 25 fps
    images = list(read_messages(bag, "/camera/image_raw"))
    assert [t for t, _ in images] == expected_stamps
    for i, (_, msg) in enumerate(images):
        assert bt.stamp_ns(msg.header.stamp) == expected_stamps[i] and msg.header.frame_id == "camera"
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("bgr8", 360, 240, 360 * 3)
        np.testing.assert_array_equal(np.asarray(msg.data).reshape(240, 360, 3), crossing.read(i))
    truth = list(read_messages(bag, "/ground_truth"))
    for i, (t, msg) in enumerate(truth):
        assert t == expected_stamps[i] and bt.stamp_ns(msg.header.stamp) == expected_stamps[i]
        np.testing.assert_allclose(bt.detection_box(msg), crossing.ground_truth[i], atol=1e-9)
        assert msg.detections[0].results[0].hypothesis.class_id == "person"
    ((t, init),) = list(read_messages(bag, "/ocean_tracker/init"))
    assert t > expected_stamps[0] and bt.stamp_ns(init.header.stamp) == expected_stamps[0]
    np.testing.assert_allclose([init.x, init.y, init.width, init.height], crossing.ground_truth[0])
    assert bag_custom_data(bag)["sequence"] == "Crossing" and bag_custom_data(bag)["annotation_offset"] == "1"


def test_compressed_bag_under_another_topic_keeps_jpeg_bytes(crossing, tmp_path):
    bag = tmp_path / "bag"
    make_bag(crossing, bag, BagWriteOptions(compressed=True, image_topic="/front/cam/compressed"))
    topics = bag_topics(bag)
    assert topics["/front/cam/compressed"].msgtype == bt.COMPRESSED_IMAGE
    for i, (_, msg) in enumerate(read_messages(bag, "/front/cam/compressed")):
        assert msg.format == "jpeg"
        assert bytes(msg.data) == crossing.frames[i].read_bytes()  # the file as it is: decodes to the same frame
    assert pick_topic(topics, (bt.IMAGE, bt.COMPRESSED_IMAGE), None, "images") == "/front/cam/compressed"
    with pytest.raises(BagError, match="no topic /camera/image_raw .* it has: .*/front/cam/compressed"):
        pick_topic(topics, (bt.IMAGE,), "/camera/image_raw", "images")
    with pytest.raises(BagError, match="is vision_msgs/msg/Detection2DArray, not"):
        pick_topic(topics, (bt.IMAGE,), "/ground_truth", "images")


def test_png_compressed_bag_is_lossless(crossing, tmp_path):
    bag = tmp_path / "bag"
    make_bag(crossing.sliced(0, 2), bag, BagWriteOptions(compressed=True, compressed_format="png", storage="sqlite3"))
    (_, msg), _ = list(read_messages(bag, "/camera/image_raw/compressed"))
    assert msg.format == "png"
    np.testing.assert_array_equal(cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR), crossing.read(0))


def test_make_refuses_an_existing_folder_and_unknown_storage(crossing, tmp_path):
    with pytest.raises(BagError, match="exists"):
        make_bag(crossing, tmp_path, BagWriteOptions())
    with pytest.raises(BagError, match="unknown bag storage"):
        storage_plugin("rosbag1")


def write_recorded_bag(path, stamps, gt, predictions, storage="sqlite3", with_status=True, extra_detections=False):
    """A bag as ``ros2 bag record`` would leave it: ground truth and tracker outputs under other topic names."""
    from rosbags.rosbag2 import Writer

    store = bt.typestore()
    with Writer(path, version=9, storage_plugin=storage_plugin(storage)) as writer:
        gt_conn = writer.add_connection("/eval/truth", bt.DETECTIONS, typestore=store)
        det_conn = writer.add_connection("/cam1/tracker/boxes", bt.DETECTIONS, typestore=store)
        other = writer.add_connection("/other/detector", bt.DETECTIONS, typestore=store) if extra_detections else None
        status_conn = writer.add_connection("/cam1/tracker/status", bt.TRACKER_STATUS, typestore=store)
        for i, ns in enumerate(stamps):
            writer.write(gt_conn, ns, store.serialize_cdr(bt.detection_array(gt[i], ns, "cam", "t", ""), bt.DETECTIONS))
            if predictions[i] is None:
                continue  # the tracker dropped this frame
            msg = bt.detection_array(predictions[i], ns, "cam", "t", "", score=0.7)
            writer.write(det_conn, ns + 5_000_000, store.serialize_cdr(msg, bt.DETECTIONS))
            if other is not None:
                writer.write(other, ns, store.serialize_cdr(msg, bt.DETECTIONS))
            if with_status:
                status = store.types[bt.TRACKER_STATUS](
                    header=bt.header(ns, "cam"), state=1, score=0.7, target_id="t", label="",
                    init_stamp=bt.stamp(stamps[0]), online_enabled=False, online_updated=False, online_flag="",
                    searching=False, reacquired=False, redetect_ms=0.0,
                    convert_ms=1.0, crop_ms=2.0, network_ms=3.0, post_ms=1.0, online_ms=0.0, total_ms=10.0 + i,
                    frames_processed=i, frames_dropped=2, frames_rejected=0, losses=0, reacquisitions=0,
                )
                writer.write(status_conn, ns + 6_000_000, store.serialize_cdr(status, bt.TRACKER_STATUS))


def test_score_a_bag_recorded_elsewhere_with_topic_options(tmp_path):
    stamps = [2_000_000_000 + i * 33_000_000 for i in range(8)]
    gt = np.array([[10.0 + i, 20.0, 30.0, 40.0] for i in range(8)])
    gt[5] = np.nan  # no ground truth on this frame
    predictions = [gt[0], gt[1] + [3, 0, 0, 0], None, gt[3] + [100, 0, 0, 0], gt[4], gt[4], None, gt[7]]
    bag = tmp_path / "recorded"
    write_recorded_bag(bag, stamps, gt, predictions)

    run = read_bag_run(bag, gt_topic="/eval/truth", detections_topic="/cam1/tracker/boxes")
    assert run.answered.tolist() == [True, True, False, True, True, True, False, True]
    score, extras = score_bag_run(run)
    boxes = np.array([np.full(4, np.nan) if p is None else p for p in predictions])
    expected = score_one_pass(run.sequence(), Trajectory(boxes))
    assert score.auc == pytest.approx(expected.auc) and score.precision == pytest.approx(expected.precision)
    assert score.scored_frames == 7 and score.missing_boxes == 2
    assert extras["dropped"] == 2 and extras["node_dropped"] == 2
    assert extras["node_ms_p50"] == pytest.approx(np.percentile([11, 13, 14, 15, 17], 50))

    out = tmp_path / "report"
    assert main(["bag", "score", str(bag), "--gt-topic", "/eval/truth", "--detections-topic",
                 "/cam1/tracker/boxes", "--output", str(out)]) == 0
    document = json.loads((out / "summary.json").read_text())
    assert document["overall"]["auc"] == pytest.approx(expected.auc)
    assert (out / "recorded.txt").is_file()


def test_bag_score_needs_options_when_topics_are_ambiguous(tmp_path, capsys):
    stamps = [1_000_000_000, 1_033_000_000]
    gt = np.array([[1.0, 2, 3, 4], [1.0, 2, 3, 4]])
    bag = tmp_path / "two"
    write_recorded_bag(bag, stamps, gt, list(gt), with_status=False, extra_detections=True)
    assert main(["bag", "score", str(bag), "--gt-topic", "/eval/truth"]) == 2
    assert "several topics could be the detections" in capsys.readouterr().err
    assert main(["bag", "score", str(bag), "--gt-topic", "/eval/truth", "--detections-topic", "/other/detector"]) == 0
    assert main(["bag", "score", str(tmp_path / "missing")]) == 2
