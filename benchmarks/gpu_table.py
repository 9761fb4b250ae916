#!/usr/bin/env python3
"""One Markdown table from the JSON files ``benchmarks/gpu_report.sh`` writes (ms per frame, GPU named).

    python benchmarks/gpu_table.py gpu_report/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def tracker_rows(name: str, reports: list[dict]) -> list[str]:
    rows = []
    for r in reports:
        w = r["wall_ms"]
        rows.append(f"| {name} offline | {r['device']} | {r.get('backend', 'torch')} | {r['precision']} | "
                    f"{r['mode']} | {w['median']:.2f} | {w['p99']:.2f} | {r.get('peak_cuda_mib', 0):.0f} |")
    return rows


def online_rows(name: str, results: list[dict]) -> list[str]:
    rows = []
    for r in results:
        totals = [g["total"] for g in (r["optimising"], r["not_optimising"]) if g["total"]["frames"]]
        frames = sum(t["frames"] for t in totals)
        mean = sum(t["mean"] * t["frames"] for t in totals) / max(frames, 1)
        rows.append(f"| {name} online (mean over the sequence) | {r['device']} | torch | {r['dtype']} | {r['mode']} | "
                    f"{mean:.2f} | - | - |")
    return rows


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else "gpu_report")
    lines = ["| case | device | network | precision | mode | median (online: mean) ms/frame | p99 ms | peak CUDA MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for stem, name in (("lite_offline", "Ocean-Lite"), ("resnet_offline", "ResNet-50 Ocean VOT2019 (align)")):
        path = folder / f"{stem}.json"
        if path.exists():
            lines += tracker_rows(name, json.loads(path.read_text()))
    for stem, name in (("resnet_online_fp32", "ResNet-50 Ocean VOT2019ON"),
                       ("resnet_online_fp16", "ResNet-50 Ocean VOT2019ON"), ("lite_online_fp32", "Ocean-Lite")):
        path = folder / f"{stem}.json"
        if path.exists():
            lines += online_rows(name, json.loads(path.read_text()))
    soak = folder / "node_soak.json"
    if soak.exists():
        report = json.loads(soak.read_text())
        minutes = [m for m in report.get("minutes", []) if m.get("latency_p99_ms") is not None]
        if minutes:
            last = minutes[-1]
            device = report.get("final_diagnostics", {}).get("device", "cuda")
            lines.append(f"| node end to end 640x480 (soak, last minute) | {device} | - | - | node "
                         f"| {last['latency_p50_ms']:.2f} (p50) | {last['latency_p99_ms']:.2f} | - |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
