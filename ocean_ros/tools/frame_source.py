"""``ocean_frame_source``: publish camera frames as a camera driver would, at a fixed rate.

Frames come from an image folder (a tracking sequence's ``img/`` or ``color/``), or are synthetic test
patterns whose top-left pixels encode the frame index. Stamps are the wall clock at publication; QoS is
sensor data (best effort, depth 1) unless ``--reliable`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ocean_ros.rostools.camera import ENCODINGS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def image_files(folder: Path) -> list[Path]:
    """Image files of a folder in name order; an error naming the folder if there are none."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """An HxWx3 uint8 BGR test pattern; pixel (0,0..3) holds the frame index as little-endian bytes."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (np.arange(width, dtype=np.uint32) * 255 // max(width - 1, 1)).astype(np.uint8)[None, :, None]
    frame[0, :4, 0] = np.frombuffer(int(index).to_bytes(4, "little"), np.uint8)
    return frame


def frames(args: argparse.Namespace) -> Iterator[np.ndarray]:
    """BGR frames to publish, in order, as many as asked for."""
    count = args.count
    if args.images is not None:
        files = image_files(Path(args.images))
        limit = len(files) if count is None else min(count, len(files))
        for path in files[:limit]:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError(f"cannot decode {path}")
            yield frame
        return
    index = 0
    while count is None or index < count:
        yield synthetic_frame(index, args.width, args.height)
        index += 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ocean_frame_source", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="image", help="image topic (default: image)")
    parser.add_argument("--images", help="folder of frames to publish (default: synthetic frames)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument("--count", type=int, help="number of frames (default: all images / unlimited)")
    parser.add_argument("--width", type=int, default=640, help="synthetic frame width, pixels")
    parser.add_argument("--height", type=int, default=480, help="synthetic frame height, pixels")
    parser.add_argument("--encoding", default="rgb8", choices=ENCODINGS, help="image encoding")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id")
    parser.add_argument("--reliable", action="store_true", help="reliable QoS instead of sensor data")
    parser.add_argument(
        "--wait-subscribers", type=int, default=0, help="wait until this many subscribers matched before publishing"
    )
    parser.add_argument("--wait-timeout", type=float, default=30.0, help="seconds to wait for subscribers")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import rclpy

    from ocean_ros.rostools.camera import CameraPublisher

    rclpy.init()
    node = rclpy.create_node("ocean_frame_source")
    camera = CameraPublisher(node, args.topic, encoding=args.encoding, reliable=args.reliable, frame_id=args.frame_id)
    log = node.get_logger()
    try:
        if not camera.wait_subscribers(args.wait_subscribers, args.wait_timeout):
            log.error(f"no {args.wait_subscribers} subscriber(s) on {args.topic} within {args.wait_timeout}s")
            return 3
        period = 1.0 / args.rate
        next_time = time.monotonic()
        sent = 0
        for frame in frames(args):
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            camera.publish(frame)
            sent += 1
            next_time += period
        log.info(f"published {sent} frames on {camera.topic}")
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
