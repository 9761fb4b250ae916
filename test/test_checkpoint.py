"""Checkpoint reading and writing: TracKit layouts, our own format, and strict, clear failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ocean_ros.core.checkpoint import (
    FORMAT,
    CheckpointError,
    infer_net_config,
    load_model,
    read_state_dict,
    save_checkpoint,
)
from ocean_ros.core.model import OceanNet, OceanNetConfig, OnlineOceanNet


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """A TracKit-layout state dict (align variant, BN `num_batches_tracked` included, as TracKit saves it)."""
    torch.manual_seed(7)
    net = OceanNet(OceanNetConfig(align=True))
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buf.normal_(0.0, 0.1)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(8)
    return torch.rand(1, 3, 127, 127, generator=gen) * 255, torch.rand(1, 3, 255, 255, generator=gen) * 255


def half(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}


def write(tmp_path: Path, obj, name: str = "ckpt.pth") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def assert_weights(net: OceanNet, expected: dict[str, torch.Tensor], dtype=torch.float32) -> None:
    got = net.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert got[key].dtype == dtype, key
        assert torch.equal(got[key], value.to(dtype)), key


def run(net: OceanNet, inputs) -> tuple[torch.Tensor, ...]:
    z, x = inputs
    with torch.inference_mode():
        return tuple(net.track(x, net.template(z)))


# ------------------------------------------------------------------------------------------------ layouts


def test_bare_state_dict(tmp_path, state):
    net, meta = load_model(write(tmp_path, half(state)))
    assert_weights(net, {k: v.half().float() for k, v in state.items() if v.is_floating_point()})
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert meta["format"] == "trackit"
    assert meta["variant"] == {"align": True, "online": False}
    assert meta["config"] == {} and meta["stripped_prefixes"] == []
    assert net.has_align


def test_state_dict_wrapper_of_training_checkpoints(tmp_path, state):
    sd = half(state)
    path = write(tmp_path, {"epoch": 20, "arch": "Ocean", "state_dict": sd, "optimizer": {"lr": 0.001}})
    net, meta = load_model(path)
    assert_weights(net, {k: v.float() for k, v in sd.items()})
    assert meta["format"] == "trackit"


def test_legacy_non_zip_serialisation_of_pytorch_1_1(tmp_path, state):
    # TracKit's released files were written by PyTorch 1.1, before the zip container.
    path = tmp_path / "legacy.pth"
    torch.save(
        {"state_dict": {"module." + k: v for k, v in half(state).items()}},
        path,
        _use_new_zipfile_serialization=False,
    )
    net, meta = load_model(path)
    assert_weights(net, {k: v.half().float() for k, v in state.items() if v.is_floating_point()})
    assert meta["stripped_prefixes"] == ["module."]


@pytest.mark.parametrize("prefix", ["module.", "feature_extractor.", "module.feature_extractor."])
def test_prefixes_are_stripped(tmp_path, state, prefix):
    sd = half(state)
    path = write(tmp_path, {"state_dict": {prefix + k: v for k, v in sd.items()}})
    net, meta = load_model(path)
    assert_weights(net, {k: v.float() for k, v in sd.items()})
    assert meta["stripped_prefixes"] == [p for p in ("module.", "feature_extractor.") if p in prefix]
    loaded = read_state_dict(path)
    assert set(loaded) == {k for k in state if not k.endswith("num_batches_tracked")}


def test_float16_and_float32_files_give_the_requested_dtype(tmp_path, state, inputs):
    path32 = write(tmp_path, state, "f32.pth")
    path16 = write(tmp_path, half(state), "f16.pth")
    net32, meta32 = load_model(path32)
    assert_weights(net32, state)
    assert meta32["file_dtypes"] == ["float32"]
    net16_as32, meta16 = load_model(path16)
    assert_weights(net16_as32, {k: v.half().float() for k, v in state.items() if v.is_floating_point()})
    assert "float16" in meta16["file_dtypes"]
    net_half, _ = load_model(path32, dtype=torch.float16)
    assert_weights(net_half, state, dtype=torch.float16)
    # Half-precision values survive the float32 round trip inside the loader bit for bit.
    net_half16, _ = load_model(path16, dtype=torch.float16)
    assert_weights(net_half16, half(state), dtype=torch.float16)
    assert all(t is not None for t in run(net32, inputs))


def test_align_less_checkpoint_builds_no_object_aware_head(tmp_path, state, inputs):
    sd = {k: v for k, v in half(state).items() if not k.startswith("align_head.")}
    net, meta = load_model(write(tmp_path, sd))
    assert not net.has_align
    assert meta["variant"] == {"align": False, "online": False}
    assert run(net, inputs)[2] is None


def test_online_backbone_keys_build_layeronline(tmp_path, state):
    online = OceanNet(OceanNetConfig(align=False, online=True)).state_dict()
    extra = {k: v for k, v in online.items() if ".layeronline." in k}
    assert len(extra) == 114
    net, meta = load_model(write(tmp_path, half({**state, **extra})))
    assert meta["variant"] == {"align": True, "online": True}
    assert net.config.online and net.features.has_online
    with torch.inference_mode():
        assert net.online_features(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 13, 13)


@pytest.fixture(scope="module")
def online_extra() -> dict[str, torch.Tensor]:
    """`layeronline` (114 tensors) and `classifier.*` (8) of an online net, as TracKit's online files add them."""
    torch.manual_seed(9)
    online = OnlineOceanNet(OceanNetConfig(align=False)).state_dict()
    extra = {k: v for k, v in online.items() if ".layeronline." in k or k.startswith("classifier.")}
    assert sum(k.startswith("classifier.") for k in extra) == 8
    return extra


def test_online_classifier_checkpoint_loads_strictly(tmp_path, state, online_extra):
    sd = {k: v for k, v in state.items() if not k.startswith("align_head.")}
    net, meta = load_model(write(tmp_path, half({**sd, **online_extra})))
    assert isinstance(net, OnlineOceanNet) and meta["classifier"]
    assert meta["variant"] == {"align": False, "online": True}
    assert_weights(net, {k: v.half().float() for k, v in online_extra.items() if v.is_floating_point()})
    assert not any(p.requires_grad for p in net.parameters())
    with torch.inference_mode():
        assert net.classification_features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 13, 13)


def test_online_classifier_keys_missing_or_unexpected_are_named(tmp_path, state, online_extra):
    sd = {**half(state), **half(online_extra)}
    del sd["classifier.filter_optimizer.log_step_length"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1: classifier\.filter_optimizer\.log_step_length\)"):
        load_model(write(tmp_path, sd))
    sd = {**half(state), **half(online_extra), "classifier.filter_optimizer.extra": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1: classifier\.filter_optimizer\.extra\)"):
        load_model(write(tmp_path, sd))


def test_classifier_without_online_backbone_names_the_missing_layer(tmp_path, state, online_extra):
    classifier = {k: v for k, v in online_extra.items() if k.startswith("classifier.")}
    with pytest.raises(CheckpointError, match=r"missing keys \(95: features\.features\.layeronline\."):
        load_model(write(tmp_path, half({**state, **classifier})))


def test_own_format_round_trip_of_an_online_net(tmp_path, state, online_extra):
    net, _ = load_model(write(tmp_path, {**state, **online_extra}, "trackit.pth"))
    path = tmp_path / "ours.pth"
    save_checkpoint(path, net, {"preset": "VOT2019ON"})
    again, meta = load_model(path)
    assert isinstance(again, OnlineOceanNet) and meta["classifier"] and meta["format"] == FORMAT
    for key, value in net.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_infer_net_config():
    t = torch.zeros(1)
    assert infer_net_config({"neck.downsample.0.weight": t}) == OceanNetConfig(align=False, online=False)
    assert infer_net_config({"align_head.rpn_cls.bias": t}) == OceanNetConfig(align=True, online=False)
    online = {"features.features.layeronline.0.conv1.weight": t}
    assert infer_net_config(online) == OceanNetConfig(align=False, online=True)


# ------------------------------------------------------------------------------------------- strictness


def test_missing_key_is_named(tmp_path, state):
    sd = half(state)
    del sd["connect_model.cls_pred.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1: connect_model\.cls_pred\.bias\)"):
        load_model(write(tmp_path, sd))


def test_many_missing_keys_are_listed_with_a_count(tmp_path, state):
    sd = {k: v for k, v in half(state).items() if not k.startswith("connect_model.bbox_tower.")}
    with pytest.raises(CheckpointError) as err:
        load_model(write(tmp_path, sd))
    message = str(err.value)
    assert "missing keys (24: connect_model.bbox_tower.0.bias" in message
    assert "... and 14 more" in message


def test_unexpected_key_is_named(tmp_path, state):
    sd = {**half(state), "connect_model.extra.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1: connect_model\.extra\.weight\)"):
        load_model(write(tmp_path, sd))


def test_shape_mismatch_names_key_and_both_shapes(tmp_path, state):
    sd = {**half(state), "neck.downsample.0.weight": torch.zeros(256, 512, 1, 1, dtype=torch.float16)}
    with pytest.raises(CheckpointError) as err:
        load_model(write(tmp_path, sd))
    assert "neck.downsample.0.weight: file (256, 512, 1, 1) vs model (256, 1024, 1, 1)" in str(err.value)


def test_non_finite_weights_are_rejected(tmp_path, state):
    sd = half(state)
    sd["connect_model.adjust"] = torch.tensor([float("nan")], dtype=torch.float16)
    with pytest.raises(CheckpointError, match=r"NaN or infinite values \(1: connect_model\.adjust\)"):
        load_model(write(tmp_path, sd))


def test_keys_colliding_after_prefix_stripping(tmp_path):
    sd = {"module.neck.downsample.0.weight": torch.zeros(1), "neck.downsample.0.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="collide"):
        read_state_dict(write(tmp_path, sd))


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found: .*nothing-here.pth"):
        load_model(tmp_path / "nothing-here.pth")


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"", b"PK\x03\x04 truncated zip", b"\x80\x02}q\x00."[:-1]],
    ids=["random", "empty", "broken-zip", "truncated-pickle"],
)
def test_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_model(path)


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_that_needs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "was-executed"
    path = write(tmp_path, {"state_dict": {"x": _RunsCode(str(marker))}})
    with pytest.raises(CheckpointError, match="need code to unpickle"):
        load_model(path)
    assert not marker.exists()


def test_not_a_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_model(write(tmp_path, [torch.zeros(1)]))
    with pytest.raises(CheckpointError, match="not named tensors"):
        load_model(write(tmp_path, {"neck.downsample.0.weight": [1, 2, 3]}))


def test_non_float_dtype_is_refused(tmp_path, state):
    with pytest.raises(ValueError, match="floating-point"):
        load_model(write(tmp_path, half(state)), dtype=torch.int8)


# ------------------------------------------------------------------------------------------- own format


def test_own_format_round_trip(tmp_path, state, inputs):
    net, _ = load_model(write(tmp_path, state, "trackit.pth"))
    config = {"preset": "VOT2019", "window_influence": 0.38, "sizes": [255, 271], "nested": {"align": True}}
    path = tmp_path / "ours.pth"
    save_checkpoint(path, net, config)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT
    assert raw["variant"] == {"align": True, "online": False}
    assert raw["config"] == config
    assert all(v.dtype == torch.float32 for v in raw["state_dict"].values())
    assert not any(k.endswith("num_batches_tracked") for k in raw["state_dict"])
    again, meta = load_model(path)
    assert meta["format"] == FORMAT and meta["config"] == config
    assert meta["variant"] == {"align": True, "online": False}
    for a, b in zip(run(net, inputs), run(again, inputs), strict=True):
        assert torch.equal(a, b)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_own_format_stores_float32_from_a_half_net(tmp_path, state):
    net, _ = load_model(write(tmp_path, half(state)), dtype=torch.float16)
    path = tmp_path / "ours.pth"
    save_checkpoint(path, net)
    raw = torch.load(path, weights_only=True)
    assert raw["config"] == {}
    assert all(v.dtype == torch.float32 for v in raw["state_dict"].values())
    again, _ = load_model(path, dtype=torch.float16)
    assert_weights(again, half(state), dtype=torch.float16)


def test_own_format_rejects_config_that_is_not_plain_data(tmp_path, state):
    net = OceanNet(OceanNetConfig(align=False))
    with pytest.raises(CheckpointError, match=r"config value at config\.device has type device"):
        save_checkpoint(tmp_path / "ours.pth", net, {"device": torch.device("cpu")})
    assert list(tmp_path.iterdir()) == []


def test_own_format_variant_must_match_keys(tmp_path, state):
    payload = {
        "format": FORMAT,
        "variant": {"align": False, "online": False},
        "config": {},
        "state_dict": state,
    }
    with pytest.raises(CheckpointError, match="stored variant"):
        load_model(write(tmp_path, payload))


def test_unknown_own_format_version(tmp_path, state):
    with pytest.raises(CheckpointError, match="unsupported checkpoint format 'ocean_ros.v9'"):
        load_model(write(tmp_path, {"format": "ocean_ros.v9", "state_dict": half(state)}))
