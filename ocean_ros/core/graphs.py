"""CUDA-graph plumbing shared by the static step and the static online branch: warm-up and capture."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["GraphCache", "GraphCaptureError", "capture_graph", "run_on_side_stream"]


class GraphCaptureError(RuntimeError):
    """A CUDA graph could not be captured (no CUDA device, an op that cannot be captured, an old driver)."""


def run_on_side_stream(work: Callable[[], None], device: torch.device) -> None:
    """Run ``work`` eagerly on a side stream ordered after (and before) the current stream's work: the warm-up
    that CUDA-graph capture asks for. Raises :class:`GraphCaptureError` when streams are unavailable."""
    if device.type != "cuda":
        raise GraphCaptureError(f"CUDA graphs need a CUDA device, the step runs on {device}")
    try:
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            work()
        torch.cuda.current_stream(device).wait_stream(stream)
    except RuntimeError as err:  # e.g. a CUDA build or driver without stream support
        raise GraphCaptureError(f"warm-up before capture failed: {type(err).__name__}: {err}") from err


def capture_graph(step: Callable[[], None], device: torch.device) -> torch.cuda.CUDAGraph:
    """Capture ``step`` (which must already have run once eagerly) as a CUDA graph on ``device``.

    Capture records the kernels without running them, so ``step`` changes no buffer here. Raises
    :class:`GraphCaptureError` with the reason when capture is impossible.
    """
    if device.type != "cuda":
        raise GraphCaptureError(f"CUDA graphs need a CUDA device, the step runs on {device}")
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
    except Exception as err:  # capture errors come from many layers (driver, allocator, unsupported ops)
        raise GraphCaptureError(f"{type(err).__name__}: {err}") from err
    return graph


class GraphCache:
    """Captured graphs of one piece of work, keyed by the host values baked into them (at most ``limit``).

    :meth:`run` replays the graph of a key; the first run of a key is eager on a side stream (the real work
    and the warm-up at once), followed by the capture. After a failure the reason stays in :attr:`error` and
    every run is eager.
    """

    def __init__(self, device: torch.device, limit: int) -> None:
        self.device = device
        self.limit = limit
        self.error: str | None = None
        self._graphs: dict[object, torch.cuda.CUDAGraph] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        """Forget every graph (the buffers or host values they read changed)."""
        self._graphs.clear()

    def run(self, key: object, work: Callable[[], None], capture: bool = True) -> None:
        """Run ``work`` once: a replay when captured for ``key``, else eagerly (and captured, with ``capture``)."""
        graph = self._graphs.get(key)
        if graph is not None:
            graph.replay()
            return
        if not capture or self.error is not None:
            work()
            return
        try:
            run_on_side_stream(work, self.device)
        except GraphCaptureError as err:
            self.error = str(err)
            work()
            return
        try:
            graph = capture_graph(work, self.device)
        except GraphCaptureError as err:
            self.error = str(err)
            return
        if len(self._graphs) >= self.limit:
            del self._graphs[next(iter(self._graphs))]
        self._graphs[key] = graph
