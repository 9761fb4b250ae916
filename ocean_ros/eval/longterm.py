"""Long-term tracking metrics: VOT-LT precision / recall / F-score, and what happens after each target absence.

Per frame ``t`` (frame 0, the initialisation, never counts):

- the target is *present* where the ground truth is a finite box with ``w > 0`` and ``h > 0``, *absent* otherwise
  (NaN row or zero size);
- the tracker *predicts* where it reported the target (the ``reported`` flag: state TRACKING; the node publishes
  an empty detection array otherwise) and its box is finite; without recorded flags every finite box counts;
- ``overlap[t]`` is the IoU of the predicted box with the ground truth, 0 where the target is absent or nothing is
  predicted; a predicted frame without a confidence counts as confident above every threshold.

VOT-LT (Lukezic et al., "Now you see me: evaluating performance in long-term visual tracking", 2018), for a
confidence threshold ``tau``: precision ``Pr(tau)`` = mean overlap over the predicted frames with confidence
``>= tau``; recall ``Re(tau)`` = sum of those frames' overlaps over the number of present frames; ``F = 2 Pr Re /
(Pr + Re)`` (0 where ``Re`` is 0, NaN without present frames). Thresholds are the distinct confidences of the
predicted frames, ascending (at most :data:`MAX_THRESHOLDS`, evenly spaced by rank). The reported F-score is the
maximum over thresholds (the lowest such threshold on ties) with its ``tau``, ``Pr`` and ``Re``. Over several
sequences, ``Pr(tau)`` is averaged over the sequences with a prediction at ``tau`` and ``Re(tau)`` over those with
present frames, on thresholds from all sequences' confidences, and F is taken from the averages (as VOT-LT).

Episodes. An *absence* is a maximal run of absent frames; the first present frame after it is its *return*. A
*hit* is a predicted frame with IoU ``>= iou_hit`` (default 0.3). The *re-acquisition delay* of a return ``r`` is
``t - r`` for the first hit ``t >= r`` before the next absence (0: found on the first visible frame); the return is
*re-acquired* when the delay is at most ``window`` (default 15) frames, *missed* otherwise. A *wrong* frame is a
predicted frame where the target is absent or the IoU is below ``wrong_iou`` (default 0.1). The *search phase* of
an absence runs from its first frame to its return's first hit (or to the next absence or the sequence end); a
*loss* is a frame where the target is present, the tracker stops reporting and no search phase is running, and its
search phase runs from there to the next hit the same way. A *false re-acquisition* is a run of at least
``persist`` (default 5) consecutive wrong frames inside a search phase (a box kept on the background after the
target left counts too). ``false_reacquisition_rate`` = absences whose search phase holds one / absences;
``false_after_loss`` counts those in loss phases. ``absent_empty_rate`` = share of absent frames where the tracker
reported nothing. Frame indices are 0-based; spans ``(first, last)`` inclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

import numpy as np

from ocean_ros.eval.overlap import box_iou

MAX_THRESHOLDS = 100
IOU_HIT = 0.3
WINDOW = 15
WRONG_IOU = 0.1
PERSIST = 5


@dataclass(frozen=True)
class EpisodeRules:
    """Thresholds of the episode metrics (see the module docstring)."""

    iou_hit: float = IOU_HIT
    window: int = WINDOW
    wrong_iou: float = WRONG_IOU
    persist: int = PERSIST


@dataclass(frozen=True)
class LongTermFrames:
    """One sequence's per-frame inputs, checked: ``overlap`` (0 where nothing counts), ``confidence`` (+inf on
    predicted frames without one), ``predicted`` and ``present`` (both False on frame 0)."""

    name: str
    overlap: np.ndarray
    confidence: np.ndarray
    predicted: np.ndarray
    present: np.ndarray

    def __len__(self) -> int:
        return len(self.overlap)


@dataclass(frozen=True)
class LongTermScore:
    """Long-term metrics of one sequence or a pooled set (counts summed, delays pooled); NaN where undefined.

    ``false_reacquisitions`` counts the absences whose search phase holds a false re-acquisition (the numerator of
    ``false_reacquisition_rate``); ``false_spans`` lists every such run, loss phases' included. ``delays`` has one
    entry per return (None: never re-acquired), ``frames`` excludes the initialisation frame.
    """

    name: str
    frames: int
    absent_frames: int
    absences: int
    returns: int
    f_score: float
    threshold: float
    precision: float
    recall: float
    reacquired: int
    reacquired_rate: float
    missed: int
    false_reacquisitions: int
    false_reacquisition_rate: float
    false_after_loss: int
    absent_empty_rate: float
    delay_median: float
    delay_max: float
    delays: tuple[int | None, ...] = ()
    absence_spans: tuple[tuple[int, int], ...] = ()
    false_spans: tuple[tuple[int, int], ...] = ()
    rules: EpisodeRules = field(default_factory=EpisodeRules)

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values (NaN as None, spans as lists)."""
        values: dict[str, object] = {}
        for key, value in self.__dict__.items():
            if key == "rules":
                values.update({f"rule_{k}": v for k, v in value.__dict__.items()})
            elif isinstance(value, tuple):
                values[key] = [list(v) if isinstance(v, tuple) else v for v in value]
            elif isinstance(value, float):
                values[key] = value if math.isfinite(value) else None
            else:
                values[key] = value
        return values


def _rows(name: str, values: np.ndarray | None, n: int, what: str, columns: int = 0) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values)
    shape = (n, columns) if columns else (n,)
    if array.shape != shape:
        raise ValueError(f"{name}: {what} has shape {array.shape}, expected {shape} (one per frame)")
    return array


def longterm_frames(boxes: np.ndarray, confidence: np.ndarray | None, reported: np.ndarray | None,
                    ground_truth: np.ndarray, name: str = "sequence") -> LongTermFrames:
    """Check and combine one sequence's ``[N, 4]`` xywh boxes (NaN row: no box), confidences (None: none
    recorded), reported flags (None: every finite box counts) and ``[N, 4]`` ground truth."""
    gt = np.asarray(ground_truth, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[1] != 4 or len(gt) == 0:
        raise ValueError(f"{name}: ground truth has shape {gt.shape}, expected [N, 4] with N >= 1")
    n = len(gt)
    pred = np.asarray(_rows(name, boxes, n, "the box array", 4), dtype=np.float64)
    conf = _rows(name, confidence, n, "the confidence array")
    flags = _rows(name, reported, n, "the reported array")
    present = target_present(gt)
    predicted = np.all(np.isfinite(pred), axis=1)
    if flags is not None:
        predicted &= flags.astype(bool)
    present[0] = predicted[0] = False  # the initialisation frame is given, not tracked
    overlap = np.zeros(n)
    both = present & predicted
    overlap[both] = box_iou(pred[both], gt[both])
    score = np.ones(n) * np.inf if conf is None else np.asarray(conf, dtype=np.float64).copy()
    score[predicted & ~np.isfinite(score)] = np.inf
    score[~predicted] = -np.inf
    return LongTermFrames(name, overlap, score, predicted, present)


def thresholds(sequences: Seq[LongTermFrames], limit: int = MAX_THRESHOLDS) -> np.ndarray:
    """Distinct confidences of all predicted frames, ascending; ``limit`` of them evenly spaced by rank if more."""
    values = np.unique(np.concatenate([s.confidence[s.predicted] for s in sequences] or [np.zeros(0)]))
    if len(values) > limit:
        values = values[np.round(np.linspace(0, len(values) - 1, limit)).astype(int)]
    return values


def precision_recall(sequences: Seq[LongTermFrames], taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Pr(tau)`` and ``Re(tau)`` averaged over sequences as VOT-LT does (see the module docstring)."""
    pr_rows, re_rows = [], []
    for s in sequences:
        above = s.predicted[None, :] & (s.confidence[None, :] >= taus[:, None])
        counted = above.sum(axis=1)
        gained = (above * s.overlap[None, :]).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pr_rows.append(np.where(counted > 0, gained / np.maximum(counted, 1), np.nan))
        present = int(s.present.sum())
        re_rows.append(gained / present if present else np.full(len(taus), np.nan))
    return _nanmean_rows(pr_rows, len(taus)), _nanmean_rows(re_rows, len(taus))


def _nanmean_rows(rows: list[np.ndarray], n: int) -> np.ndarray:
    if not rows:
        return np.full(n, np.nan)
    stacked = np.vstack(rows)
    finite = np.isfinite(stacked)
    sums = np.where(finite, stacked, 0.0).sum(axis=0)
    counts = finite.sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def f_measure(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """``2 Pr Re / (Pr + Re)``: 0 where ``Re`` is 0 (also without a precision), NaN where ``Re`` is NaN."""
    pr, re = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 2 * pr * re / (pr + re)
    return np.where(re == 0, 0.0, np.where(np.isfinite(re), f, np.nan))


def _best_f(sequences: Seq[LongTermFrames]) -> tuple[float, float, float, float]:
    """(max F, its threshold, Pr and Re there); with no prediction at all F is 0 (NaN without present frames)."""
    taus = thresholds(sequences)
    if len(taus) == 0:
        has_present = any(s.present.any() for s in sequences)
        return (0.0 if has_present else math.nan), math.nan, math.nan, (0.0 if has_present else math.nan)
    pr, re = precision_recall(sequences, taus)
    f = f_measure(pr, re)
    if not np.any(np.isfinite(f)):
        return math.nan, math.nan, float(np.nanmax(pr)) if np.any(np.isfinite(pr)) else math.nan, math.nan
    best = int(np.nanargmax(f))
    return float(f[best]), float(taus[best]), float(pr[best]), float(re[best])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return [(int(a), int(b) - 1) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                                                   strict=True)]


@dataclass
class _Episodes:
    spans: list[tuple[int, int]]
    delays: list[int | None]  # per return: delay to the first hit, None when never re-acquired
    false_spans: list[tuple[int, int]]
    false_absences: int  # absences whose search phase holds a false re-acquisition
    false_after_loss: int


def _search_end(start: int, hit: np.ndarray, stop: int) -> tuple[int, int | None]:
    """Last frame of a search phase starting at ``start`` that may end by frame ``stop`` (inclusive), and its
    hit (None when none)."""
    found = np.flatnonzero(hit[start:stop + 1])
    if found.size:
        first = start + int(found[0])
        return first - 1, first
    return stop, None


def _false_runs(wrong: np.ndarray, first: int, last: int, persist: int) -> list[tuple[int, int]]:
    if last < first:
        return []
    return [(a + first, b + first) for a, b in _runs(wrong[first:last + 1]) if b - a + 1 >= persist]


def _episodes(s: LongTermFrames, rules: EpisodeRules) -> _Episodes:
    n = len(s)
    absent = ~s.present
    absent[0] = False
    hit = s.predicted & s.present & (s.overlap >= rules.iou_hit)
    wrong = s.predicted & (~s.present | (s.overlap < rules.wrong_iou))
    wrong[0] = False
    spans = _runs(absent)
    in_search = np.zeros(n, dtype=bool)
    delays: list[int | None] = []
    false_spans: list[tuple[int, int]] = []
    false_absences = 0
    for k, (a, b) in enumerate(spans):
        stop = spans[k + 1][0] - 1 if k + 1 < len(spans) else n - 1
        last, found = _search_end(b + 1, hit, stop) if b + 1 < n else (b, None)
        if b + 1 < n:
            delays.append(None if found is None else found - (b + 1))
        in_search[a:last + 1] = True
        runs = _false_runs(wrong, a, last, rules.persist)
        false_spans += runs
        false_absences += bool(runs)
    after_loss = 0
    for t in range(1, n):
        if s.present[t] and s.predicted[t - 1] and not s.predicted[t] and not in_search[t]:  # a loss
            stop = next((a - 1 for a, _ in spans if a > t), n - 1)
            last, _ = _search_end(t, hit, stop)
            runs = _false_runs(wrong, t, last, rules.persist)
            false_spans += runs
            after_loss += len(runs)
            in_search[t:last + 1] = True
    return _Episodes(spans, delays, sorted(false_spans), false_absences, after_loss)


def _ratio(count: float, total: float) -> float:
    return float(count) / total if total else math.nan


def _pooled(name: str, sequences: Seq[LongTermFrames], rules: EpisodeRules, keep_spans: bool) -> LongTermScore:
    episodes = [_episodes(s, rules) for s in sequences]
    delays = [d for e in episodes for d in e.delays]
    found = [d for d in delays if d is not None]
    reacquired = sum(1 for d in found if d <= rules.window)
    absences = sum(len(e.spans) for e in episodes)
    absent = np.concatenate([~s.present[1:] for s in sequences])
    empty = np.concatenate([~s.predicted[1:] for s in sequences])
    f_score, tau, precision, recall = _best_f(sequences)
    return LongTermScore(
        name=name, frames=int(sum(len(s) - 1 for s in sequences)), absent_frames=int(absent.sum()),
        absences=absences, returns=len(delays), f_score=f_score, threshold=tau, precision=precision,
        recall=recall, reacquired=reacquired, reacquired_rate=_ratio(reacquired, len(delays)),
        missed=len(delays) - reacquired, false_reacquisitions=sum(e.false_absences for e in episodes),
        false_reacquisition_rate=_ratio(sum(e.false_absences for e in episodes), absences),
        false_after_loss=sum(e.false_after_loss for e in episodes),
        absent_empty_rate=_ratio(int((absent & empty).sum()), int(absent.sum())),
        delay_median=float(np.median(found)) if found else math.nan,
        delay_max=float(max(found)) if found else math.nan,
        delays=tuple(delays) if keep_spans else (),
        absence_spans=tuple(episodes[0].spans) if keep_spans else (),
        false_spans=tuple(episodes[0].false_spans) if keep_spans else (), rules=rules,
    )


def score_longterm(frames: LongTermFrames, rules: EpisodeRules | None = None) -> LongTermScore:
    """Long-term metrics of one sequence (see the module docstring), with its spans and delays."""
    return _pooled(frames.name, [frames], rules or EpisodeRules(), keep_spans=True)


def summarize_longterm(sequences: Seq[LongTermFrames], rules: EpisodeRules | None = None,
                       name: str = "OVERALL") -> LongTermScore:
    """Long-term metrics over several sequences: VOT-LT curves averaged over sequences, episode counts and
    absent frames pooled, delays pooled; no spans."""
    if not sequences:
        raise ValueError("no sequence to summarise")
    return _pooled(name, list(sequences), rules or EpisodeRules(), keep_spans=False)


def target_present(ground_truth: np.ndarray) -> np.ndarray:
    """Per frame: True where the ground truth is a finite xywh box with a positive width and height."""
    gt = np.asarray(ground_truth, dtype=np.float64).reshape(-1, 4)
    return np.all(np.isfinite(gt), axis=1) & (np.nan_to_num(gt[:, 2]) > 0) & (np.nan_to_num(gt[:, 3]) > 0)


def has_absences(ground_truth: np.ndarray) -> bool:
    """True when any frame after the first has no target (NaN row or zero-size box)."""
    return bool(np.any(~target_present(ground_truth)[1:]))
