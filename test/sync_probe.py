"""Find host reads in device code on a CPU: the aten ops that make CUDA wait for the device (or copy host data in).

A CUDA graph cannot contain a host read (``.item()``, ``bool(t)``, indexing with a 0-dim tensor, ``nonzero``
and boolean masks, whose shapes depend on data) or a tensor made from host data (``torch.tensor([...])`` inside
the step, a pageable copy). These reach the dispatcher as the ops in :data:`HOST_OPS`, on CPU as on CUDA, so
recording the ops a function dispatches shows them without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HOST_OPS = frozenset({
    "aten._local_scalar_dense",  # .item(), float(t), int(t), bool(t), indexing with a 0-dim tensor
    "aten.item",
    "aten.is_nonzero",
    "aten.nonzero",  # boolean-mask indexing, torch.where(cond) with one argument
    "aten.masked_select",
    "aten.unique",
    "aten._unique2",
    "aten.lift_fresh",  # torch.tensor(host data)
    "aten.lift_fresh_copy",
    "aten.index (boolean mask)",  # the mask's true count sets the output shape
})


class OpRecorder(TorchDispatchMode):
    """Counts every aten op dispatched inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in ("aten.index", "aten.index_put", "aten.index_put_") and _has_mask(args):
            name += " (boolean mask)"
        self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _has_mask(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


def host_ops(work: Callable[[], object]) -> dict[str, int]:
    """The host-reading ops ``work`` dispatches (empty when it could be captured), run in inference mode."""
    recorder = OpRecorder()
    with torch.inference_mode(), recorder:
        work()
    return {name: n for name, n in recorder.ops.items() if name in HOST_OPS}
