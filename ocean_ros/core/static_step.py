"""The per-frame Siamese step as a fixed sequence of device operations over preallocated buffers.

A :class:`StaticStep` holds everything one frame needs at fixed addresses: the frame (uploaded through a pinned
host buffer on CUDA), the target state ``(cx, cy, w, h)`` as a float64 device tensor, the template features, the
run-time tunables, the padding colour, the online score map when the online branch is on, and the result vector.
:meth:`StaticStep.compute` reads and writes only those buffers (search crop with the torch backend, network,
score fusion, penalties and window, peak, box decode and size update, clipping), so on CUDA it is captured once
as a CUDA graph and replayed every frame; on CPU, or when capture fails, the same function runs eagerly.

The result is read with one host copy per frame (:meth:`StaticStep.wait`). Boxes are frame pixels, centre form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .geometry import crop_torch_t, search_crop_side_t
from .siamese import MAP_DTYPE, ScoreGrid, StepParams, decode_boxes, fuse_scores, peak_picks, update_state_t

__all__ = ["GraphCaptureError", "StaticStep", "StepReadout", "capture_graph"]

# Tunables that may change while tracking live in a device tensor, so a change needs no recapture.
_PARAM_ORDER = ("penalty_k", "window_influence", "lr", "align_ratio", "online_ratio")


class GraphCaptureError(RuntimeError):
    """A CUDA graph could not be captured (no CUDA device, an op that cannot be captured, an old driver)."""


class StepReadout(NamedTuple):
    """One frame's result as read back to the host: new state (frame px), peak cell and scores."""

    center: tuple[float, float]
    size: tuple[float, float]
    flat_index: int
    score: float
    penalty: float
    pscore: float
    scale_z: float
    crop_side: int


def capture_graph(step: Callable[[], None], device: torch.device) -> torch.cuda.CUDAGraph:
    """Capture ``step`` (which must already have run once eagerly) as a CUDA graph on ``device``.

    Raises :class:`GraphCaptureError` with the reason when capture is impossible.
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


def _clone_features(zf: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    if isinstance(zf, torch.Tensor):
        return zf.clone()
    return tuple(t.clone() for t in zf)


def _copy_features(dst: torch.Tensor | tuple[torch.Tensor, ...], src: torch.Tensor | tuple[torch.Tensor, ...]) -> bool:
    """Copy template features into the static buffers; False when their structure or shapes differ."""
    dst_list = [dst] if isinstance(dst, torch.Tensor) else list(dst)
    src_list = [src] if isinstance(src, torch.Tensor) else list(src)
    if len(dst_list) != len(src_list) or any(
        d.shape != s.shape or d.dtype != s.dtype for d, s in zip(dst_list, src_list, strict=True)
    ):
        return False
    for d, s in zip(dst_list, src_list, strict=True):
        d.copy_(s)
    return True


class StaticStep:
    """Buffers and the captured per-frame step for one search size and one frame size.

    ``model`` provides ``track(x, zf, use_align)``; ``grid`` is the score grid of ``search_size``. With
    ``use_graph`` the step is captured on its first :meth:`launch` (after one eager warm-up run) and replayed
    afterwards; a capture failure is logged once and the step stays eager.
    """

    def __init__(
        self,
        model: nn.Module,
        grid: ScoreGrid,
        *,
        image_wh: tuple[int, int],
        exemplar_size: int,
        context_amount: float,
        use_align: bool,
        net_dtype: torch.dtype,
        device: torch.device,
        use_graph: bool,
    ) -> None:
        self.model = model
        self.grid = grid
        self.search_size = grid.search_size
        self.image_wh = image_wh
        self.exemplar_size = exemplar_size
        self.context_amount = context_amount
        self.use_align = use_align
        self.net_dtype = net_dtype
        self.device = device
        self.use_graph = use_graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graph_error: str | None = None
        width, height = image_wh
        cuda = device.type == "cuda"
        self.frame = torch.zeros(height, width, 3, dtype=torch.uint8, device=device)
        self.host_frame = torch.zeros(height, width, 3, dtype=torch.uint8, pin_memory=cuda) if cuda else self.frame
        self.state = torch.zeros(4, dtype=MAP_DTYPE, device=device)  # cx, cy, w, h (frame px)
        self.bounds = torch.tensor([float(width), float(height)], dtype=MAP_DTYPE, device=device)
        self.fill = torch.zeros(3, dtype=torch.uint8, device=device)
        self.params = torch.zeros(len(_PARAM_ORDER), dtype=MAP_DTYPE, device=device)
        self.steps = torch.arange(self.search_size, dtype=torch.float64, device=device)
        self.zf: torch.Tensor | tuple[torch.Tensor, ...] | None = None
        self.online_map: torch.Tensor | None = None
        self.result = torch.zeros(10, dtype=MAP_DTYPE, device=device)
        self.host_result = torch.zeros(10, dtype=MAP_DTYPE, pin_memory=cuda) if cuda else self.result
        self.done = torch.cuda.Event() if cuda else None

    # --- inputs (written outside the captured step)
    def load_target(
        self,
        zf: torch.Tensor | tuple[torch.Tensor, ...],
        center_xy: tuple[float, float],
        size_wh: tuple[float, float],
        fill: torch.Tensor,
        params: StepParams,
    ) -> None:
        """Store a new target: template features, state (frame px), padding colour and tunables."""
        if self.zf is None or not _copy_features(self.zf, zf):
            self.zf = _clone_features(zf)
            self.graph = None  # the captured graph reads the old buffers
        host = torch.tensor([*center_xy, *size_wh], dtype=MAP_DTYPE)
        self.state.copy_(host)
        self.fill.copy_(fill)
        self.set_params(params)

    def set_params(self, params: StepParams) -> None:
        """Write the run-time tunables into their device buffer (no recapture needed)."""
        values = torch.tensor([float(getattr(params, name)) for name in _PARAM_ORDER], dtype=MAP_DTYPE)
        with torch.inference_mode():  # the buffers were made in inference mode (inside initialize)
            self.params.copy_(values)

    def set_online_map(self, scores: torch.Tensor | None) -> None:
        """This frame's online score map (raw [.., h, w]); None when the online branch is off."""
        if scores is None:
            if self.online_map is not None:
                self.online_map, self.graph = None, None
            return
        if self.online_map is None or self.online_map.shape != scores.shape:
            self.online_map = torch.zeros_like(scores, dtype=torch.float32)
            self.graph = None
        self.online_map.copy_(scores)

    def upload(self, frame: np.ndarray) -> None:
        """Copy an HxWx3 uint8 frame into the device frame buffer (async from pinned memory on CUDA)."""
        if self.host_frame is self.frame:
            self.frame.copy_(torch.from_numpy(frame))
        else:  # the previous frame's copy has finished: wait() synchronised on the event recorded after it
            np.copyto(self.host_frame.numpy(), frame)
            self.frame.copy_(self.host_frame, non_blocking=True)

    # --- the step
    def compute(self) -> None:
        """One frame on the device: crop → network → score → peak → new state; writes ``state`` and ``result``."""
        penalty_k, window_influence, lr, align_ratio, online_ratio = self.params.unbind()
        scale_z, side = search_crop_side_t(self.state[2:], self.context_amount, self.exemplar_size, self.search_size)
        x = crop_torch_t(self.frame, self.state[:2], self.search_size, side, self.fill, self.net_dtype, self.steps)
        out = self.model.track(x, self.zf, use_align=self.use_align)
        score = fuse_scores(out.cls, out.align if self.use_align else None, align_ratio)
        boxes = decode_boxes(out.reg, self.grid)
        target_w, target_h = self.state[2] * scale_z, self.state[3] * scale_z
        picks = peak_picks(
            score, boxes, self.grid, target_w, target_h, penalty_k, window_influence, self.online_map, online_ratio
        )
        new_state, _ = update_state_t(self.state, picks, scale_z, self.search_size, lr, self.bounds)
        self.state.copy_(new_state)
        self.result.copy_(torch.cat([new_state, picks[:1], picks[5:8], scale_z.reshape(1), side.reshape(1)]))

    def _capture(self) -> None:
        """Warm up once eagerly on a side stream (state restored afterwards), then capture the step."""
        if self.device.type != "cuda":
            raise GraphCaptureError(f"CUDA graphs need a CUDA device, the step runs on {self.device}")
        saved = self.state.clone()
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self.compute()
            torch.cuda.current_stream(self.device).wait_stream(stream)
        except Exception as err:  # e.g. a CUDA build without stream support
            raise GraphCaptureError(f"warm-up before capture failed: {type(err).__name__}: {err}") from err
        finally:
            self.state.copy_(saved)
        self.graph = capture_graph(self.compute, self.device)

    @property
    def graphed(self) -> bool:
        """True once the step is captured (it then runs as a graph replay)."""
        return self.graph is not None

    def launch(self) -> None:
        """Run the step (graph replay when captured) and start the copy of the result to the host.

        A failed capture leaves the reason in ``graph_error`` and the step eager (the caller logs it).
        """
        if self.use_graph and self.graph is None and self.graph_error is None:
            try:
                self._capture()
            except GraphCaptureError as err:
                self.graph_error = str(err)
        if self.graph is not None:
            self.graph.replay()
        else:
            self.compute()
        if self.host_result is not self.result:
            self.host_result.copy_(self.result, non_blocking=True)
        if self.done is not None:
            self.done.record()

    def ready(self) -> bool:
        """True when the launched step's result has reached the host."""
        return self.done is None or bool(self.done.query())

    def wait(self) -> StepReadout:
        """Wait for the launched step and read its result (the frame's one host read)."""
        if self.done is not None:
            self.done.synchronize()
        cx, cy, w, h, index, score, penalty, pscore, scale_z, side = self.host_result.tolist()
        return StepReadout((cx, cy), (w, h), int(index), score, penalty, pscore, scale_z, int(side))
