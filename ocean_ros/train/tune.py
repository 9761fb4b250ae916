"""Cross-validated tracker hyper-parameter tuning on the validation set (never test data).

``python -m ocean_ros.train.tune [CHECKPOINT] [--grid JSON | --online] [--folds K] [--out tune.json]``

Every configuration asked about is tracked once on all sequences (``--processes`` worker processes, one torch
thread each, one task per configuration and sequence) and cached: per-sequence AUC, precision, lost frames,
confidence AUROC and per-frame (score, IoU).
Then, per fold (:mod:`ocean_ros.train.crossval`: sorted names dealt into K folds, default leave-one-out), the
setting is chosen on the *other* folds' sequences only (objective: mean AUC + λ·min AUC, ``--min-weight`` λ,
default 0) and the fold's own sequences are scored with it; the mean of those held-out AUCs is the
cross-validated estimate. Finally the setting chosen on all sequences (what would ship) is printed beside that
estimate, and ``lost_threshold`` (best balanced accuracy separating frames with IoU >= 0.5 from IoU < 0.1) is
cross-validated the same way on the chosen configurations' frames.

Which configurations:
- default: coordinate search from the preset over :data:`GRID` (``--rounds``, each fold runs its own search on
  the cache, so new configurations may be tracked per fold);
- ``--grid JSON`` (text or a file): ``{"param": [values], ...}`` (every combination over the preset) or
  ``[{"param": value, ...}, ...]`` (those configurations over the preset); TrackerConfig keys, and
  ``checkpoint`` (weights files: the model is then a cross-validated choice like any tunable);
- ``--online``: the online classifier's fusion weight and schedule, every combination of :data:`ONLINE_GRID`
  with ``online`` on.
The preset itself is always the first candidate (it wins ties). Default sequences: the 11-sequence validation set
(``$OCEAN_ROS_DATA/sequences`` and ``$OCEAN_ROS_DATA/validation``).
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from ocean_ros.eval.report import json_ready
from ocean_ros.train import crossval

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
    "online.update_interval": [3, 10],
    "online.search_area_scale": [3.0, 4.0],
}

CHECKPOINT_KEY = "checkpoint"  # a grid key naming the weights: the model is chosen by cross-validation too

_NETS: dict[str, Any] = {}
_DEFAULT: list[str] = []
_SEQS: list = []


def _init(checkpoint: str, folders: list[str], threads: int) -> None:
    global _SEQS
    import torch

    from ocean_ros.eval.datasets import open_dataset

    torch.set_num_threads(threads)
    _DEFAULT[:] = [checkpoint]
    _SEQS = [s for folder in folders for s in open_dataset(folder).sequences]


def _net(checkpoint: str | None) -> Any:
    """The network of ``checkpoint`` (the command's checkpoint when None), loaded once per worker."""
    from ocean_ros.core.checkpoint import load_model

    path = checkpoint or _DEFAULT[0]
    if path not in _NETS:
        _NETS[path] = load_model(path)[0]
    return _NETS[path]


def tracker_values(values: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(checkpoint named by the configuration or None, the TrackerConfig values without it)."""
    rest = {k: v for k, v in values.items() if k != CHECKPOINT_KEY}
    return values.get(CHECKPOINT_KEY), rest


def _evaluate(task: tuple[dict[str, Any], str]) -> dict[str, Any]:
    """Track one sequence with one configuration; one the tracker refuses gets a NaN AUC and the error."""
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.train.validate import evaluate_sequences

    values, name = task
    checkpoint, values = tracker_values(values)
    try:
        result = evaluate_sequences(_net(checkpoint), [s for s in _SEQS if s.name == name],
                                    TrackerConfig.from_dict(values), per_frame=True)
    except (ValueError, NotImplementedError) as err:
        return {"auc": float("nan"), "precision": float("nan"), "error": str(err), "frame_scores": [],
                "frame_ious": []}
    return result["sequences"][name]


class Cache:
    """Evaluations by configuration; ``__call__`` is the cross-validation's ``evaluate`` (tracks what is new).

    After each batch the evaluations so far (without per-frame data) go to ``log_path`` when given."""

    def __init__(self, pool: Any, names: list[str], log_path: Path | None = None) -> None:
        self.pool = pool
        self.names = names
        self.log_path = log_path
        self.results: dict[str, dict[str, Any]] = {}

    def summaries(self) -> list[dict[str, Any]]:
        """Every evaluation without the per-frame arrays."""
        return [{**r, "sequences": {n: {k: v for k, v in s.items() if not k.startswith("frame_")}
                                    for n, s in r["sequences"].items()}} for r in self.results.values()]

    def __call__(self, configs: list[crossval.Config]) -> list[crossval.Row]:
        new = {crossval.config_key(c): dict(c) for c in configs}
        new = {k: c for k, c in new.items() if k not in self.results}
        if new:
            tasks = [(c, n) for c in new.values() for n in self.names]  # one task a sequence: all workers busy
            done = iter(self.pool.map(_evaluate, tasks, chunksize=1))
            for key, values in new.items():
                per = {n: next(done) for n in self.names}
                mean = float(np.mean([v["auc"] for v in per.values()]))
                result = {"values": values, "mean_auc": mean, "sequences": per}
                self.results[key] = result
                print(f"[{len(self.results)}] mean AUC {result['mean_auc']:.4f}  {describe(result['values'])}",
                      flush=True)
            if self.log_path is not None:
                self.log_path.write_text(json.dumps(json_ready({"evaluations": self.summaries()}), indent=1))
        return [{n: float(v["auc"]) for n, v in self.results[crossval.config_key(c)]["sequences"].items()}
                for c in configs]

    def frames(self, config: crossval.Config, name: str) -> tuple[np.ndarray, np.ndarray]:
        entry = self.results[crossval.config_key(config)]["sequences"][name]
        return np.asarray(entry["frame_scores"], dtype=float), np.asarray(entry["frame_ious"], dtype=float)


_BASE: dict[str, Any] = {}


def describe(values: crossval.Config) -> str:
    """The values that differ from the preset, ``name=value`` (``preset`` when none)."""
    changed = [f"{k}={v}" for k, v in values.items() if _BASE.get(k) != v]
    return ", ".join(changed) or "preset"


def parse_grid(text: str, base: dict[str, Any]) -> list[dict[str, Any]]:
    """``--grid``: JSON text or a file holding ``{param: [values]}`` (product) or ``[{param: value}, ...]``."""
    path = Path(text)
    spec = json.loads(path.read_text() if not text.lstrip().startswith(("{", "[")) and path.is_file() else text)
    if isinstance(spec, dict):
        return crossval.product_configs(base, {k: v if isinstance(v, list) else [v] for k, v in spec.items()})
    if isinstance(spec, list) and all(isinstance(c, dict) for c in spec):
        return [{**base, **c} for c in spec]
    raise ValueError("--grid wants {\"param\": [values]} or [{\"param\": value}, ...]")


def _valid(values: crossval.Config) -> bool:
    from ocean_ros.core.config import TrackerConfig

    try:
        TrackerConfig.from_dict(tracker_values(values)[1])
    except ValueError:
        return False
    return True


def selector_for(args: argparse.Namespace, base: dict[str, Any]) -> crossval.Selector:
    """Grid (``--grid`` / ``--online``, the preset first) or coordinate search, as the options say."""
    if args.grid or args.online:
        configs = parse_grid(args.grid, base) if args.grid else crossval.product_configs(
            {**base, "online": True, "align": False}, ONLINE_GRID)
        configs = [base] + [c for c in configs if c != base]
        bad = [describe(c) for c in configs if not _valid(c)]
        if bad:
            raise ValueError(f"invalid configurations in the grid: {'; '.join(bad)}")
        return crossval.grid_selector(configs)
    return crossval.coordinate_selector(base, GRID, args.rounds, _valid)


def markdown(cv: crossval.CrossValidation, th: crossval.ThresholdCrossValidation, base_row: crossval.Row) -> str:
    """Per-sequence table (fold, choice without it, held-out AUC, preset AUC, shipped AUC) and the summary."""
    lines = ["| sequence | fold | chosen without it | held-out AUC | preset AUC | shipped AUC (in-sample) |",
             "|---|---|---|---|---|---|"]
    for name in sorted(cv.folds, key=str.lower):
        h = cv.held_out[name]
        lines.append(f"| {name} | {h.fold} | {describe(h.config)} | {h.auc:.4f} | {base_row[name]:.4f} | "
                     f"{cv.chosen_aucs[name]:.4f} |")
    mean = np.mean
    lines.append(f"| **mean** | | | **{cv.estimate:.4f}** | {mean(list(base_row.values())):.4f} | "
                 f"{mean(list(cv.chosen_aucs.values())):.4f} |")
    lines += ["", f"shipped (chosen on all {len(cv.folds)} sequences): {describe(cv.chosen)}",
              f"  in-sample mean AUC {mean(list(cv.chosen_aucs.values())):.4f}, "
              f"cross-validated estimate {cv.estimate:.4f} (preset {mean(list(base_row.values())):.4f})",
              f"lost_threshold: shipped {th.threshold:.4f} (in-sample balanced accuracy {th.in_sample_accuracy:.3f}); "
              f"held-out balanced accuracy {th.estimate:.3f}; per fold "
              + ", ".join(f"{t:.3f}" for t in th.fold_thresholds)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="weights (default: the shipped Ocean-Lite model)")
    parser.add_argument("--sequences", nargs="+", help="dataset folders (default: the 11-sequence validation set)")
    parser.add_argument("--preset", default="LITE")
    parser.add_argument("--grid", help="JSON (or a JSON file): {param: [values]} or [{param: value}, ...]")
    parser.add_argument("--online", action="store_true", help="grid of the online fusion weight and schedule")
    parser.add_argument("--rounds", type=int, default=2, help="coordinate-search rounds (default search only)")
    parser.add_argument("--folds", type=int, default=0, help="K folds; 0 (default): leave-one-out")
    parser.add_argument("--min-weight", type=float, default=0.0, help="λ in the objective mean + λ·min AUC")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default="tune.json")
    args = parser.parse_args(argv)
    from ocean_ros.core.config import TrackerConfig
    from ocean_ros.eval.datasets import open_dataset
    from ocean_ros.eval.validation_set import validation_paths
    from ocean_ros.models import default_checkpoint

    checkpoint = args.checkpoint or str(default_checkpoint())
    folders = [str(p) for p in (args.sequences or validation_paths())]
    names = [s.name for f in folders for s in open_dataset(f).sequences]
    base = TrackerConfig.from_preset(args.preset, crop_backend="opencv").to_dict()
    base["preset"] = "custom"
    _BASE.update(base)
    selector = selector_for(args, base)
    out = Path(args.out)
    with get_context("spawn").Pool(args.processes, _init, (checkpoint, folders, 1)) as pool:
        cache = Cache(pool, names, out)
        cv = crossval.cross_validate(names, cache, selector, args.min_weight, args.folds)
        base_row = cache([base])[0]
    th = crossval.cross_validate_threshold(cv, cache.frames)
    table = markdown(cv, th, base_row)
    print(table)
    document = {
        "meta": {"checkpoint": checkpoint, "sequences": folders, "preset": args.preset, "folds": args.folds,
                 "min_weight": args.min_weight, "grid": args.grid, "online": args.online,
                 "mode": "grid" if args.grid or args.online else f"coordinate search, {args.rounds} rounds"},
        "folds": cv.folds,
        "held_out": {n: {"fold": h.fold, "auc": h.auc, "values": dict(h.config)} for n, h in cv.held_out.items()},
        "cross_validated_mean_auc": cv.estimate,
        "shipped": {"values": cv.chosen, "changes": describe(cv.chosen), "aucs": cv.chosen_aucs,
                    "in_sample_mean_auc": float(np.mean(list(cv.chosen_aucs.values())))},
        "preset_aucs": base_row,
        "lost_threshold": {"shipped": th.threshold, "in_sample_balanced_accuracy": th.in_sample_accuracy,
                           "held_out_balanced_accuracy": th.estimate, "fold_thresholds": th.fold_thresholds,
                           "fold_balanced_accuracy": th.fold_accuracy},
        "evaluations": cache.summaries(),
        "table": table,
    }
    out.write_text(json.dumps(json_ready(document), indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
