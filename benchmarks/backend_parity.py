#!/usr/bin/env python3
"""Do the graph backends track as torch does? Trajectory agreement on whole sequences, measured side by side.

1. The shipped model (its own preset) on the 11 validation sequences: for each graph backend, the mean IoU
   between its trajectory and torch's per sequence and over all frames, and the success AUC of both against the
   ground truth (one-pass, every frame after the first).
2. The golden runs (TracKit reference, random ResNet-50 weights): the largest box difference between the
   graph-backend tracker and torch over the frames where torch follows TracKit within 0.01 px.

    python benchmarks/backend_parity.py                          # onnxruntime vs torch, both parts
    python benchmarks/backend_parity.py --backends onnxruntime openvino --online off --json parity.json
    python benchmarks/backend_parity.py --skip-golden --sequences traffic bag

Trackers run frame by frame in one loop, the graph backends export the checkpoint on first use (cache).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ocean_ros.core.build import build_from_config, tracker_config
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.geometry import polygon_to_xywh
from ocean_ros.core.network import Weights, read_weights
from ocean_ros.core.tracker import OceanTracker
from ocean_ros.eval.metrics import auc, success_curve
from ocean_ros.eval.overlap import box_iou
from ocean_ros.eval.sequences import open_sequence
from ocean_ros.eval.validation_set import data_root, validation_paths
from ocean_ros.models import DEFAULT_MODEL

GOLDEN_RUNS = {  # run -> (sequence, image folder, preset); align follows the preset
    "Crossing_OTB2015": ("Crossing", "img", "OTB2015"),
    "bag_VOT2019_align": ("bag", "color", "VOT2019"),
    "Surfing06_LASOT": ("Surfing06", "img", "LASOT"),
    "ball1_VOT2018_align": ("ball1", "color", "VOT2018"),
}
FOLLOW_PX = 0.01


def trackers_for(weights: Weights, config: TrackerConfig, backends: list[str]) -> dict[str, OceanTracker]:
    """One CPU tracker per backend (torch first), all with ``config`` but for the runtime."""
    return {backend: build_from_config(weights, config.replace(backend=backend), "cpu")
            for backend in ["torch", *backends]}


def validation_part(args) -> dict:
    overrides = {"on": {"online": True, "align": False}, "off": {"online": False}, "preset": {}}[args.online]
    weights = read_weights(args.checkpoint)
    config = tracker_config(weights, args.preset, **overrides)
    trackers = trackers_for(weights, config, args.backends)
    folders = sorted(p for root in validation_paths() for p in root.iterdir() if p.is_dir())
    if args.sequences:
        folders = [p for p in folders if p.name in args.sequences]
    rows, all_ious = [], {b: [] for b in args.backends}
    for folder in folders:
        seq = open_sequence(folder)
        n = len(seq) if not args.frames else min(len(seq), args.frames)
        bound = seq.image_size()
        boxes = {b: np.full((n, 4), np.nan) for b in trackers}
        init = tuple(float(v) for v in seq.ground_truth[0])
        frame = seq.read(0)
        for backend, tracker in trackers.items():
            tracker.initialize(frame, init)
            boxes[backend][0] = init
        for i in range(1, n):
            frame = seq.read(i)
            for backend, tracker in trackers.items():
                boxes[backend][i] = tracker.track(frame).box_xywh
        gt = seq.ground_truth[1:n]
        valid = np.all(np.isfinite(gt), axis=1)
        row = {"sequence": folder.name, "frames": n,
               "auc": {b: auc(success_curve(box_iou(boxes[b][1:][valid], gt[valid], bound))) for b in trackers}}
        row["iou_vs_torch"] = {}
        for backend in args.backends:
            ious = box_iou(boxes[backend][1:], boxes["torch"][1:], bound)
            row["iou_vs_torch"][backend] = float(np.mean(ious))
            all_ious[backend].append(ious)
        rows.append(row)
        print(f"{folder.name:<12} {n:4d} frames  AUC " + "  ".join(f"{b} {row['auc'][b]:.4f}" for b in trackers)
              + "  mean IoU vs torch " + "  ".join(f"{b} {v:.5f}" for b, v in row["iou_vs_torch"].items()),
              flush=True)
    summary = {"preset": config.preset, "online": config.online, "sequences": rows, "mean": {}}
    mean_auc = {b: float(np.mean([r["auc"][b] for r in rows])) for b in trackers}
    for backend in args.backends:
        frames = np.concatenate(all_ious[backend])
        summary["mean"][backend] = {
            "iou_vs_torch_frames": float(np.mean(frames)),
            "iou_vs_torch_sequences": float(np.mean([r["iou_vs_torch"][backend] for r in rows])),
            "min_iou_vs_torch": float(np.min(frames)),
            "auc": mean_auc[backend], "auc_torch": mean_auc["torch"],
            "auc_difference": abs(mean_auc[backend] - mean_auc["torch"]),
            "max_sequence_auc_difference": max(abs(r["auc"][backend] - r["auc"]["torch"]) for r in rows),
        }
        m = summary["mean"][backend]
        print(f"{backend}: mean IoU vs torch {m['iou_vs_torch_frames']:.5f} (frames) "
              f"{m['iou_vs_torch_sequences']:.5f} (sequences), min {m['min_iou_vs_torch']:.4f}; mean AUC "
              f"{m['auc']:.4f} vs torch {m['auc_torch']:.4f} (difference {m['auc_difference']:.4f}, largest per "
              f"sequence {m['max_sequence_auc_difference']:.4f})", flush=True)
    return summary


def _initial_box(folder: Path) -> tuple[float, ...]:
    gt_file = next(folder.glob("groundtruth*.txt"))
    first = gt_file.read_text().splitlines()[0].replace("\t", ",").replace(" ", ",")
    values = [float(v) for v in first.split(",") if v]
    return polygon_to_xywh(values) if len(values) == 8 else tuple(values)


def golden_part(args) -> dict:
    golden = data_root() / "golden"
    weights = read_weights(golden / "ocean_random_seed1.pth")
    results = {}
    for run, (name, images, preset) in GOLDEN_RUNS.items():
        config = TrackerConfig.from_preset(preset, crop_backend="opencv")
        trackers = trackers_for(weights, config, args.backends)
        ref = np.loadtxt(golden / f"{run}.txt", delimiter=",")
        frames = sorted((data_root() / "sequences" / name / images).glob("*.jpg"))
        import cv2

        first = cv2.imread(str(frames[0]))
        for tracker in trackers.values():
            tracker.initialize(first, _initial_box(data_root() / "sequences" / name))
        worst = {b: 0.0 for b in args.backends}
        within = {b: 0 for b in args.backends}  # followed frames where the backend is within FOLLOW_PX of torch
        leaves = {b: None for b in args.backends}  # first such frame where it is not
        followed, departed_at = 0, None
        for k in range(1, len(frames)):
            image = cv2.imread(str(frames[k]))
            boxes = {b: np.array(t.track(image).box_xywh) for b, t in trackers.items()}
            if np.abs(boxes["torch"] - ref[k]).max() > FOLLOW_PX:
                departed_at = departed_at or k + 1
                continue
            followed += 1
            for backend in args.backends:
                diff = float(np.abs(boxes[backend] - boxes["torch"]).max())
                worst[backend] = max(worst[backend], diff)
                within[backend] += diff <= FOLLOW_PX
                if diff > FOLLOW_PX and leaves[backend] is None:
                    leaves[backend] = k + 1
        results[run] = {"frames": len(frames) - 1, "torch_follows_trackit": followed,
                        "torch_first_departure": departed_at, "max_px_vs_torch": worst,
                        "within_px_of_torch": within, "first_frame_beyond_px": leaves}
        print(f"{run:<22} torch follows TracKit on {followed}/{len(frames) - 1} frames; there, within {FOLLOW_PX} px "
              "of torch: " + "  ".join(
                  f"{b} {within[b]}/{followed} (max {worst[b]:.2e} px, first beyond: frame {leaves[b]})"
                  for b in args.backends), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_MODEL, help="default: the shipped model")
    parser.add_argument("--preset", help="default: the checkpoint's own")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime"], help="graph backends compared to torch")
    parser.add_argument("--online", choices=("preset", "on", "off"), default="preset",
                        help="online branch: as the preset says (default), on or off")
    parser.add_argument("--sequences", nargs="+", help="only these validation sequences")
    parser.add_argument("--frames", type=int, default=0, help="at most this many frames per sequence (0: all)")
    parser.add_argument("--skip-golden", action="store_true", help="only the validation part")
    parser.add_argument("--skip-validation", action="store_true", help="only the golden part")
    parser.add_argument("--threads", type=int, help="CPU threads (torch and the graph runtimes)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results: dict = {"backends": args.backends, "checkpoint": str(args.checkpoint)}
    if not args.skip_validation:
        results["validation"] = validation_part(args)
    if not args.skip_golden:
        results["golden"] = golden_part(args)
    print(f"done in {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
