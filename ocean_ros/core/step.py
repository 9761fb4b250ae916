"""The one per-frame step of the Ocean tracker, for every device and network runtime.

A :class:`Step` holds what a frame needs for one search size and one frame size (the frame, the target state
``(cx, cy, w, h)`` in frame px, the template features, the run-time tunables, the padding colour, the readout) and
runs the frame's stages in one function, :meth:`Step.compute`: online score → crop → network → fusion and penalties
→ peak → state update → online update. The network is whatever runner the tracker was given (torch, or an exported
graph behind the same ``track`` call).

Its numbers (:class:`~ocean_ros.core.scalars.Numbers`) follow from where the crop runs. With the OpenCV crop (the
default on CPU) the state and every scalar are host Python numbers: nothing is captured and the scalar work is
free. With the torch crop they are device tensors in fixed buffers and the step reads nothing back, so on CUDA
:meth:`Step.compute` is captured as a CUDA graph on its first frame per capture key and replayed afterwards
(eager on CPU, or when capture fails). Either way a frame ends in one :class:`StepReadout`, read with one host
copy (:meth:`Step.wait`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .config import StepParams
from .geometry import crop_opencv, crop_torch, frame_to_device, round_half_even, search_crop_side, template_crop_side
from .graphs import GraphCache
from .online import OnlineBranch, OnlineScore
from .scalars import STATE_DTYPE, Numbers, Scalar
from .siamese import Peak, ScoreGrid, decode_boxes, fuse_scores, peak_picks, update_state
from .timing import StageTimer

__all__ = ["MAX_GRAPHS", "Step", "StepReadout"]

MAX_GRAPHS = 4  # captured graphs kept per step, one per capture key (the online target scale settles in 1-2 frames)


class StepReadout(NamedTuple):
    """One frame's result on the host: new state (frame px), chosen cell and scores, crop geometry, online flag."""

    cx: float
    cy: float
    w: float
    h: float
    index: int  # flat (row-major) index of the chosen score cell
    score: float  # fused sigmoid at the cell, 0..1
    penalty: float  # scale/ratio penalty at the cell, 0..1
    pscore: float  # selection score at the cell (penalised, windowed, online-fused)
    scale_z: float  # crop px per frame px
    crop_side: int  # side of the frame region resized to the search size (frame px)
    online_flag: int  # flag code of the online branch (online.FLAGS), -1 when it is off

    @classmethod
    def of(cls, values: Sequence[float]) -> StepReadout:
        """From the numbers in field order (the integer fields converted)."""
        numbers = list(values)
        for i in _INTEGER_FIELDS:
            numbers[i] = int(numbers[i])
        return cls(*numbers)


_INTEGER_FIELDS = tuple(StepReadout._fields.index(name) for name in ("index", "crop_side", "online_flag"))


def _no_mark(stage: str) -> None:
    """Stage marks inside a step whose work is queued on a device (or captured): nothing to time there."""


class Step:
    """Buffers and the per-frame stages for one search size and one frame size.

    ``model`` provides ``template(z)`` and ``track(x, zf, use_align)``; ``grid`` is the score grid of the search
    size. ``numbers`` decides the crop (host numbers: OpenCV; device: torch) and whether the step can be captured;
    with ``use_graph`` it is, per capture key (None without the online branch, else :attr:`OnlineBranch.key`), and
    a capture failure leaves its reason in :attr:`graph_error` and the step eager.
    """

    def __init__(
        self,
        model: nn.Module,
        grid: ScoreGrid,
        numbers: Numbers,
        *,
        image_wh: tuple[int, int],
        exemplar_size: int,
        context_amount: float,
        use_align: bool,
        net_dtype: torch.dtype,
        use_graph: bool,
    ) -> None:
        self.model = model
        self.grid = grid
        self.numbers = numbers
        self.device = numbers.device
        self.search_size = grid.search_size
        self.image_wh = image_wh
        self.exemplar_size = exemplar_size
        self.context_amount = context_amount
        self.use_align = use_align
        self.net_dtype = net_dtype
        self.use_graph = use_graph
        self.graphs = GraphCache(self.device, MAX_GRAPHS)
        self.grid_span = float(grid.coords[-1] - grid.coords[0])  # search px from the first cell to the last
        width, height = image_wh
        on_device = not numbers.on_host
        pinned = on_device and self.device.type == "cuda"
        self.frame = torch.zeros(height, width, 3, dtype=torch.uint8, device=self.device) if on_device else None
        self.host_frame = torch.zeros(height, width, 3, dtype=torch.uint8, pin_memory=True) if pinned else None
        self.image: np.ndarray | None = None  # the frame as given (the OpenCV crop reads it)
        self._frame_t: torch.Tensor | None = None  # host numbers: the frame uploaded when the online branch asks
        self.state = numbers.values(4)  # cx, cy, w, h (frame px)
        self.params = numbers.values(len(StepParams._fields))
        self.fill = torch.zeros(3, dtype=torch.uint8, device=self.device)  # padding colour of the torch crop
        self.avg_chans = np.zeros(3)  # average colour of the OpenCV crop
        self.zf: torch.Tensor | tuple[torch.Tensor, ...] | None = None
        self.online: OnlineBranch | None = None
        self.result = numbers.values(len(StepReadout._fields))
        self.host_result = torch.zeros(len(StepReadout._fields), dtype=STATE_DTYPE, pin_memory=True) if pinned else None
        self.done = torch.cuda.Event() if pinned else None  # recorded after the readout copy
        self.copied = torch.cuda.Event() if pinned else None  # recorded after the frame copy

    # --- inputs (written outside the step)
    def upload(self, frame: np.ndarray) -> None:
        """Take an HxWx3 uint8 frame: kept as it is for the OpenCV crop, copied into the device frame buffer for
        the torch crop (asynchronously from pinned memory on CUDA)."""
        self.image = frame
        if self.frame is None:
            self._frame_t = None
        elif self.host_frame is None:
            self.frame.copy_(torch.from_numpy(frame))
        else:
            if self.copied is not None:  # the previous copy out of the pinned buffer has finished
                self.copied.synchronize()
            np.copyto(self.host_frame.numpy(), frame)
            self.frame.copy_(self.host_frame, non_blocking=True)
            if self.copied is not None:
                self.copied.record()

    @property
    def frame_t(self) -> torch.Tensor:
        """This frame as an HxWx3 uint8 tensor on the device."""
        if self.frame is not None:
            return self.frame
        if self._frame_t is None:
            self._frame_t = frame_to_device(self.image, self.device)
        return self._frame_t

    def crop(self, center_xy: Sequence[Scalar], out_size: int, side: Scalar) -> torch.Tensor:
        """The crop stage: an ``out_size`` crop of the frame region of ``side`` px around ``center_xy``."""
        if self.frame is None:
            return crop_opencv(self.image, center_xy, out_size, side, self.avg_chans, self.device).to(self.net_dtype)
        return crop_torch(self.frame, center_xy, out_size, side, self.fill, self.net_dtype)

    def load_target(self, center_xy: tuple[float, float], size_wh: tuple[float, float], avg_chans: np.ndarray,
                    fill: torch.Tensor, params: StepParams) -> None:
        """Start a target on the uploaded frame: template features, state (frame px), padding colour, tunables."""
        self.avg_chans = avg_chans
        self.fill.copy_(fill)
        side = round_half_even(template_crop_side(*size_wh, self.context_amount))
        zf = self.model.template(self.crop(center_xy, self.exemplar_size, side))
        parts = [zf] if isinstance(zf, torch.Tensor) else list(zf)
        held = [] if self.zf is None else [self.zf] if isinstance(self.zf, torch.Tensor) else list(self.zf)
        if [(t.shape, t.dtype) for t in held] == [(t.shape, t.dtype) for t in parts]:
            for dst, src in zip(held, parts, strict=True):
                dst.copy_(src)
        else:  # new buffers: the captured graphs read the old ones
            self.zf = zf.clone() if isinstance(zf, torch.Tensor) else tuple(t.clone() for t in parts)
            self.graphs.clear()
        self.state.load([*center_xy, *size_wh])
        self.set_params(params)

    def set_params(self, params: StepParams) -> None:
        """Write the run-time tunables into their buffer (no recapture needed)."""
        self.params.load(params)

    def set_online(self, online: OnlineBranch | None) -> None:
        """The online branch to score and update every frame (None: off)."""
        if online is not self.online:
            self.online = online
            self.graphs.clear()

    def drop_graphs(self) -> None:
        """Forget the captured graphs (host values baked into them changed); the next frames recapture."""
        self.graphs.clear()

    # --- the step
    def compute(self, mark: Callable[[str], None] = _no_mark) -> None:
        """One frame: online score → crop → network → score → peak → new state → online update; writes the state,
        the readout and the online state. ``mark`` ends a stage (for timing; host numbers only)."""
        p = StepParams(*self.params.get())
        online = self.online.score(self.frame_t) if self.online is not None else None
        if online is not None:
            mark("online")
        new, readout = self._search(self.state.get(), p, p.window_influence, online, mark)
        self.state.set(new)
        mark("post")
        flag: Scalar = -1
        if online is not None and self.online is not None:
            self.online.adopt(online, new, self.image_wh)
            flag = online.flag
            mark("online")
        self.result.set([*readout, flag])

    def _search(self, state: Sequence[Scalar], p: StepParams, window_influence: Scalar, online: OnlineScore | None,
                mark: Callable[[str], None]) -> tuple[tuple[Scalar, ...], list[Scalar]]:
        """Crop → network → score → peak → new state from ``state`` (cx, cy, w, h; frame px); returns the new state
        and the readout's fields but the flag."""
        cx, cy, w, h = state
        scale_z, side = search_crop_side(w, h, self.context_amount, self.exemplar_size, self.search_size)
        x = self.crop((cx, cy), self.search_size, side)
        mark("crop")
        out = self.model.track(x, self.zf, use_align=self.use_align)
        mark("network")
        score = fuse_scores(out.cls, out.align if self.use_align else None, p.align_ratio)
        picks = peak_picks(score, decode_boxes(out.reg, self.grid), self.grid, w * scale_z, h * scale_z, p.penalty_k,
                           window_influence, online.scores if online is not None else None, p.online_ratio)
        peak = Peak(*self.numbers.of(picks))
        new, _ = update_state((cx, cy, w, h), peak, scale_z, self.search_size, p.lr, self.image_wh)
        return new, [*new, peak.index, peak.score, peak.penalty, peak.pscore, scale_z, side]

    def probe(self, center_xy: tuple[float, float], size_wh: tuple[float, float]) -> StepReadout:
        """This frame's search run from elsewhere, for re-detection: a search crop for a ``size_wh`` target around
        ``center_xy`` (frame px), cosine window and online map off; the state is left alone. Eager, read at once."""
        p = StepParams(*self.params.get())
        _, readout = self._search((*center_xy, *size_wh), p, 0.0, None, _no_mark)
        return StepReadout.of([float(v) for v in (*readout, -1)])

    def reach(self, size_wh: tuple[float, float]) -> float:
        """Frame px spanned by the score grid's cells for a ``size_wh`` target: the region one probe covers."""
        scale_z, _ = search_crop_side(*size_wh, self.context_amount, self.exemplar_size, self.search_size)
        return self.grid_span / scale_z

    def run(self, frame: np.ndarray, timer: StageTimer) -> None:
        """Upload ``frame`` and run the step (a graph replay when captured for this key), then start the copy of
        the readout to the host. Host numbers time each stage; on a device, upload and launch are timed."""
        self.upload(frame)
        if self.numbers.on_host:
            self.compute(timer.mark)
            return
        timer.mark("crop")  # the frame upload; the crop itself runs inside the step
        self.graphs.run(self.key, self.compute, capture=self.use_graph)
        if self.host_result is not None:
            self.host_result.copy_(self.result.tensor, non_blocking=True)
        if self.done is not None:
            self.done.record()
        timer.mark("network")  # online score, crop, network and post-processing on the device (one graph replay)

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

    def ready(self) -> bool:
        """True when the launched step's readout has reached the host."""
        return self.done is None or bool(self.done.query())

    def wait(self) -> StepReadout:
        """Wait for the launched step and read its readout (the frame's one host read)."""
        if self.done is not None:
            self.done.synchronize()
        return StepReadout.of(self.host_result.tolist() if self.host_result is not None else self.result.read())
