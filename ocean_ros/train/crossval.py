"""Cross-validated choice of tracker settings: the fold logic alone (no tracking, no I/O).

A configuration is a mapping of TrackerConfig values. ``evaluate(configs)`` gives, for each, the per-sequence AUC
(``{sequence: auc}``) on *all* sequences; the tuner caches it, so asking twice costs nothing. A *selector* picks a
configuration from what an ``evaluate`` returns. Cross-validation hands each fold's selector an ``evaluate``
restricted to the other folds' sequences (:func:`restrict`), so a fold's choice cannot depend on the sequences it
is then scored on; the held-out AUC of a sequence is that of its own fold's choice.

Folds (:func:`assign_folds`): sequence names sorted (case-insensitively), the i-th in fold ``i % k``; ``k <= 0``
or ``k >= n`` is leave-one-out. The objective of a configuration on a set of sequences is mean AUC + λ·min AUC
(λ = ``weight_min``, default 0: mean AUC); a row with a NaN (a failed evaluation) scores -inf. Ties go to the
configuration asked about first (the preset comes first, so it wins ties).

The lost threshold is cross-validated the same way (:func:`cross_validate_threshold`): per fold, chosen on the
training sequences' frames of that fold's chosen configuration (best balanced accuracy), scored on the held-out
frames.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ocean_ros.eval.confidence import balanced_accuracy, choose_lost_threshold

Config = Mapping[str, Any]
Row = Mapping[str, float]
Evaluate = Callable[[list[Config]], list[Row]]
Selector = Callable[[Evaluate, float], Config]
Frames = Callable[[Config, str], tuple[np.ndarray, np.ndarray]]


def config_key(config: Config) -> str:
    """Canonical text of a configuration (sorted JSON), for caches and logs."""
    return json.dumps(dict(config), sort_keys=True, default=str)


def assign_folds(names: Sequence[str], k: int = 0) -> dict[str, int]:
    """Fold of each sequence: sorted names dealt round-robin into ``k`` folds; ``k <= 0`` or ``k >= n``:
    leave-one-out."""
    ordered = sorted(set(names), key=lambda n: (n.lower(), n))
    if len(ordered) != len(names):
        raise ValueError("sequence names must be unique")
    folds = len(ordered) if k <= 0 or k >= len(ordered) else k
    return {name: i % folds for i, name in enumerate(ordered)}


def fold_members(folds: Mapping[str, int]) -> list[list[str]]:
    """The sequences of each fold, fold by fold."""
    return [sorted((n for n, f in folds.items() if f == i), key=str.lower) for i in range(max(folds.values()) + 1)]


def objective(row: Row, weight_min: float = 0.0) -> float:
    """Mean AUC + ``weight_min`` · min AUC over the row's sequences; -inf when empty or any value is NaN."""
    values = list(row.values())
    if not values or any(not math.isfinite(v) for v in values):
        return -math.inf
    return float(np.mean(values) + weight_min * min(values))


def restrict(evaluate: Evaluate, names: Sequence[str]) -> Evaluate:
    """``evaluate`` that returns only ``names``' AUCs (what a fold's selector may see)."""
    keep = list(names)

    def restricted(configs: list[Config]) -> list[Row]:
        return [{n: row[n] for n in keep} for row in evaluate(configs)]

    return restricted


def grid_selector(configs: Sequence[Config]) -> Selector:
    """Selector choosing the best of a fixed list of configurations (first wins ties)."""

    def select(evaluate: Evaluate, weight_min: float) -> Config:
        rows = evaluate(list(configs))
        scores = [objective(r, weight_min) for r in rows]
        return configs[int(np.argmax(scores))]

    return select


def coordinate_selector(base: Config, grid: Mapping[str, Sequence[Any]], rounds: int = 2,
                        valid: Callable[[Config], bool] = lambda c: True) -> Selector:
    """Selector running a coordinate search from ``base``: per round, each parameter tries its grid values with
    the others at the best so far, and the best (strictly better by 1e-9) is kept."""

    def select(evaluate: Evaluate, weight_min: float) -> Config:
        best = dict(base)
        best_score = objective(evaluate([best])[0], weight_min)
        for _ in range(rounds):
            for name, values in grid.items():
                trials = [t for t in ({**best, name: v} for v in values if v != best.get(name)) if valid(t)]
                if not trials:
                    continue
                for trial, row in zip(trials, evaluate(trials), strict=True):
                    score = objective(row, weight_min)
                    if score > best_score + 1e-9:
                        best, best_score = trial, score
        return best

    return select


def product_configs(base: Config, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """``base`` with every combination of the grid's values."""
    names = list(grid)
    return [{**base, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*grid.values())]


@dataclass(frozen=True)
class HeldOut:
    """A sequence scored with the configuration its fold chose without it."""

    fold: int
    config: Config
    auc: float


@dataclass(frozen=True)
class CrossValidation:
    folds: dict[str, int]
    fold_choices: list[Config]
    held_out: dict[str, HeldOut]
    estimate: float  # mean held-out AUC over sequences: the cross-validated estimate
    chosen: Config  # chosen on all sequences: what would ship
    chosen_aucs: dict[str, float]  # its (in-sample) AUC per sequence


def cross_validate(names: Sequence[str], evaluate: Evaluate, selector: Selector, weight_min: float = 0.0,
                   k: int = 0) -> CrossValidation:
    """Per fold, choose on the other folds' sequences only and score the fold's own; then choose on all."""
    folds = assign_folds(names, k)
    choices: list[Config] = []
    held_out: dict[str, HeldOut] = {}
    for fold, members in enumerate(fold_members(folds)):
        training = [n for n in folds if folds[n] != fold]
        choice = selector(restrict(evaluate, training), weight_min)
        row = evaluate([choice])[0]
        choices.append(choice)
        held_out.update({n: HeldOut(fold, choice, float(row[n])) for n in members})
    chosen = selector(restrict(evaluate, list(folds)), weight_min)
    chosen_row = evaluate([chosen])[0]
    estimate = float(np.mean([h.auc for h in held_out.values()]))
    return CrossValidation(folds, choices, held_out, estimate, chosen, {n: float(chosen_row[n]) for n in folds})


@dataclass(frozen=True)
class ThresholdCrossValidation:
    fold_thresholds: list[float]
    fold_accuracy: list[float]  # balanced accuracy on each fold's held-out frames
    estimate: float  # balanced accuracy over all held-out frames, each under its fold's threshold
    threshold: float  # chosen on all frames of the shipped configuration
    in_sample_accuracy: float


def _pooled(frames: Frames, config: Config, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [frames(config, n) for n in names]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def cross_validate_threshold(cv: CrossValidation, frames: Frames) -> ThresholdCrossValidation:
    """Held-out choice of ``lost_threshold``: per fold on its training sequences' (score, IoU) frames under the
    fold's chosen configuration, scored on its held-out frames; then on all frames of the shipped one."""
    thresholds, accuracy, shifted, shifted_ious = [], [], [], []
    for fold, members in enumerate(fold_members(cv.folds)):
        config = cv.fold_choices[fold]
        training = [n for n in cv.folds if cv.folds[n] != fold]
        threshold = choose_lost_threshold(*_pooled(frames, config, training)).threshold
        scores, ious = _pooled(frames, config, members)
        thresholds.append(threshold)
        accuracy.append(balanced_accuracy(scores, ious, threshold))
        shifted.append(scores - threshold)  # pooled below: each frame against its own fold's threshold
        shifted_ious.append(ious)
    estimate = balanced_accuracy(np.concatenate(shifted), np.concatenate(shifted_ious), 0.0)
    final = choose_lost_threshold(*_pooled(frames, cv.chosen, list(cv.folds)))
    return ThresholdCrossValidation(thresholds, accuracy, estimate, final.threshold, final.balanced_accuracy)
