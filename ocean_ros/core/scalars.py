"""The numbers the per-frame step is written over: Python numbers on the host, or 0-dim device tensors.

Every stage of the step (crop side, state update, online window, flag and memory rule) is written once over
:data:`Scalar`. Where the crop runs on the host (OpenCV) the step's state is a few Python floats, so its scalar
arithmetic costs nothing; where it runs on the device the same expressions are device kernels over fixed
buffers that read nothing back, so a CUDA graph can capture them. The functions below are the few operations
whose spelling differs between the two; :class:`Numbers` says which one a step uses and holds its state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch import Tensor

__all__ = ["Numbers", "Scalar", "Values", "as_float", "floor", "py_max", "py_min", "round_even", "select", "sqrt",
           "trunc"]

Scalar: TypeAlias = float | int | Tensor
STATE_DTYPE = torch.float64  # TracKit computes the state in numpy float64


def py_min(a: Scalar, b: Scalar) -> Scalar:
    """Python's ``min(a, b)``: ``b`` only where b < a (so a NaN ``b`` gives ``a``)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.where(b < a, b, a)
    return b if b < a else a


def py_max(a: Scalar, b: Scalar) -> Scalar:
    """Python's ``max(a, b)``: ``b`` only where b > a (so a NaN ``b`` gives ``a``)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.where(b > a, b, a)
    return b if b > a else a


def select(condition: bool | Tensor, a: Scalar, b: Scalar) -> Scalar:
    """``a`` where ``condition`` else ``b`` (a host bool picks one; a device mask selects elementwise)."""
    if isinstance(condition, Tensor):
        return torch.where(condition, a, b)
    return a if condition else b


def sqrt(x: Scalar) -> Scalar:
    """Square root (correctly rounded on both sides, so host and device values are equal)."""
    return torch.sqrt(x) if isinstance(x, Tensor) else math.sqrt(x)


def floor(x: Scalar) -> Scalar:
    """Largest integer <= x: an int on the host, a float64 tensor on the device."""
    return torch.floor(x) if isinstance(x, Tensor) else math.floor(x)


def round_even(x: Scalar) -> Scalar:
    """Nearest integer, ties to even: an int on the host, an int64 tensor on the device."""
    return torch.round(x).to(torch.int64) if isinstance(x, Tensor) else int(round(float(x)))


def trunc(x: Scalar) -> Scalar:
    """Truncation toward zero to an integer: an int on the host, an int64 tensor on the device."""
    return x.long() if isinstance(x, Tensor) else int(x)


def as_float(x: Scalar) -> Scalar:
    """An integer value as float64 (a Python float on the host)."""
    return x.double() if isinstance(x, Tensor) else float(x)


class Values:
    """``n`` float64 numbers of per-target state kept across frames: a Python list on the host, or a tensor at a
    fixed device address (which a captured step reads and writes in place)."""

    def __init__(self, n: int, device: torch.device, on_host: bool) -> None:
        self._host: list[Scalar] | None = [0.0] * n if on_host else None
        self.tensor = torch.zeros(n, dtype=STATE_DTYPE, device=device)  # the device copy (unused on the host)

    def get(self) -> tuple[Scalar, ...]:
        """The numbers, for the step (0-dim views of the buffer on the device)."""
        return tuple(self._host) if self._host is not None else tuple(self.tensor.unbind())

    def set(self, values: Sequence[Scalar]) -> None:
        """Store new numbers from inside the step (device: one in-place copy, no host read)."""
        if self._host is not None:
            self._host = list(values)
            return
        device = self.tensor.device
        parts = [v.reshape(()) if isinstance(v, Tensor) else torch.full((), v, dtype=STATE_DTYPE, device=device)
                 for v in values]
        self.tensor.copy_(torch.stack([p.to(STATE_DTYPE) for p in parts]))

    def load(self, values: Sequence[float]) -> None:
        """Store host numbers from outside the step (initialisation)."""
        if self._host is not None:
            self._host = [float(v) for v in values]
            return
        with torch.inference_mode():
            self.tensor.copy_(torch.tensor([float(v) for v in values], dtype=STATE_DTYPE))

    def read(self) -> list[Scalar]:
        """The numbers as host numbers (on the device: a copy that waits for the queued work)."""
        return list(self._host) if self._host is not None else self.tensor.tolist()


class Numbers:
    """Which numbers a step computes with: host Python numbers (``on_host``) or device tensors on ``device``."""

    def __init__(self, device: torch.device, on_host: bool) -> None:
        self.device = device
        self.on_host = on_host

    def values(self, n: int) -> Values:
        """State of ``n`` numbers kept across frames."""
        return Values(n, self.device, self.on_host)

    def of(self, t: Tensor) -> list[Scalar]:
        """The elements of a small 1-D tensor as this step's numbers (on the host: one read)."""
        return t.tolist() if self.on_host else list(t.unbind())

    def one(self, t: Tensor) -> Scalar:
        """A 0-dim tensor as this step's number (on the host: one read)."""
        return t.item() if self.on_host else t

    def tensor(self, values: Sequence[Scalar], dtype: torch.dtype) -> Tensor:
        """A 1-D ``dtype`` tensor on the device from this step's numbers (no host data on the device side)."""
        if self.on_host:
            return torch.tensor(values, dtype=dtype).to(self.device, non_blocking=True)
        return torch.stack(list(values)).to(dtype)
