"""NanoTrack v3 teacher: strict loading, the authors' head outputs on real crops, frozen behaviour, grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import need_data

from ocean_ros.core.checkpoint import CheckpointError
from ocean_ros.core.model.mobile_trunk import MobileTrunk
from ocean_ros.train.teacher import TEACHER_ORIGIN, BanHead, NanoTeacher, TeacherMaps, load_teacher

SIZES = {255: 15, 287: 17}


def _image(array: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 BGR crop → [1,3,H,W] float32 0..255 (the trunk's input convention, training-spec §3.6)."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()


def _random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = {"backbone." + k: v for k, v in MobileTrunk().state_dict().items()}
    state.update({"ban_head." + k: v for k, v in BanHead().state_dict().items()})
    return state


@pytest.fixture(scope="module")
def pretrained() -> Path:
    return need_data("pretrained", "nanotrackv3.pth")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(need_data("pretrained", "nanotrackv3_head_reference.npz")) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def teachers(pretrained) -> dict[bool, NanoTeacher]:
    return {fuse: load_teacher(pretrained, fuse=fuse) for fuse in (False, True)}


def test_head_matches_the_checkpoint_layout(pretrained):
    head = BanHead()
    assert len(head.state_dict()) == 242
    assert sum(p.numel() for p in head.parameters()) == 259_078
    teacher = load_teacher(pretrained, fuse=False)  # strict: every backbone.* and ban_head.* key, no others
    assert len(teacher.head.state_dict()) == 242 and len(teacher.trunk.state_dict()) == 190


@pytest.mark.parametrize("fuse", [False, True])
def test_teacher_reproduces_the_authors_outputs(teachers, reference, fuse):
    teacher = teachers[fuse]
    z = _image(reference["template"])
    with torch.no_grad():
        zf = teacher.trunk(z)
        torch.testing.assert_close(zf, torch.from_numpy(reference["trunk_template"]), rtol=0, atol=1e-4)
        for size, n in SIZES.items():
            x = _image(reference[f"search{size}"])
            logits, ltrb = teacher.head(zf, teacher.trunk(x))
            ref_logits = torch.from_numpy(reference[f"logits{size}"])
            ref_ltrb = torch.from_numpy(reference[f"ltrb{size}"])
            assert logits.shape == (1, 2, n, n) and ltrb.shape == (1, 4, n, n)
            torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)
            # ltrb = exp(.) of values up to ~60 px: float32 rounding is relative (measured ≤ 2e-6)
            torch.testing.assert_close(ltrb, ref_ltrb, rtol=1e-5, atol=1e-4)
            maps = teacher(z, x)
            torch.testing.assert_close(maps.score, ref_logits.softmax(1)[:, 1], rtol=0, atol=1e-5)
            torch.testing.assert_close(maps.ltrb, ltrb)


@pytest.mark.parametrize(("size", "n"), SIZES.items())
def test_grid_is_centred_on_the_crop(size, n):
    assert NanoTeacher.score_size(size) == n
    origin = NanoTeacher.grid_origin(size)
    assert origin == TEACHER_ORIGIN == (size - 1) / 2 - 16 * (n - 1) / 2 == 15
    assert origin + 16 * (n // 2) == (size - 1) / 2  # centre cell on the centre pixel (127 / 143)


def test_teacher_is_frozen_and_float32(tmp_path):
    path = tmp_path / "teacher.pth"
    torch.save({"state_dict": _random_state()}, path)
    teacher = load_teacher(path)
    teacher.train()
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    z = (torch.rand(2, 3, 127, 127) * 255).requires_grad_(True)
    x = torch.rand(2, 3, 255, 255) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps = teacher(z, x)
    assert isinstance(maps, TeacherMaps) and (maps.origin, maps.stride) == (15.0, 16)
    assert maps.score.shape == (2, 15, 15) and maps.ltrb.shape == (2, 4, 15, 15)
    assert maps.score.dtype == maps.ltrb.dtype == torch.float32
    assert not maps.score.requires_grad and not maps.ltrb.requires_grad
    assert bool(((maps.score >= 0) & (maps.score <= 1)).all()) and bool((maps.ltrb > 0).all())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("drop", "ban_head.cls_logits.0.bias"),
        ("drop", "backbone.features.9.conv.8.running_var"),
        ("add", "ban_head.extra.weight"),
        ("add", "backbone.features.10.weight"),
    ],
)
def test_mismatched_checkpoint_is_refused_naming_the_key(tmp_path, change, named):
    state = _random_state()
    if change == "drop":
        del state[named]
    else:
        state[named] = torch.zeros(3)
    path = tmp_path / "bad_teacher.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as err:
        load_teacher(path)
    assert named in str(err.value) and str(path) in str(err.value)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.pth"
    with pytest.raises(CheckpointError, match="absent.pth"):
        load_teacher(path)
