"""Several processes (``torchrun``): process group, batch sharding, batch norm over the whole global batch.

A global batch b holds pairs [b·B, (b+1)·B); process r of W takes the r-th contiguous slice of it, so W
processes see exactly the pairs one process would. Batch statistics are reduced across processes (PyTorch's
SyncBatchNorm is CUDA-only; :class:`GlobalBatchNorm2d` also runs on gloo/CPU), and loss counts are reduced
before normalising, so a DDP step equals the single-process step on the joined batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

__all__ = ["DistContext", "GlobalBatchNorm2d", "ShardedBatchSampler", "convert_batchnorm", "init_distributed"]


@dataclass(frozen=True)
class DistContext:
    """This process's place: rank, world size, and whether a process group is active."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistContext(rank, world, local)


class ShardedBatchSampler(Sampler[list[int]]):
    """Yields this process's slice of every global batch of ``range(length)`` (incomplete batches dropped)."""

    def __init__(self, length: int, global_batch: int, ctx: DistContext, start_batch: int = 0) -> None:
        if global_batch % ctx.world:
            raise ValueError(f"batch size {global_batch} is not divisible by the {ctx.world} processes")
        self.length, self.global_batch, self.ctx, self.start_batch = length, global_batch, ctx, start_batch
        self.local = global_batch // ctx.world

    def __len__(self) -> int:
        return max(0, self.length // self.global_batch - self.start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.start_batch, self.length // self.global_batch):
            first = b * self.global_batch + self.ctx.rank * self.local
            yield list(range(first, first + self.local))


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batch of every process (differentiable all-reduce)."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        count = torch.tensor([xf.numel() / xf.shape[1]], device=x.device, dtype=torch.float32)
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count])
        stats = all_reduce(stats)
        c = x.shape[1]
        n = stats[2 * c]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / max(float(n) - 1, 1.0), alpha=m)
                self.num_batches_tracked += 1
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d below ``module`` by a GlobalBatchNorm2d holding the same tensors."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(device=child.weight.device)
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm(child)
    return module


def all_reduce_sum(t: Tensor, ctx: DistContext) -> Tensor:
    """Sum over processes (no gradient); identity in one process."""
    if ctx.active:
        t = t.clone()
        dist.all_reduce(t)
    return t
