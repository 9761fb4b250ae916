"""OceanTracker: initialise on a box, track frame by frame, reset. Owns every piece of per-target state.

The network is shared and stateless; the template features, target centre and size, padding colour and the
search size chosen at initialisation all live here. Frames are HxWx3 uint8 BGR (grey and BGRA are converted);
boxes are ``x, y, w, h`` in 0-based frame pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from .config import TrackerConfig
from .geometry import (
    average_colour,
    crop_opencv,
    crop_torch,
    fill_colour,
    frame_to_device,
    round_half_even,
    search_crop_side,
    template_crop_side,
)
from .online import OnlineBranch, OnlineParams
from .siamese import (
    ScoreGrid,
    StepParams,
    decode_boxes,
    fuse_scores,
    make_score_grid,
    select_peak,
    update_state,
)
from .static_online import StaticOnline
from .static_step import StaticStep, StepReadout
from .types import Box, TrackResult, TrackState

__all__ = ["STEP_MODES", "OceanTracker", "OnlineUnsupportedError", "PendingTrack", "check_init_box", "to_bgr"]

_LOG = logging.getLogger(__name__)
# classic: host-driven step (OpenCV or torch crops); static: the fixed device step run eagerly; graph: the static
# step captured as a CUDA graph (eager where capture is impossible).
STEP_MODES = ("classic", "static", "graph")
MAX_STATIC_STEPS = 6  # static steps (buffers, graphs) kept per tracker; the oldest is dropped beyond this


class OnlineUnsupportedError(NotImplementedError, ValueError):
    """``config.online`` with a model that does not implement the online classifier (no ``classifier``).

    A ValueError (a bad model/config pairing) that is also a NotImplementedError, which is what callers got
    before the online branch existed.
    """


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Check a frame and return it as HxWx3 uint8 BGR (grey HxW / HxWx1 and BGRA HxWx4 are converted).

    Raises ValueError for anything that is not a non-empty uint8 image array.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got dtype {frame.dtype}")
    if frame.ndim not in (2, 3):
        raise ValueError(f"frame must be HxW or HxWxC, got {frame.ndim} dimensions {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty: shape {frame.shape}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    channels = frame.shape[2]
    if channels == 3:
        return frame
    if channels == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"frame must have 1, 3 or 4 channels, got {channels}")


def check_init_box(box_xywh: Sequence[float], width: int, height: int) -> Box:
    """Validate an init box ``x, y, w, h`` (0-based px) for a ``width`` x ``height`` frame; ValueError if bad.

    It must be 4 finite numbers with w > 0 and h > 0 and overlap the image; it may extend past the border.
    """
    try:
        box = Box.from_xywh(box_xywh)
    except (TypeError, ValueError) as err:
        raise ValueError(f"init box must be 4 numbers x, y, w, h: {err}") from None
    if not box.is_finite():
        raise ValueError(f"init box has a NaN or infinite value: {box.as_tuple()}")
    if box.w <= 0 or box.h <= 0:
        raise ValueError(f"init box must have positive width and height, got w={box.w}, h={box.h}")
    if not box.intersects_image(width, height):
        raise ValueError(f"init box {box.as_tuple()} lies entirely outside the {width}x{height} image")
    return box


class _StageTimer:
    """Per-stage wall times in ms; on CUDA it reads events once the result copy has synchronised."""

    def __init__(self, device: torch.device) -> None:
        self._stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self._marks: list[tuple[str, object]] = []
        self._t0 = time.perf_counter()
        self._marks.append(("start", self._now()))

    def _now(self) -> object:
        if self._stream is not None:
            event = torch.cuda.Event(enable_timing=True)
            event.record(self._stream)
            return event
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        self._marks.append((stage, self._now()))

    def finish(self) -> dict[str, float]:
        timings: dict[str, float] = {}
        for (_, before), (stage, after) in zip(self._marks, self._marks[1:], strict=False):
            if self._stream is not None:
                after.synchronize()  # type: ignore[attr-defined]
                timings[stage] = before.elapsed_time(after)  # type: ignore[attr-defined]
            else:
                timings[stage] = (after - before) * 1000.0  # type: ignore[operator]
        timings["total"] = (time.perf_counter() - self._t0) * 1000.0
        return timings


class PendingTrack:
    """A frame whose step has been launched; :meth:`result` waits for it (on CUDA, for its event) once."""

    def __init__(self, finish: Callable[[], TrackResult], ready: Callable[[], bool]) -> None:
        self._finish = finish
        self._ready = ready
        self._result: TrackResult | None = None

    def ready(self) -> bool:
        """True when :meth:`result` will not block."""
        return self._result is not None or self._ready()

    def result(self) -> TrackResult:
        """The frame's result (the tracker's state is updated on the first call)."""
        if self._result is None:
            self._result = self._finish()
        return self._result


class OceanTracker:
    """Single-target Ocean tracker (TracKit's Siamese loop, spec §5) around a shared :class:`OceanNet`.

    ``model`` must provide ``template(z)``, ``track(x, zf, use_align)`` and ``has_align``; it is moved to
    ``device`` (and to float16 when ``config.half``) and set to eval mode. ``step_mode`` (one of
    :data:`STEP_MODES`) picks how a frame runs; None means 'graph' on CUDA when ``config.cuda_graphs`` is set,
    else 'classic'. 'static' and 'graph' always crop with the torch backend.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrackerConfig,
        device: str | torch.device = "cpu",
        step_mode: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        if config.half and self.device.type != "cuda":
            raise ValueError(f"half precision needs a CUDA device, got {self.device}")
        if config.online and not getattr(model, "has_classifier", False):
            raise OnlineUnsupportedError(
                "config.online is set but the model has no online classifier: load an online checkpoint "
                "(the shipped ocean_lite.pth, or TracKit's classifier.* and layeronline weights, e.g. OceanV19on.pth)"
            )
        if config.align and not getattr(model, "has_align", False):
            raise ValueError("config.align is set but the model has no object-aware head (align_head)")
        model_stride = int(getattr(model, "stride", 8))
        if model_stride != config.total_stride:
            raise ValueError(
                f"config.total_stride={config.total_stride} but the network's stride is {model_stride}; use the "
                "preset stored with the checkpoint (e.g. LITE for Ocean-Lite)"
            )
        self._backend = str(getattr(model, "backend", "torch"))
        if config.backend not in ("auto", self._backend):
            raise ValueError(
                f"config.backend={config.backend!r} but the network given runs on {self._backend}; load it with "
                "ocean_ros.core.network.load_network(checkpoint, config)"
            )
        exported = getattr(model, "search_sizes", None)  # a graph runner serves the sizes it was exported for
        if exported is not None and not {config.small_sz, config.big_sz} <= set(exported):
            raise ValueError(
                f"the network has search graphs for {sorted(exported)} but the config picks "
                f"{sorted({config.small_sz, config.big_sz})}; export it for those sizes"
            )
        self._net_dtype = torch.float16 if config.half else torch.float32
        self.model = model.to(device=self.device, dtype=self._net_dtype).eval()
        self._config = config
        self._params = self._step_params(config)
        self._step_mode = self.resolve_step_mode(step_mode, config, self.device)
        backend = config.crop_backend if self._step_mode == "classic" else "torch"
        self._crop_backend = self.resolve_crop_backend(backend, self.device)
        self._grids: dict[int, ScoreGrid] = {}
        self._steps: dict[tuple[int, int, int], StaticStep] = {}
        self._graph_failure: str | None = None
        self._pending: PendingTrack | None = None
        self._online: OnlineBranch | None = None
        self._static_online: StaticOnline | None = None
        if config.online:
            self._online = OnlineBranch(self.model, OnlineParams.from_config(config), self.device)
        self.reset()

    # --- configuration
    @property
    def config(self) -> TrackerConfig:
        """The active configuration (immutable)."""
        return self._config

    def update_config(self, **changes: object) -> TrackerConfig:
        """Change run-time-safe fields (``TrackerConfig.runtime_safe_names()``) without losing the target."""
        known = {spec.name for spec in TrackerConfig.parameters()}
        safe = TrackerConfig.runtime_safe_names()
        unsafe = sorted(name for name in changes if name in known and name not in safe)
        if unsafe:
            raise ValueError(f"not changeable at run time (create a new tracker): {', '.join(unsafe)}")
        self._config = self._config.replace(**changes)
        self._params = self._step_params(self._config)
        if self._online is not None:
            self._online.params = OnlineParams.from_config(self._config)
            if self._static_online is not None and self._static_online.set_params(self._online.params):
                for step in self._steps.values():  # online tunables are baked into the captured steps
                    step.drop_graphs()
        if self._step is not None:
            self._step.set_params(self._params)
        return self._config

    @staticmethod
    def resolve_crop_backend(name: str, device: torch.device) -> str:
        """'auto' → 'opencv' on CPU (host crops are ~20× faster there), 'torch' on CUDA; other names unchanged."""
        if name != "auto":
            return name
        return "torch" if device.type == "cuda" else "opencv"

    @staticmethod
    def resolve_step_mode(mode: str | None, config: TrackerConfig, device: torch.device) -> str:
        """The step mode for ``mode`` (None: 'graph' on CUDA with ``config.cuda_graphs``, else 'classic')."""
        if mode is None:
            return "graph" if device.type == "cuda" and config.cuda_graphs else "classic"
        if mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {mode!r}")
        return mode

    @property
    def step_mode(self) -> str:
        """How frames run: 'classic', 'static' (fixed device step, eager) or 'graph' (captured step)."""
        return self._step_mode

    @property
    def graph_failure(self) -> str | None:
        """Why CUDA graph capture failed (the tracker then runs the static step eagerly); None otherwise."""
        return self._graph_failure

    @property
    def static_steps(self) -> tuple[StaticStep, ...]:
        """The static steps built so far (one per search size and frame size), for inspection."""
        return tuple(self._steps.values())

    @property
    def backend(self) -> str:
        """The runtime computing the network's maps ('torch', 'onnxruntime', 'openvino' or 'tensorrt')."""
        return self._backend

    @property
    def crop_backend(self) -> str:
        """The crop implementation in use ('opencv' or 'torch'; 'auto' resolved for the device)."""
        return self._crop_backend

    @staticmethod
    def _step_params(config: TrackerConfig) -> StepParams:
        return StepParams(
            penalty_k=config.penalty_k,
            window_influence=config.window_influence,
            lr=config.lr,
            align_ratio=config.align_ratio,
            online_ratio=config.online_ratio,
        )

    @property
    def online_branch(self) -> OnlineBranch | None:
        """The online classifier's per-target state and schedule (None when ``config.online`` is off).

        With a static step it holds the first-frame training only; the per-frame state is in
        :attr:`static_online`.
        """
        return self._online

    @property
    def static_online(self) -> StaticOnline | None:
        """The online branch's per-frame state on the static step's buffers (None without both)."""
        return self._static_online

    # --- state
    @property
    def state(self) -> TrackState:
        """IDLE before initialize / after reset, else TRACKING or LOST."""
        return self._state

    @property
    def target(self) -> Box | None:
        """The current target box (frame px), or None when IDLE."""
        if self._state is TrackState.IDLE:
            return None
        return Box.from_center(*self._center, *self._size)

    def reset(self) -> None:
        """Forget the target; the tracker returns to IDLE."""
        self._pending = None
        self._step: StaticStep | None = None
        self._state = TrackState.IDLE
        self._zf: torch.Tensor | None = None
        self._center = (0.0, 0.0)
        self._size = (0.0, 0.0)
        self._avg_chans = np.zeros(3)
        self._fill = torch.zeros(3, dtype=torch.uint8)
        self._search_size = 0
        self._image_wh = (0, 0)
        self._low_frames = 0
        self._frame_index = 0
        if self._online is not None:
            self._online.reset()

    # --- tracking
    @torch.inference_mode()
    def initialize(self, frame_bgr: np.ndarray, box_xywh: Sequence[float]) -> None:
        """Start tracking the target inside ``box_xywh`` (x, y, w, h; 0-based frame px) on ``frame_bgr``."""
        self._settle()
        frame = to_bgr(frame_bgr)
        height, width = frame.shape[:2]
        box = check_init_box(box_xywh, width, height)
        cfg = self._config
        center, size = box.center, (box.w, box.h)
        avg = average_colour(frame)
        fill = torch.from_numpy(fill_colour(avg)).to(self.device)
        side = round_half_even(template_crop_side(box.w, box.h, cfg.context_amount))
        z = self._crop(frame, None, center, cfg.exemplar_size, side, avg, fill)
        zf = self.model.template(z)
        search_size = cfg.search_size_for(box.area, width * height)
        if search_size not in self._grids:
            self._grids[search_size] = self._make_grid(search_size)
        self.reset()
        if self._online is not None:
            self._online.initialize(frame_to_device(frame, self.device), center, size)
        self._zf, self._avg_chans, self._fill = zf, avg, fill
        self._center, self._size = center, size
        self._search_size = search_size
        self._image_wh = (width, height)
        if self._step_mode != "classic":
            self._step = self._static_step(search_size, width, height)
            self._step.load_target(zf, center, size, fill, self._params)
            self._step.set_online(self._load_static_online())
        self._state = TrackState.TRACKING

    def track(self, frame_bgr: np.ndarray) -> TrackResult:
        """Locate the target in the next frame; returns the box, score in [0, 1], state and stage timings."""
        return self.track_async(frame_bgr).result()

    @torch.inference_mode()
    def track_async(self, frame_bgr: np.ndarray) -> PendingTrack:
        """Launch the next frame; the returned :class:`PendingTrack` gives its result.

        With a static step on CUDA the call returns once the step is queued (the online update, when on, runs
        in :meth:`PendingTrack.result`); otherwise the frame is already done. A new call settles the last one.
        """
        self._settle()
        if self._state is TrackState.IDLE or self._zf is None:
            raise ValueError("track() called before initialize() (or after reset())")
        frame = to_bgr(frame_bgr)
        height, width = frame.shape[:2]
        if (width, height) != self._image_wh:
            raise ValueError(
                f"frame size {width}x{height} differs from the initialisation frame "
                f"{self._image_wh[0]}x{self._image_wh[1]}; re-initialise"
            )
        if self._step is not None:
            pending = self._launch_static(self._step, frame)
        else:
            done = self._track_classic(frame)
            pending = PendingTrack(lambda: done, lambda: True)
        self._pending = pending
        return pending

    def _settle(self) -> None:
        """Finish a launched frame whose result nobody asked for, so the state is current."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _track_classic(self, frame: np.ndarray) -> TrackResult:
        cfg = self._config
        timer = _StageTimer(self.device)
        size_s = self._search_size
        scale_z, side = search_crop_side(*self._size, cfg.context_amount, cfg.exemplar_size, size_s)
        frame_t = frame_to_device(frame, self.device) if self._crop_backend == "torch" else None
        online = None
        if self._online is not None:
            if frame_t is None:
                frame_t = frame_to_device(frame, self.device)
            online = self._online.score(frame_t)
            timer.mark("online")
        x = self._crop(frame, frame_t, self._center, size_s, side, self._avg_chans, self._fill)
        timer.mark("crop")
        out = self.model.track(x, self._zf, use_align=cfg.align)
        timer.mark("network")
        grid = self._grids[size_s]
        score = fuse_scores(out.cls, out.align if cfg.align else None, cfg.align_ratio)
        target_wh = (self._size[0] * scale_z, self._size[1] * scale_z)
        online_map = online.scores if online is not None else None
        step = select_peak(score, decode_boxes(out.reg, grid), grid, target_wh, self._params, online_map)
        self._center, self._size, _ = update_state(
            self._center, self._size, step, scale_z, size_s, cfg.lr, self._image_wh
        )
        timer.mark("post")
        update = None
        if self._online is not None and online is not None:
            update = self._online.update(online, self._center, self._size, self._image_wh)
            timer.mark("online_update")
        return self._finish_frame(timer, step.score, step.pscore, (step.row, step.col), side, scale_z, update)

    def _load_static_online(self) -> StaticOnline | None:
        """The online branch's first-frame state copied into the static buffers (built once per tracker)."""
        if self._online is None:
            return None
        online = self._static_online
        if online is not None:
            try:
                online.load(self._online)
                return online
            except ValueError:  # another memory or filter shape: new buffers
                pass
        graphs = self._step_mode == "graph" and self._graph_failure is None
        self._static_online = StaticOnline(self._online, fixed_memory=graphs, use_graph=graphs)
        return self._static_online

    def _launch_static(self, step: StaticStep, frame: np.ndarray) -> PendingTrack:
        """Upload and launch the static step (online branch included); the result is read on demand."""
        timer = _StageTimer(self.device)
        step.upload(frame)
        timer.mark("crop")  # the frame upload; the crop itself runs inside the step
        step.launch()
        if step.graph_error is not None and self._graph_failure is None:
            self._fall_back(step.graph_error)
        timer.mark("network")  # online score, crop, network and post-processing on the device (one graph replay)

        def finish() -> TrackResult:
            with torch.inference_mode():
                read: StepReadout = step.wait()
                timer.mark("post")
                self._center, self._size = read.center, read.size
                peak = divmod(read.flat_index, step.grid.score_size)
                online = self._static_online
                update = None
                if online is not None:
                    flag, iterations = online.finish(read.online_flag)
                    online.optimise(iterations)
                    if online.graph_error is not None and self._graph_failure is None:
                        self._fall_back(online.graph_error)
                    timer.mark("online")
                    update = (flag, iterations > 0)
                return self._finish_frame(timer, read.score, read.pscore, peak, read.crop_side, read.scale_z, update)

        return PendingTrack(finish, step.ready)

    def _fall_back(self, reason: str) -> None:
        """Log a capture failure once; every step (and the online optimiser) runs eagerly from now on."""
        self._graph_failure = reason
        _LOG.warning("CUDA graph capture failed; the tracker runs its static step eagerly: %s", reason)
        for other in self._steps.values():
            other.use_graph = False
        if self._static_online is not None:
            self._static_online.disable_graphs()

    def _finish_frame(
        self,
        timer: _StageTimer,
        score: float,
        pscore: float,
        peak: tuple[int, int],
        side: int,
        scale_z: float,
        online_update: tuple[str, bool] | None,
    ) -> TrackResult:
        """Lost-state bookkeeping and the result, once the new centre and size are set and the online branch
        (when on) has updated: ``online_update`` is its (flag, whether the filter was re-optimised)."""
        cfg = self._config
        self._frame_index += 1
        low = not score >= cfg.lost_threshold  # a NaN score counts as low
        self._low_frames = self._low_frames + 1 if low else 0
        self._state = TrackState.LOST if self._low_frames >= cfg.lost_frames else TrackState.TRACKING
        flag, updated = online_update if online_update is not None else ("", False)
        timings = timer.finish()
        if "online_update" in timings:
            timings["online"] = timings.get("online", 0.0) + timings.pop("online_update")
        box = Box.from_center(*self._center, *self._size)
        return TrackResult(
            box_xywh=box.as_tuple(),
            score=score,
            state=self._state,
            timings=timings,
            search_size=self._search_size,
            crop_side=side,
            scale_z=scale_z,
            peak=peak,
            pscore=pscore,
            frame_index=self._frame_index,
            online_flag=flag,
            online_updated=updated,
        )

    def _static_step(self, search_size: int, width: int, height: int) -> StaticStep:
        """The static step (buffers and graph) for this search and frame size, built on first use."""
        key = (search_size, width, height)
        if key not in self._steps and len(self._steps) >= MAX_STATIC_STEPS:  # e.g. a camera that keeps resizing
            del self._steps[next(iter(self._steps))]
        if key not in self._steps:
            cfg = self._config
            self._steps[key] = StaticStep(
                self.model,
                self._grids[search_size],
                image_wh=(width, height),
                exemplar_size=cfg.exemplar_size,
                context_amount=cfg.context_amount,
                use_align=cfg.align,
                net_dtype=self._net_dtype,
                device=self.device,
                use_graph=self._step_mode == "graph" and self._graph_failure is None,
            )
        return self._steps[key]

    def _make_grid(self, search_size: int) -> ScoreGrid:
        """Score-grid constants for ``search_size`` from the network's geometry (TracKit's grid otherwise)."""
        cfg = self._config
        n_of = getattr(self.model, "score_size", None)
        origin_of = getattr(self.model, "grid_origin", None)
        if n_of is None or origin_of is None:
            return make_score_grid(search_size, self.device, cfg.exemplar_size, cfg.total_stride)
        return make_score_grid(
            search_size, self.device, cfg.exemplar_size, cfg.total_stride, n_of(search_size), origin_of(search_size)
        )

    def _crop(
        self,
        frame: np.ndarray,
        frame_t: torch.Tensor | None,
        center: tuple[float, float],
        out_size: int,
        side: int,
        avg: np.ndarray,
        fill: torch.Tensor,
    ) -> torch.Tensor:
        if self._crop_backend == "opencv":
            return crop_opencv(frame, center, out_size, side, avg, self.device).to(self._net_dtype)
        if frame_t is None:
            frame_t = frame_to_device(frame, self.device)
        return crop_torch(frame_t, center, out_size, side, fill, self._net_dtype)
