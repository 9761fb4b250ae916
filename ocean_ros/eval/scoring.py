"""Score a trajectory against its sequence by each community's rules, and combine sequences into a summary.

Which frames count:
- one-pass (OTB, UAV123, DTB70, LaSOT, and VOT sequences run one-pass): the first frame's box is the ground
  truth (the initialisation), every frame whose ground truth has no NaN counts (UAV123's NaN rows are skipped);
  a frame without a predicted box is a miss;
- AO / SR (GOT-10k's rule, applied to every layout): frames 2..N where the target is visible (``cover > 0``
  where the dataset has cover labels, else not absent and annotated), boxes cut to the image first;
- supervised (VOT): overlaps with the ground-truth polygon inside the image, frames within ``burnin`` frames of
  each (re)initialisation ignored; failures are the frames marked as such.

One-pass scores also keep the per-frame IoU (NaN where the frame has no ground truth) and the tracker's score, and
derive from them the lost spans (:mod:`ocean_ros.eval.lost_spans`) and the confidence AUROC
(:mod:`ocean_ros.eval.confidence`; the initialisation frame left out).

Summaries follow the toolkits: success / precision curves are averaged over sequences (OTB), AO / SR are pooled
over frames (GOT-10k), accuracy is pooled over frames and failures are summed (VOT); lost frames are summed and
the confidence AUROC is pooled over the frames of all sequences.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ocean_ros.eval import metrics
from ocean_ros.eval.confidence import confidence_auroc
from ocean_ros.eval.lost_spans import format_spans, lost_frame_count, lost_spans
from ocean_ros.eval.overlap import box_iou, center_error, normalized_center_error, polygon_box_overlap
from ocean_ros.eval.results import BOX, FAILURE, INIT, Trajectory
from ocean_ros.eval.sequences import Sequence

BURNIN = 10


@dataclass
class SequenceScore:
    """Scores of one sequence. Metrics that do not apply are NaN (one-pass metrics on supervised runs etc.)."""

    name: str
    layout: str
    protocol: str  # "one-pass" or "supervised"
    frames: int
    scored_frames: int = 0
    missing_boxes: int = 0
    auc: float = float("nan")
    precision: float = float("nan")
    norm_precision: float = float("nan")
    success_50: float = float("nan")
    ao: float = float("nan")
    sr_50: float = float("nan")
    sr_75: float = float("nan")
    accuracy: float = float("nan")
    failures: int | None = None
    lost_frames: int | None = None
    lost_spans: list[tuple[int, int]] = field(default_factory=list)
    conf_auroc: float = float("nan")
    fps: float = float("nan")
    success_curve: np.ndarray = field(default_factory=lambda: np.full(21, np.nan), repr=False)
    precision_curve: np.ndarray = field(default_factory=lambda: np.full(51, np.nan), repr=False)
    norm_precision_curve: np.ndarray = field(default_factory=lambda: np.full(51, np.nan), repr=False)
    ao_ious: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    accuracy_overlaps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    times: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    frame_ious: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    frame_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def as_dict(self, curves: bool = False) -> dict[str, object]:
        """Plain values (JSON-ready). Lost spans as ``"12-40 88-120"``; with ``curves``, the curves, the spans as
        ``[[12, 40], [88, 120]]`` and the per-frame ``frame_iou`` / ``frame_score`` (4 decimals, None = NaN)."""
        values = asdict(self)
        for key in ("ao_ious", "accuracy_overlaps", "times", "frame_ious", "frame_scores"):
            values.pop(key)
        for key in ("success_curve", "precision_curve", "norm_precision_curve"):
            values[key] = np.asarray(values[key]).tolist() if curves else None
            if not curves:
                values.pop(key)
        if curves:
            values["lost_spans"] = [list(span) for span in self.lost_spans]
            values["frame_iou"] = [_plain(round(float(v), 4)) for v in self.frame_ious]
            values["frame_score"] = [_plain(round(float(v), 4)) for v in self.frame_scores]
        else:
            values["lost_spans"] = format_spans(self.lost_spans) if self.lost_frames is not None else None
        return {k: _plain(v) for k, v in values.items()}

    def confidence_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(score, IoU) of the tracked frames (the initialisation frame left out), for confidence metrics."""
        return self.frame_scores[1:], self.frame_ious[1:]


def _plain(value: object) -> object:
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _check_lengths(sequence: Sequence, trajectory: Trajectory) -> None:
    if len(trajectory) != len(sequence):
        raise ValueError(
            f"{sequence.name}: the result has {len(trajectory)} rows but the sequence has {len(sequence)} frames"
        )


def default_bound(sequence: Sequence) -> tuple[float, float] | None:
    """The image size (width, height) that overlaps are cut to; None when the frames cannot be read."""
    try:
        return sequence.image_size()
    except (ValueError, IndexError, OSError):
        return None


def ao_overlaps(sequence: Sequence, boxes: np.ndarray, bound: tuple[float, float] | None) -> np.ndarray:
    """GOT-10k's per-frame IoUs: frames 2..N where the target is visible, boxes cut to the image when ``bound``
    is known (NaN box -> 0)."""
    mask = np.asarray(sequence.visible, dtype=bool).copy()
    if sequence.cover is not None:
        mask &= np.asarray(sequence.cover) > 0
    mask &= np.all(np.isfinite(sequence.ground_truth), axis=1)
    mask[0] = False
    ious = box_iou(boxes[mask], sequence.ground_truth[mask], bound)
    return np.nan_to_num(ious, nan=0.0)


def score_one_pass(sequence: Sequence, trajectory: Trajectory, bound: tuple[float, float] | None = None
                   ) -> SequenceScore:
    """One-pass scores: success/AUC, precision@20, normalised precision, OP50, AO/SR, speed."""
    _check_lengths(sequence, trajectory)
    gt = sequence.ground_truth
    boxes = np.array(trajectory.boxes, dtype=np.float64)
    boxes[0] = gt[0]  # the initialisation frame is the ground truth by definition
    valid = ~np.any(np.isnan(gt), axis=1)
    ious = box_iou(boxes[valid], gt[valid])
    frame_ious = np.full(len(sequence), np.nan)
    frame_ious[valid] = np.nan_to_num(ious, nan=0.0)
    frame_scores = np.full(len(sequence), np.nan)
    if trajectory.scores is not None:
        frame_scores[:] = np.asarray(trajectory.scores, dtype=np.float64)
    spans = lost_spans(frame_ious)
    errors = center_error(boxes[valid], gt[valid])
    norm_errors = normalized_center_error(boxes[valid], gt[valid])
    success = metrics.success_curve(ious)
    precision = metrics.precision_curve(errors)
    norm_precision = metrics.normalized_precision_curve(norm_errors)
    ao_ious = ao_overlaps(sequence, boxes, bound or default_bound(sequence))
    times = _tracked_times(trajectory)
    return SequenceScore(
        name=sequence.name, layout=sequence.layout, protocol="one-pass", frames=len(sequence),
        scored_frames=int(valid.sum()), missing_boxes=int(np.sum(np.any(np.isnan(boxes[1:]), axis=1))),
        auc=metrics.auc(success), precision=float(precision[int(metrics.PRECISION_PIXELS)]),
        norm_precision=float(norm_precision[20]), success_50=float(success[10]),
        ao=metrics.average_overlap(ao_ious), sr_50=metrics.success_rate(ao_ious, 0.5),
        sr_75=metrics.success_rate(ao_ious, 0.75), lost_frames=lost_frame_count(spans), lost_spans=spans,
        conf_auroc=confidence_auroc(frame_scores[1:], frame_ious[1:]), fps=metrics.frames_per_second(times),
        success_curve=success, precision_curve=precision, norm_precision_curve=norm_precision,
        ao_ious=ao_ious, times=times, frame_ious=frame_ious, frame_scores=frame_scores,
    )


def supervised_overlaps(sequence: Sequence, trajectory: Trajectory, bound: tuple[float, float] | None,
                        burnin: int = BURNIN) -> np.ndarray:
    """Per-frame overlaps of a supervised run: NaN for marker frames and the ``burnin`` frames from each init."""
    markers = trajectory.markers
    overlaps = np.full(len(sequence), np.nan)
    last_init = -(10**9)
    for i in range(len(sequence)):
        if markers[i] == INIT:
            last_init = i
        if markers[i] != BOX or i - last_init < burnin:
            continue
        if sequence.polygons is not None and np.all(np.isfinite(sequence.polygons[i])):
            overlaps[i] = polygon_box_overlap(sequence.polygons[i], trajectory.boxes[i], bound)
        elif np.all(np.isfinite(sequence.ground_truth[i])):
            overlaps[i] = box_iou(trajectory.boxes[i], sequence.ground_truth[i], bound)[0]
    return overlaps


def score_supervised(sequence: Sequence, trajectory: Trajectory, bound: tuple[float, float] | None = None,
                     burnin: int = BURNIN) -> SequenceScore:
    """VOT-style scores of a supervised run: accuracy (burn-in ``burnin`` frames), failures, speed."""
    _check_lengths(sequence, trajectory)
    overlaps = supervised_overlaps(sequence, trajectory, bound or default_bound(sequence), burnin)
    counted = overlaps[np.isfinite(overlaps)]
    times = _tracked_times(trajectory)
    return SequenceScore(
        name=sequence.name, layout=sequence.layout, protocol="supervised", frames=len(sequence),
        scored_frames=int(counted.size), accuracy=float(counted.mean()) if counted.size else float("nan"),
        failures=int(np.sum(trajectory.markers == FAILURE)), fps=metrics.frames_per_second(times),
        accuracy_overlaps=counted, times=times,
    )


def score_sequence(sequence: Sequence, trajectory: Trajectory, bound: tuple[float, float] | None = None
                   ) -> SequenceScore:
    """Supervised scores for trajectories with VOT markers, one-pass scores otherwise."""
    if trajectory.supervised:
        return score_supervised(sequence, trajectory, bound)
    return score_one_pass(sequence, trajectory, bound)


def _tracked_times(trajectory: Trajectory) -> np.ndarray:
    """Times of tracked frames (the initialisation frame and frames without a time excluded), seconds."""
    if trajectory.times is None:
        return np.zeros(0)
    times = np.asarray(trajectory.times, dtype=np.float64)[1:]
    if trajectory.markers is not None:
        times = times[trajectory.markers[1:] == BOX]
    return times[np.isfinite(times) & (times > 0)]


@dataclass
class Summary:
    """Overall scores of a set of sequences (see the module docstring for how each is combined)."""

    sequences: int
    frames: int
    auc: float
    precision: float
    norm_precision: float
    success_50: float
    ao: float
    sr_50: float
    sr_75: float
    accuracy: float
    failures: int | None
    fps: float
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    lost_frames: int | None = None
    conf_auroc: float = float("nan")

    def as_dict(self, curves: bool = False) -> dict[str, object]:
        values = asdict(self)
        for key in ("success_curve", "precision_curve", "norm_precision_curve"):
            if curves:
                values[key] = np.asarray(values[key]).tolist()
            else:
                values.pop(key)
        return {k: _plain(v) for k, v in values.items()}


def summarize(scores: list[SequenceScore]) -> Summary:
    """Combine per-sequence scores: OTB-style sequence means for curves, frame pooling for AO/SR/accuracy."""
    one_pass = [s for s in scores if s.protocol == "one-pass"]
    supervised = [s for s in scores if s.protocol == "supervised"]

    def mean_curve(attr: str, length: int) -> np.ndarray:
        if not one_pass:
            return np.full(length, np.nan)
        return np.mean([getattr(s, attr) for s in one_pass], axis=0)

    success = mean_curve("success_curve", 21)
    precision = mean_curve("precision_curve", 51)
    norm_precision = mean_curve("norm_precision_curve", 51)
    ao_ious = np.concatenate([s.ao_ious for s in one_pass]) if one_pass else np.zeros(0)
    overlaps = np.concatenate([s.accuracy_overlaps for s in supervised]) if supervised else np.zeros(0)
    times = np.concatenate([s.times for s in scores]) if scores else np.zeros(0)
    pairs = [s.confidence_frames() for s in one_pass]
    pooled_scores = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0)
    pooled_ious = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0)
    lost = [s.lost_frames for s in one_pass if s.lost_frames is not None]
    return Summary(
        sequences=len(scores), frames=int(sum(s.frames for s in scores)),
        auc=float(np.mean(success)), precision=float(precision[20]), norm_precision=float(norm_precision[20]),
        success_50=float(success[10]), ao=metrics.average_overlap(ao_ious),
        sr_50=metrics.success_rate(ao_ious, 0.5), sr_75=metrics.success_rate(ao_ious, 0.75),
        accuracy=float(overlaps.mean()) if overlaps.size else float("nan"),
        failures=int(sum(s.failures or 0 for s in supervised)) if supervised else None,
        fps=metrics.frames_per_second(times), success_curve=success, precision_curve=precision,
        norm_precision_curve=norm_precision, lost_frames=int(sum(lost)) if lost else None,
        conf_auroc=confidence_auroc(pooled_scores, pooled_ious),
    )
