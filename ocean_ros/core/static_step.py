"""The per-frame Siamese step as a fixed sequence of device operations over preallocated buffers.

A :class:`StaticStep` holds everything one frame needs at fixed addresses: the frame (uploaded through a pinned
host buffer on CUDA), the target state ``(cx, cy, w, h)`` as a float64 device tensor, the template features, the
run-time tunables, the padding colour and the result vector; with the online branch on, its buffers too
(:class:`~ocean_ros.core.static_online.StaticOnline`). :meth:`StaticStep.compute` reads and writes only those
buffers (online sample, features, scores and flag; search crop with the torch backend, network, score fusion,
penalties and window, peak, box decode and size update, clipping; the online state and memory update), so on
CUDA it is captured as a CUDA graph and replayed every frame; on CPU, or when capture fails, the same function
runs eagerly. The first frame of each capture key runs eagerly as the warm-up, and the capture follows it.

The result, the online flag included, is read with one host copy per frame (:meth:`StaticStep.wait`). Boxes
are frame pixels, centre form.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .geometry import crop_torch_t, search_crop_side_t
from .graphs import GraphCache, GraphCaptureError, capture_graph
from .siamese import MAP_DTYPE, ScoreGrid, StepParams, decode_boxes, fuse_scores, peak_picks, update_state_t
from .static_online import StaticOnline

__all__ = ["GraphCaptureError", "StaticStep", "StepReadout", "capture_graph"]

# Tunables that may change while tracking live in a device tensor, so a change needs no recapture.
_PARAM_ORDER = ("penalty_k", "window_influence", "lr", "align_ratio", "online_ratio")
_RESULT_SIZE = 11
MAX_GRAPHS = 4  # captured graphs kept per step, one per capture key (the online target scale settles in 1-2 frames)


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
    online_flag: int  # flag code of the online branch (see online.FLAGS), -1 when it is off


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
    ``use_graph`` the step is captured on its first :meth:`launch` for each capture key (that frame runs eagerly
    as the warm-up) and replayed afterwards; a capture failure leaves its reason in ``graph_error`` and the step
    eager. The key is None without the online branch, else :attr:`StaticOnline.key`.
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
        self.graphs = GraphCache(device, MAX_GRAPHS)
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
        self.online: StaticOnline | None = None
        self.no_flag = torch.full((1,), -1.0, dtype=MAP_DTYPE, device=device)  # the result's flag when online is off
        self.result = torch.zeros(_RESULT_SIZE, dtype=MAP_DTYPE, device=device)
        self.host_result = torch.zeros(_RESULT_SIZE, dtype=MAP_DTYPE, pin_memory=cuda) if cuda else self.result
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
            self.graphs.clear()  # the captured graphs read the old buffers
        host = torch.tensor([*center_xy, *size_wh], dtype=MAP_DTYPE)
        self.state.copy_(host)
        self.fill.copy_(fill)
        self.set_params(params)

    def set_params(self, params: StepParams) -> None:
        """Write the run-time tunables into their device buffer (no recapture needed)."""
        values = torch.tensor([float(getattr(params, name)) for name in _PARAM_ORDER], dtype=MAP_DTYPE)
        with torch.inference_mode():  # the buffers were made in inference mode (inside initialize)
            self.params.copy_(values)

    def set_online(self, online: StaticOnline | None) -> None:
        """The online branch's buffers to read and update every frame (None: the online branch is off)."""
        if online is not self.online:
            self.online = online
            self.graphs.clear()

    def drop_graphs(self) -> None:
        """Forget the captured graphs (host values baked into them changed); the next frames recapture."""
        self.graphs.clear()

    def upload(self, frame: np.ndarray) -> None:
        """Copy an HxWx3 uint8 frame into the device frame buffer (async from pinned memory on CUDA)."""
        if self.host_frame is self.frame:
            self.frame.copy_(torch.from_numpy(frame))
        else:  # the previous frame's copy has finished: wait() synchronised on the event recorded after it
            np.copyto(self.host_frame.numpy(), frame)
            self.frame.copy_(self.host_frame, non_blocking=True)

    # --- the step
    def compute(self) -> None:
        """One frame on the device: online score → crop → network → score → peak → new state → online update;
        writes ``state``, ``result`` and the online buffers."""
        penalty_k, window_influence, lr, align_ratio, online_ratio = self.params.unbind()
        online_map = self.online.score(self.frame) if self.online is not None else None
        scale_z, side = search_crop_side_t(self.state[2:], self.context_amount, self.exemplar_size, self.search_size)
        x = crop_torch_t(self.frame, self.state[:2], self.search_size, side, self.fill, self.net_dtype, self.steps)
        out = self.model.track(x, self.zf, use_align=self.use_align)
        score = fuse_scores(out.cls, out.align if self.use_align else None, align_ratio)
        boxes = decode_boxes(out.reg, self.grid)
        target_w, target_h = self.state[2] * scale_z, self.state[3] * scale_z
        picks = peak_picks(
            score, boxes, self.grid, target_w, target_h, penalty_k, window_influence, online_map, online_ratio
        )
        new_state, _ = update_state_t(self.state, picks, scale_z, self.search_size, lr, self.bounds)
        self.state.copy_(new_state)
        flag = self.no_flag
        if self.online is not None:
            self.online.adopt(new_state, self.bounds)
            flag = self.online.flag.to(MAP_DTYPE).reshape(1)
        self.result.copy_(torch.cat([new_state, picks[:1], picks[5:8], scale_z.reshape(1), side.reshape(1), flag]))

    @property
    def graphed(self) -> bool:
        """True once the step is captured for some key (it then runs as a graph replay)."""
        return len(self.graphs) > 0

    @property
    def graph_error(self) -> str | None:
        """Why capture failed (the step then runs eagerly); None otherwise."""
        return self.graphs.error

    @property
    def key(self) -> float | None:
        """This frame's capture key: the host values baked into a captured step depend on it alone."""
        return self.online.key if self.online is not None else None

    def launch(self) -> None:
        """Run the step (graph replay when captured for this key) and start the copy of the result to the host.

        The first frame of a key runs eagerly as the warm-up and is captured after it; a capture failure leaves
        its reason in :attr:`graph_error` and the step eager.
        """
        self.graphs.run(self.key, self.compute, capture=self.use_graph)
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
        cx, cy, w, h, index, score, penalty, pscore, scale_z, side, flag = self.host_result.tolist()
        return StepReadout((cx, cy), (w, h), int(index), score, penalty, pscore, scale_z, int(side), int(flag))
