"""The community's tracking metrics on per-frame overlaps and centre errors.

- success curve: fraction of frames whose IoU is *above* each of 21 thresholds 0, 0.05, ..., 1; its AUC is the
  curve's mean (OTB; converges to the mean IoU as the thresholds get denser);
- precision curve: fraction of frames whose centre error is *at most* 0, 1, ..., 50 px; precision@20 px is its
  value at 20;
- normalised precision (LaSOT, TrackingNet): the same on centre errors scaled by the ground-truth size, read at
  0.20 on 51 thresholds 0 .. 0.5;
- GOT-10k: AO is the mean IoU, SR0.5 / SR0.75 the fractions above 0.5 / 0.75;
- VOT supervised runs: accuracy is the mean overlap outside the burn-in after each (re)initialisation, robustness
  the number of failures.

Inputs are per-frame arrays of the frames that count; NaN or infinite entries (no prediction) count as misses.
"""

from __future__ import annotations

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 51)
PRECISION_PIXELS = 20.0
NORM_PRECISION_AT = 0.20


def success_curve(ious: np.ndarray, thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU strictly above each threshold (NaN IoU counts as 0). Empty input -> zeros."""
    values = np.nan_to_num(np.asarray(ious, dtype=np.float64).reshape(-1), nan=0.0)
    if values.size == 0:
        return np.zeros(len(thresholds))
    return np.mean(values[:, None] > thresholds[None, :], axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error at most each threshold (NaN counts as a miss). Empty -> zeros."""
    values = np.nan_to_num(np.asarray(errors, dtype=np.float64).reshape(-1), nan=np.inf)
    if values.size == 0:
        return np.zeros(len(thresholds))
    return np.mean(values[:, None] <= thresholds[None, :], axis=0)


def auc(curve: np.ndarray) -> float:
    """Area under a success curve: the mean of its values (OTB's definition)."""
    return float(np.mean(curve))


def precision_at(errors: np.ndarray, pixels: float = PRECISION_PIXELS) -> float:
    """Fraction of frames whose centre error is at most ``pixels`` (precision@20 px by default)."""
    values = np.nan_to_num(np.asarray(errors, dtype=np.float64).reshape(-1), nan=np.inf)
    return float(np.mean(values <= pixels)) if values.size else 0.0


def normalized_precision_curve(errors: np.ndarray) -> np.ndarray:
    """Precision curve on size-normalised centre errors over 51 thresholds 0 .. 0.5."""
    return precision_curve(errors, NORM_PRECISION_THRESHOLDS)


def normalized_precision(errors: np.ndarray) -> float:
    """LaSOT's normalised precision: the normalised precision curve read at 0.20."""
    return float(normalized_precision_curve(errors)[int(round(NORM_PRECISION_AT / 0.01))])


def average_overlap(ious: np.ndarray) -> float:
    """GOT-10k's AO: the mean IoU (NaN counts as 0). Empty input -> NaN."""
    values = np.nan_to_num(np.asarray(ious, dtype=np.float64).reshape(-1), nan=0.0)
    return float(values.mean()) if values.size else float("nan")


def success_rate(ious: np.ndarray, threshold: float = 0.5) -> float:
    """GOT-10k's SR: fraction of frames with IoU strictly above ``threshold``. Empty input -> NaN."""
    values = np.nan_to_num(np.asarray(ious, dtype=np.float64).reshape(-1), nan=0.0)
    return float(np.mean(values > threshold)) if values.size else float("nan")


def frames_per_second(times_s: np.ndarray) -> float:
    """Frames per second over tracked frames: count / total time (NaN and non-positive times ignored)."""
    values = np.asarray(times_s, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values) & (values > 0)]
    return float(len(values) / values.sum()) if values.size else float("nan")
