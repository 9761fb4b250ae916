"""The online branch's training memory: samples, target boxes and DiMP's sample-weight rule, on the device."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SampleMemory"]


class SampleMemory:
    """Preallocated training memory on the device: features [capacity, C, h, w], boxes [capacity, 4]
    (x, y, w, h, sample px) and weights [capacity] (sum 1), all float32, with the number of samples written so far
    (``count_t``, may exceed the capacity) and the slot of the previous write on the device too, so a captured
    step can write a sample (:meth:`add`) without a host read. Its buffers keep their addresses for its life."""

    def __init__(self, capacity: int, feature_shape: tuple[int, ...], device: torch.device | str) -> None:
        self.capacity = capacity
        self.features = torch.zeros(capacity, *feature_shape, device=device)
        self.boxes = torch.zeros(capacity, 4, device=device)
        self.weights = torch.zeros(capacity, device=device)
        self.count_t = torch.zeros(1, dtype=torch.int64, device=device)
        self.previous = torch.zeros(1, dtype=torch.int64, device=device)
        self.has_previous = torch.zeros(1, dtype=torch.bool, device=device)
        self.slots = torch.arange(capacity, device=device)

    @property
    def count(self) -> int:
        """Samples written so far (a host read of ``count_t``)."""
        return int(self.count_t.item())

    @property
    def stored(self) -> int:
        """Number of occupied slots (a host read)."""
        return min(self.count, self.capacity)

    def reset(self, features: Tensor, boxes: Tensor) -> None:
        """Fill the first slots with the initial samples, each weighted 1/N; forget everything else."""
        n = features.shape[0]
        if n > self.capacity:
            raise ValueError(f"{n} initial samples do not fit a memory of {self.capacity}")
        self.features.zero_()
        self.boxes.zero_()
        self.weights.zero_()
        self.features[:n] = features
        self.boxes[:n] = boxes.to(self.boxes)
        self.weights[:n] = 1.0 / n
        self.count_t.fill_(n)
        self.previous.zero_()
        self.has_previous.zero_()

    def add(self, features: Tensor, box: Tensor, learning_rate: float, write: bool | Tensor = True) -> None:
        """Store one sample ([1, C, h, w], box [4]) with DiMP's weight rule where ``write`` holds (a host bool, or
        a device mask that makes every write a masked one: nothing changes where it is False).

        Slot = the number stored so far while there is room, else the lowest weight. The new weight is the
        previous new sample's weight / (1 - lr) (first update: every old weight / (1 - lr), new = lr); then all
        weights are renormalised to sum 1. ``learning_rate`` >= 1 keeps only the new sample, in slot 0.
        """
        if write is False:
            return
        weights = self.weights
        free = torch.where(self.count_t >= self.capacity, torch.argmin(weights).reshape(1), self.count_t)
        if learning_rate >= 1:
            new, slot = (self.slots == 0).to(weights.dtype), torch.zeros_like(free)
        else:
            at_slot = self.slots == free
            first = torch.where(at_slot, learning_rate, weights / (1 - learning_rate))
            carried = weights.index_select(0, self.previous) / (1 - learning_rate)
            new = torch.where(self.has_previous, torch.where(at_slot, carried, weights), first)
            new, slot = new.div_(new.sum()), free
        features, box = features[:1].to(self.features), box.reshape(1, 4).to(self.boxes)
        if isinstance(write, Tensor):  # a masked write: everything keeps its value where ``write`` is False
            new = torch.where(write, new, weights)
            features = torch.where(write, features, self.features.index_select(0, slot))
            box = torch.where(write, box, self.boxes.index_select(0, slot))
            self.previous.copy_(torch.where(write, slot, self.previous))
            self.has_previous.logical_or_(write)
        else:
            self.previous.copy_(slot)
            self.has_previous.fill_(True)
        weights.copy_(new)
        # index_copy_ with a 1-element index tensor: indexing with a 0-dim one would read it on the host
        self.features.index_copy_(0, slot, features)
        self.boxes.index_copy_(0, slot, box)
        self.count_t.add_(write)

    def training_set(self, whole: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(features, boxes, weights) of the occupied slots, or of every slot with ``whole`` (unused ones weigh 0,
        which is what a captured optimiser needs: fixed shapes)."""
        n = self.capacity if whole else self.stored
        return self.features[:n], self.boxes[:n], self.weights[:n]
