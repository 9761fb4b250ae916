"""The one tracker factory (core/build.py) and the network contract (core/contract.py) every network satisfies."""

from __future__ import annotations

import pytest
import torch

from ocean_ros.core import build
from ocean_ros.core.build import DEFAULT_PRESET, build_from_config, build_tracker, resolve_device, tracker_config
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.contract import MissingPartError, OceanModel, OnlineModel
from ocean_ros.core.model import LiteNetConfig, OceanLiteNet, OceanNet, OceanNetConfig, OnlineOceanNet
from ocean_ros.core.network import read_weights


@pytest.mark.parametrize("make, online", [
    (lambda: OceanNet(OceanNetConfig(align=True)), False),
    (lambda: OnlineOceanNet(), True),
    (lambda: OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1)), False),
    (lambda: OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, online_dim=16)), True),
])
def test_the_torch_networks_satisfy_the_contract(make, online):
    net = make()
    assert isinstance(net, OceanModel)
    assert net.has_classifier is online and (not online or isinstance(net, OnlineModel))
    assert net.backend == "torch" and net.search_sizes is None
    assert net.score_size(255) > 0 and isinstance(net.grid_origin(255), float)


def test_a_module_without_the_contract_is_not_a_model():
    assert not isinstance(torch.nn.Conv2d(3, 3, 1), OceanModel)


def test_preset_rule_stored_preset_else_the_default(tiny_checkpoint, golden_dir):
    lite = read_weights(tiny_checkpoint())
    trackit = read_weights(golden_dir / "ocean_random_seed1.pth")  # a TracKit file: no stored preset
    assert (lite.preset, trackit.preset) == ("LITE", None)
    assert build.default_preset(lite) == "LITE" and build.default_preset(trackit) == DEFAULT_PRESET == "OTB2015"
    assert build.default_preset(None) == "OTB2015"
    assert tracker_config(trackit, "GOT10K", lr=0.5) == TrackerConfig.from_preset("GOT10K", lr=0.5)
    assert tracker_config(None, "custom") == TrackerConfig()


def test_the_checkpoint_is_read_once(tiny_checkpoint, monkeypatch):
    """Preset, parts, architecture and the network all come from one read of the file."""
    loads = []
    real_load = torch.load

    def counting_load(*args, **kwargs):
        loads.append(args[0])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    tracker = build_tracker(tiny_checkpoint(), device="cpu", backend="torch")
    assert len(loads) == 1
    assert (tracker.config.preset, tracker.config.online, tracker.backend, tracker.crop_backend) == (
        "LITE", True, "torch", "opencv")


def test_missing_parts_are_refused_with_one_error_naming_part_and_checkpoint(tiny_checkpoint, golden_dir,
                                                                             online_checkpoint):
    offline = tiny_checkpoint(online_dim=0)
    with pytest.raises(MissingPartError, match=f"online classifier but {offline} has no online classifier"):
        build_tracker(offline, device="cpu")  # LITE turns the online branch on
    assert not build_tracker(offline, device="cpu", online=False).config.online  # the caller's explicit choice
    with pytest.raises(MissingPartError, match=f"object-aware head but {online_checkpoint} has no object"):
        build_tracker(online_checkpoint, "VOT2019", device="cpu")
    net = OceanNet(OceanNetConfig(align=False))
    with pytest.raises(MissingPartError, match="object-aware head but the given OceanNet has no object"):
        build_tracker(net, "VOT2019", device="cpu")


def test_a_built_network_and_a_full_config(tiny_checkpoint):
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, align=False))
    config = TrackerConfig.from_preset("LITE", online=False, lr=0.3)
    tracker = build_from_config(net, config, "cpu")
    assert tracker.model is net and tracker.config == config


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not one of"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.slow
def test_the_graph_runner_satisfies_the_contract_and_builds_from_its_folder(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed")
    from ocean_ros.core.export import export_checkpoint
    from ocean_ros.core.graph_net import GraphNet

    folder = tmp_path / "tiny_export"
    export_checkpoint(tiny_checkpoint(), folder)  # the stored preset's search sizes, online graph included
    tracker = build_tracker(folder, device="cpu")
    assert isinstance(tracker.model, GraphNet) and isinstance(tracker.model, OnlineModel)
    assert (tracker.config.preset, tracker.backend) == ("LITE", "onnxruntime")
    assert tracker.model.search_sizes == {255, 287}


def test_training_validation_builds_its_tracker_without_the_parts_a_stage_one_net_lacks(tmp_path):
    """validate() passes online=False explicitly for a net without its online classifier (yet) and tracks."""
    import dataclasses
    from pathlib import Path

    import ocean_ros
    from ocean_ros.train.config import TrainConfig
    from ocean_ros.train.validate import validate

    cfg = TrainConfig()
    bundled = Path(ocean_ros.__file__).resolve().parent / "data"
    cfg = dataclasses.replace(cfg, validation=dataclasses.replace(cfg.validation, path=str(bundled), max_frames=5))
    net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, align=False))
    scores = validate(net, cfg, tmp_path, "cpu")
    assert set(scores["sequences"]) == {"Crossing"} and 0.0 <= scores["mean_auc"] <= 1.0
