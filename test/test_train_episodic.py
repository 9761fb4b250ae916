"""The online stage of ocean-train: episodes, the unrolled loss and its gradients, the trainer's checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from gloo_ranks import gloo_ranks
from train_synth import centred_box, write_pack

from ocean_ros.core.checkpoint import load_model, read_checkpoint
from ocean_ros.train.config import ConfigError, OnlineStageConfig, TrainConfig, config_from_dict, load_train_config
from ocean_ros.train.datasets import read_crop_pack
from ocean_ros.train.episodes import EpisodeDataset, crop_online_sample, episode_frames
from ocean_ros.train.episodic import (
    EpisodicTrainer,
    build_online_net,
    episode_loss,
    gaussian_label,
    hinge_loss,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "ocean_ros" / "models" / "ocean_lite.pth"
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped Ocean-Lite model (stage-1 base) is absent")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    moving = [centred_box(60 + 2 * i, 44, dx=4 * (i % 3) - 4, dy=3 * (i % 2)) for i in range(8)]
    still = [centred_box(40, 70, dx=-2 * (i % 2)) for i in range(8)]
    write_pack(root / "pack", {"synth__a": moving, "synth__b": still}, seed=4)
    return root


def stage_config(output: Path, **online) -> TrainConfig:
    values = {"episodes_per_epoch": 4, "feature_dim": 16, "iterations": 3, "frame_range": 30,
              "base": str(SHIPPED), **online}
    cfg = TrainConfig()
    return cfg.replace(
        stage="online", device="cpu", threads=1, output=str(output), log_every=1,
        data=dataclasses.replace(cfg.data, sources=(dataclasses.replace(cfg.data.sources[0], path="pack"),)),
        online=dataclasses.replace(OnlineStageConfig(), **values),
        optim=dataclasses.replace(cfg.optim, optimizer="adamw", lr=0.01, warmup_epochs=0, epochs=2, batch_size=2),
        validation=dataclasses.replace(cfg.validation, every=0),
    )


def test_crop_online_sample_puts_the_box_where_it_says():
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:90, 100:160] = 255  # box x 100, y 50, w 60, h 40
    crop, box = crop_online_sample(image, np.array([100.0, 50.0, 60.0, 40.0]), 224, 4.0, (10.0, -5.0), 1.0)
    side = 4 * np.sqrt(60 * 40)
    a = 224 / side
    np.testing.assert_allclose(box, [112 - a * (30 + 10), 112 - a * (20 - 5), 60 * a, 40 * a], atol=1e-9)
    cy, cx = int(box[1] + box[3] / 2), int(box[0] + box[2] / 2)
    assert crop[cy, cx].tolist() == [255, 255, 255]
    assert crop[int(box[1]) - 3, cx].tolist() == [0, 0, 0]


def test_episode_frames_are_ordered_and_within_range():
    seq = read_crop_pack_seq()
    rng = np.random.default_rng(0)
    for _ in range(20):
        frames = episode_frames(seq, 4, 9, rng)
        assert list(frames) == sorted(frames)
        ids = seq.frame_ids[frames]
        assert ids.max() - ids.min() <= 9


def read_crop_pack_seq():
    from ocean_ros.train.datasets import TrainSequence

    return TrainSequence("s", tuple(Path(f"{i}.jpg") for i in range(10)), np.ones((10, 4)), np.arange(10) * 3)


def test_gaussian_label_and_hinge():
    boxes = torch.tensor([[96.0, 80.0, 32.0, 32.0]])  # centre (112, 96) px = (7, 6) cells (x, y)
    label = gaussian_label(boxes, 0.25, (15, 15))
    assert label.shape == (1, 1, 15, 15)
    assert label[0, 0].argmax() == 6 * 15 + 7 and float(label.max()) == pytest.approx(1.0)
    assert float(label[0, 0, 6, 8]) == pytest.approx(np.exp(-0.5 / 0.5**2), rel=1e-6)  # σ = 0.5 cells
    # background: negative scores cost nothing, positive ones their square; target cells regress to the label
    perfect = torch.where(label < 0.05, -torch.ones_like(label), label)
    assert float(hinge_loss(perfect, label)) == 0.0
    background = (label < 0.05).float()
    assert float(hinge_loss(perfect + 0.5 * background, label)) == pytest.approx(0.0)  # -0.5: still free
    assert float(hinge_loss(perfect + 1.5 * background, label)) == pytest.approx(0.25 * float(background.mean()))


def episodes(pack: Path, count: int, **online) -> list[dict[str, torch.Tensor]]:
    cfg = dataclasses.replace(OnlineStageConfig(), frame_range=30, **online)
    dataset = EpisodeDataset(read_crop_pack(pack / "pack"), cfg, seed=3)
    return [dataset[i] for i in range(count)]


def trunk(net, images: torch.Tensor) -> torch.Tensor:
    """Frozen trunk features of BGR uint8 samples (as the trainer computes them)."""
    from ocean_ros.core.online import normalise

    with torch.no_grad():
        return net.online_trunk_features(normalise(images.flip(1).float()))


def with_trunk(net, eps: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    return [{**e, "train_trunk": trunk(net, e["train_images"]), "test_trunk": trunk(net, e["test_images"])}
            for e in eps]


def batch_loss(net, eps, iterations: int = 3):
    total = 0.0
    project = net.classifier.extract_features
    for e in eps:
        loss = episode_loss(net.classifier, project(e["train_trunk"]), e["train_boxes"],
                            project(e["test_trunk"]), e["test_boxes"], iterations, 0.25)
        total = total + loss.total
    return total / len(eps)


def test_episodes_are_reproducible_and_shaped(pack):
    first, again = episodes(pack, 2), episodes(pack, 2)
    for a, b in zip(first, again, strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    e = first[0]
    assert e["train_images"].shape == (3, 3, 224, 224) and e["train_images"].dtype == torch.uint8
    assert e["test_images"].shape == (3, 3, 224, 224) and e["test_boxes"].shape == (3, 4)


def test_gradients_reach_the_projection_the_initialiser_and_the_optimiser(pack):
    net, _ = build_online_net(SHIPPED, 16, 9)
    net.eval().requires_grad_(False)
    net.classifier.requires_grad_(True)
    batch_loss(net, with_trunk(net, episodes(pack, 2))).backward()
    c = net.classifier
    opt = c.filter_optimizer
    for name, p in [("projection", c.feature_extractor[0].weight),
                    ("initialiser", c.filter_initializer.filter_conv.weight),
                    ("log_step_length", opt.log_step_length), ("filter_reg", opt.filter_reg),
                    ("label", opt.label_map_predictor.weight), ("mask", opt.target_mask_predictor[0].weight),
                    ("spatial weight", opt.spatial_weight_predictor.weight)]:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert all(p.grad is None for p in net.backbone.parameters())


def test_training_on_a_tiny_set_reduces_the_test_frame_loss(pack):
    net, _ = build_online_net(SHIPPED, 16, 9)
    net.eval().requires_grad_(False)
    params = list(net.classifier.parameters())
    for p in params:
        p.requires_grad_(True)
    eps = with_trunk(net, episodes(pack, 4))
    optimiser = torch.optim.Adam(params, lr=0.01)
    with torch.no_grad():
        before = float(batch_loss(net, eps))
    for _ in range(15):
        optimiser.zero_grad()
        batch_loss(net, eps).backward()
        optimiser.step()
    with torch.no_grad():
        after = float(batch_loss(net, eps))
    assert after < 0.7 * before, (before, after)


def test_trainer_exports_resumes_exactly_and_keeps_the_siamese_weights(pack, tmp_path):
    straight = EpisodicTrainer(stage_config(tmp_path / "straight"), progress=False, root=pack)
    history = straight.run()
    assert [row["epoch"] for row in history] == [1, 2]
    assert (tmp_path / "straight" / "log.csv").read_text().count("\n") == 1 + 2 * 2
    resumed = EpisodicTrainer(stage_config(tmp_path / "resumed"), progress=False, root=pack,
                              resume=tmp_path / "straight" / "checkpoint_e001.pth")
    assert resumed.start_epoch == 1
    again = resumed.run()
    assert again[0] == history[0] and again[1]["loss"] == pytest.approx(history[1]["loss"], abs=1e-7)
    for key, value in straight.classifier.state_dict().items():
        torch.testing.assert_close(resumed.classifier.state_dict()[key], value, rtol=0, atol=1e-7, msg=key)
    # the exported model: strict online load, Siamese tensors exactly the base's
    model = tmp_path / "straight" / "model.pth"
    net, meta = load_model(model, fuse=False)
    assert net.has_classifier and meta["variant"]["online"] and net.config.online_dim == 16
    base, _ = read_checkpoint(SHIPPED)
    state, meta = read_checkpoint(model)
    assert meta["config"]["preset"] == "LITE" and meta["config"]["online_train"]["stage"] == "online"
    for key, value in base.items():
        if not key.startswith("classifier."):
            assert torch.equal(state[key], value), key


def test_resume_refuses_another_variant(pack, tmp_path):
    EpisodicTrainer(stage_config(tmp_path / "a").replace(
        optim=dataclasses.replace(stage_config(tmp_path).optim, epochs=1)), progress=False, root=pack).run()
    from ocean_ros.train.datasets import DataError

    with pytest.raises(DataError, match="another variant"):
        EpisodicTrainer(stage_config(tmp_path / "b", feature_dim=8), progress=False, root=pack,
                        resume=tmp_path / "a" / "checkpoint_e001.pth")


def test_online_stage_config():
    cfg = load_train_config(REPO / "config" / "train" / "ocean_lite_online.yaml")
    assert cfg.stage == "online" and cfg.online.layer == 6 and cfg.online.feature_dim == 64
    with pytest.raises(ConfigError, match=r"online: unknown key\(s\) depth"):
        config_from_dict({"stage": "online", "online": {"depth": 3}})
    with pytest.raises(ConfigError, match="stage must be"):
        config_from_dict({"stage": "third"})


DDP_WORKER = """
import json, sys, torch
from ocean_ros.train.config import config_from_dict
from ocean_ros.train.episodic import EpisodicTrainer
torch.set_num_threads(1)
values = json.loads(open(sys.argv[1]).read())
trainer = EpisodicTrainer(config_from_dict(values), progress=False, root=__import__("pathlib").Path(sys.argv[3]))
stats = trainer.train_epoch(0)
if trainer.ctx.is_main:
    torch.save({k: v.clone() for k, v in trainer.classifier.state_dict().items()}, sys.argv[2])
    print(json.dumps({"world": trainer.ctx.world, "loss": stats["loss"]}))
"""


@pytest.mark.slow
def test_ddp_two_gloo_processes_equal_one_process(pack, tmp_path):
    """One step on a global batch of 4 episodes: two gloo processes on 2 episodes each end with the classifier
    of one process on all 4."""
    import json
    import sys

    cfg = stage_config(tmp_path / "ddp_out").replace(
        optim=dataclasses.replace(stage_config(tmp_path).optim, epochs=1, batch_size=4))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    argv = [sys.executable, str(tmp_path / "worker.py"), str(tmp_path / "config.json"), str(tmp_path / "ddp.pt"),
            str(pack)]
    with gloo_ranks(argv, tmp_path, [REPO, REPO / "test"]) as procs:
        one = EpisodicTrainer(cfg.replace(output=str(tmp_path / "one_out")), progress=False, root=pack)
        stats = one.train_epoch(0)
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs[0][-2000:] + outputs[1][-2000:]
    report = json.loads(outputs[0].strip().splitlines()[-1])
    assert report["world"] == 2 and one.ctx.world == 1
    assert report["loss"] == pytest.approx(stats["loss"], abs=1e-6)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for key, value in one.classifier.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-6, msg=key)
