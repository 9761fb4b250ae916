"""The torch dataset of training pairs: sampler → crops → augmentation → grid targets, as tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import AugmentConfig
from .labels import make_targets
from .pairs import TEMPLATE_SIZE, PairSampler, crop_jittered, flip_box, load_image, pair_rng, photometric, to_grey

__all__ = ["GridSpec", "PairDataset"]


@dataclass(frozen=True)
class GridSpec:
    """The score grid the targets are made for (from the network: ``score_size``, ``grid_origin``, ``stride``)."""

    search_size: int
    score_size: int
    origin: float
    stride: int
    radius: int


class PairDataset(Dataset):
    """``pairs_per_epoch`` pairs of the current epoch (:meth:`set_epoch`); item i is the same on every run.

    Items: template [3,127,127] and search [3,S,S] float32 BGR 0..255, cls [N,N], reg [4,N,N], reg_weight [N,N],
    box [4] (xywh, search px), negative (bool).
    """

    def __init__(self, sampler: PairSampler, augment: AugmentConfig, grid: GridSpec, pairs_per_epoch: int,
                 seed: int) -> None:
        self.sampler = sampler
        self.augment = augment
        self.grid = grid
        self.pairs_per_epoch = pairs_per_epoch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.pairs_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pair = self.sampler.pair(self.epoch, index)
        rng = pair_rng(self.seed, self.epoch, index, 1)
        aug, g = self.augment, self.grid
        t_seq = self.sampler.sequences[pair.template[0]]
        s_seq = self.sampler.sequences[pair.search[0]]
        t_img = load_image(t_seq.frames[pair.template[1]])
        s_img = t_img if pair.search == pair.template else load_image(s_seq.frames[pair.search[1]])
        z, _ = crop_jittered(t_img, t_seq.boxes[pair.template[1]], TEMPLATE_SIZE, aug.template_shift,
                             aug.template_scale, rng)
        x, box = crop_jittered(s_img, s_seq.boxes[pair.search[1]], g.search_size, aug.search_shift,
                               aug.search_scale, rng)
        if rng.random() < aug.flip:
            z, x = z[:, ::-1], x[:, ::-1]
            box = flip_box(box, g.search_size)
        if rng.random() < aug.grey:
            z, x = to_grey(z), to_grey(x)
        z = photometric(z, aug, rng, blur=False)
        x = photometric(x, aug, rng, blur=rng.random() < aug.blur)
        targets = make_targets(box, g.score_size, g.origin, g.stride, g.radius, negative=pair.negative)
        return {
            "template": torch.from_numpy(np.ascontiguousarray(z.transpose(2, 0, 1), dtype=np.float32)),
            "search": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)),
            "cls": torch.from_numpy(targets.cls),
            "reg": torch.from_numpy(targets.reg),
            "reg_weight": torch.from_numpy(targets.reg_weight),
            "box": torch.from_numpy(box.astype(np.float32)),
            "negative": torch.tensor(pair.negative),
        }
