"""``ocean-train CONFIG.yaml``: train Ocean-Lite (works under ``torchrun --nproc_per_node N`` unchanged).

``stage: siamese`` (default) trains the Siamese network; ``stage: online`` then trains the online classifier
of a stage-1 model episodically (:mod:`ocean_ros.train.episodic`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_train_config
from .datasets import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocean-train", description=__doc__)
    parser.add_argument("config", type=Path, help="training YAML (config/train/*.yaml); unknown keys are errors")
    parser.add_argument("--resume", type=Path, help="continue from an ocean-train checkpoint (checkpoint_eNNN.pth)")
    parser.add_argument("--output", help="override the config's output folder")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the config's device")
    parser.add_argument("--workers", type=int, help="override data.workers (loader processes)")
    parser.add_argument("--threads", type=int, help="override threads (torch CPU threads)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    args = parser.parse_args(argv)
    try:
        cfg = load_train_config(args.config)
        if args.output:
            cfg = cfg.replace(output=args.output)
        if args.device:
            cfg = cfg.replace(device=args.device)
        if args.threads is not None:
            cfg = cfg.replace(threads=args.threads)
        if args.workers is not None:
            import dataclasses

            cfg = cfg.replace(data=dataclasses.replace(cfg.data, workers=args.workers))
        if cfg.stage == "online":
            from .episodic import EpisodicTrainer

            EpisodicTrainer(cfg, resume=args.resume, progress=not args.no_progress).run()
        else:
            from .trainer import Trainer

            Trainer(cfg, resume=args.resume, progress=not args.no_progress).run()
    except (ConfigError, DataError) as exc:
        print(f"ocean-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
