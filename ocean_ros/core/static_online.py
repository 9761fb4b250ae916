"""The online branch on fixed device buffers, for the static (CUDA-graph) step.

:class:`StaticOnline` holds one target's online state where a captured step can read and write it: the target
position and size ``(y, x, h, w)`` (frame px, float64), the filter, the sample memory (features, boxes,
weights, the write count and the previous slot) and this frame's flag. Per frame, inside the step:

- :meth:`StaticOnline.score` (before the Siamese peak): sample window and crop from the device position,
  classification features, filter scores, localisation flag;
- :meth:`StaticOnline.adopt` (after it): the new position and size unless the flag is ``not_found``, and the
  sample added to the memory when the flag is ``normal`` or ``hard_negative`` (a masked write, so the step
  has no branch on device data).

What the host needs to know is known on the host without reading the device: the window's decimation, side and
scale follow from ``target_scale`` alone, which changes only through the flag that the host reads with the
frame's result anyway (:meth:`StaticOnline.finish`). Every host number baked into a captured step is therefore
a function of :attr:`StaticOnline.key`. The optimiser iterations on update frames run in :meth:`optimise`, as a
second captured graph over the whole (fixed-size) memory when graphs are on; unused slots have zero weight.

The arithmetic is :class:`~ocean_ros.core.online.OnlineBranch`'s, operation for operation, so the eager step
reproduces the classic tracker's online numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graphs import GraphCache
from .online import (
    FLAGS,
    OnlineBranch,
    OnlineParams,
    crop_sample_t,
    localize,
    normalise,
    sample_window_t,
    target_box,
    window_shape,
)
from .siamese import MAP_DTYPE, py_max, py_min

__all__ = ["StaticOnline"]

_NOT_FOUND = FLAGS.index("not_found")
_HARD_NEGATIVE = FLAGS.index("hard_negative")
_MAX_OPTIMISER_GRAPHS = 4  # one per distinct iteration count (normal and hard-negative updates)


class StaticOnline:
    """One target's online state on fixed buffers (built from, and reloaded from, an initialised branch).

    ``fixed_memory``: the optimiser always runs over the whole memory (what a captured graph needs); otherwise
    over the occupied slots only, as the classic tracker does (cheaper on CPU). ``use_graph``: capture the
    optimiser as a CUDA graph per iteration count (eager when capture fails; see :attr:`graph_error`).
    """

    def __init__(self, branch: OnlineBranch, *, fixed_memory: bool, use_graph: bool) -> None:
        memory = branch.memory
        if memory is None or branch.filter is None:
            raise RuntimeError("the online branch is not initialised")
        self.net = branch.net
        self.params = branch.params
        self.device = branch.device
        self.fixed_memory = fixed_memory
        self.use_graph = use_graph
        self.capacity = memory.capacity
        device = memory.features.device
        self.target = torch.zeros(4, dtype=MAP_DTYPE, device=device)  # pos y, x, size h, w (frame px)
        self.filter = torch.zeros_like(branch.filter)
        self.features = torch.zeros_like(memory.features)
        self.boxes = torch.zeros_like(memory.boxes)
        self.weights = torch.zeros_like(memory.weights)
        self.count_t = torch.zeros(1, dtype=torch.int64, device=device)
        self.previous = torch.zeros(1, dtype=torch.int64, device=device)
        self.has_previous = torch.zeros(1, dtype=torch.bool, device=device)
        self.slots = torch.arange(self.capacity, device=device)
        # this frame's products, read by adopt() within the same step
        self.flag = torch.zeros((), dtype=torch.int64, device=device)
        self.window_pos = torch.zeros(2, dtype=MAP_DTYPE, device=device)
        self.sample_features = torch.zeros_like(memory.features[:1])
        self._optimisers = GraphCache(self.device, _MAX_OPTIMISER_GRAPHS)
        self.load(branch)

    # --- host state
    def load(self, branch: OnlineBranch) -> None:
        """Copy an initialised branch (first-frame filter, memory, target) into the buffers."""
        memory = branch.memory
        if memory is None or branch.filter is None:
            raise RuntimeError("the online branch is not initialised")
        if memory.features.shape != self.features.shape or branch.filter.shape != self.filter.shape:
            raise ValueError("the branch's memory or filter shape differs from these buffers; build a new one")
        self.feature_size = branch.feature_size
        self.filter.copy_(branch.filter)
        self.features.copy_(memory.features)
        self.boxes.copy_(memory.boxes)
        self.weights.copy_(memory.weights)
        self.count_t.fill_(memory.count)
        self.previous.zero_()
        self.has_previous.zero_()
        host = torch.tensor([*branch.pos, *branch.target_size], dtype=MAP_DTYPE)
        self.target.copy_(host)
        self.count = memory.count
        self.target_scale = branch.target_scale
        self.frame_num = branch.frame_num

    def disable_graphs(self) -> None:
        """Run the optimiser eagerly over the occupied slots from now on (after a capture failure elsewhere)."""
        self.use_graph, self.fixed_memory = False, False
        self._optimisers.clear()

    def set_params(self, params: OnlineParams) -> bool:
        """Adopt new tunables; True when they changed (captured steps bake them in and must be recaptured; the
        optimiser graphs read none of them: they are keyed by their iteration count)."""
        changed = params != self.params
        self.params = params
        return changed

    @property
    def stored(self) -> int:
        """Occupied memory slots."""
        return min(self.count, self.capacity)

    @property
    def key(self) -> float:
        """The host value every captured online computation depends on (the target scale)."""
        return self.target_scale

    def _window(self) -> tuple[float, int, int, float]:
        """(sample-centre shift in frame px, decimation, crop side in decimated px, window scale) for the key."""
        p = self.params
        k = self.net.classifier.filter_size
        fh = self.feature_size[0]
        shift = ((fh + k) % 2) * self.target_scale * p.sample_size / (2 * fh)
        df, size, scale = window_shape(self.target_scale * p.sample_size, p.sample_size)
        return shift, df, size, scale

    # --- inside the step (device only)
    def score(self, frame: Tensor) -> Tensor:
        """This frame's raw online scores [1, 1, h+1, w+1] around the current target; sets the flag."""
        p = self.params
        shift, df, size, scale = self._window()
        top_left, offset, window_pos = sample_window_t(self.target[:2] + shift, df, size)
        sample = crop_sample_t(frame, top_left, offset, size, df, p.sample_size)
        feat = self.net.classification_features(normalise(sample))
        scores = self.net.classifier.classify(self.filter, feat)
        cell = p.sample_size / (scores.shape[-1] - 1) * scale  # frame px per score cell
        target_cells = (self.target[2] / cell, self.target[3] / cell)
        previous = ((self.target[0] - window_pos[0]) / cell, (self.target[1] - window_pos[1]) / cell)
        self.flag.copy_(localize(scores, target_cells, previous, p))
        self.window_pos.copy_(window_pos)
        self.sample_features.copy_(feat)
        return scores

    def adopt(self, state: Tensor, image_wh: Tensor) -> None:
        """Take the tracker's new ``state`` (cx, cy, w, h; frame px, float64) unless the flag is not_found and add
        this frame's sample to the memory when it is normal or hard_negative."""
        p = self.params
        cx, cy, w, h = state.unbind()
        img_w, img_h = image_wh.unbind()
        margin_h, margin_w = (p.inside_ratio - 0.5) * h, (p.inside_ratio - 0.5) * w
        pos_y = py_min(py_max(cy, margin_h), img_h - margin_h)
        pos_x = py_min(py_max(cx, margin_w), img_w - margin_w)
        found = self.flag != _NOT_FOUND
        self.target.copy_(torch.where(found, torch.stack([pos_y, pos_x, h, w]), self.target))
        add = found & (self.flag <= _HARD_NEGATIVE)  # normal or hard_negative
        hard = self.flag == _HARD_NEGATIVE
        _, _, _, scale = self._window()
        box = target_box((pos_y, pos_x), (h, w), (self.window_pos[0], self.window_pos[1]), scale, p.sample_size)
        self._add(torch.stack(box).float(), add, hard)

    def _add(self, box: Tensor, add: Tensor, hard: Tensor) -> None:
        """:meth:`~ocean_ros.core.online.SampleMemory.add` as a masked write (nothing changes where ``add`` is
        False); the weight rule is evaluated for both learning rates and the flag picks one."""
        p = self.params
        free = torch.where(self.count_t >= self.capacity, torch.argmin(self.weights).reshape(1), self.count_t)
        (normal_w, normal_slot), (hard_w, hard_slot) = (
            self._weights_after(lr, free) for lr in (p.learning_rate, p.hard_negative_learning_rate)
        )
        slot = torch.where(hard, hard_slot, normal_slot)
        self.weights.copy_(torch.where(add, torch.where(hard, hard_w, normal_w), self.weights))
        old_features = self.features.index_select(0, slot)
        self.features.index_copy_(0, slot, torch.where(add, self.sample_features, old_features))
        old_box = self.boxes.index_select(0, slot)
        self.boxes.index_copy_(0, slot, torch.where(add, box.reshape(1, 4), old_box))
        self.count_t.add_(add.long())
        self.previous.copy_(torch.where(add, slot, self.previous))
        self.has_previous.logical_or_(add)

    def _weights_after(self, learning_rate: float, slot: Tensor) -> tuple[Tensor, Tensor]:
        """(new weights, slot written) for one learning rate (``update_sample_weights`` on the device)."""
        weights = self.weights
        if learning_rate >= 1:  # only the new sample is kept, in slot 0
            return (self.slots == 0).to(weights.dtype), torch.zeros_like(slot)
        at_slot = self.slots == slot
        first = torch.where(at_slot, learning_rate, weights / (1 - learning_rate))
        carried = weights.index_select(0, self.previous) / (1 - learning_rate)
        later = torch.where(at_slot, carried, weights)
        new = torch.where(self.has_previous, later, first)
        return new / new.sum(), slot

    # --- after the host read
    def finish(self, flag_code: int) -> tuple[str, int]:
        """Host bookkeeping once the frame's flag is read: returns (flag name, optimiser iterations due)."""
        p = self.params
        self.frame_num += 1
        flag = FLAGS[flag_code]
        if flag == "not_found":
            return flag, 0
        _, _, _, self.target_scale = self._window()
        if flag not in ("normal", "hard_negative"):
            return flag, 0
        self.count += 1
        if flag == "hard_negative":
            return flag, p.hard_negative_iterations
        return flag, p.update_iterations if (self.frame_num - 1) % p.update_interval == 0 else 0

    def optimise(self, iterations: int) -> None:
        """Run ``iterations`` optimiser steps on the filter (a graph replay once captured for that count)."""
        if iterations > 0:
            self._optimisers.run(iterations, lambda: self._optimise(iterations), capture=self.use_graph)

    @property
    def graph_error(self) -> str | None:
        """Why capturing the optimiser failed (it then runs eagerly); None otherwise."""
        return self._optimisers.error

    def _optimise(self, iterations: int) -> None:
        n = self.capacity if self.fixed_memory else self.stored
        weights = self.weights[:n]
        new = self.net.classifier.optimize(self.filter, self.features[:n], self.boxes[:n], weights, iterations)
        self.filter.copy_(new)

    @property
    def optimiser_graphs(self) -> int:
        """Number of captured optimiser graphs."""
        return len(self._optimisers)

