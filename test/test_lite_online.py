"""Ocean-Lite's online classifier: features, checkpoints of both online variants, determinism on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ocean_ros.core.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.model import LiteNetConfig, OceanLiteNet, OceanNetConfig, OnlineOceanNet
from ocean_ros.core.online import normalise
from ocean_ros.core.tracker import OceanTracker

SHIPPED = Path(__file__).resolve().parent.parent / "ocean_ros" / "models" / "ocean_lite.pth"


def lite_online(dim: int = 16, layer: int = 9, seed: int = 3) -> OceanLiteNet:
    """A small random-weight Ocean-Lite with an online classifier, BN statistics made non-trivial."""
    torch.manual_seed(seed)
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, align=False, online_dim=dim, online_layer=layer))
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return net.eval().requires_grad_(False)


def test_config_keys_and_limits():
    assert LiteNetConfig.from_dict({"stride": 16, "channels": 64, "tower_depth": 2, "align": True}).online_dim == 0
    assert LiteNetConfig(online_dim=64, online_layer=6).online_in_dim == 40
    assert LiteNetConfig(online_dim=64).online_in_dim == 96
    with pytest.raises(ValueError, match="stride 16"):
        LiteNetConfig(stride=8, online_dim=64)
    with pytest.raises(ValueError, match="online_layer"):
        LiteNetConfig(online_dim=64, online_layer=3)
    with pytest.raises(ValueError, match="unknown Ocean-Lite net key"):
        LiteNetConfig.from_dict({"online_width": 3})
    assert not OceanLiteNet(LiteNetConfig(channels=16)).has_classifier


@pytest.mark.parametrize("layer, channels", [(9, 96), (6, 40)])
def test_classification_features_shape_norm_and_fused_equality(layer, channels):
    net = lite_online(dim=24, layer=layer)
    samples = normalise(torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 255)
    assert net.online_trunk_features(samples).shape == (2, channels, 14, 14)
    feat = net.classification_features(samples)
    assert feat.shape == (2, 24, 14, 14) and feat.dtype == torch.float32
    # instance L2 norm after the projection: Σx² = scale²·C·H·W = H·W / k² per sample
    projected = net.classifier.extract_features(torch.randn(2, channels, 14, 14))
    torch.testing.assert_close((projected**2).sum(dim=(1, 2, 3)), torch.full((2,), 196 / 16), rtol=1e-4, atol=0)
    from ocean_ros.core.model.fuse import fuse_for_inference

    fused = fuse_for_inference(lite_online(dim=24, layer=layer)).use_channels_last_trunk()
    torch.testing.assert_close(fused.classification_features(samples), feat, rtol=1e-4, atol=1e-5)


def test_the_trunk_sees_the_sample_as_bgr_0_255():
    net = lite_online()
    rgb = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2)) * 255
    torch.testing.assert_close(net.online_trunk_features(normalise(rgb)), net.backbone(rgb.flip(1)),
                               rtol=1e-4, atol=1e-4)


def test_no_classifier_means_no_online_features():
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1))
    with pytest.raises(RuntimeError, match="no online classifier"):
        net.classification_features(torch.zeros(1, 3, 224, 224))
    assert net.online_parameters() == []


def test_head_parameters_leave_out_the_online_classifier():
    net = lite_online()
    head = {id(p) for p in net.head_parameters()}
    online = {id(p) for p in net.online_parameters()}
    assert online and not head & online
    assert len(head) + len(online) + len(net.trunk_parameters()) == len(list(net.parameters()))


def test_lite_online_checkpoint_round_trip_is_strict(tmp_path):
    net = lite_online()
    path = tmp_path / "lite_online.pth"
    save_checkpoint(path, net, {"preset": "LITE"})
    state, meta = read_checkpoint(path)
    assert meta["variant"] == {"arch": "ocean_lite", "align": False, "online": True}
    assert sum(k.startswith("classifier.") for k in state) == 8
    for fuse in (False, True):
        again, meta = load_model(path, fuse=fuse)
        assert again.has_classifier and meta["classifier"] and meta["variant"]["online"]
        for key, value in net.classifier.state_dict().items():
            assert torch.equal(again.classifier.state_dict()[key], value), key
    # one classifier tensor short: named
    obj = torch.load(path, weights_only=True)
    del obj["state_dict"]["classifier.filter_optimizer.filter_reg"]
    torch.save(obj, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \(1: classifier\.filter_optimizer\.filter_reg\)"):
        load_model(tmp_path / "short.pth")


def test_classifier_weights_without_online_config_are_refused(tmp_path):
    path = tmp_path / "lite_online.pth"
    save_checkpoint(path, lite_online(), {})
    obj = torch.load(path, weights_only=True)
    obj["config"]["net"]["online_dim"] = 0
    torch.save(obj, tmp_path / "mislabelled.pth")
    with pytest.raises(CheckpointError, match="has no online classifier"):
        load_model(tmp_path / "mislabelled.pth")


def test_the_two_online_variants_refuse_each_others_classifier(tmp_path):
    lite = lite_online()
    torch.manual_seed(0)
    resnet = OnlineOceanNet(OceanNetConfig(align=False))
    lite_classifier = {f"classifier.{k}": v for k, v in lite.classifier.state_dict().items()}
    resnet_state = resnet.state_dict()
    resnet_classifier = {k: v for k, v in resnet_state.items() if k.startswith("classifier.")}
    # A ResNet-50 online file carrying Ocean-Lite's classifier.
    torch.save({**resnet_state, **lite_classifier}, tmp_path / "resnet_with_lite.pth")
    with pytest.raises(CheckpointError, match=r"online classifier of another variant: the file projects 96 → 16 "
                                              r"channels, this Ocean ResNet-50 network 1024 → 512"):
        load_model(tmp_path / "resnet_with_lite.pth")
    # An Ocean-Lite online file carrying ResNet-50's classifier.
    save_checkpoint(tmp_path / "lite.pth", lite, {})
    obj = torch.load(tmp_path / "lite.pth", weights_only=True)
    obj["state_dict"].update(resnet_classifier)
    torch.save(obj, tmp_path / "lite_with_resnet.pth")
    with pytest.raises(CheckpointError, match=r"the file projects 1024 → 512 channels, this Ocean-Lite network "
                                              r"96 → 16"):
        load_model(tmp_path / "lite_with_resnet.pth")


def synthetic_video(frames: int = 6, size: int = 240) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    rng = np.random.default_rng(5)
    background = rng.integers(0, 120, size=(size, size, 3), dtype=np.uint8)
    video = []
    for i in range(frames):
        frame = background.copy()
        x, y = 90 + 3 * i, 100 + 2 * i
        frame[y:y + 40, x:x + 30] = (230, 200, 40)
        frame[y + 10:y + 20, x + 5:x + 15] = (20, 20, 250)
        video.append(frame)
    return video, (90.0, 100.0, 30.0, 40.0)


def run_online(net: OceanLiteNet) -> list[tuple]:
    config = TrackerConfig.from_preset("LITE").replace(online=True, online_ratio=0.5, **{"online.update_interval": 2})
    tracker = OceanTracker(net, config, "cpu")
    video, box = synthetic_video()
    tracker.initialize(video[0], box)
    out = []
    for frame in video[1:]:
        result = tracker.track(frame)
        out.append((result.box_xywh, result.score, result.online_flag, result.online_updated))
    out.append(tuple(tracker.online_branch.filter.flatten().tolist()))
    return out


def test_online_tracking_on_cpu_is_deterministic():
    first = run_online(lite_online())
    second = run_online(lite_online())
    assert first == second
    assert any(step[3] for step in first[:-1])  # the filter was re-optimised on the way


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped model not present")
def test_the_shipped_model_carries_the_online_weights():
    net, meta = load_model(SHIPPED)
    assert net.has_classifier and meta["variant"]["online"]
    assert net.config.online_dim == 64 and net.config.online_layer == 6
    # online on by default (chosen by cross-validation on the 11 validation sequences; model card)
    config = TrackerConfig.from_preset("LITE")
    assert config.online and config.online_ratio == 0.5 and config.online_params.search_area_scale == 3.0
    assert config.lost_threshold == 0.42
    video, box = synthetic_video()
    tracker = OceanTracker(net, config, "cpu")
    tracker.initialize(video[0], box)
    result = tracker.track(video[1])
    assert result.online_flag in ("normal", "hard_negative", "uncertain", "not_found")
    assert abs(result.box_xywh[0] - 93.0) < 6 and abs(result.box_xywh[1] - 102.0) < 6
