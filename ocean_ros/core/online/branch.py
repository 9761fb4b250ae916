"""The online classifier at run time (spec §6.2-6.7): first-frame training, then per frame inside the step.

:class:`OnlineBranch` holds one target's online state: the filter, the sample memory, the target position and
size ``(y, x, h, w)`` (frame px; host floats or a device buffer, as the step's numbers are) and the target scale
(always on the host). Per frame:

- :meth:`OnlineBranch.score`, inside the step before the Siamese peak: sample window and crop around the
  target, classification features, filter scores, localisation flag;
- :meth:`OnlineBranch.adopt`, inside the step after it: the new position and size unless the flag is
  ``not_found``, and the sample written to the memory when the flag is ``normal`` or ``hard_negative`` (on the
  device a masked write, so the step has no branch on device data);
- :meth:`OnlineBranch.finish` and :meth:`OnlineBranch.optimise`, on the host once the frame's flag is read: the
  schedule and the optimiser iterations (a captured graph per iteration count when graphs are on).

What the host must know is known on the host without reading the device: the window's decimation, side and scale
follow from ``target_scale`` alone, which changes only through the flag the host reads with the frame's result.
Every host number baked into a captured step is therefore a function of :attr:`OnlineBranch.key`. The filter,
the optimiser and the memory are float32 even when the backbone runs in float16.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..config import OnlineParams
from ..graphs import GraphCache
from ..scalars import Numbers, Scalar, py_max, py_min, select
from .augmentation import AugmentationDraws, Transform, augment, draw_augmentation, dropout_copies
from .flags import FLAGS, HARD_NEGATIVE, NORMAL, NOT_FOUND, localize
from .memory import SampleMemory
from .sampling import SAMPLE_SIZE, SampleWindow, crop_sample, normalise, sample_window, target_box, window_shape

__all__ = ["AUGMENTATION_EXPANSION", "INSIDE_RATIO", "OnlineBranch", "OnlineScore"]

# TracKit's fixed online constants (not in its ONLINE.yaml, changed by no preset): the first-frame crop is twice
# the sample side, so that shifted and rotated samples keep image content at their borders; the online target
# centre may leave the image by at most (0.5 - INSIDE_RATIO) target sizes.
AUGMENTATION_EXPANSION = 2.0
INSIDE_RATIO = 0.2
_MAX_OPTIMISER_GRAPHS = 4  # one per distinct iteration count (normal and hard-negative updates)


class OnlineScore(NamedTuple):
    """One frame's online result before the update: raw scores [1, 1, h+1, w+1] (float32, device; 14×14 for
    ResNet-50 Ocean, 15×15 for Ocean-Lite), the classification features [1, C, h, w], the flag code (a host int,
    or a 0-dim device tensor) and the sample window."""

    scores: Tensor
    features: Tensor
    flag: Scalar
    window: SampleWindow


class OnlineBranch:
    """Per-target online classifier state and its schedule, around a shared net with a ``classifier``.

    ``net`` must provide ``classification_features(x)`` (normalised RGB samples → float32 features) and
    ``classifier`` (:class:`~ocean_ros.core.model.OnlineClassifier`). ``numbers`` are the step's (host or
    device). ``fixed_memory``: the optimiser runs over the whole memory (what a captured graph needs; unused slots
    weigh 0), else over the occupied slots; ``use_graph``: capture the optimiser per iteration count.
    """

    def __init__(
        self,
        net: Any,
        params: OnlineParams,
        numbers: Numbers,
        *,
        fixed_memory: bool = False,
        use_graph: bool = False,
        draw: Callable[[OnlineParams, int], AugmentationDraws] = draw_augmentation,
    ) -> None:
        self.net = net
        self.params = params
        self.numbers = numbers
        self.device = numbers.device
        self.fixed_memory = fixed_memory
        self.use_graph = use_graph
        self.draw = draw  # source of the initial augmentation's random draws (replaceable, e.g. for parity runs)
        self.target = numbers.values(4)  # pos y, x, size h, w (frame px)
        self._filter: Tensor | None = None
        self._memory: SampleMemory | None = None
        self._optimisers = GraphCache(self.device, _MAX_OPTIMISER_GRAPHS)
        self.transforms: list[Transform] = []
        self.feature_size = (0, 0)
        self.reset()

    def reset(self) -> None:
        """Forget the target (the buffers stay allocated for the next one)."""
        self.initialised = False
        self.transforms = []
        self.target_scale = 1.0
        self.frame_num = 0

    @property
    def filter(self) -> Tensor | None:
        """The filter [1, C, k, k] (None when no target is initialised)."""
        return self._filter if self.initialised else None

    @property
    def memory(self) -> SampleMemory | None:
        """The sample memory (None when no target is initialised)."""
        return self._memory if self.initialised else None

    def _require(self) -> tuple[Tensor, SampleMemory]:
        if not self.initialised or self._filter is None or self._memory is None:
            raise RuntimeError("the online branch is not initialised")
        return self._filter, self._memory

    def disable_graphs(self) -> None:
        """Run the optimiser eagerly over the occupied slots from now on (after a capture failure elsewhere)."""
        self.use_graph, self.fixed_memory = False, False
        self._optimisers.clear()

    @property
    def graph_error(self) -> str | None:
        """Why capturing the optimiser failed (it then runs eagerly); None otherwise."""
        return self._optimisers.error

    @property
    def optimiser_graphs(self) -> int:
        """Number of captured optimiser graphs."""
        return len(self._optimisers)

    @property
    def key(self) -> float:
        """The host value every captured online computation depends on (the target scale)."""
        return self.target_scale

    # --- first frame
    def features(self, samples: Tensor) -> Tensor:
        """RGB 0..255 samples [N, 3, S, S] → classification features [N, C, h, w] float32 (C = 512 for
        ResNet-50 Ocean, the model's ``online_dim`` for Ocean-Lite)."""
        return self.net.classification_features(normalise(samples))

    def initial_samples(
        self, frame_t: Tensor, pos: tuple[float, float], target_scale: float, transforms: list[Transform]
    ) -> Tensor:
        """The augmented initial samples [T, 3, S, S] (RGB 0..255) cut around round(pos) at 2x the sample side."""
        expanded = int(SAMPLE_SIZE * AUGMENTATION_EXPANSION)
        expanded += (expanded - SAMPLE_SIZE) % 2
        centre = (float(round(pos[0])), float(round(pos[1])))
        window = sample_window(centre, target_scale * expanded, expanded)
        return augment(crop_sample(frame_t, window, expanded), transforms, SAMPLE_SIZE)

    def initialize(self, frame_t: Tensor, center_xy: tuple[float, float], size_wh: tuple[float, float]) -> bool:
        """Train the filter on the first frame for a target of centre ``center_xy`` and size ``size_wh`` (px).

        Returns True when the buffers had to be (re)allocated (captured graphs reading the old ones are stale).
        """
        p = self.params
        pos = (float(center_xy[1]), float(center_xy[0]))
        size = (float(size_wh[1]), float(size_wh[0]))
        self.target_scale = math.sqrt(p.search_area_scale**2 * size[0] * size[1]) / SAMPLE_SIZE
        draws = self.draw(p, self.net.classifier.filter_initializer.filter_conv.in_channels)
        feat = self.features(self.initial_samples(frame_t, pos, self.target_scale, draws.transforms))
        self.transforms = list(draws.transforms)
        if draws.dropout_keep.shape[0] > 0:
            feat = torch.cat([feat, dropout_copies(feat[:1], draws.dropout_keep, p.dropout_prob)])
            self.transforms += [self.transforms[0]] * draws.dropout_keep.shape[0]
        self.feature_size = tuple(feat.shape[-2:])
        sample_pos = (float(round(pos[0])), float(round(pos[1])))
        base = target_box(pos, size, sample_pos, self.target_scale, SAMPLE_SIZE)
        boxes = torch.tensor(
            [[base[0] + t.shift[1], base[1] + t.shift[0], base[2], base[3]] for t in self.transforms],
            dtype=torch.float32, device=feat.device,
        )
        classifier = self.net.classifier
        filt = classifier.optimize(classifier.init_filter(feat, boxes), feat, boxes, None, p.init_iterations)
        fresh = (self._filter is None or self._memory is None or self._filter.shape != filt.shape
                 or self._memory.capacity != p.memory_size or self._memory.features.shape[1:] != feat.shape[1:])
        if fresh:
            self._filter = torch.zeros_like(filt)
            self._memory = SampleMemory(p.memory_size, tuple(feat.shape[1:]), feat.device)
            self._optimisers.clear()
        self._filter.copy_(filt)
        self._memory.reset(feat, boxes)
        self.target.load([*pos, *size])
        self.frame_num = 1
        self.initialised = True
        return fresh

    # --- inside the step
    def _window_side(self) -> tuple[float, float]:
        """(sample-centre shift in frame px, window side in frame px) for the current target scale: the sample is
        shifted by half a cell for an even-sized filter."""
        k = self.net.classifier.filter_size
        fh = self.feature_size[0]
        return ((fh + k) % 2) * self.target_scale * SAMPLE_SIZE / (2 * fh), self.target_scale * SAMPLE_SIZE

    def _sample_scores(self, frame_t: Tensor, pos: tuple[Scalar, Scalar]) -> tuple[SampleWindow, Tensor, Tensor]:
        """The sample window around ``pos`` (y, x frame px) at the current target scale, its features and the
        filter's raw scores on them."""
        filt, _ = self._require()
        shift, side = self._window_side()
        window = sample_window((pos[0] + shift, pos[1] + shift), side, SAMPLE_SIZE)
        feat = self.features(crop_sample(frame_t, window, SAMPLE_SIZE))
        return window, feat, self.net.classifier.classify(filt, feat)

    def score(self, frame_t: Tensor) -> OnlineScore:
        """Sample the frame around the current target, score it with the filter and decide the flag."""
        pos_y, pos_x, size_h, size_w = self.target.get()
        window, feat, scores = self._sample_scores(frame_t, (pos_y, pos_x))
        cell = SAMPLE_SIZE / (scores.shape[-1] - 1) * window.scale  # frame px per score cell
        target_cells = (size_h / cell, size_w / cell)
        previous = ((pos_y - window.pos[0]) / cell, (pos_x - window.pos[1]) / cell)
        flag = self.numbers.one(localize(scores, target_cells, previous, self.params))
        return OnlineScore(scores, feat, flag, window)

    def adopt(self, result: OnlineScore, state: Sequence[Scalar], image_wh: tuple[float, float]) -> None:
        """Take the tracker's new ``state`` (cx, cy, w, h; frame px) unless the flag is not_found, and write this
        frame's sample to the memory when it is normal or hard_negative."""
        _, memory = self._require()
        p = self.params
        cx, cy, w, h = state
        img_w, img_h = image_wh
        margin_h, margin_w = (INSIDE_RATIO - 0.5) * h, (INSIDE_RATIO - 0.5) * w
        pos_y = py_min(py_max(cy, margin_h), img_h - margin_h)
        pos_x = py_min(py_max(cx, margin_w), img_w - margin_w)
        flag = result.flag
        found = flag != NOT_FOUND
        self.target.set([select(found, new, old) for new, old in zip((pos_y, pos_x, h, w), self.target.get(),
                                                                     strict=True)])
        box = target_box((pos_y, pos_x), (h, w), result.window.pos, result.window.scale, SAMPLE_SIZE)
        box_t = self.numbers.tensor(box, torch.float32)
        for rate, write in ((p.learning_rate, flag == NORMAL), (p.hard_negative_learning_rate, flag == HARD_NEGATIVE)):
            memory.add(result.features, box_t, rate, write)  # the flags exclude each other: one write at most

    def response_at(self, frame_t: Tensor, center_xy: tuple[float, float]) -> float:
        """The filter's strongest raw score within half a target side of ``center_xy`` (frame px), on a sample window
        centred there at the current target scale: how much the target the filter learned is there."""
        _, _, scores = self._sample_scores(frame_t, (center_xy[1], center_xy[0]))
        n = scores.shape[-1]
        reach = max(1, round(n / (2 * self.params.search_area_scale)))  # half a target side, in cells
        middle = n // 2
        return float(scores[..., middle - reach:middle + reach + 1, middle - reach:middle + reach + 1].max())

    def move(self, center_xy: tuple[float, float], size_wh: tuple[float, float]) -> None:
        """Re-centre the sample window on a re-detected target (centre, size frame px); the window scale stays."""
        self.target.load([center_xy[1], center_xy[0], size_wh[1], size_wh[0]])

    # --- after the host read
    def finish(self, flag_code: int) -> tuple[str, int]:
        """Host bookkeeping once the frame's flag is read: returns (flag name, optimiser iterations due)."""
        p = self.params
        self.frame_num += 1
        flag = FLAGS[flag_code]
        if flag == "not_found":
            return flag, 0
        self.target_scale = window_shape(self.target_scale * SAMPLE_SIZE, SAMPLE_SIZE)[2]
        if flag == "hard_negative":
            return flag, p.hard_negative_iterations
        if flag == "normal" and (self.frame_num - 1) % p.update_interval == 0:
            return flag, p.update_iterations
        return flag, 0

    def optimise(self, iterations: int) -> None:
        """Run ``iterations`` optimiser steps on the filter (a graph replay once captured for that count)."""
        if iterations > 0:
            self._optimisers.run(iterations, lambda: self._optimise(iterations), capture=self.use_graph)

    def _optimise(self, iterations: int) -> None:
        filt, memory = self._require()
        feat, boxes, weights = memory.training_set(whole=self.fixed_memory)
        filt.copy_(self.net.classifier.optimize(filt, feat, boxes, weights, iterations))
