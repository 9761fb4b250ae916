"""The online stage of ``ocean-train`` (``stage: online``): episodic training of Ocean-Lite's online classifier.

DiMP-style meta-training with the Siamese network (trunk included) frozen: per episode, the filter is
initialised on a few train samples of a video and refined by ``online.iterations`` unrolled Gauss-Newton
steps (:class:`~ocean_ros.core.model.online_classifier.FilterOptimizer`); the filters are scored on later test
samples of the same video and the loss is back-propagated through the steps into the projection, the
initialiser, the step length, the regularisation and the label / mask / spatial-weight predictors.

Same data sources, per-iteration CSV log, per-epoch checkpoints with exact resume, tracking validation and
torchrun behaviour as the first stage (:mod:`ocean_ros.train.trainer`). Under DDP every process runs its share
of the global batch of episodes and the gradients are averaged over processes before each step.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ocean_ros.core.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from ocean_ros.core.model import LiteNetConfig, OceanLiteNet
from ocean_ros.core.model.fuse import fuse_for_inference
from ocean_ros.core.model.online_classifier import FEATURE_STRIDE, OnlineClassifier, apply_filter
from ocean_ros.core.online import normalise

from .config import TrainConfig
from .datasets import DataError, read_source
from .distributed import ShardedBatchSampler, all_reduce_sum
from .episodes import EpisodeDataset
from .run_checkpoints import load_train_checkpoint, save_train_checkpoint
from .trainer import REPO_ROOT, data_root, resolve_path, run_epoch_steps, start_run

__all__ = ["EpisodeLoss", "EpisodicTrainer", "episode_loss", "gaussian_label", "hinge_loss", "build_online_net"]

TRAIN_FORMAT = "ocean_ros.train.online.v1"
HINGE_THRESHOLD = 0.05  # label values below this are background: only positive scores are penalised there


def gaussian_label(boxes: Tensor, sigma_factor: float, output_size: tuple[int, int]) -> Tensor:
    """Gaussian labels [N,1,H,W] on the online score grid for boxes [N,4] (x, y, w, h, sample px).

    Score cell (i, j) sits on sample pixel (16·j, 16·i) (the optimiser's convention); the peak is on the box
    centre; σ = sigma_factor·sqrt(w·h)/16 cells.
    """
    boxes = boxes.float()
    centre = (boxes[:, :2] + boxes[:, 2:] / 2) / FEATURE_STRIDE  # (x, y) in cells
    sigma = sigma_factor * torch.sqrt(boxes[:, 2] * boxes[:, 3]) / FEATURE_STRIDE
    rows = torch.arange(output_size[0], dtype=torch.float32, device=boxes.device).view(1, -1, 1)
    cols = torch.arange(output_size[1], dtype=torch.float32, device=boxes.device).view(1, 1, -1)
    d2 = (rows - centre[:, 1].view(-1, 1, 1)) ** 2 + (cols - centre[:, 0].view(-1, 1, 1)) ** 2
    return torch.exp(-0.5 * d2 / (sigma.view(-1, 1, 1) ** 2)).unsqueeze(1)


def hinge_loss(scores: Tensor, label: Tensor, threshold: float = HINGE_THRESHOLD) -> Tensor:
    """DiMP's hinge-like regression loss (mean over cells): background cells (label < threshold) are penalised
    only for positive scores (target 0), target cells regress to the label."""
    background = (label < threshold).float()
    prediction = background * torch.relu(scores) + (1 - background) * scores
    return ((prediction - (1 - background) * label) ** 2).mean()


class EpisodeLoss(NamedTuple):
    """Test-sample losses of one episode: total (weighted), initial filter, final filter (scalar tensors)."""

    total: Tensor
    initial: Tensor
    final: Tensor


def episode_loss(
    classifier: OnlineClassifier, train_feat: Tensor, train_boxes: Tensor, test_feat: Tensor, test_boxes: Tensor,
    iterations: int, sigma_factor: float, init_weight: float = 0.5, iter_weight: float = 0.5,
) -> EpisodeLoss:
    """Build the filter on projected train features [K,C,h,w] / boxes [K,4] (initialiser, then ``iterations``
    unrolled optimiser steps) and score every iterate on the test features [T,C,h,w] / boxes [T,4].

    total = final + init_weight·initial + iter_weight·mean(intermediate iterates); differentiable throughout.
    """
    opt = classifier.filter_optimizer
    filt = classifier.init_filter(train_feat, train_boxes)
    k = filt.shape[-1]
    out = (train_feat.shape[-2] + (k + 1) % 2, train_feat.shape[-1] + (k + 1) % 2)
    targets = opt.targets(train_boxes, out)
    weights = opt.residual_weights(targets, None)
    label = gaussian_label(test_boxes, sigma_factor, out)
    losses = [hinge_loss(apply_filter(test_feat, filt), label)]
    for _ in range(iterations):
        filt = opt.step(filt, train_feat, targets, weights)
        losses.append(hinge_loss(apply_filter(test_feat, filt), label))
    initial, final = losses[0], losses[-1]
    total = final + init_weight * initial
    if len(losses) > 2:
        total = total + iter_weight * torch.stack(losses[1:-1]).mean()
    return EpisodeLoss(total, initial, final)


def build_online_net(base: str | Path, feature_dim: int, layer: int) -> tuple[OceanLiteNet, dict[str, Any]]:
    """The stage-1 Ocean-Lite model at ``base`` with a fresh online classifier (``feature_dim`` wide, reading
    trunk stage ``layer``); any classifier in the file is dropped. Returns (net on CPU, the file's config)."""
    state, meta = read_checkpoint(base)
    net_values = (meta.get("config") or {}).get("net")
    if not isinstance(net_values, dict):
        raise CheckpointError(f"{base}: not an Ocean-Lite checkpoint (no config.net)")
    values = {**net_values, "online_dim": feature_dim, "online_layer": layer}
    net = OceanLiteNet(LiteNetConfig.from_dict(values))
    siamese = {k: v.float() for k, v in state.items() if not k.startswith("classifier.")}
    expected = {k for k in net.state_dict() if not k.startswith("classifier.") and not k.endswith("batches_tracked")}
    if siamese.keys() != expected:
        raise CheckpointError(f"{base}: Siamese keys do not match the Ocean-Lite network {net.config}")
    net.load_state_dict(siamese, strict=False)
    return net, dict(meta.get("config") or {})


class EpisodicTrainer:
    """One online-stage run; ``run()`` trains from the start or from the checkpoint given to ``resume``."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None, progress: bool = True,
                 root: Path | None = None) -> None:
        self.cfg = cfg
        self.root = root or data_root()
        self.progress = progress
        self.ctx, self.device, self.out = start_run(cfg)
        o = cfg.online
        base = resolve_path(o.base, REPO_ROOT)
        self.net, self.base_config = build_online_net(base, o.feature_dim, o.layer)
        self.net.to(self.device).eval().requires_grad_(False)
        self.classifier = self.net.classifier
        self.params = self._trainable()
        # The frozen trunk for the features, BN folded and channels-last (same values, faster).
        self.trunk_net = fuse_for_inference(copy.deepcopy(self.net).eval()).use_channels_last_trunk()
        sequences = []
        for src in cfg.data.sources:
            sequences += read_source(resolve_path(src.path, self.root), src.kind, src.exclude, src.annotations)
        self.dataset = EpisodeDataset(sequences, o, cfg.seed)
        self.optimizer = self._build_optimizer()
        self.start_epoch = 0
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            self._resume(Path(resume))

    # --- set-up -----------------------------------------------------------------------------------------
    def _trainable(self) -> list[nn.Parameter]:
        o = self.cfg.online
        c = self.classifier
        groups = [c.filter_initializer]
        if o.learn_projection:
            groups.append(c.feature_extractor)
        if o.learn_optimizer:
            groups.append(c.filter_optimizer)
        params = [p for m in groups for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        return params

    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups = [{"params": self.params, "lr_factor": 1.0}]
        if o.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)

    # --- checkpoints ------------------------------------------------------------------------------------
    def _variant(self) -> dict[str, Any]:
        return {"arch": self.net.arch, "net": self.net.config.to_dict(), "stage": "online"}

    def _save(self, epoch: int) -> Path:
        payload = {
            "format": TRAIN_FORMAT, "epoch": epoch, "variant": self._variant(), "train_config": self.cfg.to_dict(),
            "classifier": {k: v.detach().cpu() for k, v in self.classifier.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "history": self.history, "torch_rng": torch.get_rng_state(),
        }
        return save_train_checkpoint(payload, self.out / f"checkpoint_e{epoch:03d}.pth")

    def _resume(self, path: Path) -> None:
        state = load_train_checkpoint(path, "an online-stage", TRAIN_FORMAT)
        if state.get("variant") != self._variant():
            raise DataError(f"{path}: checkpoint of another variant {state.get('variant')}; this run trains "
                            f"{self._variant()}")
        self.classifier.load_state_dict(state["classifier"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        torch.set_rng_state(state["torch_rng"])

    def export(self, path: Path) -> None:
        """The whole model (stage-1 Siamese weights unchanged + the online classifier) in the package format."""
        config = {k: v for k, v in self.base_config.items() if k != "net"}
        config["online_train"] = self.cfg.to_dict()
        save_checkpoint(path, self.net, config)

    # --- loop -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def trunk_features(self, images: Tensor) -> Tensor:
        """BGR uint8 samples [N,3,S,S] → frozen trunk features [N,C,S/16,S/16] (the tracker's exact path)."""
        rgb = images.to(self.device).flip(1).float()
        return self.trunk_net.online_trunk_features(normalise(rgb))

    def _episode_losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        o = self.cfg.online
        b, k = batch["train_images"].shape[:2]
        t = batch["test_images"].shape[1]
        feats = self.trunk_features(torch.cat([batch["train_images"].flatten(0, 1),
                                               batch["test_images"].flatten(0, 1)]))
        feats = self.classifier.extract_features(feats)
        train_feat = feats[: b * k].unflatten(0, (b, k))
        test_feat = feats[b * k:].unflatten(0, (b, t))
        totals, inits, finals = [], [], []
        for e in range(b):
            loss = episode_loss(self.classifier, train_feat[e], batch["train_boxes"][e].to(self.device),
                                test_feat[e], batch["test_boxes"][e].to(self.device), o.iterations,
                                o.label_sigma, o.init_loss_weight, o.iter_loss_weight)
            totals.append(loss.total)
            inits.append(loss.initial)
            finals.append(loss.final)
        return torch.stack(totals).mean(), torch.stack(inits).mean(), torch.stack(finals).mean()

    def _step(self, batch: dict[str, Tensor], lr: float) -> tuple[dict[str, float], bool]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_factor"]
        loss, initial, final = self._episode_losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        world = float(self.ctx.world)
        if self.ctx.active:  # average the gradients of the global batch
            for p in self.params:
                if p.grad is not None:
                    p.grad.copy_(all_reduce_sum(p.grad, self.ctx) / world)
        values = all_reduce_sum(torch.stack([loss.detach(), initial.detach(), final.detach()]), self.ctx) / world
        value = float(values[0])
        ok = math.isfinite(value) and value <= self.cfg.optim.max_loss
        if ok:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
            self.optimizer.step()
        return {"loss": value, "initial": float(values[1]), "final": float(values[2])}, ok

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch; returns its mean losses, throughput and skipped steps."""
        self.dataset.set_epoch(epoch)
        sampler = ShardedBatchSampler(len(self.dataset), self.cfg.optim.batch_size, self.ctx)
        loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.cfg.data.workers)
        means, rate, skipped = run_epoch_steps(
            loader, self._step, epoch, self.cfg, self.ctx, self.out / "log.csv",
            keys=("loss", "initial", "final"), rate_key="episodes_per_s",
            desc=f"online epoch {epoch + 1}/{self.cfg.optim.epochs}", show=self.progress, loss_format=".4f",
        )
        return {**means, "episodes_per_s": rate, "skipped": skipped}

    def validate(self) -> dict[str, Any]:
        """Tracking scores on the validation sequences with the validation preset, online update on."""
        from ocean_ros.core.config import TrackerConfig

        from .validate import evaluate_sequences, validation_sequences

        config = TrackerConfig.from_preset(self.cfg.validation.preset).replace(
            align=False, online=True, online_ratio=self.cfg.online.online_ratio)
        net = copy.deepcopy(self.net).eval().requires_grad_(False)
        fuse_for_inference(net).use_channels_last_trunk()
        return evaluate_sequences(net, validation_sequences(self.cfg, self.root), config, self.device)

    def run(self) -> list[dict[str, Any]]:
        """Train the remaining epochs; returns the per-epoch history (also written to ``history.json``)."""
        cfg = self.cfg
        for epoch in range(self.start_epoch, cfg.optim.epochs):
            t0 = time.perf_counter()
            row: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            row["seconds"] = time.perf_counter() - t0
            self.history.append(row)
            if self.ctx.is_main:
                v = cfg.validation
                if v.every and ((epoch + 1) % v.every == 0 or epoch + 1 == cfg.optim.epochs):
                    row["validation"] = self.validate()
                self._save(epoch + 1)
                self.export(self.out / "model.pth")
                (self.out / "history.json").write_text(json.dumps(self.history, indent=2))
                print(json.dumps(row), flush=True)
        return self.history
