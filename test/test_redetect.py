"""The loss hysteresis and the re-detection scan on hand-made score sequences and geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ocean_ros.core.redetect import LossHysteresis, Probe, Redetector, ScanPlan, box_iou, online_agrees
from ocean_ros.core.types import Box, TrackState

T, L = TrackState.TRACKING, TrackState.LOST


def states(machine: LossHysteresis, scores: list[float], not_found: list[bool] | None = None) -> list[TrackState]:
    flags = not_found or [False] * len(scores)
    return [machine.observe(s, f) for s, f in zip(scores, flags, strict=True)]


def test_lost_needs_a_sustained_low_score_and_found_a_sustained_confident_one():
    m = LossHysteresis(lost_threshold=0.4, lost_frames=3, found_threshold=0.7, found_frames=2)
    # two low frames are a dip, the third makes it a loss; middling scores (0.5: above lost, below found) keep
    # it lost; one confident frame is not enough, two in a row end it
    scores = [0.9, 0.3, 0.2, 0.8, 0.3, 0.3, 0.1, 0.5, 0.6, 0.8, 0.5, 0.8, 0.9, 0.45]
    expect = [T, T, T, T, T, T, L, L, L, L, L, L, T, T]
    assert states(m, scores) == expect


def test_nan_scores_and_not_found_flags_count_as_low():
    m = LossHysteresis(0.4, 2, 0.7, 1)
    assert states(m, [0.9, math.nan, math.nan]) == [T, T, L]
    m.reset()
    assert states(m, [0.9, 0.9, 0.9], [False, True, True]) == [T, T, L]
    assert states(m, [0.95], [True]) == [L]  # a confident score the online branch calls not_found is not found
    assert states(m, [0.95]) == [T]


def test_found_ends_a_loss_and_reset_starts_tracking():
    m = LossHysteresis(0.4, 1, 0.7, 5)
    assert m.observe(0.1) is L
    m.found()
    assert m.state is T and m.observe(0.5) is T
    m.observe(0.1)
    m.reset()
    assert m.state is T


def test_a_loss_ends_only_when_the_verifier_agrees():
    m = LossHysteresis(0.4, 1, 0.7, 2)
    verdicts = iter([False, True])
    assert states(m, [0.1]) == [L]
    assert [m.observe(s, verify=lambda: next(verdicts)) for s in (0.9, 0.9, 0.9, 0.9)] == [L, L, L, T]


class _Filter:
    """An online branch stand-in whose response is a function of the position (x only)."""

    def response_at(self, frame_t, center_xy):
        return {10.0: 0.5, 20.0: 0.3, 30.0: 0.6}[center_xy[0]]


def test_online_agreement_needs_the_threshold_and_beating_the_rival():
    assert online_agrees(None, None, (10.0, 0.0), 0.38)
    assert online_agrees(_Filter(), None, (10.0, 0.0), 0.38)
    assert not online_agrees(_Filter(), None, (20.0, 0.0), 0.38)
    assert online_agrees(_Filter(), None, (10.0, 0.0), 0.38, rival_xy=(20.0, 0.0))
    assert not online_agrees(_Filter(), None, (10.0, 0.0), 0.38, rival_xy=(30.0, 0.0))


def test_thresholds_out_of_order_are_refused():
    with pytest.raises(ValueError, match="below lost_threshold"):
        LossHysteresis(0.6, 3, 0.5, 2)
    with pytest.raises(ValueError, match=">= 1"):
        LossHysteresis(0.4, 0, 0.5, 2)


def test_scan_covers_the_frame_nearest_first_then_changes_scale():
    reach = {1.0: 100.0, 0.8: 80.0, 1.25: 125.0}
    plan = ScanPlan((300, 200), last_center=(290.0, 10.0), lost_size=(40.0, 20.0),
                    reach=lambda size: reach[round(size[0] / 40.0, 2)])
    first = [plan.next() for _ in range(6)]  # 3 x 2 tiles of 100 px
    assert [p.center for p in first[:2]] == [(250.0, 50.0), (150.0, 50.0)]
    assert sorted(p.center for p in first) == sorted((x, y) for x in (50.0, 150.0, 250.0) for y in (50.0, 150.0))
    assert all(p.size == (40.0, 20.0) for p in first)
    second = [plan.next() for _ in range(plan.pass_length())]
    assert {p.size for p in second} == {(32.0, 16.0)} and len(second) == 4 * 3  # 80 px: 4 x 3 tiles
    xs = sorted({p.center[0] for p in second})
    assert xs[0] == 40.0 and xs[-1] == 260.0  # the outer tiles reach the frame's edges
    third = plan.next()
    assert third.size == (50.0, 25.0)


def test_a_frame_smaller_than_one_probe_is_one_centred_probe():
    plan = ScanPlan((64, 48), (0.0, 0.0), (10.0, 10.0), reach=lambda size: 500.0)
    assert plan.next() == Probe((32.0, 24.0), (10.0, 10.0))
    assert plan.pass_length() == 1


def test_a_candidate_is_adopted_only_after_agreeing_confident_probes():
    plan = ScanPlan((400, 400), (0.0, 0.0), (20.0, 20.0), reach=lambda size: 100.0)
    r = Redetector(plan, found_threshold=0.7, found_frames=2)
    target = Box(200.0, 210.0, 22.0, 20.0)
    assert r.report(0.3, target) is None  # not confident: the scan goes on
    tile = r.next_probe()
    assert r.report(0.8, target) is None  # a candidate ...
    assert r.next_probe() == Probe(target.center, (22.0, 20.0))  # ... that the next probe re-examines
    elsewhere = Box(10.0, 10.0, 20.0, 20.0)
    assert r.report(0.9, elsewhere) is None  # it moved away: a new candidate, not a confirmation
    assert r.next_probe().center == elsewhere.center
    moved = Box(12.0, 11.0, 20.0, 20.0)
    assert r.report(0.75, moved) == moved  # confident and overlapping: adopted
    assert r.candidates == 2 and r.probes == 4
    assert r.next_probe() != Probe(moved.center, (20.0, 20.0)) and tile != r.next_probe()


def test_box_iou_hand_computed():
    assert box_iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou(Box(0, 0, 10, 10), Box(10, 0, 10, 10)) == 0.0


# ------------------------------------------------------------------------------------ the tracker, end to end
def _moved(frame: np.ndarray, box: tuple[float, ...], dx: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """``frame`` with the target's box region copied ``dx`` px sideways and its old place painted over in the
    frame's mean colour: the target jumps across the frame."""
    x, y, w, h = (int(round(v)) for v in box)
    out = frame.copy()
    out[y:y + h, x + dx:x + dx + w] = frame[y:y + h, x:x + w]
    out[y - 4:y + h + 4, x - 4:x + w + 4] = frame.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    return out, (float(x + dx), float(y), float(w), float(h))


@pytest.mark.parametrize(("redetect", "step_mode"), [(True, "classic"), (True, "static"), (False, "classic")])
def test_a_target_moved_across_a_real_frame_is_found_again(sequences_dir, redetect, step_mode):
    """Crossing's pedestrian moved far outside the local search: the tracker goes LOST, its probes find the
    target and it tracks it there (host numbers, and the device-buffer step that CUDA captures); with
    re-detection off it stays lost."""
    from ocean_ros.core.build import build_tracker
    from ocean_ros.eval.sequences import open_sequence

    seq = open_sequence(sequences_dir / "Crossing")
    frame, box = seq.read(0), tuple(float(v) for v in seq.ground_truth[0])
    dx = 10 - int(box[0])  # to the frame's left edge
    assert dx < -150, dx  # beyond the local search's reach
    moved, target = _moved(frame, box, dx)
    tracker = build_tracker(None, device="cpu", backend="torch", step_mode=step_mode, redetect=redetect)
    tracker.initialize(frame, box)
    results = [tracker.track(moved) for _ in range(30)]
    lost = [r.state is TrackState.LOST for r in results]
    assert any(lost)
    found = [i for i, r in enumerate(results) if r.reacquired]
    if not redetect:
        assert not found and lost[-1] and not any(r.searching for r in results)
        return
    assert len(found) == 1, found
    first_lost = lost.index(True)
    assert all(r.searching for r in results[first_lost:found[0] + 1])
    assert all(r.state is TrackState.TRACKING for r in results[found[0]:])
    final = Box(*results[-1].box_xywh)
    assert box_iou(final, Box(*target)) >= 0.5, (final, target)
