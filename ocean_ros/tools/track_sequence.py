"""``ocean_track_sequence``: run the Ocean tracker over a sequence folder and score it against ground truth.

Initialises on the first ground-truth box, tracks every following frame (one pass, never re-initialised),
writes the boxes (``x,y,w,h``, 0-based pixels, one line per frame) and prints speed and accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from ocean_ros.core.config import preset_names

    parser = argparse.ArgumentParser(prog="ocean_track_sequence", description=__doc__.splitlines()[0])
    parser.add_argument("sequence", help="sequence folder: OTB/DTB70, VOT, GOT-10k or LaSOT layout (see ocean-eval)")
    parser.add_argument("--checkpoint", required=True, help="TracKit .pth (e.g. OceanV.pth) or an ocean_ros checkpoint")
    parser.add_argument("--preset", default="OTB2015", choices=preset_names(), help="hyper-parameter preset")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--crop-backend", default="opencv", choices=("opencv", "torch"))
    parser.add_argument("--output", help="write the boxes to this file")
    parser.add_argument("--quiet", action="store_true", help="no per-frame lines")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from ocean_ros.core.checkpoint import load_model
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.core.tracker import OceanTracker
    from ocean_ros.eval.metrics import auc, precision_at, success_curve
    from ocean_ros.eval.overlap import box_iou, center_error
    from ocean_ros.eval.sequences import open_sequence

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    sequence = open_sequence(args.sequence)
    net, _ = load_model(args.checkpoint, device=device, dtype=torch.float16 if args.half else torch.float32)
    config = TrackerConfig.from_preset(args.preset, crop_backend=args.crop_backend, half=args.half)
    if config.align and not net.has_align:
        config = config.replace(align=False)
        print(f"note: {args.checkpoint} has no object-aware head; tracking without it")
    tracker = OceanTracker(net, config, device)

    init_box = tuple(float(v) for v in sequence.ground_truth[0])
    tracker.initialize(sequence.read(0), init_box)
    boxes = [init_box]
    times = []
    print(f"{sequence.name}: {len(sequence)} frames ({sequence.layout}), preset {args.preset}, device {device}")
    for index in range(1, len(sequence)):
        frame = sequence.read(index)
        start = time.perf_counter()
        result = tracker.track(frame)
        times.append(time.perf_counter() - start)
        boxes.append(result.box_xywh)
        if not args.quiet:
            x, y, w, h = result.box_xywh
            print(f"frame {index + 1:4d}  box {x:7.1f} {y:7.1f} {w:6.1f} {h:6.1f}  score {result.score:.3f}  "
                  f"{result.state.value:<8} {times[-1] * 1000:6.1f} ms")

    pred = np.asarray(boxes)
    valid = np.all(np.isfinite(sequence.ground_truth[1:]), axis=1)
    overlaps = box_iou(pred[1:][valid], sequence.ground_truth[1:][valid])
    errors = center_error(pred[1:][valid], sequence.ground_truth[1:][valid])
    if args.output:
        # the dataset's own convention (1-based for OTB/DTB70), as ocean-eval writes result files
        offset = sequence.annotation_offset
        Path(args.output).write_text(
            "".join(f"{x + offset:.4f},{y + offset:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in boxes)
        )
    ms = np.asarray(times) * 1000
    print(f"speed: {1000 / ms.mean():.1f} fps (median {np.median(ms):.1f} ms/frame, p99 {np.percentile(ms, 99):.1f})")
    print(f"accuracy: success AUC {auc(success_curve(overlaps)):.3f}, mean IoU {np.nanmean(overlaps):.3f}, "
          f"precision@20px {precision_at(errors):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
