"""How well the tracker's per-frame confidence tells frames on the target from frames off it.

A frame is *on* the target when its IoU with the ground truth is at least :data:`ON_IOU` (0.5) and *off* it when
the IoU is below :data:`OFF_IOU` (0.1); frames in between, frames without ground truth and frames without a
finite score belong to neither class. The AUROC is the probability that a random on-frame scores higher than a
random off-frame (Mann-Whitney U; ties count half); it is NaN when either class is empty.

A ``lost_threshold`` declares a frame low when its score is *below* the threshold (as the tracker does); the
threshold chosen here maximises balanced accuracy, (TPR + TNR) / 2 = (1 + Youden's J) / 2, with "score at least
the threshold" predicting on-target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ON_IOU = 0.5
OFF_IOU = 0.1


def frame_classes(scores: np.ndarray, ious: np.ndarray, on_iou: float = ON_IOU, off_iou: float = OFF_IOU
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the on-target frames and of the off-target frames (frames with a NaN score or IoU dropped)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    iou = np.asarray(ious, dtype=np.float64).reshape(-1)
    if s.shape != iou.shape:
        raise ValueError(f"{s.size} scores but {iou.size} IoUs")
    known = np.isfinite(s) & np.isfinite(iou)
    return s[known & (iou >= on_iou)], s[known & (iou < off_iou)]


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive score > negative score) + 0.5·P(equal), over all pairs; NaN when either side is empty."""
    pos = np.asarray(positives, dtype=np.float64).reshape(-1)
    neg = np.asarray(negatives, dtype=np.float64).reshape(-1)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ordered = np.sort(neg)
    below = np.searchsorted(ordered, pos, side="left")  # negatives strictly below each positive
    not_above = np.searchsorted(ordered, pos, side="right")  # ... plus the ties
    return float((below.sum() + 0.5 * (not_above - below).sum()) / (pos.size * neg.size))


def confidence_auroc(scores: np.ndarray, ious: np.ndarray) -> float:
    """AUROC of the score separating on-target (IoU >= 0.5) from off-target (IoU < 0.1) frames."""
    return auroc(*frame_classes(scores, ious))


@dataclass(frozen=True)
class ThresholdChoice:
    """A lost threshold and how it separates the frames it was chosen on."""

    threshold: float
    balanced_accuracy: float
    on_frames: int
    off_frames: int


def balanced_accuracy(scores: np.ndarray, ious: np.ndarray, threshold: float) -> float:
    """(TPR + TNR) / 2 of "score >= threshold means on target"; NaN when either class is empty."""
    on, off = frame_classes(scores, ious)
    if on.size == 0 or off.size == 0:
        return float("nan")
    return float((np.mean(on >= threshold) + np.mean(off < threshold)) / 2.0)


def choose_lost_threshold(scores: np.ndarray, ious: np.ndarray) -> ThresholdChoice:
    """The threshold with the best balanced accuracy (Youden's J) on these frames.

    Candidates are the midpoints between consecutive distinct scores (plus one below the lowest and one above the
    highest); among equally good ones the lowest wins. NaN threshold when either class is empty.
    """
    on, off = frame_classes(scores, ious)
    if on.size == 0 or off.size == 0:
        return ThresholdChoice(float("nan"), float("nan"), int(on.size), int(off.size))
    values = np.unique(np.concatenate([on, off]))
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1e-6]])
    on_sorted, off_sorted = np.sort(on), np.sort(off)
    tpr = 1.0 - np.searchsorted(on_sorted, candidates, side="left") / on.size  # on scores >= t
    tnr = np.searchsorted(off_sorted, candidates, side="left") / off.size  # off scores < t
    accuracy = (tpr + tnr) / 2.0
    best = int(np.argmax(accuracy))
    return ThresholdChoice(float(candidates[best]), float(accuracy[best]), int(on.size), int(off.size))
