#!/usr/bin/env python3
"""Per-frame cost of Ocean's online branch, split into frames that re-optimise the filter and frames that do not.

Runs ``OceanTracker`` with an online preset over a sequence and reads the tracker's own stage timers (CUDA
events on the GPU): ``online`` = online sampling + features + scoring + flag + memory/filter update,
``total`` = the whole frame. Frames are grouped by ``TrackResult.online_updated``. The first-frame training
(augmentation, 25 optimiser steps) is timed separately.

Weights: ``--checkpoint`` (an online checkpoint such as OceanV19on.pth), else the golden random-weight online
checkpoint merged in a temporary folder (as the golden README describes), else a randomly initialised net.

Examples::

    python benchmarks/bench_online.py                                  # CPU, float32, golden bag, VOT2019ON
    python benchmarks/bench_online.py --device cuda --half
    python benchmarks/bench_online.py --sequence path/to/seq --preset ONLINE --frames 100 --json out.json
    python benchmarks/bench_online.py --device cuda --mode eager graph     # classic step vs captured Siamese step
    python benchmarks/bench_online.py --checkpoint ocean_ros/models/ocean_lite.pth --preset LITE --online

``--mode``: eager = the classic step; static = the fixed device step run eagerly; graph = that step captured as
a CUDA graph. In static and graph modes the online scoring and memory write are part of the step, so ``online``
times the filter optimiser alone (a second captured graph in graph mode); compare modes by ``total``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ocean_ros.core.build import build_tracker
from ocean_ros.core.config import preset_names
from ocean_ros.core.geometry import polygon_to_xywh
from ocean_ros.core.model import OceanNetConfig, OnlineOceanNet
from ocean_ros.eval.validation_set import data_root

DEFAULT_DATA = data_root()


def read_sequence(folder: Path, limit: int) -> tuple[list[np.ndarray], tuple[float, ...]]:
    """The first ``limit`` frames (BGR) and the first ground-truth box (xywh, 0-based) of a sequence folder."""
    images = sorted(p for p in folder.rglob("*.jpg"))[:limit]
    if not images:
        raise SystemExit(f"no .jpg frames under {folder}")
    gt_file = next(folder.glob("groundtruth*.txt"))
    first = gt_file.read_text().splitlines()[0].replace("\t", ",").replace(" ", ",")
    values = [float(v) for v in first.split(",") if v]
    box = polygon_to_xywh(values) if len(values) == 8 else tuple(values)
    if len(values) == 4 and gt_file.name == "groundtruth_rect.txt":
        box = (values[0] - 1, values[1] - 1, values[2], values[3])  # OTB files are 1-based
    return [cv2.imread(str(p)) for p in images], box


def golden_online_checkpoint(folder: Path) -> Path | None:
    """Merge the golden online checkpoint (seed-1 Siamese weights without align_head + online extras)."""
    golden = DEFAULT_DATA / "golden"
    base_file, extra_file = golden / "ocean_random_seed1.pth", golden / "ocean_online_extra_seed2.pth"
    if not (base_file.exists() and extra_file.exists()):
        return None
    base = torch.load(base_file, weights_only=True)
    merged = {k: v for k, v in base.items() if not k.startswith("align_head.")}
    merged.update(torch.load(extra_file, weights_only=True))
    path = folder / "ocean_online_merged.pth"
    torch.save(merged, path)
    return path


def weights_of(args, folder: Path) -> tuple[Path | torch.nn.Module, str]:
    """The weights to run (a checkpoint, else a randomly initialised online net) and how to name them."""
    path = args.checkpoint or golden_online_checkpoint(folder)
    if path is not None:
        return path, str(path)
    return OnlineOceanNet(OceanNetConfig(align=False)).eval().requires_grad_(False), "random initialisation"


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"frames": 0}
    arr = np.asarray(values)
    return {
        "frames": int(arr.size),
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
    }


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


MODES = {"eager": "classic", "static": "static", "graph": "graph"}


def run(args, device: str, folder: Path, mode: str = "eager") -> dict:
    dtype = torch.float16 if args.half else torch.float32
    source, weights = weights_of(args, folder)
    frames, box = read_sequence(args.sequence, args.frames + 1)
    overrides = {"online": True} if args.online else {}
    tracker = build_tracker(source, args.preset, device, "torch", step_mode=MODES[mode], half=args.half,
                            crop_backend="torch", **overrides)
    if not tracker.config.online:
        raise SystemExit(f"preset {args.preset} is not an online preset (add --online to force it on)")
    tracker.initialize(frames[0], box)  # warm-up (allocations, kernels)
    synchronise(device)
    start = time.perf_counter()
    tracker.initialize(frames[0], box)
    synchronise(device)
    init_ms = (time.perf_counter() - start) * 1000.0
    groups: dict[str, dict[str, list[float]]] = {
        "optimising": {"online": [], "total": []},
        "not_optimising": {"online": [], "total": []},
    }
    flags: dict[str, int] = {}
    for index, frame in enumerate(frames[1:], start=1):
        result = tracker.track(frame)
        if index <= args.warmup:
            continue
        group = groups["optimising" if result.online_updated else "not_optimising"]
        group["online"].append(result.timings["online"])
        group["total"].append(result.timings["total"])
        flags[result.online_flag] = flags.get(result.online_flag, 0) + 1
    return {
        "device": device if not device.startswith("cuda") else torch.cuda.get_device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "weights": weights,
        "sequence": str(args.sequence),
        "preset": args.preset,
        "mode": mode if tracker.graph_failure is None else "static (graph capture failed)",
        "init_ms": init_ms,
        "flags": flags,
        **{name: {key: stats(values) for key, values in group.items()} for name, group in groups.items()},
    }


def report(result: dict) -> None:
    print(f"{result['device']} ({result['dtype']}, {result['threads']} threads), mode {result['mode']}, "
          f"preset {result['preset']}, weights: {result['weights']}")
    print(f"  first-frame training (30 samples, 25 steps): {result['init_ms']:.0f} ms; flags {result['flags']}")
    for name in ("optimising", "not_optimising"):
        online, total = result[name]["online"], result[name]["total"]
        if online["frames"] == 0:
            print(f"  {name:15s}: no frames")
            continue
        print(f"  {name:15s}: {online['frames']:3d} frames, online branch mean {online['mean']:7.1f} ms "
              f"(median {online['median']:.1f}, p90 {online['p90']:.1f}); whole frame mean {total['mean']:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="online checkpoint (default: golden)")
    parser.add_argument("--sequence", type=Path, default=DEFAULT_DATA / "sequences" / "bag")
    parser.add_argument("--preset", default="VOT2019ON", choices=preset_names())
    parser.add_argument("--device", default="cpu", help="cpu, cuda or 'all' (cpu, then cuda if available)")
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--online", action="store_true", help="turn the online branch on whatever the preset says")
    parser.add_argument("--mode", nargs="+", default=["eager"], choices=tuple(MODES),
                        help="eager: classic step; static: fixed device step; graph: captured step (CUDA)")
    parser.add_argument("--frames", type=int, default=40, help="tracked frames")
    parser.add_argument("--warmup", type=int, default=2, help="tracked frames left out of the statistics")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [args.device] if args.device != "all" else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for device in devices:
            if args.half and not device.startswith("cuda"):
                print(f"skipping {device}: --half needs CUDA", file=sys.stderr)
                continue
            for mode in args.mode:
                results.append(run(args, device, Path(tmp), mode))
                report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
