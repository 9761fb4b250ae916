"""Episodes of the online stage: a few train and test frames of one video, cut as online-classifier samples.

Every random choice of episode ``index`` in ``epoch`` comes from a generator seeded with (seed, epoch, index),
so an episode is the same whatever the worker, process count or resume point. Sample boxes are ``x, y, w, h``
in sample pixels (top-left corner, 0-based); samples are BGR uint8 (the trunk's colour order).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .config import OnlineStageConfig
from .datasets import TrainSequence
from .pairs import load_image, pair_rng

__all__ = ["EpisodeDataset", "crop_online_sample", "episode_frames"]


def crop_online_sample(
    image: np.ndarray, box: np.ndarray, size: int, area_scale: float, shift: tuple[float, float], scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Square sample of side area_scale·sqrt(w·h)·scale (image px) around the box centre moved by ``shift``
    (dx, dy, image px), resized to ``size`` px (bilinear; replicated borders, as the tracker's online crop).

    ``box`` xywh in image px. Returns (sample HxWx3 uint8, box xywh in sample px).
    """
    x, y, w, h = (float(v) for v in box)
    side = area_scale * math.sqrt(w * h) * scale
    a = size / side
    x0 = x + w / 2 + shift[0] - side / 2
    y0 = y + h / 2 + shift[1] - side / 2
    m = np.array([[a, 0.0, -a * x0 + a / 2 - 0.5], [0.0, a, -a * y0 + a / 2 - 0.5]])
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, np.array([a * (x - x0), a * (y - y0), a * w, a * h], dtype=np.float64)


def episode_frames(seq: TrainSequence, count: int, frame_range: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` frame indices of ``seq`` within ``frame_range`` original frame numbers, in time order.

    An anchor frame is drawn, then the rest (with repetition when the window is short) from the frames whose
    numbers lie in [anchor, anchor + frame_range]; the window slides back when it runs past the end.
    """
    ids = seq.frame_ids
    anchor = int(rng.integers(len(seq)))
    start_id = min(int(ids[anchor]), int(ids[-1]) - frame_range)
    window = np.flatnonzero((ids >= start_id) & (ids <= start_id + frame_range))
    replace = len(window) < count
    chosen = rng.choice(window, size=count, replace=replace)
    return np.sort(chosen)


class EpisodeDataset(Dataset):
    """``episodes_per_epoch`` episodes of the current epoch (:meth:`set_epoch`); item i is the same on every run.

    Items: ``train_images`` [K,3,S,S] and ``test_images`` [T,3,S,S] uint8 BGR, ``train_boxes`` [K,4] and
    ``test_boxes`` [T,4] float32 xywh (sample px). The episode's frames share one horizontal flip and one
    brightness factor.
    """

    def __init__(self, sequences: list[TrainSequence], cfg: OnlineStageConfig, seed: int) -> None:
        videos = [s for s in sequences if not s.static and len(s) > 1]
        if not videos:
            raise ValueError("the online stage needs at least one video (non-static sequence) with two frames")
        self.sequences = videos
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.cfg.episodes_per_epoch

    def _sample(self, image: np.ndarray, box: np.ndarray, jitter: float, scale_jitter: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        c = self.cfg
        side = math.sqrt(float(box[2]) * float(box[3]))
        shift = (rng.uniform(-0.5, 0.5) * jitter * side, rng.uniform(-0.5, 0.5) * jitter * side)
        scale = math.exp(rng.uniform(-scale_jitter, scale_jitter))
        return crop_online_sample(image, box, c.sample_size, c.search_area_scale, shift, scale)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        rng = pair_rng(self.seed, self.epoch, index, 2)
        seq = self.sequences[int(rng.integers(len(self.sequences)))]
        frames = episode_frames(seq, c.train_frames + c.test_frames, c.frame_range, rng)
        flip = rng.random() < 0.5
        gain = 1.0 + rng.uniform(-0.2, 0.2)
        images, boxes = [], []
        for n, f in enumerate(frames):
            train = n < c.train_frames
            crop, box = self._sample(
                load_image(seq.frames[int(f)]), seq.boxes[int(f)],
                c.train_jitter if train else c.test_jitter, c.train_scale_jitter if train else c.test_scale_jitter,
                rng,
            )
            if flip:
                crop = crop[:, ::-1]
                box = np.array([c.sample_size - box[0] - box[2], box[1], box[2], box[3]])
            crop = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            images.append(np.ascontiguousarray(crop.transpose(2, 0, 1)))
            boxes.append(box)
        images_t = torch.from_numpy(np.stack(images))
        boxes_t = torch.from_numpy(np.stack(boxes).astype(np.float32))
        k = c.train_frames
        return {"train_images": images_t[:k], "train_boxes": boxes_t[:k],
                "test_images": images_t[k:], "test_boxes": boxes_t[k:]}
