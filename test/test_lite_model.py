"""Ocean-Lite: NanoTrack v3 trunk, geometry from the network, strict checkpoints, inference fusion, the tracker."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import need_data

from ocean_ros.core.checkpoint import (
    CheckpointError,
    checkpoint_preset,
    load_model,
    load_pretrained_trunk,
    save_checkpoint,
)
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.model import LiteNetConfig, OceanLiteNet
from ocean_ros.core.model.fuse import fuse_for_inference
from ocean_ros.core.tracker import OceanTracker


def _randomise_bn(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.fixture(scope="module")
def pretrained() -> str:
    return str(need_data("pretrained", "nanotrackv3.pth"))


@pytest.mark.parametrize(("stride", "z_side", "x_side"), [(16, 8, 16), (8, 16, 32)])
def test_trunk_loads_nanotrack_strictly_and_has_the_documented_sides(pretrained, stride, z_side, x_side):
    net = OceanLiteNet(LiteNetConfig(stride=stride)).eval()
    load_pretrained_trunk(net, pretrained)
    with torch.inference_mode():
        assert net.backbone(torch.zeros(1, 3, 127, 127)).shape == (1, 96, z_side, z_side)
        assert net.backbone(torch.zeros(1, 3, 255, 255)).shape == (1, 96, x_side, x_side)


@pytest.mark.parametrize(("stride", "sizes"), [(16, {255: 11, 271: 12, 287: 13}), (8, {255: 25, 271: 27, 287: 29})])
def test_score_geometry_comes_from_the_network(stride, sizes):
    net = OceanLiteNet(LiteNetConfig(stride=stride, channels=16, tower_depth=1)).eval()
    zf = net.template(torch.rand(1, 3, 127, 127) * 255)
    for size, n in sizes.items():
        out = net.track(torch.rand(1, 3, size, size) * 255, zf)
        assert out.cls.shape == (1, 1, n, n) and out.reg.shape == (1, 4, n, n) and out.align.shape == (1, 1, n, n)
        assert net.score_size(size) == n
    # cell u sits on 63 + stride·(u - c0): the template centre at zero displacement
    c0 = net.template_crop[0]
    assert net.grid_origin(255) + stride * c0 == 63


def test_checkpoint_round_trip_is_strict_and_keeps_the_preset(tmp_path):
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1)).eval()
    _randomise_bn(net)
    path = tmp_path / "lite.pth"
    save_checkpoint(path, net, {"preset": "LITE"})
    loaded, meta = load_model(path, fuse=False)
    assert meta["variant"] == {"arch": "ocean_lite", "align": True, "online": False}
    assert checkpoint_preset(path) == "LITE"
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # a tensor missing from the file is named
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["connect_model.cls_pred.bias"]
    torch.save(payload, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="connect_model.cls_pred.bias"):
        load_model(tmp_path / "missing.pth")
    # Lite weights without our format (no net config) are refused with the reason
    torch.save(net.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="Ocean-Lite"):
        load_model(tmp_path / "bare.pth")


def test_inference_fusion_keeps_the_outputs():
    torch.manual_seed(0)
    net = OceanLiteNet(LiteNetConfig(channels=32, tower_depth=2)).eval()
    _randomise_bn(net)
    fused = fuse_for_inference(copy.deepcopy(net))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 271, 271) * 255  # odd map side: phases differ
    with torch.inference_mode():
        a, b = net.track(x, net.template(z)), fused.track(x, fused.template(z))
    for name in ("cls", "reg", "align"):
        ref, got = getattr(a, name), getattr(b, name)
        assert float((ref - got).abs().max() / ref.abs().max()) < 1e-5, name
    with pytest.raises(ValueError, match="eval-mode"):
        fuse_for_inference(OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1)).train())


def test_tracker_refuses_a_stride_that_is_not_the_networks():
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1)).eval()
    with pytest.raises(ValueError, match="total_stride=8 but the network's stride is 16"):
        OceanTracker(net, TrackerConfig(), "cpu")


def test_lite_tracker_runs_on_every_search_size():
    torch.manual_seed(0)
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1)).eval()
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for size in (255, 271, 287):
        config = TrackerConfig.from_preset("LITE", small_sz=size, big_sz=size, online=False)  # no classifier
        tracker = OceanTracker(net, config, "cpu")
        tracker.initialize(frame, (100, 80, 40, 60))
        result = tracker.track(frame)
        assert result.search_size == size
        assert 0 <= result.peak[0] < net.score_size(size) and 0 <= result.peak[1] < net.score_size(size)
        assert all(np.isfinite(result.box_xywh)) and 0.0 <= result.score <= 1.0


def test_the_shipped_model_loads_strictly_and_tracks_the_bundled_sequence():
    """The default model: in the package, at most 10 MB, its own preset, real tracking on bundled Crossing."""
    from ocean_ros.eval.runner import run_one_pass
    from ocean_ros.eval.scoring import score_one_pass
    from ocean_ros.eval.sequences import open_sequence
    from ocean_ros.models import DEFAULT_MODEL, default_checkpoint

    path = default_checkpoint()
    assert path == DEFAULT_MODEL and path.stat().st_size <= 10 * 2**20
    assert checkpoint_preset(path) == "LITE"
    net, meta = load_model(path)
    assert meta["variant"]["arch"] == "ocean_lite" and meta["fused"]
    sequence = open_sequence(DEFAULT_MODEL.parent.parent / "data" / "Crossing")
    tracker = OceanTracker(net, TrackerConfig.from_preset("LITE"), "cpu")
    score = score_one_pass(sequence, run_one_pass(tracker, sequence))
    assert score.auc >= 0.6, score.auc
