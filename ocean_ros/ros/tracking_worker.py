"""The tracker node's frame handling, without ROS: which frames to take, inits on the frame their stamp names, and
the worker thread that owns the tracker and hands each processed frame back for publishing.

Frames arrive converted (BGR arrays with their header); :class:`Processed` goes back to the node, which turns it
into messages. Every refusal is counted under its reason in :class:`~ocean_ros.ros.node_stats.NodeStats` and
logged at most once per ``log_throttle`` seconds per reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ocean_ros.core.types import TrackResult, TrackState
from ocean_ros.ros.commands import ConfigCommand, InitCommand, PendingFrame, ResetCommand, WorkQueue
from ocean_ros.ros.frame_ring import FrameLookupError, FrameRing, StampedFrame, spaced
from ocean_ros.ros.messages import InitRequest
from ocean_ros.ros.node_config import NodeConfig
from ocean_ros.ros.node_stats import NodeStats
from ocean_ros.ros.stamp_gate import StampGate
from ocean_ros.ros.tracking_engine import TrackingEngine

__all__ = ["Log", "Processed", "TrackingWorker"]


class Log(Protocol):
    """Where the worker reports: an rclpy logger or a :class:`logging.Logger`."""

    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...


@dataclass(frozen=True)
class Processed:
    """One processed frame for the node to publish: ``result`` None while there is no target."""

    frame: StampedFrame
    result: TrackResult | None
    convert_ms: float
    total_ms: float  # callback entry to result


class TrackingWorker:
    """Takes frames and commands from the callbacks (never waiting) and runs them on one thread that owns the
    tracker; ``publish`` receives every frame processed for the current target (frames whose processing an init
    or reset overtook are discarded)."""

    def __init__(self, engine: TrackingEngine, config: NodeConfig, publish: Callable[[Processed], None],
                 log: Log) -> None:
        self.engine, self.config, self.log = engine, config, log
        self.stats = NodeStats()
        self.gate = StampGate()
        self.queue = WorkQueue()
        self._ring = FrameRing(config.ring_size)
        self._publish = publish
        self._graph_failure_logged = False
        self._thread = threading.Thread(target=self._run, name="ocean_tracker_worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after the step in progress (pending work is dropped)."""
        self.queue.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def reject(self, reason: str, detail: str) -> None:
        """Count a refused input under ``reason``; log it unless one was logged within ``log_throttle`` s."""
        if self.stats.refuse(reason, time.monotonic(), self.config.log_throttle):
            self.log.warning(f"refused ({reason}, {self.stats.rejected[reason]} so far): {detail}")

    def too_large(self, width: int, height: int) -> bool:
        """True (and the frame refused) when it has more pixels than ``max_image_pixels``."""
        limit = self.config.max_image_pixels
        if width * height <= limit:
            return False
        self.reject("too_large", f"{width}x{height} image exceeds max_image_pixels={limit}")
        return True

    def _reject_size(self, shape: tuple[int, ...]) -> None:
        want = self.engine.frame_shape
        self.reject("size_changed", f"frame is {shape[1]}x{shape[0]}, the target was initialised on {want[1]}x"
                    f"{want[0]}; re-initialise to track at the new size")

    # --- from the callbacks ---------------------------------------------------------------------------------
    def offer(self, stamp_ns: int, frame: np.ndarray, header: Any, received: float) -> None:
        """A converted frame (``received``: time.perf_counter() at callback entry): kept in the ring, and made the
        next to track unless its stamp or size is refused."""
        convert_ms = (time.perf_counter() - received) * 1000.0
        with self.queue.lock:
            verdict = self.gate.check(stamp_ns)
            if not verdict.accepted:
                self.reject(verdict.reason, verdict.detail)
                return
            if verdict.new_timeline:  # the camera's clock stepped back: forget the old timeline, keep the target
                self.stats.counts["timeline_resets"] += 1
                self._ring = FrameRing(self.config.ring_size)
                self.log.warning(
                    f"camera stamps stepped back by {verdict.stepped_back_ns / 1e9:.3f} s for {self.gate.reset_after} "
                    f"frames in a row: following the new timeline (frame ring cleared, target kept; "
                    f"{self.stats.counts['timeline_resets']} so far)")
            stamped = StampedFrame(stamp_ns, frame, header)
            self._ring.push(stamped)  # kept even at a new size: an init may name it
            if self.engine.state != TrackState.IDLE and frame.shape[:2] != self.engine.frame_shape:
                self._reject_size(frame.shape[:2])
            elif self.queue.put_frame(PendingFrame(stamped, received, convert_ms)):
                self.stats.counts["dropped"] += 1

    def request_init(self, request: InitRequest, source: str) -> str:
        """Queue an init named by ``source``; '' when accepted, else the reason (also counted as ``bad_init``)."""
        with self.queue.lock:
            try:
                stamped = self._ring.find(request.stamp_ns)
                height, width = stamped.frame_bgr.shape[:2]
                reason = self.engine.check_box(request.box_xywh, width, height)
            except FrameLookupError as err:
                reason = str(err)
            if not reason:
                self.queue.put(InitCommand(request, stamped))
        if reason:
            self.reject("bad_init", f"{source}: {reason}")
        return reason

    def request_reset(self) -> None:
        self.queue.put(ResetCommand())

    def request_config(self, changes: dict[str, Any]) -> None:
        """Apply run-time-safe tracker parameters (validated by the caller) before the next frame."""
        self.queue.put(ConfigCommand(changes))

    # --- the thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        while (work := self.queue.take()) is not None:
            try:
                for command in work.commands:
                    if isinstance(command, ResetCommand):
                        self.engine.reset()
                    elif isinstance(command, ConfigCommand):
                        self.engine.update_config(dict(command.changes))
                    else:
                        self._initialize(command, work.frame)
                if work.frame is not None:
                    self._process(work.frame, work.generation)
            except Exception as err:  # noqa: BLE001 - the node must survive any single bad frame
                if self.queue.stopped:
                    return  # shutting down: publishers may be gone, nothing failed
                self.stats.counts["errors"] += 1
                self.log.error(f"tracking step failed: {type(err).__name__}: {err}")

    def _initialize(self, command: InitCommand, next_frame: PendingFrame | None) -> None:
        """Initialise on the command's frame, then track silently over the newer frames before ``next_frame``."""
        request, stamped = command.request, command.frame
        with self.queue.lock:
            limit = next_frame.frame.stamp_ns if next_frame is not None else self.gate.last_ns + 1
            newer = [f for f in self._ring.newer_than(stamped.stamp_ns) if f.stamp_ns < limit]
        catch_up = spaced(newer, self.config.init_catch_up)
        target_id = request.target_id or self.config.default_target_id
        self.engine.initialize(stamped.frame_bgr, request.box_xywh, target_id, request.label, stamped.header.stamp,
                               catch_up)
        self.log.info(f"target '{target_id}' initialised on frame {stamped.stamp_ns} ns with box {request.box_xywh}"
                      + (f", caught up over {len(catch_up)} frame(s)" if catch_up else ""))

    def _process(self, pending: PendingFrame, generation: int) -> None:
        engine, frame, result = self.engine, pending.frame, None
        if engine.state != TrackState.IDLE:
            if frame.frame_bgr.shape[:2] != engine.frame_shape:  # re-initialised at another size meanwhile
                self._reject_size(frame.frame_bgr.shape[:2])
                return
            before = engine.state
            result = engine.track(frame.frame_bgr)
            self.stats.tracked(result, before)
            if engine.tracker.graph_failure and not self._graph_failure_logged:
                self._graph_failure_logged = True
                self.log.warning(f"CUDA graph capture failed, tracking eagerly: {engine.tracker.graph_failure}")
        if not self.queue.is_current(generation):  # an init or reset arrived while this frame was processed
            self.stats.counts["discarded"] += 1
            return
        total_ms = (time.perf_counter() - pending.received) * 1000.0
        self.stats.processed(total_ms, time.monotonic())
        self._publish(Processed(frame, result, pending.convert_ms, total_ms))
