"""``ocean_demo``: the tracker node end to end on a real sequence, as a camera and an operator would drive it.

Starts ``ocean_tracker`` as its own process (loopback-only DDS), publishes the sequence's frames at their frame
rate, sends the first acknowledged frame's ground-truth box as the init (stamped with that frame), collects
``~/detections`` and ``~/status``, then writes the boxes (``x,y,w,h`` per frame, 0-based pixels, NaN where the
node published no box) and prints frames, drops, latency and accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ocean_ros.rostools.session import NodeProcess

BUNDLED_SEQUENCE = Path(__file__).resolve().parent.parent / "data" / "Crossing"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ocean_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", default=str(BUNDLED_SEQUENCE), help="OTB or VOT sequence folder "
                        "(default: the bundled Crossing sequence)")
    parser.add_argument("--checkpoint", default=os.environ.get("OCEAN_CHECKPOINT", ""),
                        help="Ocean checkpoint (default: $OCEAN_CHECKPOINT; none: the shipped Ocean-Lite model)")
    parser.add_argument("--preset", default="", help="tracker preset (default: the one stored with the checkpoint; "
                        "OTB2015 suits official TracKit files)")
    parser.add_argument("--random-weights", action="store_true",
                        help="run random ResNet-50 weights instead (plumbing checks; boxes are meaningless)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frame rate, frames per second")
    parser.add_argument("--frames", type=int, help="publish only the first N frames")
    parser.add_argument("--lockstep", action="store_true",
                        help="publish each frame only after the node answered the previous one (no drops; "
                        "measures pure processing latency) instead of at --rate")
    parser.add_argument("--output", default="ocean_demo_boxes.txt", help="boxes file to write")
    parser.add_argument("--node-log", default="ocean_demo_node.log", help="the node's output")
    return parser.parse_args(argv)


def start_node(args: argparse.Namespace, namespace: str, env: dict[str, str]) -> NodeProcess:
    params = {"device": args.device}
    if args.preset:
        params["preset"] = args.preset
    if args.checkpoint:
        params["checkpoint"] = args.checkpoint
    elif args.random_weights:
        params["allow_random_weights"] = "true"
    argv = [sys.executable, "-m", "ocean_ros.ros.tracker_node", "--ros-args", "-r", f"__ns:={namespace}"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={value}"]
    return NodeProcess(argv, env, Path(args.node_log))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ocean_ros.rostools.dds import apply_loopback_environment

    env = apply_loopback_environment()
    from ocean_ros.eval.sequences import open_sequence

    sequence = open_sequence(args.sequence)
    count = len(sequence) if args.frames is None else min(args.frames, len(sequence))
    if not args.checkpoint and args.random_weights:
        print("=" * 78 + "\nRANDOM WEIGHTS (--random-weights): the boxes are meaningless.\n" + "=" * 78)
    elif not args.checkpoint:
        print("weights: the shipped Ocean-Lite model (ocean_ros/models/ocean_lite.pth)")
    namespace = "/ocean_demo"
    node = start_node(args, namespace, env)
    try:
        return run(args, sequence, count, namespace, node)
    finally:
        node.stop(timeout=15)


def run(args, sequence, count, namespace, node) -> int:
    from ocean_ros_msgs.msg import TrackerStatus
    from ocean_ros_msgs.srv import InitTarget
    from rclpy.qos import QoSProfile
    from vision_msgs.msg import Detection2DArray

    from ocean_ros.ros.messages import stamp_to_ns
    from ocean_ros.rostools.camera import CameraPublisher
    from ocean_ros.rostools.session import RosSession

    session = RosSession("ocean_demo_camera")
    peer = session.node
    received: dict[int, tuple[float, Detection2DArray]] = {}
    statuses: dict[int, TrackerStatus] = {}
    lock = threading.Lock()

    def on_detections(msg: Detection2DArray) -> None:
        with lock:
            received[stamp_to_ns(msg.header.stamp)] = (time.monotonic(), msg)

    def on_status(msg: TrackerStatus) -> None:
        with lock:
            statuses[stamp_to_ns(msg.header.stamp)] = msg

    base = f"{namespace}/ocean_tracker"
    peer.create_subscription(Detection2DArray, f"{base}/detections", on_detections, QoSProfile(depth=100))
    peer.create_subscription(TrackerStatus, f"{base}/status", on_status, QoSProfile(depth=100))
    camera = CameraPublisher(peer, f"{namespace}/image")
    init = peer.create_client(InitTarget, f"{base}/init_target")
    try:
        print(f"starting the tracker node (log: {args.node_log}) ...", flush=True)
        if not init.wait_for_service(timeout_sec=120) or not node.alive():
            print(f"the node did not come up; see {args.node_log}", file=sys.stderr)
            return 1
        camera.wait_subscribers(1, timeout=float("inf"))
        pace = "in lockstep with the node" if args.lockstep else f"at {args.rate:g} Hz"
        print(f"publishing {count} frames of {sequence.name} {pace}", flush=True)
        period = 1.0 / args.rate
        sent: dict[int, tuple[int, float]] = {}  # stamp -> (frame index, publish time)
        initialised = False
        next_time = time.monotonic()
        for index in range(count):
            frame = sequence.read(index)
            time.sleep(max(0.0, next_time - time.monotonic()))
            next_time += period
            stamp = camera.now_ns()
            for _attempt in range(5 if args.lockstep else 1):  # lockstep: resend if best effort lost it
                camera.publish(frame, stamp)
                sent[stamp] = (index, time.monotonic())
                if not args.lockstep or wait_for(lambda s=stamp: s in statuses, 10.0, lock, node):
                    break
            if not initialised:
                initialised = send_init(init, sequence, sent, statuses, lock)
            if args.lockstep:
                next_time = time.monotonic()
        time.sleep(1.0)
        deadline = time.monotonic() + 30
        last_stamp = max(sent)
        while last_stamp not in statuses and time.monotonic() < deadline and node.alive():
            time.sleep(0.05)
        return report(args, sequence, sent, received, statuses)
    finally:
        session.close()


def wait_for(condition, timeout: float, lock: threading.Lock, node: NodeProcess) -> bool:
    """Poll ``condition`` (under ``lock``) until true, the timeout, or the node's exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and node.alive():
        with lock:
            if condition():
                return True
        time.sleep(0.002)
    return False


def send_init(client, sequence, sent, statuses, lock) -> bool:
    """Init on the first frame the node has acknowledged (its status arrived), with that frame's ground truth."""
    from ocean_ros_msgs.srv import InitTarget

    from ocean_ros.rostools.session import call_service

    with lock:
        seen = [stamp for stamp in sent if stamp in statuses]
    if not seen:
        return False
    stamp = min(seen)
    index = sent[stamp][0]
    x, y, w, h = (float(v) for v in sequence.ground_truth[index])
    request = InitTarget.Request()
    request.target.header.stamp.sec, request.target.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    request.target.x, request.target.y, request.target.width, request.target.height = x, y, w, h
    request.target.target_id, request.target.label = "target", "demo"
    reply = call_service(client, request, 10.0)
    if reply is None or not reply.accepted:
        print(f"init refused: {reply.reason if reply else 'no answer'}", file=sys.stderr)
        return False
    print(f"init sent on frame {index + 1} (stamp {stamp}) with box {x:.1f},{y:.1f},{w:.1f},{h:.1f}", flush=True)
    return True


def report(args, sequence, sent, received, statuses) -> int:
    from ocean_ros.eval.metrics import auc, precision_at, success_curve
    from ocean_ros.eval.overlap import box_iou, center_error

    boxes = np.full((len(sent), 4), np.nan)
    latencies = []
    for stamp, (index, published) in sent.items():
        if stamp in received:
            arrived, msg = received[stamp]
            latencies.append((arrived - published) * 1000.0)
            if msg.detections:
                bbox = msg.detections[0].bbox
                boxes[index] = (bbox.center.position.x - bbox.size_x / 2, bbox.center.position.y - bbox.size_y / 2,
                                bbox.size_x, bbox.size_y)
    Path(args.output).write_text("".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in boxes))
    tracked = ~np.isnan(boxes[:, 0])
    processed = [s for s in sent if s in statuses]
    last = statuses[max(processed)] if processed else None
    gt = sequence.ground_truth[: len(sent)]
    overlaps = box_iou(np.where(tracked[:, None], boxes, 0.0), gt)
    errors = center_error(np.where(tracked[:, None], boxes, 1e9), gt)
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    print(f"frames published {len(sent)}, processed {len(processed)}, with a box {int(tracked.sum())}, "
          f"dropped by the node {last.frames_dropped if last else 0}, rejected {last.frames_rejected if last else 0}")
    print(f"latency image published -> detections received: p50 {np.percentile(lat, 50):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms")
    print(f"accuracy over published frames (no box = miss): success AUC {auc(success_curve(overlaps)):.3f}, "
          f"precision@20px {precision_at(errors):.3f}")
    print(f"boxes: {Path(args.output).resolve()}  (x,y,w,h per frame, 0-based px; NaN = no box)")
    return 0 if processed else 1


if __name__ == "__main__":
    sys.exit(main())
