"""Real two-process ROS 2 transport over loopback: frame delivery, ordering, domain isolation."""

from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import console_script, wait_for_publishers

pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")

FRAME_INDEX_BYTES = 4


def frame_index(msg) -> int:
    """Index the synthetic frame source wrote into the first pixel's blue bytes (rgb8: channel 2)."""
    from ocean_ros.ros.image_conversion import image_to_bgr8

    bgr = image_to_bgr8(msg)
    return int.from_bytes(bytes(bgr[0, :FRAME_INDEX_BYTES, 0]), "little")


@pytest.mark.slow
def test_sensor_data_frames_arrive_in_order(ros_session, node_process):
    """640x480 rgb8 at 30 Hz for 5 s, best effort depth 1, publisher in another process: >= 99 % in order."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    session = ros_session("frame_sink")
    sink = session.collector(Image, "image", qos_profile_sensor_data)
    count = 150
    source = node_process(
        [console_script("ocean_frame_source"), "--rate", "30", "--count", str(count),
         "--width", "640", "--height", "480", "--encoding", "rgb8", "--wait-subscribers", "1"]
    )
    assert source.wait(timeout=60) == 0, source.output()
    received = sink.wait_quiet(quiet_s=1.0, timeout=10.0)

    indices = [frame_index(m) for m in received]
    assert len(indices) >= 0.99 * count, f"received {len(indices)} of {count}"
    assert indices == sorted(indices) and len(set(indices)) == len(indices), "frames out of order or duplicated"
    stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in received]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert (received[0].height, received[0].width, received[0].encoding) == (480, 640, "rgb8")
    assert np.diff(stamps).mean() == pytest.approx(1e9 / 30, rel=0.1)


@pytest.mark.slow
def test_domain_id_mismatch_isolates_runs(ros_session, node_process, ros_domain_id):
    """A subscriber in another domain sees neither the publisher nor its frames; one in the same domain does."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    other_domain = ros_domain_id % 100 + 1
    same = ros_session("same_domain", domain_id=ros_domain_id)
    other = ros_session("other_domain", domain_id=other_domain)
    same_sink = same.collector(Image, "image", qos_profile_sensor_data)
    other_sink = other.collector(Image, "image", qos_profile_sensor_data)

    source = node_process(
        [console_script("ocean_frame_source"), "--rate", "20", "--count", "40", "--width", "64", "--height", "48",
         "--wait-subscribers", "1"],
        domain_id=ros_domain_id,
    )
    assert wait_for_publishers(same.node, "/image", timeout=20)
    assert source.wait(timeout=30) == 0, source.output()
    assert len(same_sink.wait_quiet(quiet_s=0.5, timeout=5)) >= 35
    assert other.node.count_publishers("/image") == 0
    assert other_sink.messages == []
