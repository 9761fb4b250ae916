"""Tracking validation during training: the real OceanTracker over the validation sequences, OTB one-pass scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import TrainConfig

__all__ = ["validate", "evaluate_sequences"]


def evaluate_sequences(net: nn.Module, sequences: list, config: Any, device: torch.device | str = "cpu",
                       per_frame: bool = False) -> dict[str, Any]:
    """One pass per sequence (init on frame 0's ground truth): success AUC and precision@20 per sequence, mean.

    ``per_frame`` adds to each sequence ``lost_frames``, ``conf_auroc`` and the tracked frames' (initialisation
    frame left out) ``frame_scores`` and ``frame_ious`` (NaN IoU where the frame has no ground truth).
    """
    from ocean_ros.core.build import build_from_config
    from ocean_ros.eval.runner import run_one_pass
    from ocean_ros.eval.scoring import score_one_pass

    tracker = build_from_config(net, config, device)
    per: dict[str, dict[str, Any]] = {}
    for seq in sequences:
        score = score_one_pass(seq, run_one_pass(tracker, seq))
        per[seq.name] = {"auc": round(float(score.auc), 4), "precision": round(float(score.precision), 4)}
        if per_frame:
            scores, ious = score.confidence_frames()
            per[seq.name].update(lost_frames=score.lost_frames, conf_auroc=float(score.conf_auroc),
                                 frame_scores=scores.tolist(), frame_ious=ious.tolist())
    aucs = [v["auc"] for v in per.values()]
    precs = [v["precision"] for v in per.values()]
    return {"mean_auc": round(float(np.mean(aucs)), 4), "mean_precision": round(float(np.mean(precs)), 4),
            "sequences": per}


def validation_sequences(cfg: TrainConfig, root: Path) -> list:
    """The validation sequences the config names (all under ``validation.path`` when none), optionally cut."""
    from ocean_ros.eval.datasets import open_dataset

    v = cfg.validation
    path = Path(v.path) if Path(v.path).is_absolute() else root / v.path
    dataset = open_dataset(path).select(list(v.sequences) or None)
    seqs = list(dataset.sequences)
    if v.max_frames > 0:
        seqs = [s.sliced(0, v.max_frames) for s in seqs]
    return seqs


def validate(net: nn.Module, cfg: TrainConfig, root: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Scores of the net on the validation sequences with the ``validation.preset`` tracker settings, less the
    parts the net does not have (yet: a stage-1 net gets its online classifier in the online stage)."""
    from ocean_ros.core.build import tracker_config

    absent = {"align": net.has_align, "online": net.has_classifier}
    config = tracker_config(None, cfg.validation.preset, **{name: False for name, has in absent.items() if not has})
    was_training = net.training
    try:
        return evaluate_sequences(net, validation_sequences(cfg, root), config, device)
    finally:
        net.train(was_training)
