"""OceanTracker: initialise on a box, track frame by frame, reset. Owns every piece of per-target state.

The network is shared and stateless; the template features, target centre and size, padding colour and the
search size chosen at initialisation all live here. Frames are HxWx3 uint8 BGR (grey and BGRA are converted);
boxes are ``x, y, w, h`` in 0-based frame pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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
from .types import Box, TrackResult, TrackState

__all__ = ["OceanTracker", "OnlineUnsupportedError", "check_init_box", "to_bgr"]


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


class OceanTracker:
    """Single-target Ocean tracker (TracKit's Siamese loop, spec §5) around a shared :class:`OceanNet`.

    ``model`` must provide ``template(z)``, ``track(x, zf, use_align)`` and ``has_align``; it is moved to
    ``device`` (and to float16 when ``config.half``) and set to eval mode.
    """

    def __init__(self, model: nn.Module, config: TrackerConfig, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        if config.half and self.device.type != "cuda":
            raise ValueError(f"half precision needs a CUDA device, got {self.device}")
        if config.online and not getattr(model, "has_classifier", False):
            raise OnlineUnsupportedError(
                "config.online is set but the model has no online classifier: load an online checkpoint "
                "(classifier.* and layeronline weights, e.g. OceanV19on.pth)"
            )
        if config.align and not getattr(model, "has_align", False):
            raise ValueError("config.align is set but the model has no object-aware head (align_head)")
        model_stride = int(getattr(model, "stride", 8))
        if model_stride != config.total_stride:
            raise ValueError(
                f"config.total_stride={config.total_stride} but the network's stride is {model_stride}; use the "
                "preset stored with the checkpoint (e.g. LITE for Ocean-Lite)"
            )
        self._net_dtype = torch.float16 if config.half else torch.float32
        self.model = model.to(device=self.device, dtype=self._net_dtype).eval()
        self._config = config
        self._params = self._step_params(config)
        self._crop_backend = self.resolve_crop_backend(config.crop_backend, self.device)
        self._grids: dict[int, ScoreGrid] = {}
        self._online: OnlineBranch | None = None
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
        return self._config

    @staticmethod
    def resolve_crop_backend(name: str, device: torch.device) -> str:
        """'auto' → 'opencv' on CPU (host crops are ~20× faster there), 'torch' on CUDA; other names unchanged."""
        if name != "auto":
            return name
        return "torch" if device.type == "cuda" else "opencv"

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
        """The online classifier's per-target state and schedule (None when ``config.online`` is off)."""
        return self._online

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
        self._state = TrackState.TRACKING

    @torch.inference_mode()
    def track(self, frame_bgr: np.ndarray) -> TrackResult:
        """Locate the target in the next frame; returns the box, score in [0, 1], state and stage timings."""
        if self._state is TrackState.IDLE or self._zf is None:
            raise ValueError("track() called before initialize() (or after reset())")
        frame = to_bgr(frame_bgr)
        height, width = frame.shape[:2]
        if (width, height) != self._image_wh:
            raise ValueError(
                f"frame size {width}x{height} differs from the initialisation frame "
                f"{self._image_wh[0]}x{self._image_wh[1]}; re-initialise"
            )
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
        self._frame_index += 1
        low = not step.score >= cfg.lost_threshold  # a NaN score counts as low
        self._low_frames = self._low_frames + 1 if low else 0
        self._state = TrackState.LOST if self._low_frames >= cfg.lost_frames else TrackState.TRACKING
        timer.mark("post")
        flag, updated = "", False
        if self._online is not None and online is not None:
            flag, updated = self._online.update(online, self._center, self._size, self._image_wh)
            timer.mark("online_update")
        timings = timer.finish()
        if "online_update" in timings:
            timings["online"] += timings.pop("online_update")
        box = Box.from_center(*self._center, *self._size)
        return TrackResult(
            box_xywh=box.as_tuple(),
            score=step.score,
            state=self._state,
            timings=timings,
            search_size=size_s,
            crop_side=side,
            scale_z=scale_z,
            peak=(step.row, step.col),
            pscore=step.pscore,
            frame_index=self._frame_index,
            online_flag=flag,
            online_updated=updated,
        )

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
