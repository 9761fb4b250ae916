#!/usr/bin/env python3
"""End-to-end latency of the tracker node: image published -> detections received, p50 / p99, and drops.

Two runs of ``ocean_demo`` over a real sequence through the real node process (loopback-only DDS):
  camera  frames at the sequence's rate (default 30 Hz): latency includes waiting for the frame in flight;
  lockstep  the next frame only after the node answered: pure processing + transport latency.
Examples::

    python benchmarks/bench_node_latency.py                          # CPU, shipped Ocean-Lite, bundled sequence
    python benchmarks/bench_node_latency.py --device cuda --frames 300 --checkpoint OceanV.pth
"""

from __future__ import annotations

import argparse
import os
import sys

from ocean_ros.tools import demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="weights (default: the shipped Ocean-Lite model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="", help="tracker preset (default: the checkpoint's own)")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--sequence", default=str(demo.BUNDLED_SEQUENCE))
    args = parser.parse_args(argv)
    common = ["--device", args.device, "--frames", str(args.frames),
              "--sequence", args.sequence, "--output", os.devnull, "--node-log", "bench_node_latency.log"]
    if args.checkpoint:
        common += ["--checkpoint", args.checkpoint]
    if args.preset:
        common += ["--preset", args.preset]
    status = 0
    for title, extra in (("camera", ["--rate", str(args.rate)]), ("lockstep", ["--lockstep"])):
        print(f"--- {title} ({args.device})", flush=True)
        status |= demo.main(common + extra)
    return status


if __name__ == "__main__":
    sys.exit(main())
