"""Tracker hyper-parameter search for a trained model on the validation sequences (coordinate search on a grid).

``python -m ocean_ros.train.tune CHECKPOINT [--rounds 2] [--out tune.json]``: starting from the checkpoint's
preset, each round tries every grid value of one parameter at a time (the others fixed at the best so far) and
keeps the best; the objective is mean AUC + min AUC over the sequences (a good mean that drops one sequence
loses). Every evaluation is logged to the JSON file. Use validation sequences only, never test data.

``--online``: the online classifier's fusion weight and update schedule instead, on the full product of
:data:`ONLINE_GRID` with ``online`` on (the Siamese values stay the preset's), plus the preset offline as the
reference row; prints one table row per configuration with the per-sequence AUC and its change from offline.
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import Any

GRID: dict[str, list[Any]] = {
    "penalty_k": [0.02, 0.05, 0.08, 0.12, 0.16, 0.22, 0.3, 0.4],
    "window_influence": [0.2, 0.28, 0.35, 0.42, 0.5],
    "lr": [0.1, 0.15, 0.2, 0.35, 0.5, 0.65, 0.8],
    "align": [False, True],
    "align_ratio": [0.4, 0.55, 0.7, 0.85, 1.0],
    "big_sz": [255, 287, 319],
    "small_sz": [255, 287],
}

ONLINE_GRID: dict[str, list[Any]] = {
    "online_ratio": [0.3, 0.5, 0.7, 0.85],
    "online_update_interval": [3, 10],
    "online_search_area_scale": [3.0, 4.0],
}

_NET: Any = None
_SEQS: list = []


def _init(checkpoint: str, sequences: str, threads: int) -> None:
    global _NET, _SEQS
    import torch

    from ocean_ros.core.checkpoint import load_model
    from ocean_ros.eval.datasets import open_dataset

    torch.set_num_threads(threads)
    _NET, _ = load_model(checkpoint)
    _SEQS = list(open_dataset(sequences).sequences)


def _evaluate(values: dict[str, Any]) -> dict[str, Any]:
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.train.validate import evaluate_sequences

    config = TrackerConfig.from_dict(values)
    result = evaluate_sequences(_NET, _SEQS, config)
    aucs = [s["auc"] for s in result["sequences"].values()]
    return {"values": values, "objective": result["mean_auc"] + min(aucs), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--sequences", default=None, help="validation folder (default: $OCEAN_ROS_DATA/sequences)")
    parser.add_argument("--preset", default="LITE")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default="tune.json")
    parser.add_argument("--online", action="store_true", help="grid of the online fusion weight and schedule")
    args = parser.parse_args(argv)
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.train.trainer import data_root

    sequences = args.sequences or str(data_root() / "sequences")
    base = {k: v for k, v in TrackerConfig.from_preset(args.preset, crop_backend="opencv").to_dict().items()}
    base["preset"] = "custom"
    log: list[dict[str, Any]] = []
    ctx = get_context("spawn")
    if args.online:
        return _online_grid(ctx, args, sequences, base)
    with ctx.Pool(args.processes, _init, (args.checkpoint, sequences, 1)) as pool:
        best = pool.apply(_evaluate, (base,))
        log.append(best)
        print(f"start: objective {best['objective']:.4f} mean AUC {best['mean_auc']:.4f}", flush=True)
        for rnd in range(args.rounds):
            for name, values in GRID.items():
                trials = [{**best["values"], name: v} for v in values if v != best["values"][name]]
                trials = [t for t in trials if _valid(t)]
                for result in pool.map(_evaluate, trials):
                    log.append(result)
                    if result["objective"] > best["objective"] + 1e-9:
                        best = result
                print(f"round {rnd + 1} {name}: best {best['values'][name]} objective {best['objective']:.4f} "
                      f"mean AUC {best['mean_auc']:.4f} {json.dumps(best['sequences'])}", flush=True)
                Path(args.out).write_text(json.dumps({"best": best, "evaluations": log}, indent=1))
    print(json.dumps(best, indent=1))
    return 0


def _online_grid(ctx: Any, args: argparse.Namespace, sequences: str, base: dict[str, Any]) -> int:
    """Offline reference, then every ONLINE_GRID combination with online on; all rows to ``args.out``."""
    import itertools

    names = list(ONLINE_GRID)
    trials = [{**base, "online": False}]
    trials += [{**base, "online": True, **dict(zip(names, combo, strict=True))}
               for combo in itertools.product(*ONLINE_GRID.values())]
    with ctx.Pool(args.processes, _init, (args.checkpoint, sequences, 1)) as pool:
        results = pool.map(_evaluate, trials)
    offline = results[0]["sequences"]
    print(" | ".join(["online", *names, "mean", *offline, "worst change"]))
    for r in results:
        v = r["values"]
        deltas = [r["sequences"][s]["auc"] - offline[s]["auc"] for s in offline]
        cells = [str(v["online"]), *(str(v[n]) if v["online"] else "-" for n in names), f"{r['mean_auc']:.4f}"]
        cells += [f"{r['sequences'][s]['auc']:.4f}" for s in offline] + [f"{min(deltas):+.4f}"]
        print(" | ".join(cells), flush=True)
    Path(args.out).write_text(json.dumps({"evaluations": results}, indent=1))
    return 0


def _valid(values: dict[str, Any]) -> bool:
    from ocean_ros.core.config import TrackerConfig

    try:
        TrackerConfig.from_dict(values)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
