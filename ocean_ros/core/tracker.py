"""OceanTracker: initialise on a box, track frame by frame, reset. Owns every piece of per-target state.

The network is shared and stateless; the template features, target state, padding colour and the search size
chosen at initialisation live in the tracker's :class:`~ocean_ros.core.step.Step` (one per search and frame
size), the online classifier's state in its :class:`~ocean_ros.core.online.OnlineBranch`. Frames are HxWx3 uint8
BGR (grey and BGRA are converted); boxes are ``x, y, w, h`` in 0-based frame pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .config import TrackerConfig, step_params
from .geometry import average_colour, fill_colour
from .inputs import OnlineUnsupportedError, check_init_box, check_model, to_bgr
from .online import OnlineBranch
from .redetect import LossHysteresis, Redetector, ScanPlan, online_agrees
from .scalars import Numbers
from .siamese import ScoreGrid, make_score_grid
from .step import Step, StepReadout
from .timing import StageTimer
from .types import Box, TrackResult, TrackState

__all__ = ["STEP_MODES", "OceanTracker", "OnlineUnsupportedError", "check_init_box", "to_bgr"]

_LOG = logging.getLogger(__name__)
# How the one step runs. classic: with the config's crop backend (OpenCV on CPU by default: host numbers, nothing
# captured); static: with the torch crop and its state in device buffers, eagerly; graph: static, captured as a
# CUDA graph (eager where capture is impossible).
STEP_MODES = ("classic", "static", "graph")
MAX_STEPS = 6  # steps (buffers, graphs) kept per tracker, one per search and frame size; the oldest goes beyond


class OceanTracker:
    """Single-target Ocean tracker (TracKit's Siamese loop, spec §5) around a shared network.

    ``model`` must provide ``template(z)``, ``track(x, zf, use_align)`` and ``has_align``; it is moved to
    ``device`` (and to float16 when ``config.half``) and set to eval mode. ``step_mode`` (one of
    :data:`STEP_MODES`) picks how the step runs; None means 'graph' on CUDA when ``config.cuda_graphs`` is set,
    else 'classic'. 'static' and 'graph' always crop with the torch backend.

    Read-only facts: ``step_mode``; ``backend``, the runtime computing the network's maps ('torch',
    'onnxruntime', 'openvino' or 'tensorrt'); ``crop_backend``, 'opencv' or 'torch' ('auto' resolved);
    ``graph_failure``, why CUDA graph capture failed (the step then runs eagerly), else None; ``online_branch``,
    the online classifier's per-target state (None when ``config.online`` is off).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrackerConfig,
        device: str | torch.device = "cpu",
        step_mode: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.backend = check_model(model, config, self.device)
        self._net_dtype = torch.float16 if config.half else torch.float32
        self.model = model.to(device=self.device, dtype=self._net_dtype).eval()
        self._config = config
        self.step_mode = self.resolve_step_mode(step_mode, config, self.device)
        crop = config.crop_backend if self.step_mode == "classic" else "torch"
        self.crop_backend = self.resolve_crop_backend(crop, self.device)
        self._numbers = Numbers(self.device, on_host=self.crop_backend == "opencv")
        self.graph_failure: str | None = None
        self._grids: dict[int, ScoreGrid] = {}
        self._steps: dict[tuple[int, int, int], Step] = {}
        self.online_branch: OnlineBranch | None = None
        if config.online:
            graphs = self.step_mode == "graph"
            self.online_branch = OnlineBranch(self.model, config.online_params, self._numbers,
                                              fixed_memory=graphs, use_graph=graphs)
        self.reset()

    # --- configuration
    @property
    def config(self) -> TrackerConfig:
        """The active configuration (immutable)."""
        return self._config

    def update_config(self, **changes: object) -> TrackerConfig:
        """Change run-time-safe tunables (``TrackerConfig.runtime_safe_names()``) without losing the target."""
        known = {spec.name for spec in TrackerConfig.parameters()}
        safe = TrackerConfig.runtime_safe_names()
        unsafe = sorted(name for name in changes if name in known and name not in safe)
        if unsafe:
            raise ValueError(f"not changeable at run time (create a new tracker): {', '.join(unsafe)}")
        self._config = self._config.replace(**changes)
        if self.online_branch is not None and self.online_branch.params != self._config.online_params:
            self.online_branch.params = self._config.online_params
            for step in self._steps.values():  # online tunables are baked into the captured steps
                step.drop_graphs()
        if self._step is not None:
            self._step.set_params(step_params(self._config))
        self._loss.retune(self._config)
        return self._config

    @staticmethod
    def resolve_crop_backend(name: str, device: torch.device) -> str:
        """'auto' → 'opencv' on CPU (host crops are ~20× faster there), 'torch' on CUDA; other names unchanged."""
        return name if name != "auto" else "torch" if device.type == "cuda" else "opencv"

    @staticmethod
    def resolve_step_mode(mode: str | None, config: TrackerConfig, device: torch.device) -> str:
        """The step mode for ``mode`` (None: 'graph' on CUDA with ``config.cuda_graphs``, else 'classic')."""
        if mode is None:
            return "graph" if device.type == "cuda" and config.cuda_graphs else "classic"
        if mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {mode!r}")
        return mode

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps built so far (one per search size and frame size), for inspection."""
        return tuple(self._steps.values())

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
        self._step: Step | None = None
        self._state = TrackState.IDLE
        self._center = (0.0, 0.0)
        self._size = (0.0, 0.0)
        self._search_size = 0
        self._image_wh = (0, 0)
        self._loss = LossHysteresis.of(self._config)
        self._search: Redetector | None = None  # the frame scan while LOST
        self._frame_index = 0
        if self.online_branch is not None:
            self.online_branch.reset()

    # --- tracking
    @torch.inference_mode()
    def initialize(self, frame_bgr: np.ndarray, box_xywh: Sequence[float]) -> None:
        """Start tracking the target inside ``box_xywh`` (x, y, w, h; 0-based frame px) on ``frame_bgr``."""
        frame = to_bgr(frame_bgr)
        height, width = frame.shape[:2]
        box = check_init_box(box_xywh, width, height)
        center, size = box.center, (box.w, box.h)
        search_size = self._config.search_size_for(box.area, width * height)
        self.reset()
        step = self._step_for(search_size, width, height)
        step.upload(frame)
        if self.online_branch is not None and self.online_branch.initialize(step.frame_t, center, size):
            for other in self._steps.values():  # new online buffers: graphs reading the old ones are stale
                other.drop_graphs()
        avg = average_colour(frame)
        step.load_target(center, size, avg, torch.from_numpy(fill_colour(avg)), step_params(self._config))
        step.set_online(self.online_branch)
        self._step, self._center, self._size = step, center, size
        self._search_size, self._image_wh = search_size, (width, height)
        self._state = TrackState.TRACKING

    @torch.inference_mode()
    def track(self, frame_bgr: np.ndarray) -> TrackResult:
        """Locate the target in the next frame; returns the box, score in [0, 1], state and stage timings.

        With device numbers on CUDA the step is queued (a graph replay once captured) and its readout is the one
        host read that waits for it; the online optimiser, when due, runs after that read."""
        step = self._step
        if self._state is TrackState.IDLE or step is None:
            raise ValueError("track() called before initialize() (or after reset())")
        frame = to_bgr(frame_bgr)
        height, width = frame.shape[:2]
        if (width, height) != self._image_wh:
            raise ValueError(
                f"frame size {width}x{height} differs from the initialisation frame "
                f"{self._image_wh[0]}x{self._image_wh[1]}; re-initialise"
            )
        timer = StageTimer(self.device)
        step.run(frame, timer)
        if step.graph_error is not None and self.graph_failure is None:
            self._fall_back(step.graph_error)
        read = step.wait()
        timer.mark("post")
        update = None
        if self.online_branch is not None:
            flag, iterations = self.online_branch.finish(read.online_flag)
            self.online_branch.optimise(iterations)
            if self.online_branch.graph_error is not None and self.graph_failure is None:
                self._fall_back(self.online_branch.graph_error)
            timer.mark("online")
            update = (flag, iterations > 0)
        return self._finish_frame(timer, read, step, update)

    def _fall_back(self, reason: str) -> None:
        """Log a capture failure once; every step (and the online optimiser) runs eagerly from now on."""
        self.graph_failure = reason
        _LOG.warning("CUDA graph capture failed; the tracker runs its step eagerly: %s", reason)
        for step in self._steps.values():
            step.use_graph = False
        if self.online_branch is not None:
            self.online_branch.disable_graphs()

    def _finish_frame(self, timer: StageTimer, read: StepReadout, step: Step,
                      online_update: tuple[str, bool] | None) -> TrackResult:
        """Loss hysteresis, the re-detection probe while LOST, and the result, once the online branch (when on) has
        updated: ``online_update`` is its (flag, whether the filter was re-optimised)."""
        self._center, self._size = (read.cx, read.cy), (read.w, read.h)
        self._frame_index += 1
        flag, updated = online_update if online_update is not None else ("", False)
        self._state = self._loss.observe(read.score, flag == "not_found", lambda: online_agrees(
            self.online_branch, step.frame_t, self._center, self._config.found_online_score))
        searching = self._state is TrackState.LOST and self._config.redetect
        if searching:
            read = self._redetect(step) or read
            timer.mark("redetect")
        else:
            self._search = None
        return TrackResult(
            box_xywh=Box.from_center(*self._center, *self._size).as_tuple(),
            score=read.score,
            state=self._state,
            timings=timer.finish(),
            search_size=self._search_size,
            crop_side=read.crop_side,
            scale_z=read.scale_z,
            peak=divmod(read.index, step.grid.score_size),
            pscore=read.pscore,
            frame_index=self._frame_index,
            online_flag=flag, online_updated=updated,
            searching=searching, reacquired=searching and self._state is TrackState.TRACKING,
        )

    def _redetect(self, step: Step) -> StepReadout | None:
        """One re-detection probe; when it confirms the target, the state moves there and its readout is returned."""
        if self._search is None:
            plan = ScanPlan(self._image_wh, self._center, self._size, step.reach)
            self._search = Redetector(plan, self._config.found_threshold, self._config.found_frames)
        probe = self._search.next_probe()
        read = step.probe(probe.center, probe.size)
        found = self._search.report(read.score, Box.from_center(read.cx, read.cy, read.w, read.h))
        if found is None or not online_agrees(self.online_branch, step.frame_t, found.center,
                                              self._config.found_online_score, rival_xy=self._center):
            return None
        self._center, self._size, self._search = found.center, (found.w, found.h), None
        step.state.load([*self._center, *self._size])
        if self.online_branch is not None:
            self.online_branch.move(self._center, self._size)
        self._state = self._loss.found()
        return read

    def _step_for(self, search_size: int, width: int, height: int) -> Step:
        """The step (buffers and graphs) for this search and frame size, built on first use."""
        key = (search_size, width, height)
        if key not in self._steps and len(self._steps) >= MAX_STEPS:  # e.g. a camera that keeps resizing
            del self._steps[next(iter(self._steps))]
        if key not in self._steps:
            cfg = self._config
            self._steps[key] = Step(
                self.model, self._grid(search_size), self._numbers, image_wh=(width, height),
                exemplar_size=cfg.exemplar_size, context_amount=cfg.context_amount, use_align=cfg.align,
                net_dtype=self._net_dtype, use_graph=self.step_mode == "graph" and self.graph_failure is None,
            )
        return self._steps[key]

    def _grid(self, search_size: int) -> ScoreGrid:
        """Score-grid constants for ``search_size`` from the network's geometry."""
        if search_size not in self._grids:
            geometry = (self.model.score_size(search_size), self.model.grid_origin(search_size))
            self._grids[search_size] = make_score_grid(search_size, self.device, self._config.exemplar_size,
                                                       self._config.total_stride, *geometry)
        return self._grids[search_size]
