"""The training loop on CPU: overfitting a few pairs, DDP (gloo, two processes) equal to one process, exact resume,
and refusal of a checkpoint of another variant."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import REPO_ROOT, need_data
from gloo_ranks import gloo_ranks
from train_synth import centred_box, write_pack

from ocean_ros.train import cli
from ocean_ros.train.config import TrainConfig, config_from_dict
from ocean_ros.train.datasets import DataError
from ocean_ros.train.distributed import DistContext, GlobalBatchNorm2d, ShardedBatchSampler
from ocean_ros.train.trainer import Trainer

NO_AUGMENT = {"template_shift": 0.0, "template_scale": 0.0, "search_shift": 0.0, "search_scale": 0.0, "blur": 0.0,
              "colour": 0.0, "grey": 0.0, "flip": 0.0}


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The runs below use one torch thread (``threads: 1``); the setting is global, so it is put back after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pretrained() -> Path:
    return need_data("pretrained", "nanotrackv3.pth")


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """Two short videos of a white target on texture (frames 0, 3, 6, 9), and two static images."""
    return write_pack(tmp_path_factory.mktemp("train_pack"), {
        "synth__wide": [centred_box(70, 56, d, -d) for d in range(4)],
        "synth__tall": [centred_box(50, 80, d, d) for d in range(4)],
    }, statics=[centred_box(64, 64), centred_box(90, 45)])


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def small_config(pack: Path, output: Path, pretrained: Path, **sections: Any) -> dict[str, Any]:
    """A tiny run: 16-channel head, one-layer towers, batch 4, CPU, no validation."""
    base = {
        "name": "test", "seed": 5, "device": "cpu", "threads": 1, "output": str(output), "log_every": 1,
        "data": {"sources": [{"path": str(pack), "frame_range": 100}], "pairs_per_epoch": 8, "negative_share": 0.2},
        "model": {"channels": 16, "tower_depth": 1, "pretrained": str(pretrained)},
        "optim": {"batch_size": 4, "epochs": 2, "warmup_epochs": 1, "unfreeze_epoch": 0, "lr": 0.02},
        "validation": {"every": 0},
    }
    return merge(base, sections)


def quiet_run(trainer: Trainer) -> list[dict[str, Any]]:
    with contextlib.redirect_stdout(io.StringIO()):
        return trainer.run()


def log_rows(output: Path) -> list[dict[str, str]]:
    with (output / "log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- overfitting ----------------------------------------------------------------------------------------------------
def test_overfit_a_few_pairs(pack, pretrained, tmp_path):
    """No augmentation, no negatives, 16 pairs per epoch: 20 steps take the loss below half its start."""
    cfg = config_from_dict(small_config(pack, tmp_path / "run", pretrained,
                                        augment=NO_AUGMENT,
                                        data={"negative_share": 0.0, "pairs_per_epoch": 16},
                                        optim={"optimizer": "adamw", "lr": 0.01, "epochs": 5, "warmup_epochs": 0,
                                               "final_lr_factor": 1.0, "unfreeze_epoch": 99}))
    history = quiet_run(Trainer(cfg, progress=False))
    rows = log_rows(tmp_path / "run")
    assert len(rows) == 20 and len(history) == 5
    start = float(rows[0]["loss"])
    assert 1.5 < start < 4.0  # BCE ≈ 0.69, IoU loss ≈ 1, align ≈ 0.6 at initialisation
    assert history[-1]["loss"] < 0.5 * start, [round(float(r["loss"]), 3) for r in rows]
    assert all(h["skipped"] == 0 for h in history)
    # every epoch wrote its checkpoint and the exported model
    assert (tmp_path / "run" / "checkpoint_e005.pth").is_file() and (tmp_path / "run" / "model.pth").is_file()
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["epoch"] == 5


# --- DDP ------------------------------------------------------------------------------------------------------------
WORKER = r'''
import json, sys
from pathlib import Path
import torch
import torch.distributed as dist
from ocean_ros.train.config import config_from_dict
from ocean_ros.train.distributed import GlobalBatchNorm2d
from ocean_ros.train.trainer import Trainer

cfg = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
trainer = Trainer(cfg, progress=False)
before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
stats = trainer.train_epoch(0)
if trainer.ctx.is_main:
    torch.save({"before": before, "after": trainer.net.state_dict()}, sys.argv[2])
    report = {"world": trainer.ctx.world, "loss": stats.loss, "skipped": stats.skipped,
              "global_bn": sum(isinstance(m, GlobalBatchNorm2d) for m in trainer.net.modules()),
              "batches": [list(b) for b in trainer._loader(0).batch_sampler]}
    Path(sys.argv[2]).with_suffix(".json").write_text(json.dumps(report))
if dist.is_initialized():
    dist.destroy_process_group()
'''


def test_sharded_batch_sampler_slices_global_batches():
    one = list(ShardedBatchSampler(10, 4, DistContext()))
    assert one == [[0, 1, 2, 3], [4, 5, 6, 7]]  # the incomplete batch is dropped
    shards = [list(ShardedBatchSampler(10, 4, DistContext(rank=r, world=2, local_rank=r))) for r in (0, 1)]
    assert shards == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]
    assert [a + b for a, b in zip(*shards, strict=True)] == one
    assert list(ShardedBatchSampler(12, 4, DistContext(), start_batch=2)) == [[8, 9, 10, 11]]
    with pytest.raises(ValueError, match="not divisible"):
        ShardedBatchSampler(10, 3, DistContext(world=2))


@pytest.mark.slow
def test_ddp_two_gloo_processes_equal_one_process(pack, pretrained, tmp_path):
    """One step on a global batch of 4 (augmented, negatives included, trunk trainable): two gloo processes on
    2 pairs each end with the weights and BN statistics of one process on all 4 pairs."""
    values = small_config(pack, tmp_path / "ddp_out", pretrained,
                          data={"pairs_per_epoch": 4, "negative_share": 0.5},
                          optim={"warmup_epochs": 0, "lr": 0.05, "epochs": 1})
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(values))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    argv = [sys.executable, str(script), str(config_path), str(tmp_path / "ddp.pt")]
    with gloo_ranks(argv, tmp_path, [REPO_ROOT]) as procs:
        # meanwhile, the same step in this process (no process group) on the whole batch
        trainer = Trainer(config_from_dict({**values, "output": str(tmp_path / "one_out")}), progress=False)
        one = {"before": {k: v.clone() for k, v in trainer.net.state_dict().items()}}
        stats = trainer.train_epoch(0)
        one["after"] = trainer.net.state_dict()
        one_report = {"world": trainer.ctx.world, "loss": stats.loss, "skipped": stats.skipped,
                      "global_bn": sum(isinstance(m, GlobalBatchNorm2d) for m in trainer.net.modules()),
                      "batches": [list(b) for b in trainer._loader(0).batch_sampler]}
        outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]

    ddp_report = json.loads((tmp_path / "ddp.json").read_text())
    assert ddp_report["world"] == 2 and one_report["world"] == 1
    assert ddp_report["global_bn"] > 0 and one_report["global_bn"] == 0  # head and neck BN reduce across ranks
    assert ddp_report["batches"] == [[0, 1]] and one_report["batches"] == [[0, 1, 2, 3]]
    assert ddp_report["skipped"] == one_report["skipped"] == 0
    assert ddp_report["loss"] == pytest.approx(one_report["loss"], abs=1e-5)

    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert ddp["after"].keys() == one["after"].keys()
    moved = 0.0
    for key, before in one["before"].items():
        torch.testing.assert_close(ddp["before"][key], before, rtol=0, atol=0)  # same initial weights
        a, b = ddp["after"][key], one["after"][key]
        if a.is_floating_point():
            assert (a - b).abs().max().item() <= 1e-5, (key, (a - b).abs().max().item())
            moved = max(moved, (b - before).abs().max().item())
        else:
            assert torch.equal(a, b), key
    trunk_moved = max((one["after"][k] - v).abs().max().item() for k, v in one["before"].items()
                      if k.startswith("backbone.") and k.endswith(".weight"))
    assert moved > 1e-3 and trunk_moved > 0  # the step did change the weights, trunk included


# --- resume ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def straight_run(pack, pretrained, tmp_path_factory) -> tuple[dict[str, Any], Path]:
    """Two epochs without interruption (augmented pairs, negatives, trunk trainable, SGD momentum)."""
    output = tmp_path_factory.mktemp("straight")
    values = small_config(pack, output, pretrained)
    quiet_run(Trainer(config_from_dict(values), progress=False))
    return values, output


LOSS_COLUMNS = ("lr", "loss", "cls", "reg", "align", "skipped")


def test_resume_reproduces_the_uninterrupted_run(straight_run, tmp_path):
    values, straight = straight_run
    assert [int(r["epoch"]) for r in log_rows(straight)] == [0, 0, 1, 1]
    resumed_out = tmp_path / "resumed"
    cfg = config_from_dict({**values, "output": str(resumed_out)})
    trainer = Trainer(cfg, resume=straight / "checkpoint_e001.pth", progress=False)
    assert trainer.start_epoch == 1 and trainer.trunk_trainable
    history = quiet_run(trainer)
    straight_rows = [r for r in log_rows(straight) if r["epoch"] == "1"]
    resumed_rows = log_rows(resumed_out)
    assert [r["iter"] for r in resumed_rows] == [r["iter"] for r in straight_rows] == ["0", "1"]
    assert all(r["epoch"] == "1" for r in resumed_rows)
    for a, b in zip(straight_rows, resumed_rows, strict=True):
        for column in LOSS_COLUMNS:
            assert float(b[column]) == pytest.approx(float(a[column]), abs=1e-6), (column, a, b)
    straight_history = json.loads((straight / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == straight_history[0]  # carried over from the checkpoint
    for key in ("loss", "cls", "reg", "align"):
        assert history[1][key] == pytest.approx(straight_history[1][key], abs=1e-6)
    a = torch.load(straight / "checkpoint_e002.pth", weights_only=True)["model"]
    b = torch.load(resumed_out / "checkpoint_e002.pth", weights_only=True)["model"]
    for key, value in a.items():
        assert (value.double() - b[key].double()).abs().max().item() <= 1e-6, key


def test_resume_refuses_another_variant(straight_run, tmp_path, capsys):
    values, straight = straight_run
    checkpoint = straight / "checkpoint_e001.pth"
    other = config_from_dict(merge(values, {"output": str(tmp_path / "other"), "model": {"channels": 24}}))
    with pytest.raises(DataError) as info:
        Trainer(other, resume=checkpoint, progress=False)
    message = str(info.value)
    assert message.startswith(f"{checkpoint}: checkpoint of another variant")
    assert "'channels': 16" in message and "'channels': 24" in message
    # the command line says the same and exits 2
    config_file = tmp_path / "other.yaml"
    config_file.write_text(yaml.safe_dump(other.to_dict()))
    assert cli.main([str(config_file), "--resume", str(checkpoint), "--no-progress"]) == 2
    assert f"{checkpoint}: checkpoint of another variant" in capsys.readouterr().err
    # not a training checkpoint (the exported model), and a missing file
    same = config_from_dict({**values, "output": str(tmp_path / "same")})
    with pytest.raises(DataError, match=rf"^{straight / 'model.pth'}: not an ocean-train checkpoint"):
        Trainer(same, resume=straight / "model.pth", progress=False)
    with pytest.raises(DataError, match="resume checkpoint not found"):
        Trainer(same, resume=straight / "checkpoint_e009.pth", progress=False)


def test_config_round_trip(straight_run):
    values, _ = straight_run
    cfg = config_from_dict(values)
    assert isinstance(cfg, TrainConfig) and config_from_dict(cfg.to_dict()) == cfg


# --- fine-tuning with a teacher -------------------------------------------------------------------------------------
def test_distillation_fine_tune_starts_from_the_model_and_learns_from_the_teacher(straight_run, pretrained, tmp_path):
    """model.init loads every tensor of an exported model; with the NanoTrack v3 teacher the loss gains finite,
    positive distillation terms (KL and box), the trunk stays frozen and the ground-truth terms are still there."""
    values, straight = straight_run
    init = straight / "model.pth"
    run = merge(values, {"output": str(tmp_path / "kd"), "model": {"init": str(init)},
                         "distill": {"teacher": str(pretrained), "cls_weight": 1.0, "box_weight": 1.0},
                         "data": {"distractor_share": 0.5},
                         "optim": {"epochs": 1, "unfreeze_epoch": 5, "warmup_epochs": 0}})
    trainer = Trainer(config_from_dict(run), progress=False)
    start = torch.load(init, weights_only=True)["state_dict"]
    for key, value in trainer.net.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, start[key]), key
    history = quiet_run(trainer)
    rows = log_rows(tmp_path / "kd")
    for row in rows:
        assert 0 < float(row["kd_cls"]) < 5 and 0 <= float(row["kd_box"]) < 5, row
        assert float(row["loss"]) > float(row["kd_cls"]) + float(row["kd_box"])  # ground truth terms remain
    assert history[0]["skipped"] == 0 and history[0]["kd_cls"] > 0
    after = trainer.net.state_dict()
    assert all(torch.equal(after[k], start[k]) for k in start if k.startswith("backbone."))
    # a model that does not match the configured net is refused with both shapes named
    other = merge(run, {"model": {"channels": 24}})
    with pytest.raises(DataError, match="model.init: .* the model section asks for stride=16, channels=24"):
        Trainer(config_from_dict(other), progress=False)
