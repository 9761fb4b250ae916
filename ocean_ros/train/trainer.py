"""The training loop of Ocean-Lite: optimiser and schedule, trunk freezing, BN policy, AMP, clipping,
per-epoch checkpoints with exact resume, CSV/JSON logs, tracking validation, and DDP under torchrun.

BatchNorm policy: the pretrained trunk's BN layers always run in eval mode (its statistics come from
NanoTrack's 1.25 M training batches; our batches are small and our data narrow), also once the trunk's weights
are fine-tuned; the neck and head BN layers train normally (batch statistics over the whole global batch).
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ocean_ros.core.checkpoint import load_pretrained_trunk, save_checkpoint
from ocean_ros.core.model import LiteNetConfig, OceanLiteNet
from ocean_ros.eval.validation_set import REPO_ROOT, data_root

from .config import TrainConfig
from .datasets import DataError, read_source
from .distill import distill_means, distill_terms, sample_teacher
from .distributed import DistContext, ShardedBatchSampler, all_reduce_sum, convert_batchnorm, init_distributed
from .losses import combine, loss_terms
from .pairs import PairSampler
from .run_checkpoints import TRAIN_FORMAT, init_from_checkpoint, load_train_checkpoint, save_train_checkpoint
from .samples import GridSpec, PairDataset
from .teacher import NanoTeacher, load_teacher

__all__ = ["Trainer", "data_root", "lr_at", "run_epoch_steps"]



def lr_at(epoch: float, cfg: TrainConfig) -> float:
    """Head learning rate at a fractional epoch: linear warm-up, then cosine decay to final_lr_factor·lr."""
    o = cfg.optim
    if epoch < o.warmup_epochs:
        return o.lr * (0.1 + 0.9 * epoch / o.warmup_epochs)
    span = max(o.epochs - o.warmup_epochs, 1e-9)
    t = min(max((epoch - o.warmup_epochs) / span, 0.0), 1.0)
    floor = o.lr * o.final_lr_factor
    return floor + (o.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _same_variant(stored: Any, want: dict[str, Any]) -> bool:
    """True when a checkpoint's stored variant names this run's network (net configs compared with their defaults
    filled in, so checkpoints written before a net key existed still resume)."""
    if not isinstance(stored, dict) or stored.get("arch") != want["arch"] or not isinstance(stored.get("net"), dict):
        return False
    try:
        return LiteNetConfig.from_dict(stored["net"]).to_dict() == want["net"]
    except (TypeError, ValueError):
        return False


def resolve_path(path: str, root: Path) -> Path:
    """``path`` as given when absolute, else under ``root``."""
    p = Path(path)
    return p if p.is_absolute() else root / p


def start_run(cfg: TrainConfig) -> tuple[DistContext, torch.device, Path]:
    """What every training stage does first: join the process group, pick the device ('auto': CUDA when
    available; CUDA ranks use their local GPU), set threads and seeds, create the output folder on the main rank.
    Returns (distributed context, device, output folder)."""
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    ctx = init_distributed(want)
    if want == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.output)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    return ctx, device, out


@dataclass
class EpochStats:
    loss: float
    cls: float
    reg: float
    align: float
    kd_cls: float
    kd_box: float
    pairs_per_s: float
    skipped: int


class Trainer:
    """One training run. ``run()`` trains from the start or from the checkpoint given to ``resume``."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None, progress: bool = True,
                 root: Path | None = None) -> None:
        self.cfg = cfg
        self.root = root or data_root()
        self.progress = progress
        self.ctx, self.device, self.out = start_run(cfg)
        m = cfg.model
        self.init_config: dict[str, Any] = {}
        wanted = LiteNetConfig(m.stride, m.channels, m.tower_depth, m.align)
        if m.init:
            self.net, self.init_config = init_from_checkpoint(REPO_ROOT / m.init, wanted)
        else:
            self.net = OceanLiteNet(wanted)
            if m.pretrained:
                load_pretrained_trunk(self.net, resolve_path(m.pretrained, self.root))
        if self.net.has_classifier and cfg.optim.unfreeze_epoch < cfg.optim.epochs:
            raise DataError(f"model.init {m.init} carries an online classifier trained on its trunk: keep the trunk "
                            "frozen (optim.unfreeze_epoch >= optim.epochs) or start from a model without one")
        self.net.to(self.device)
        self.teacher: NanoTeacher | None = None
        if cfg.distill.teacher:
            self.teacher = load_teacher(resolve_path(cfg.distill.teacher, self.root), device=self.device)
        if self.ctx.active:
            convert_batchnorm(self.net.neck)
            convert_batchnorm(self.net.connect_model)
        self.grid = GridSpec(m.search_size, self.net.score_size(m.search_size), self.net.grid_origin(m.search_size),
                             m.stride, m.label_radius)
        self.dataset = self._build_dataset()
        self.start_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.optimizer = self._build_optimizer(trunk=False)
        self.trunk_trainable = False
        self._fused: nn.Module | None = None
        if resume is not None:
            self._resume(Path(resume))
        self.model = self._wrap()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self._amp)

    @property
    def _amp(self) -> bool:
        return self.cfg.optim.amp and self.device.type == "cuda"

    # --- set-up -----------------------------------------------------------------------------------------
    def _build_dataset(self) -> PairDataset:
        sources, weights, ranges = [], [], []
        for src in self.cfg.data.sources:
            seqs = read_source(resolve_path(src.path, self.root), src.kind, src.exclude, src.annotations)
            videos = [s for s in seqs if not s.static]
            statics = [s for s in seqs if s.static]
            for group, frame_range in ((videos, src.frame_range), (statics, 0)):
                if group:
                    sources.append(group)
                    weights.append(src.weight * len(group) / len(seqs))
                    ranges.append(frame_range)
        if not sources:
            raise DataError("the training configuration names no usable source")
        sampler = PairSampler(sources, weights, ranges, self.cfg.data.negative_share, self.cfg.seed,
                              self.cfg.data.distractor_share)
        return PairDataset(sampler, self.cfg.augment, self.grid, self.cfg.data.pairs_per_epoch, self.cfg.seed)

    def _build_optimizer(self, trunk: bool) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups = [{"params": self.net.head_parameters(), "lr_factor": 1.0}]
        for p in self.net.trunk_parameters():
            p.requires_grad_(trunk)
        if trunk:
            groups.append({"params": self.net.trunk_parameters(), "lr_factor": o.trunk_lr_factor})
        if o.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)

    def _set_modes(self) -> None:
        self.net.train()
        self.net.backbone.eval()  # BN policy: trunk statistics stay NanoTrack's

    def _wrap(self) -> nn.Module:
        """The module the training step calls: the net itself, or the net under DDP in several processes."""
        if not self.ctx.active:
            return self.net
        return torch.nn.parallel.DistributedDataParallel(
            self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=False,
        )

    def _frozen_trunk(self) -> nn.Module | None:
        """While the trunk is frozen: a BN-fused copy of it for the forward pass (3× faster on CPU, same values)."""
        if self.trunk_trainable:
            self._fused = None
            return None
        if self._fused is None:
            import copy

            from torch.fx.experimental.optimization import fuse

            self._fused = fuse(copy.deepcopy(self.net.backbone).eval()).requires_grad_(False)
        return self._fused

    def _maybe_unfreeze(self, epoch: int) -> None:
        want = epoch >= self.cfg.optim.unfreeze_epoch
        if want and not self.trunk_trainable:
            # A new optimiser with the trunk group; momentum restarts (as TracKit does at its unfreeze epoch).
            self.optimizer = self._build_optimizer(trunk=True)
            self.trunk_trainable = True
            self.model = self._wrap()  # DDP registers the parameters that require grad when it is built

    # --- checkpoints ------------------------------------------------------------------------------------
    def _checkpoint_payload(self, epoch: int) -> dict[str, Any]:
        return {
            "format": TRAIN_FORMAT,
            "epoch": epoch,  # epochs completed
            "variant": {"arch": self.net.arch, "net": self.net.config.to_dict()},
            "train_config": self.cfg.to_dict(),
            "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "trunk_trainable": self.trunk_trainable,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
        }

    def _save(self, epoch: int) -> Path:
        return save_train_checkpoint(self._checkpoint_payload(epoch), self.out / f"checkpoint_e{epoch:03d}.pth")

    def _resume(self, path: Path) -> None:
        state = load_train_checkpoint(path, "an ocean-train")
        want = {"arch": self.net.arch, "net": self.net.config.to_dict()}
        if state.get("variant") != want and not _same_variant(state.get("variant"), want):
            raise DataError(f"{path}: checkpoint of another variant {state.get('variant')}; this run trains {want}")
        self.net.load_state_dict(state["model"], strict=True)
        if state.get("trunk_trainable"):
            self.optimizer = self._build_optimizer(trunk=True)
            self.trunk_trainable = True
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        torch.set_rng_state(state["torch_rng"])

    # --- loop -------------------------------------------------------------------------------------------
    def _loader(self, epoch: int) -> DataLoader:
        self.dataset.set_epoch(epoch)
        sampler = ShardedBatchSampler(len(self.dataset), self.cfg.optim.batch_size, self.ctx)
        workers = self.cfg.data.workers
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers,
                          persistent_workers=False, pin_memory=self.device.type == "cuda")

    def _step(self, batch: dict[str, torch.Tensor], lr: float) -> tuple[dict[str, float], bool]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_factor"]
        dev = self.device
        b = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=self._amp):
            out = self.model(b["template"], b["search"], trunk=self._frozen_trunk())
        terms = loss_terms(out.cls, out.reg, out.align, b["cls"], b["reg"], b["reg_weight"])
        counts = torch.stack([terms.pos_count, terms.neg_count, terms.reg_count, terms.align_count]).detach()
        if self.teacher is not None:
            kd = self._distill_terms(b, out)
            counts = torch.cat([counts, torch.stack([kd[1], kd[3]]).detach()])
        counts = all_reduce_sum(counts, self.ctx)
        loss, parts = combine(terms, counts[:4], scale=float(self.ctx.world))
        if self.teacher is not None:
            d = self.cfg.distill
            kd_cls, kd_box = distill_means(kd[0], counts[4], kd[2], counts[5])
            loss = d.gt_weight * loss + (d.cls_weight * kd_cls + d.box_weight * kd_box) * float(self.ctx.world)
            parts = {**parts, "kd_cls": kd_cls.detach(), "kd_box": kd_box.detach()}
        else:
            parts = {**parts, "kd_cls": loss.new_zeros(()), "kd_box": loss.new_zeros(())}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        # Each process holds its shard's share of the global loss (local sums / global counts): their sum is the
        # loss of the whole global batch, which is what is logged and checked against max_loss.
        names = ("cls", "reg", "align", "kd_cls", "kd_box")
        shares = torch.stack([loss.detach() / self.ctx.world, *(parts[k].float() for k in names)]).float()
        shares = all_reduce_sum(shares, self.ctx)
        value = float(shares[0])
        parts = dict(zip(names, shares[1:], strict=True))
        ok = math.isfinite(value) and value <= self.cfg.optim.max_loss
        if self.ctx.active:  # every process must skip together
            flag = all_reduce_sum(torch.tensor([0.0 if ok else 1.0], device=dev), self.ctx)
            ok = float(flag) == 0.0
        if ok:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return {"loss": value, **{k: float(v) for k, v in parts.items()}}, ok

    def _distill_terms(self, b: dict[str, torch.Tensor], out: Any) -> tuple[torch.Tensor, ...]:
        """(cls sum, cls count, box sum, box weight) of the teacher's maps sampled onto this net's grid."""
        with torch.no_grad():
            maps = self.teacher(b["template"], b["search"])
            g = self.grid
            score, ltrb, valid = sample_teacher(maps, g.origin, g.stride, g.score_size)
        return distill_terms(out.cls, out.reg, score, ltrb, valid)

    def train_epoch(self, epoch: int) -> EpochStats:
        """One epoch; returns its mean losses and throughput."""
        self._maybe_unfreeze(epoch)
        self._set_modes()
        means, rate, skipped = run_epoch_steps(
            self._loader(epoch), self._step, epoch, self.cfg, self.ctx, self.out / "log.csv",
            keys=("loss", "cls", "reg", "align", "kd_cls", "kd_box"), rate_key="pairs_per_s",
            desc=f"epoch {epoch + 1}/{self.cfg.optim.epochs}", show=self.progress, loss_format=".3f",
        )
        return EpochStats(means["loss"], means["cls"], means["reg"], means["align"], means["kd_cls"],
                          means["kd_box"], rate, skipped)

    @staticmethod
    def _append_csv(path: Path, row: dict[str, Any]) -> None:
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def run(self) -> list[dict[str, Any]]:
        """Train the remaining epochs; returns the per-epoch history (also written to ``history.json``)."""
        cfg = self.cfg
        for epoch in range(self.start_epoch, cfg.optim.epochs):
            t0 = time.perf_counter()
            stats = self.train_epoch(epoch)
            row: dict[str, Any] = {"epoch": epoch + 1, **stats.__dict__, "seconds": time.perf_counter() - t0,
                                   "trunk_trainable": self.trunk_trainable}
            if self.ctx.is_main:
                v = cfg.validation
                if v.every and ((epoch + 1) % v.every == 0 or epoch + 1 == cfg.optim.epochs):
                    from .validate import validate

                    row["validation"] = validate(self.net, cfg, self.root, self.device)
                    self.net.train()
                    self._set_modes()
                self.history.append(row)
                self._save(epoch + 1)
                self.export(self.out / "model.pth")
                self.export(self.out / f"model_e{epoch + 1:03d}.pth")  # every epoch's model stays selectable
                (self.out / "history.json").write_text(json.dumps(self.history, indent=2))
                print(json.dumps(row), flush=True)
            else:
                self.history.append(row)
        return self.history

    def export(self, path: Path, tracker: dict[str, Any] | None = None) -> None:
        """Write the network in the package's checkpoint format (what the tracker and node load)."""
        config: dict[str, Any] = {"train": self.cfg.to_dict(), "preset": self.cfg.validation.preset}
        if self.net.has_classifier and "online_train" in self.init_config:  # kept from model.init, trunk frozen
            config["online_train"] = self.init_config["online_train"]
        if tracker:
            config["tracker"] = tracker
        save_checkpoint(path, self.net, config)


Step = Callable[[Any, float], tuple[dict[str, float], bool]]


def run_epoch_steps(
    loader: DataLoader,
    step: Step,
    epoch: int,
    cfg: TrainConfig,
    ctx: DistContext,
    log_path: Path,
    *,
    keys: tuple[str, ...],
    rate_key: str,
    desc: str,
    show: bool,
    loss_format: str,
) -> tuple[dict[str, float], float, int]:
    """The epoch loop both training stages share: the learning rate of each step (:func:`lr_at`), a progress bar,
    skipped steps, and a ``log.csv`` row every ``cfg.log_every`` steps (main process only).

    ``step(batch, lr)`` returns (values, ok); a step that is not ok is counted as skipped and left out of the means.
    Returns (mean of each of ``keys`` over the finished steps, items per second, skipped steps).
    """
    from ocean_ros.eval.progress import progress_bar

    steps = len(loader)
    bar = progress_bar(steps, desc, show and ctx.is_main)
    sums = dict.fromkeys(keys, 0.0)
    done = skipped = 0
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        lr = lr_at(epoch + i / max(steps, 1), cfg)
        values, ok = step(batch, lr)
        skipped += not ok
        if ok:
            done += 1
            for k in sums:
                sums[k] += values[k]
        bar.update(1)
        bar.set_postfix_str(f"loss {values['loss']:{loss_format}} lr {lr:.2e}")
        if ctx.is_main and (i % cfg.log_every == 0 or i == steps - 1):
            rate = (i + 1) * cfg.optim.batch_size / (time.perf_counter() - start)
            Trainer._append_csv(log_path, {"epoch": epoch, "iter": i, "lr": lr, **values, rate_key: rate,
                                           "skipped": int(not ok)})
    bar.close()
    elapsed = time.perf_counter() - start
    n = max(done, 1)
    return {k: v / n for k, v in sums.items()}, steps * cfg.optim.batch_size / max(elapsed, 1e-9), skipped
