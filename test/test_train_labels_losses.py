"""Training targets and losses on small cases worked out by hand (training-spec §1.4, §1.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ocean_ros.core.model import LiteNetConfig, OceanLiteNet
from ocean_ros.train.labels import grid_coords, make_targets
from ocean_ros.train.losses import (
    LossTerms,
    balanced_bce_terms,
    combine,
    iou_label,
    iou_loss_terms,
    loss_terms,
    ocean_loss,
)


def cells(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(mask), strict=True)}


def diamond(ci: int, cj: int, radius: int) -> set[tuple[int, int]]:
    return {(ci + di, cj + dj) for di in range(-radius, radius + 1) for dj in range(-radius, radius + 1)
            if abs(di) + abs(dj) <= radius}


# --- grid -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,origin,size", [(16, 47.0, 11), (8, 31.0, 25)])
def test_grid_of_the_network(stride, origin, size):
    """The grids used below are the network's: stride 16 → 11 cells from pixel 47, stride 8 → 25 from 31."""
    net = OceanLiteNet(LiteNetConfig(stride=stride, channels=16, tower_depth=1, align=False))
    assert net.grid_origin(255) == origin and net.score_size(255) == size
    coords = grid_coords(size, origin, stride)
    assert coords[0] == origin and coords[-1] == origin + stride * (size - 1)
    # the grid is symmetric about the crop centre 127
    assert coords[0] + coords[-1] == 254


# --- labels ---------------------------------------------------------------------------------------------------------
def test_targets_stride16_by_hand():
    # Cells at x, y = 47, 63, 79, 95, 111, 127, 143, 159, 175, 191, 207 (j or i = 0..10).
    # Box x 100..160, y 120..160: centre (130, 140) → j = floor((130-47)/16 + 0.5) = 5, i = floor(5.81 + 0.5) = 6.
    t = make_targets(np.array([100.0, 120.0, 60.0, 40.0]), n=11, origin=47.0, stride=16, radius=1)
    assert t.cls.shape == (11, 11) and t.reg.shape == (4, 11, 11) and t.reg_weight.shape == (11, 11)
    assert cells(t.cls == 1) == {(6, 5), (5, 5), (7, 5), (6, 4), (6, 6)}
    assert set(np.unique(t.cls)) == {0.0, 1.0}
    # strictly inside: x in {111, 127, 143, 159} (j 4..7), y in {127, 143, 159} (i 5..7)
    assert cells(t.reg_weight == 1) == {(i, j) for i in (5, 6, 7) for j in (4, 5, 6, 7)}
    assert set(np.unique(t.reg_weight)) == {0.0, 1.0}
    # l, t, r, b at cell (i=6, j=5) = pixel (127, 143)
    np.testing.assert_array_equal(t.reg[:, 6, 5], [27, 23, 33, 17])
    # cell (7, 7) = pixel (159, 159): 1 px from the right and bottom sides, still inside
    np.testing.assert_array_equal(t.reg[:, 7, 7], [59, 39, 1, 1])
    # cell (0, 0) = pixel (47, 47): outside, negative distances kept as they are
    np.testing.assert_array_equal(t.reg[:, 0, 0], [-53, -73, 113, 113])
    # radius 0: only the centre cell
    t0 = make_targets(np.array([100.0, 120.0, 60.0, 40.0]), n=11, origin=47.0, stride=16, radius=0)
    assert cells(t0.cls == 1) == {(6, 5)}


def test_targets_stride8_by_hand():
    # Cells at 31 + 8k. Box x 100..120, y 50..80: centre (110, 65) → j = floor(9.875 + 0.5) = 10, i = floor(4.75) = 4.
    t = make_targets(np.array([100.0, 50.0, 20.0, 30.0]), n=25, origin=31.0, stride=8, radius=2)
    assert t.cls.shape == (25, 25)
    assert cells(t.cls == 1) == diamond(4, 10, 2) and int(t.cls.sum()) == 13
    # inside: x in {103, 111, 119} (j 9..11), y in {55, 63, 71, 79} (i 3..6)
    assert cells(t.reg_weight == 1) == {(i, j) for i in (3, 4, 5, 6) for j in (9, 10, 11)}
    np.testing.assert_array_equal(t.reg[:, 4, 10], [11, 13, 9, 17])  # pixel (111, 63)
    np.testing.assert_array_equal(t.reg[:, 6, 9], [3, 29, 17, 1])  # pixel (103, 79)
    np.testing.assert_array_equal(t.reg[:, 3, 12], [27, 5, -7, 25])  # pixel (127, 55): right of the box


def test_cell_on_the_box_side_is_not_inside():
    """A cell exactly on a side has a zero distance: not a regression positive (strictly inside only)."""
    # stride 16 cells at 111 and 127 both lie on sides of the box x 111..127, y 111..127
    t = make_targets(np.array([111.0, 111.0, 16.0, 16.0]), n=11, origin=47.0, stride=16, radius=1)
    assert t.reg_weight.sum() == 0
    np.testing.assert_array_equal(t.reg[:, 4, 4], [0, 0, 16, 16])
    # a slightly bigger box holds the cell (4, 4) = pixel (111, 111)
    t = make_targets(np.array([110.5, 110.5, 17.0, 17.0]), n=11, origin=47.0, stride=16, radius=1)
    assert cells(t.reg_weight == 1) == {(4, 4), (4, 5), (5, 4), (5, 5)}


def test_positive_diamond_clipped_at_the_border():
    # centre (31, 31) = cell (0, 0): the radius-2 diamond keeps its 6 cells inside the grid
    t = make_targets(np.array([21.0, 21.0, 20.0, 20.0]), n=25, origin=31.0, stride=8, radius=2)
    assert cells(t.cls == 1) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)}


@pytest.mark.parametrize("stride,n,origin", [(16, 11, 47.0), (8, 25, 31.0)])
def test_negative_pair_has_no_target(stride, n, origin):
    t = make_targets(np.array([100.0, 100.0, 60.0, 60.0]), n=n, origin=origin, stride=stride, radius=2, negative=True)
    assert not t.cls.any() and not t.reg_weight.any()
    assert t.cls.dtype == np.float32 and t.reg_weight.dtype == np.float32


# --- IoU loss -------------------------------------------------------------------------------------------------------
def as_maps(rows: list[list[float]]) -> torch.Tensor:
    """[K,4] l,t,r,b rows → [1,4,1,K] maps (one batch row of K cells)."""
    return torch.tensor(rows, dtype=torch.float64).T.reshape(1, 4, 1, len(rows))


def test_iou_loss_hand_values():
    target = [10.0, 10.0, 10.0, 10.0]  # a 20×20 box around the cell, area 400
    preds = [
        [10.0, 10.0, 10.0, 10.0],  # the same box: I = U = 400, loss exactly 0
        [5.0, 5.0, 5.0, 5.0],  # 10×10 inside: I = 100, U = 400
        [15.0, 10.0, 5.0, 10.0],  # shifted 5 px left: I = 15·20 = 300, U = 400 + 400 - 300 = 500
        [20.0, 30.0, 0.5, 10.0],  # I = (10 + 0.5)·(10 + 10) = 210, A = 20.5·40 = 820, U = 820 + 400 - 210 = 1010
    ]
    expected = [0.0, -math.log(101 / 401), -math.log(301 / 501), -math.log(211 / 1011)]
    pred = as_maps(preds)
    tgt = as_maps([target] * len(preds))
    for k in range(len(preds)):
        weight = torch.zeros(1, 1, len(preds))
        weight[0, 0, k] = 1
        total, count = iou_loss_terms(pred, tgt, weight)
        assert float(count) == 1
        assert float(total) == pytest.approx(expected[k], abs=1e-6)
    assert float(iou_loss_terms(pred[..., :1], tgt[..., :1], torch.ones(1, 1, 1))[0]) == 0.0
    # only weighted cells count, and the sum is over them
    weight = torch.tensor([[[0.0, 1.0, 1.0, 0.0]]])
    total, count = iou_loss_terms(pred, tgt, weight)
    assert float(count) == 2 and float(total) == pytest.approx(expected[1] + expected[2], abs=1e-6)
    total, count = iou_loss_terms(pred, tgt, torch.zeros(1, 1, 4))
    assert float(count) == 0 and float(total) == 0


def test_iou_label_matches_the_loss():
    pred = as_maps([[10.0, 10.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0], [15.0, 10.0, 5.0, 10.0]])
    tgt = as_maps([[10.0, 10.0, 10.0, 10.0]] * 3)
    label = iou_label(pred, tgt, torch.tensor([[[1.0, 1.0, 0.0]]]))
    np.testing.assert_allclose(label.numpy()[0, 0], [1.0, 101 / 401, 0.0], rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-4, 1e-2, 1.0, 100.0])
def test_iou_loss_gradients_finite(scale):
    """Gradients stay finite for tiny and large boxes, through the exp that makes predictions positive."""
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, 4, 3, 3, generator=gen) * 0.5 + math.log(scale)).requires_grad_(True)
    target = torch.rand(2, 4, 3, 3, generator=gen) * 2 * scale + scale * 1e-3
    weight = (torch.rand(2, 3, 3, generator=gen) > 0.3).float()
    total, count = iou_loss_terms(torch.exp(logits), target, weight)
    (total / count).backward()
    assert torch.isfinite(total) and torch.isfinite(logits.grad).all()
    # perfect boxes: zero loss, finite gradient
    exact = torch.full((1, 4, 2, 2), scale, requires_grad=True)
    loss, _ = iou_loss_terms(exact, exact.detach().clone(), torch.ones(1, 2, 2))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(exact.grad).all()


# --- balanced BCE ---------------------------------------------------------------------------------------------------
def bce(x: float, y: float) -> float:
    """BCE-with-logits by hand: log(1 + e^x) - x·y."""
    return math.log1p(math.exp(x)) - x * y


def terms_of(cls_sums: tuple, reg: tuple = (0.0, 0.0), align: tuple = (0.0, 0.0)) -> LossTerms:
    values = [*cls_sums, *reg, *align]
    return LossTerms(*(torch.tensor(float(v)) for v in values))


def test_balanced_bce_by_hand():
    logits = torch.tensor([[[2.0, -1.0, 0.5], [-0.3, 1.5, 0.0]]])
    label = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    pos_sum, pos_n, neg_sum, neg_n = balanced_bce_terms(logits, label)
    pos = [bce(2.0, 1), bce(-1.0, 1)]
    neg = [bce(0.5, 0), bce(-0.3, 0), bce(1.5, 0), bce(0.0, 0)]
    assert (float(pos_n), float(neg_n)) == (2, 4)
    assert float(pos_sum) == pytest.approx(sum(pos), abs=1e-6)
    assert float(neg_sum) == pytest.approx(sum(neg), abs=1e-6)
    total, parts = combine(terms_of((pos_sum, pos_n, neg_sum, neg_n)))
    want = 0.5 * sum(pos) / 2 + 0.5 * sum(neg) / 4
    assert float(parts["cls"]) == pytest.approx(want, abs=1e-6)
    assert float(total) == pytest.approx(want, abs=1e-6)  # no regression or align cells
    # logits [B,1,N,N] (the head's shape) reshape onto labels [B,N,N]
    assert float(balanced_bce_terms(logits[:, None], label)[0]) == pytest.approx(sum(pos), abs=1e-6)


def test_batch_without_positive_uses_the_negative_mean():
    logits = torch.tensor([[[0.5, -0.3], [1.5, -2.0]]])
    label = torch.zeros(1, 2, 2)
    terms = balanced_bce_terms(logits, label)
    assert float(terms[1]) == 0
    _, parts = combine(terms_of(terms))
    want = (bce(0.5, 0) + bce(-0.3, 0) + bce(1.5, 0) + bce(-2.0, 0)) / 4
    assert float(parts["cls"]) == pytest.approx(want, abs=1e-6)  # not halved


def test_total_is_sum_of_terms_and_shards_combine():
    """ocean_loss = L_cls + L_reg + L_align; sums over two halves with global counts give the same total."""
    gen = torch.Generator().manual_seed(0)
    b, n = 4, 5
    cls = torch.randn(b, 1, n, n, generator=gen)
    reg = torch.exp(torch.randn(b, 4, n, n, generator=gen)) * 10
    align = torch.randn(b, 1, n, n, generator=gen)
    targets = [make_targets(np.array([30.0 + 7 * k, 40.0, 50.0, 45.0]), n, 31.0, 16, 1, negative=k == 3)
               for k in range(b)]
    cls_label = torch.from_numpy(np.stack([t.cls for t in targets]))
    reg_target = torch.from_numpy(np.stack([t.reg for t in targets]))
    reg_weight = torch.from_numpy(np.stack([t.reg_weight for t in targets]))
    total, parts = ocean_loss(cls, reg, align, cls_label, reg_target, reg_weight)
    assert float(total) == pytest.approx(float(parts["cls"] + parts["reg"] + parts["align"]), abs=1e-6)
    rs, rn = iou_loss_terms(reg, reg_target, reg_weight)
    assert float(parts["reg"]) == pytest.approx(float(rs / rn), abs=1e-6)
    halves = [loss_terms(cls[s], reg[s], align[s], cls_label[s], reg_target[s], reg_weight[s])
              for s in (slice(0, 2), slice(2, 4))]
    counts = sum(torch.stack([h.pos_count, h.neg_count, h.reg_count, h.align_count]) for h in halves)
    shard_totals = [combine(h, counts)[0] for h in halves]
    assert float(sum(shard_totals)) == pytest.approx(float(total), abs=1e-6)
