#!/usr/bin/env python3
"""Speed and memory of the Ocean tracker: ms per frame per stage (median, p90, p99) and peak memory.

Runs ``OceanTracker`` over a real sequence (or synthetic frames when none is given) for every requested
combination of device, precision and crop backend, after a warm-up. Timings come from the tracker's own
per-stage timers (CUDA events on the GPU) plus a host-side wall clock around each ``track`` call.

Examples::

    python benchmarks/bench_tracker.py                         # CPU, float32, shipped Ocean-Lite, Crossing
    python benchmarks/bench_tracker.py --device cuda --half both --crop-backend torch opencv
    python benchmarks/bench_tracker.py --checkpoint OceanV.pth --preset VOT2019 --sequence path/to/bag
    python benchmarks/bench_tracker.py --device cuda --mode eager graph --half both   # the captured step
    python benchmarks/bench_tracker.py --backend torch onnxruntime openvino --online both --threads 2
    python benchmarks/bench_tracker.py --device cuda --backend torch tensorrt --half both --mode eager graph

Backends (``--backend``) run side by side in one run: every case tracks the same frames, taking turns every
``--block`` frames, so a shared machine's load changes hit them alike.

Modes: ``eager`` is the classic host-driven step (any crop backend), ``static`` the fixed device step run eagerly,
``graph`` that step captured as a CUDA graph (on a CPU it falls back to ``static`` and says so).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ocean_ros.core.build import build_tracker
from ocean_ros.core.config import preset_names
from ocean_ros.core.network import Weights, read_weights
from ocean_ros.core.tracker import OceanTracker
from ocean_ros.eval.sequences import open_sequence
from ocean_ros.eval.validation_set import REPO_ROOT
from ocean_ros.models import DEFAULT_MODEL


def read_sequence(folder: Path, limit: int) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """The first ``limit`` frames (BGR) and the first ground-truth box (xywh, 0-based) of a sequence folder."""
    sequence = open_sequence(folder)
    frames = [sequence.read(i) for i in range(min(limit, len(sequence)))]
    return frames, tuple(float(v) for v in sequence.ground_truth[0])  # type: ignore[return-value]


def synthetic_sequence(count: int, width: int = 640, height: int = 480) -> tuple[list[np.ndarray], tuple]:
    """A bright square moving over noise: enough to exercise every stage at a chosen resolution."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(count):
        frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        x, y = 100 + 2 * i % (width - 200), 120 + i % (height - 240)
        frame[y : y + 60, x : x + 40] = (40, 200, 240)
        frames.append(frame)
    return frames, (100.0, 120.0, 40.0, 60.0)


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"mean": float(arr.mean()), "median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99))}


MODES = {"eager": "classic", "static": "static", "graph": "graph"}


def case_tracker(weights: Weights, args, device: str, half: bool, crop_backend: str, mode: str, backend: str,
                 online: bool) -> OceanTracker:
    """The tracker of one case; ``backend`` is the network runtime (graph backends export on first use)."""
    return build_tracker(weights, args.preset, device, backend, step_mode=MODES[mode], crop_backend=crop_backend,
                         half=half, **({"online": True, "align": False} if online else {"online": False}))


def run_side_by_side(args, frames, box, cases: list[dict]) -> list[dict]:
    """Track the same frames with every case in one run, taking turns every ``args.block`` frames (the order
    rotates), so load changes on a shared machine hit every case alike. Fills each case's timings."""
    for case in cases:
        case.update(wall=[], stages={})
    frame_index = 0
    for _ in range(args.repeat):
        for case in cases:
            case["tracker"].initialize(frames[0], box)
        for turn, start in enumerate(range(1, len(frames), args.block)):
            block = frames[start:start + args.block]
            order = cases[turn % len(cases):] + cases[:turn % len(cases)]
            for case in order:
                tracker = case["tracker"]
                for offset, frame in enumerate(block):
                    begin = time.perf_counter()
                    result = tracker.track(frame)
                    elapsed = (time.perf_counter() - begin) * 1000.0
                    if frame_index + offset < args.warmup:
                        continue
                    case["wall"].append(elapsed)
                    for stage, ms in result.timings.items():
                        case["stages"].setdefault(stage, []).append(ms)
            frame_index += len(block)
    return cases


def report_of(args, frames, case: dict) -> dict:
    tracker, device = case["tracker"], case["device"]
    if device.startswith("cuda"):
        device_name = torch.cuda.get_device_name(torch.device(device))
    else:
        device_name = f"cpu x{torch.get_num_threads()} threads"
    report = {
        "device": device_name,
        "backend": tracker.backend,
        "online": bool(tracker.config.online),
        "precision": "float16" if case["half"] else "float32",
        "crop_backend": tracker.crop_backend,
        "mode": case["mode"] if tracker.graph_failure is None else "static (graph capture failed)",
        "preset": tracker.config.preset,
        "frames_timed": len(case["wall"]),
        "frame_size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "wall_ms": percentiles(case["wall"]),
        "stages_ms": {stage: percentiles(v) for stage, v in case["stages"].items()},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if device.startswith("cuda"):
        report["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def print_report(report: dict) -> None:
    w = report["wall_ms"]
    line = (
        f"{report['device']:<28} {report['backend']:<11} {'online' if report['online'] else 'offline':<7} "
        f"{report['precision']:<8} {report['mode']:<6} crop={report['crop_backend']:<6} "
        f"{report['frame_size']:>9} "
        f"total mean {w['mean']:7.2f} median {w['median']:7.2f} p90 {w['p90']:7.2f} p99 {w['p99']:7.2f} ms"
    )
    stages = "  ".join(
        f"{name} {v['median']:.2f}" for name, v in report["stages_ms"].items() if name != "total"
    )
    memory = f"peak RSS {report['peak_rss_mib']:.0f} MiB (the process's, all cases)"
    if "peak_cuda_mib" in report:
        memory += f", peak CUDA {report['peak_cuda_mib']:.0f} MiB"
    print(f"{line}\n    stages (median ms): {stages}\n    {memory}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_MODEL),
                        help="weights (default: the shipped Ocean-Lite model; the reference ResNet-50 weights are "
                        "$OCEAN_ROS_DATA/golden/ocean_random_seed1.pth)")
    parser.add_argument("--preset", choices=preset_names(), help="default: the checkpoint's own, else OTB2015")
    parser.add_argument("--sequence", default=str(REPO_ROOT / "ocean_ros" / "data" / "Crossing"),
                        help="OTB/VOT sequence folder; 'synthetic' for generated 640x480 frames")
    parser.add_argument("--frames", type=int, default=60, help="frames per pass (first = init)")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the frames")
    parser.add_argument("--warmup", type=int, default=5, help="tracked frames excluded from statistics")
    parser.add_argument("--device", nargs="+", default=["cpu"], help="cpu, cuda, cuda:N (several allowed)")
    parser.add_argument("--half", choices=("off", "on", "both"), default="off", help="float16 (CUDA only)")
    parser.add_argument("--crop-backend", nargs="+", default=["auto"], choices=("auto", "opencv", "torch"),
                        help="crop backends of the eager mode (static and graph always crop with torch)")
    parser.add_argument("--mode", nargs="+", default=["eager"], choices=tuple(MODES),
                        help="eager: classic step; static: fixed device step, eager; graph: captured (CUDA)")
    parser.add_argument("--backend", nargs="+", default=["torch"],
                        choices=("auto", "torch", "onnxruntime", "openvino", "tensorrt"),
                        help="network runtimes, compared side by side in one run (graph backends export the "
                        "checkpoint on first use)")
    parser.add_argument("--online", choices=("off", "on", "both"), default="off",
                        help="online branch (the checkpoint must have a classifier)")
    parser.add_argument("--block", type=int, default=10, help="frames each case tracks before the next takes over")
    parser.add_argument("--threads", type=int, help="CPU threads of torch and the graph runtimes (default: torch's)")
    parser.add_argument("--json", help="also write all reports to this JSON file")
    args = parser.parse_args(argv)
    weights = read_weights(args.checkpoint)  # once for every case
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.sequence == "synthetic":
        frames, box = synthetic_sequence(args.frames)
    else:
        frames, box = read_sequence(Path(args.sequence), args.frames)
    reports = []
    onlines = {"off": [False], "on": [True], "both": [False, True]}[args.online]
    for device in args.device:
        halves = {"off": [False], "on": [True], "both": [False, True]}[args.half]
        for half in halves:
            if half and not device.startswith("cuda"):
                print(f"skip float16 on {device}: half precision needs CUDA", flush=True)
                continue
            for mode in args.mode:
                for crop_backend in args.crop_backend if mode == "eager" else ["torch"]:
                    cases = []
                    for backend in args.backend:
                        for online in onlines:
                            try:
                                tracker = case_tracker(weights, args, device, half, crop_backend, mode, backend,
                                                       online)
                            except (ValueError, RuntimeError, OSError) as err:
                                print(f"skip {backend} on {device} (online {online}): {err}", flush=True)
                                continue
                            cases.append({"tracker": tracker, "device": device, "half": half, "mode": mode})
                    if device.startswith("cuda"):
                        torch.cuda.reset_peak_memory_stats()
                    for case in run_side_by_side(args, frames, box, cases):
                        report = report_of(args, frames, case)
                        print_report(report)
                        reports.append(report)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
