"""Training pairs: which frames are paired (sampler), how they are cropped and jittered (augmentation).

Every random choice of pair ``index`` in ``epoch`` comes from a generator seeded with (seed, epoch, index),
so a pair is the same whatever the worker, process count or resume point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from .config import AugmentConfig
from .datasets import TrainSequence

__all__ = ["Pair", "PairSampler", "crop_jittered", "load_image", "pair_rng"]

TEMPLATE_SIZE = 127


def pair_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one pair's random choices (``stream`` separates sampling from augmentation)."""
    return np.random.default_rng([seed, epoch, index, stream])


class Pair(NamedTuple):
    """Template and search frames: (sequence index, frame index) each, into the sampler's sequence list."""

    template: tuple[int, int]
    search: tuple[int, int]
    negative: bool


@dataclass
class PairSampler:
    """Draws positive pairs within a frame range of one video, and a share of negative pairs across videos.

    ``sources``: one list of sequences per source; ``weights``: share of pairs per source; ``frame_ranges``:
    per source, the largest distance between template and search in original frame numbers;
    ``distractor_share``: of the negative pairs whose template has distractors (:meth:`distractors`), the share
    whose search shows one of them instead of a random other sequence.
    """

    sources: list[list[TrainSequence]]
    weights: list[float]
    frame_ranges: list[int]
    negative_share: float
    seed: int
    distractor_share: float = 0.0

    def __post_init__(self) -> None:
        if not self.sources or any(not s for s in self.sources):
            raise ValueError("every training source must hold at least one sequence")
        total = float(sum(self.weights))
        self._p = np.asarray(self.weights, dtype=np.float64) / total
        self.sequences = [seq for source in self.sources for seq in source]
        self._offsets = np.cumsum([0] + [len(s) for s in self.sources])[:-1]
        self._video_count = len(self.sequences)
        self._by_category: dict[str, list[int]] = {}
        for i, seq in enumerate(self.sequences):
            if seq.category:
                self._by_category.setdefault(seq.category, []).append(i)
        self._distractors: dict[int, np.ndarray] = {}

    def _random_other(self, seq_index: int, rng: np.random.Generator) -> int:
        """Any sequence but the template's and but crops of the template's image (they may show the target)."""
        image = self.sequences[seq_index].image
        for _ in range(64):  # bounded: a source made of one image's crops only keeps the last draw
            other = int(rng.integers(self._video_count - 1))
            other += other >= seq_index
            if not image or self.sequences[other].image != image:
                break
        return other

    def distractors(self, seq_index: int) -> np.ndarray:
        """Indices of the sequences showing another object of the template's kind (same category) taken from
        another image, so never the target itself: not its own sequence and not a crop of its image, which
        could hold the target. Empty when the template's category is unknown."""
        if seq_index not in self._distractors:
            seq = self.sequences[seq_index]
            same = self._by_category.get(seq.category, []) if seq.category else []
            self._distractors[seq_index] = np.array(
                [i for i in same if i != seq_index and (not seq.image or self.sequences[i].image != seq.image)],
                dtype=np.int64)
        return self._distractors[seq_index]

    def pair(self, epoch: int, index: int) -> Pair:
        """The pair number ``index`` of ``epoch`` (deterministic)."""
        rng = pair_rng(self.seed, epoch, index, 0)
        source = int(rng.choice(len(self.sources), p=self._p))
        local = int(rng.integers(len(self.sources[source])))
        seq_index = int(self._offsets[source]) + local
        seq = self.sequences[seq_index]
        t = int(rng.integers(len(seq)))
        negative = self._video_count > 1 and rng.random() < self.negative_share
        if negative:
            kin = self.distractors(seq_index) if self.distractor_share > 0 else ()
            if len(kin) and rng.random() < self.distractor_share:
                other = int(kin[rng.integers(len(kin))])
            else:
                other = self._random_other(seq_index, rng)
            s = int(rng.integers(len(self.sequences[other])))
            return Pair((seq_index, t), (other, s), True)
        ids = seq.frame_ids
        near = np.flatnonzero(np.abs(ids - ids[t]) <= self.frame_ranges[source])
        s = int(near[rng.integers(len(near))])
        return Pair((seq_index, t), (seq_index, s), False)


def load_image(path) -> np.ndarray:
    """BGR uint8 image; ValueError naming the file when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode training image {path}")
    return image


def context_side(w: float, h: float) -> float:
    """sqrt((w+p)(h+p)), p = (w+h)/2: the side that maps to the 127-px template (px)."""
    p = (w + h) / 2
    return math.sqrt((w + p) * (h + p))


def crop_jittered(
    image: np.ndarray, box: np.ndarray, out_size: int, shift: float, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Target-centred crop at template scale with a random shift and per-axis scale.

    ``box`` xywh (image px). The window is the ``out_size`` crop the tracker would cut around the box
    (127 px ↔ the context side), scaled per axis by 1 ± U·``scale`` and shifted by U·``shift`` output px.
    Outside the image: the image's mean colour. Returns (crop HxWx3 uint8, box xywh in crop px).
    """
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    side = out_size * context_side(w, h) / TEMPLATE_SIZE  # image px covered by the crop
    sx, sy = 1.0 + rng.uniform(-scale, scale), 1.0 + rng.uniform(-scale, scale)
    tx, ty = rng.uniform(-shift, shift), rng.uniform(-shift, shift)
    wx, wy = side * sx, side * sy
    # Corner coordinates: output u = a·(x - x0); the window centre moves by -t output px so the target moves +t.
    ax, ay = out_size / wx, out_size / wy
    x0 = cx - wx / 2 - tx / ax
    y0 = cy - wy / 2 - ty / ay
    # cv2 maps pixel centres: u_c = a·x_c + (-a·x0 + a/2 - 1/2).
    m = np.array([[ax, 0.0, -ax * x0 + ax / 2 - 0.5], [0.0, ay, -ay * y0 + ay / 2 - 0.5]])
    fill = tuple(float(v) for v in image.reshape(-1, 3).mean(axis=0))
    crop = cv2.warpAffine(image, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    out_box = np.array([ax * (x - x0), ay * (y - y0), ax * w, ay * h], dtype=np.float64)
    return crop, out_box


def flip_box(box: np.ndarray, size: int) -> np.ndarray:
    """Mirror an xywh box horizontally inside a ``size``-wide crop (corner coordinates)."""
    x, y, w, h = box
    return np.array([size - x - w, y, w, h], dtype=np.float64)


def photometric(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, blur: bool) -> np.ndarray:
    """Colour jitter (brightness, contrast, saturation) and, when ``blur``, a random Gaussian blur."""
    out = crop
    if rng.random() < cfg.colour:
        s = cfg.colour_strength
        img = crop.astype(np.float32)
        img *= 1.0 + rng.uniform(-s, s)  # brightness
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * (1.0 + rng.uniform(-s, s))  # saturation
        img = img.mean() + (img - img.mean()) * (1.0 + rng.uniform(-s, s))  # contrast
        out = np.clip(img, 0, 255).astype(np.uint8)
    if blur:
        sigma = rng.uniform(0.5, 2.0)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out


def to_grey(crop: np.ndarray) -> np.ndarray:
    """Grey image in three identical channels."""
    return cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
