"""``ocean-eval bag ...``: make a rosbag2 from a sequence, replay it through the node, score it, list its topics.

The sub-commands of ``ocean-eval bag`` (see :mod:`ocean_ros.eval.cli` for the whole tool).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ocean_ros.eval.cli import (
    UsageError,
    _add_summary_options,
    _add_tracker_options,
    _emit_summary,
    _progress,
    _resolve_weights,
    parse_frames,
    parse_param,
)


def build_bag_parsers(commands: Any) -> None:
    """Add make, replay, score and info to the ``bag`` sub-parsers."""
    from ocean_ros.eval import bag_io

    make = commands.add_parser("make", help="write a bag (images, ground truth, init) from a sequence")
    make.add_argument("sequence", type=Path, help="sequence folder (any supported layout)")
    make.add_argument("bag", type=Path, help="bag folder to create")
    make.add_argument("--storage", default="mcap", choices=bag_io.STORAGES)
    make.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage instead of Image")
    make.add_argument("--format", default="jpeg", choices=("jpeg", "png"),
                      help="compressed format (JPEG frames are stored as they are on disk)")
    make.add_argument("--jpeg-quality", type=int, default=95)
    make.add_argument("--fps", type=float, default=30.0, help="frame rate of the stamps (frames per second)")
    make.add_argument("--start", type=float, default=bag_io.DEFAULT_START_NS / 1e9, help="first stamp (s)")
    make.add_argument("--frame-id", default="camera", help="header.frame_id of every message")
    make.add_argument("--image-topic", help="default /camera/image_raw (+ /compressed)")
    make.add_argument("--gt-topic", default=bag_io.DEFAULT_GT_TOPIC)
    make.add_argument("--init-topic", default=bag_io.DEFAULT_INIT_TOPIC)
    make.add_argument("--target-id", default="target")
    make.add_argument("--label", default="")
    make.add_argument("--frames", metavar="START:STOP", help="only these frames (0-based)")
    make.add_argument("--target", type=int, help="target number of a multi-target OTB folder")
    make.add_argument("--layout", choices=("DTB70",))
    _add_summary_options(make)

    replay = commands.add_parser("replay", help="play a bag through a fresh ocean_tracker node and score it")
    replay.add_argument("bag", type=Path)
    _add_tracker_options(replay)
    pacing = replay.add_mutually_exclusive_group()
    pacing.add_argument("--rate", type=float, default=1.0, help="real-time factor (1.0 = the bag's frame rate)")
    pacing.add_argument("--lockstep", action="store_true",
                        help="as fast as the node answers: each frame waits for the previous frame's output")
    replay.add_argument("--image-topic", help="the bag's image topic (default: its only Image/CompressedImage)")
    replay.add_argument("--gt-topic", help="the bag's ground-truth Detection2DArray topic")
    replay.add_argument("--init-topic", help="the bag's TargetInit topic (default: its only one)")
    replay.add_argument("--namespace", default="/ocean_eval", help="namespace of the node started for the replay")
    replay.add_argument("--lost-threshold", type=float, default=0.0,
                        help="node lost_threshold; 0 (default) reports a box on every frame, as benchmarks need")
    replay.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter (repeatable)")
    replay.add_argument("--no-loopback", action="store_true",
                        help="for real deployments: keep this shell's DDS settings instead of the loopback-only "
                             "environment (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, SHM + 127.0.0.1 profile)")
    replay.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one frame's output")
    replay.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for the node")
    replay.add_argument("--output", type=Path, default=Path("results/replay"),
                        help="folder for the result file, summary.csv / summary.json and the node's log")
    replay.add_argument("--record", type=Path, help="also write ground truth and the node's outputs to this bag")
    replay.add_argument("--record-storage", default="mcap", choices=bag_io.STORAGES)
    _add_summary_options(replay)

    score = commands.add_parser("score", help="score a bag holding detections and ground truth")
    score.add_argument("bag", type=Path)
    score.add_argument("--gt-topic", help=f"ground-truth Detection2DArray topic (default {bag_io.DEFAULT_GT_TOPIC})")
    score.add_argument("--detections-topic", help=f"tracker output (default {bag_io.DEFAULT_DETECTIONS_TOPIC})")
    score.add_argument("--status-topic", help="TrackerStatus topic for latencies (default: the bag's only one)")
    score.add_argument("--init-topic", help="TargetInit topic naming the first frame (default: the bag's only one)")
    score.add_argument("--image-topic", help="image topic, for the image size (default: the bag's only one)")
    score.add_argument("--output", type=Path, help="folder for summary.csv / summary.json")

    info = commands.add_parser("info", help="list a bag's topics, types and message counts")
    info.add_argument("bag", type=Path)


def cmd_bag_make(args: argparse.Namespace) -> int:
    from ocean_ros.eval.bag_io import BagWriteOptions, make_bag
    from ocean_ros.eval.sequences import open_sequence

    if args.layout:
        from ocean_ros.eval.datasets import read_sequence_folder

        candidates = read_sequence_folder(args.sequence, args.layout)
        sequence = candidates[0] if args.target is None else open_sequence(args.sequence, args.target)
    else:
        sequence = open_sequence(args.sequence, args.target)
    frames = parse_frames(args.frames)
    if frames is not None:
        sequence = sequence.sliced(*frames)
    options = BagWriteOptions(
        storage=args.storage, compressed=args.compressed, compressed_format=args.format,
        jpeg_quality=args.jpeg_quality, fps=args.fps, frame_id=args.frame_id, start_ns=int(round(args.start * 1e9)),
        image_topic=args.image_topic, gt_topic=args.gt_topic, init_topic=args.init_topic,
        target_id=args.target_id, label=args.label,
    )
    bar = _progress(len(sequence), "writing", args)
    try:
        counts = make_bag(sequence, args.bag, options, bar.update)
    finally:
        bar.close()
    print(f"{args.bag} ({args.storage}): " + ", ".join(f"{topic} {n}" for topic, n in counts.items()))
    return 0


def _report_bag_run(run: Any, folder: Path | None, meta: dict[str, Any]) -> None:
    from ocean_ros.eval.bag_scoring import score_bag_run
    from ocean_ros.eval.results import write_times, write_trajectory

    score, extras = score_bag_run(run)
    if folder is not None:
        trajectory = run.trajectory()
        trajectory.boxes[0] = run.ground_truth[0]
        write_trajectory(folder / f"{run.name}.txt", trajectory, run.annotation_offset)
        write_times(folder / "times" / f"{run.name}_time.txt", np.nan_to_num(trajectory.times, nan=0.0))
    _emit_summary([score], {run.name: extras, "OVERALL": extras}, folder, meta)


def cmd_bag_replay(args: argparse.Namespace) -> int:
    from ocean_ros.eval.replay import ReplayOptions, replay_bag

    _resolve_weights(args)
    args.output.mkdir(parents=True, exist_ok=True)
    options = ReplayOptions(
        checkpoint=args.checkpoint.resolve(), preset=args.preset, device=args.device, crop_backend=args.crop_backend,
        online=args.online, lost_threshold=args.lost_threshold, rate=0.0 if args.lockstep else args.rate,
        namespace=args.namespace, image_topic=args.image_topic, gt_topic=args.gt_topic, init_topic=args.init_topic,
        node_params=(("backend", args.backend),) + tuple(parse_param(p) for p in args.param),
        loopback=not args.no_loopback,
        frame_timeout_s=args.timeout, startup_timeout_s=args.startup_timeout,
        log_path=(args.output / "ocean_tracker.log").resolve(), record=args.record,
        record_storage=args.record_storage,
    )
    if args.rate <= 0 and not args.lockstep:
        raise UsageError("--rate must be positive; use --lockstep for as fast as the node answers")
    from ocean_ros.eval.bag_io import bag_topics

    total = sum(t.count for t in bag_topics(args.bag).values() if t.msgtype.startswith("sensor_msgs/msg/"))
    bar = _progress(total, "replaying", args)
    try:
        run = replay_bag(args.bag, options, bar.update)
    finally:
        bar.close()
    meta = {"command": "bag replay", "bag": str(args.bag), "checkpoint": str(args.checkpoint),
            "preset": args.preset, "device": args.device, "crop_backend": args.crop_backend,
            "pacing": "lockstep" if args.lockstep else f"rate {args.rate:g}", "loopback": not args.no_loopback,
            "node_log": str(options.log_path)}
    print(f"node log: {options.log_path}")
    _report_bag_run(run, args.output, meta)
    return 0


def cmd_bag_score(args: argparse.Namespace) -> int:
    from ocean_ros.eval.bag_scoring import read_bag_run

    run = read_bag_run(args.bag, args.gt_topic, args.detections_topic, args.status_topic, args.init_topic,
                       args.image_topic)
    _report_bag_run(run, args.output, {"command": "bag score", "bag": str(args.bag)})
    return 0


def cmd_bag_info(args: argparse.Namespace) -> int:
    from ocean_ros.eval.bag_io import bag_topics

    for info in bag_topics(args.bag).values():
        print(f"{info.topic:40s} {info.msgtype:40s} {info.count}")
    return 0


BAG_HANDLERS = {"make": cmd_bag_make, "replay": cmd_bag_replay, "score": cmd_bag_score, "info": cmd_bag_info}
