"""Distillation: teacher-to-student grid mapping, bilinear sampling, KL and weighted IoU terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ocean_ros.core.model import LiteNetConfig, OceanLiteNet
from ocean_ros.core.model.mobile_trunk import MobileTrunk
from ocean_ros.train.distill import distill_loss, distill_terms, map_teacher_to_student, sample_teacher
from ocean_ros.train.teacher import BanHead, NanoTeacher, TeacherMaps


def _maps(size: int = 15, batch: int = 2, seed: int = 0) -> TeacherMaps:
    g = torch.Generator().manual_seed(seed)
    return TeacherMaps(torch.rand(batch, size, size, generator=g),
                       torch.rand(batch, 4, size, size, generator=g) * 50 + 5, 15.0, 16)


@pytest.mark.parametrize(("teacher_size", "student_size"), [(15, 11), (17, 13)])
def test_lite_grid_maps_to_integer_teacher_cells(teacher_size, student_size):
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, align=False))
    search = {15: 255, 17: 287}[teacher_size]
    assert net.score_size(search) == student_size and NanoTeacher.score_size(search) == teacher_size
    index, inside = map_teacher_to_student(15.0, 16, teacher_size, net.grid_origin(search), net.stride,
                                           student_size)
    np.testing.assert_array_equal(index, np.arange(2, 2 + student_size))
    assert inside.all()
    maps = _maps(teacher_size)
    score, ltrb, valid = sample_teacher(maps, 47.0, 16, student_size)
    cut = slice(2, 2 + student_size)
    assert torch.equal(score, maps.score[:, cut, cut]) and torch.equal(ltrb, maps.ltrb[:, :, cut, cut])
    assert valid.shape == (1, student_size, student_size) and bool(valid.all())


def test_stride8_student_is_sampled_bilinearly():
    # student cell u on 31 + 8u → teacher index 1 + u/2
    index, inside = map_teacher_to_student(15.0, 16, 15, 31.0, 8, 25)
    np.testing.assert_allclose(index, 1 + np.arange(25) / 2)
    assert inside.all()
    maps = _maps()
    score, ltrb, valid = sample_teacher(maps, 31.0, 8, 25)
    m, r = maps.score, maps.ltrb
    assert score.shape == (2, 25, 25) and ltrb.shape == (2, 4, 25, 25) and bool(valid.all())
    torch.testing.assert_close(score[:, 0, 0], m[:, 1, 1])
    torch.testing.assert_close(score[:, 0, 1], (m[:, 1, 1] + m[:, 1, 2]) / 2)  # (row 1, col 1.5)
    torch.testing.assert_close(score[:, 3, 0], (m[:, 2, 1] + m[:, 3, 1]) / 2)  # (row 2.5, col 1)
    torch.testing.assert_close(score[:, 1, 1], (m[:, 1, 1] + m[:, 1, 2] + m[:, 2, 1] + m[:, 2, 2]) / 4)
    torch.testing.assert_close(score[:, 24, 24], m[:, 13, 13])
    torch.testing.assert_close(ltrb[:, :, 5, 2], (r[:, :, 3, 2] + r[:, :, 4, 2]) / 2)  # (3.5, 2)
    # a consistent box (one box seen from every cell: l grows 16 px a column) is interpolated exactly
    cols = torch.arange(15.0)
    box = TeacherMaps(m, torch.stack([40 + 16 * cols, 0 * cols + 30, 200 - 16 * cols, 0 * cols + 30])
                      [None, :, None, :].expand(2, 4, 15, 15), 15.0, 16)
    _, ltrb_box, _ = sample_teacher(box, 31.0, 8, 25)
    pixel = 31.0 + 8 * torch.arange(25.0)
    torch.testing.assert_close(ltrb_box[0, 0, 7], 40 + (pixel - 15))  # l = pixel − (box left at 15 − 40)
    torch.testing.assert_close(ltrb_box[0, 2, 7], 200 - (pixel - 15))


def test_cells_outside_the_teacher_grid_are_invalid():
    index, inside = map_teacher_to_student(15.0, 16, 15, 7.0, 8, 31)  # index −0.5 + u/2: −0.5 .. 14.5
    assert index[0] == -0.5 and index[30] == 14.5
    assert not inside[0] and inside[1:30].all() and not inside[30]
    _, inside = map_teacher_to_student(15.0, 16, 15, 15.0, 16, 16)  # 0 .. 15
    assert inside[:15].all() and not inside[15]
    maps = _maps()
    score, ltrb, valid = sample_teacher(maps, 7.0, 8, 31)
    row = torch.tensor([False] + [True] * 29 + [False])
    assert torch.equal(valid[0], row[:, None] & row[None, :]) and int(valid.sum()) == 29 * 29
    torch.testing.assert_close(score[:, 0, 0], maps.score[:, 0, 0])  # edge value, finite
    assert torch.isfinite(score).all() and torch.isfinite(ltrb).all()


def _student_of(score: torch.Tensor, ltrb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.logit(score.clamp(1e-6, 1 - 1e-6))[:, None], ltrb.clone()


def test_loss_is_zero_when_the_student_equals_the_teacher():
    maps = _maps(11, batch=3)
    score = maps.score.clone()
    score[0, 0, :3] = torch.tensor([0.0, 1.0, 0.999])
    logits, reg = _student_of(score, maps.ltrb)
    total, parts = distill_loss(logits, reg, score, maps.ltrb)
    assert abs(float(parts["kd_cls"])) < 1e-6 and float(parts["kd_box"]) == 0.0 and abs(float(total)) < 1e-6
    _, cls_count, _, box_weight = distill_terms(logits, reg, score, maps.ltrb)
    assert float(cls_count) == 3 * 11 * 11
    torch.testing.assert_close(box_weight, score[score > 0.5].sum())


def test_loss_hand_values_and_weighting():
    score = torch.zeros(1, 2, 2)
    score[0, 0, 0], score[0, 0, 1], score[0, 1, 0] = 0.8, 0.4, 0.9
    teacher = torch.full((1, 4, 2, 2), 10.0)
    teacher[0, 0, 0, 0] = 20.0
    logits = torch.zeros(1, 1, 2, 2)
    reg = torch.full((1, 4, 2, 2), 10.0)
    valid = torch.tensor([[[True, True], [False, True]]])
    cls_sum, cls_count, box_sum, box_weight = distill_terms(logits, reg, score, teacher, valid)

    def kl(p: float) -> float:  # against q = 0.5
        return p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))

    assert float(cls_count) == 3
    assert float(cls_sum) == pytest.approx(kl(0.8) + kl(0.4) + kl(1e-6), rel=1e-5)
    # only (0,0) counts: score 0.4 is below the threshold, (1,0) is invalid; I = 20·20 = 400, U = 600
    assert float(box_weight) == pytest.approx(0.8)
    assert float(box_sum) == pytest.approx(-0.8 * math.log(401 / 601), rel=1e-6)
    _, _, soft_sum, soft_weight = distill_terms(logits, reg, score, teacher, valid, box_threshold=0.0)
    assert float(soft_weight) == pytest.approx(1.2) and float(soft_sum) == pytest.approx(float(box_sum))


def test_loss_is_positive_otherwise_with_finite_gradients_at_extreme_scores():
    maps = _maps(11, batch=2)
    score = maps.score.clone()
    score[:, :4] = 0.0
    score[:, 4:7] = 1.0
    logits, reg = _student_of(score, maps.ltrb)
    logits = (logits + torch.randn_like(logits)).clamp(-30, 30)
    logits[0, 0, 0, 0], logits[0, 0, 5, 0] = 30.0, -30.0  # confidently wrong at p = 0 and p = 1
    logits.requires_grad_(True)
    log_reg = (reg.log() + 0.3 * torch.randn_like(reg)).requires_grad_(True)
    total, parts = distill_loss(logits, log_reg.exp(), score, maps.ltrb)
    assert float(parts["kd_cls"]) > 0 and float(parts["kd_box"]) > 0 and torch.isfinite(total)
    total.backward()
    for grad in (logits.grad, log_reg.grad):
        assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
    # gradient of the KL wrt the logit is (sigmoid(s) − p) / count
    expected = (torch.sigmoid(logits.detach()) - score.clamp(1e-6, 1 - 1e-6)[:, None]) / score.numel()
    torch.testing.assert_close(logits.grad, expected, rtol=1e-4, atol=1e-7)


def test_teacher_to_student_end_to_end_backward():
    torch.manual_seed(0)
    teacher = NanoTeacher(MobileTrunk(), BanHead())
    student = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, align=False))
    z, x = torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255
    maps = teacher(z, x)
    n = student.score_size(255)
    t_score, t_ltrb, valid = sample_teacher(maps, student.grid_origin(255), student.stride, n)
    out = student.track(x, student.template(z))
    total, _ = distill_loss(out.cls, out.reg, t_score, t_ltrb, valid, box_threshold=0.0)
    total.backward()
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert torch.isfinite(total) and all(g is None or torch.isfinite(g).all() for g in grads)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
