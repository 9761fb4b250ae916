"""What the tracker node's callbacks hand its tracking worker: init, reset and config commands, and the newest frame.

ROS-free. The worker owns the tracker; callbacks never wait for it. Commands run in arrival order before the
frame; only the newest frame is kept (an older one not yet taken is dropped, never queued). An init or a reset
starts a new generation: a frame whose processing began before it is discarded, as its outputs would describe the
old target.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ocean_ros.ros.frame_ring import StampedFrame
from ocean_ros.ros.messages import InitRequest

__all__ = ["Command", "ConfigCommand", "InitCommand", "PendingFrame", "ResetCommand", "Work", "WorkQueue"]


@dataclass(frozen=True)
class InitCommand:
    """Initialise on ``frame`` (found in the ring by the request's stamp) with the request's box and identity."""

    request: InitRequest
    frame: StampedFrame


@dataclass(frozen=True)
class ResetCommand:
    """Drop the target."""


@dataclass(frozen=True)
class ConfigCommand:
    """Apply run-time-safe tracker parameter ``changes`` (name -> value), keeping the target."""

    changes: Mapping[str, Any]


Command = InitCommand | ResetCommand | ConfigCommand


@dataclass(frozen=True)
class PendingFrame:
    """An accepted frame waiting for the worker: ``received`` is time.perf_counter() at callback entry."""

    frame: StampedFrame
    received: float
    convert_ms: float


@dataclass(frozen=True)
class Work:
    """What the worker takes at once: the commands so far, then the newest frame (if any), in ``generation``."""

    commands: tuple[Command, ...]
    frame: PendingFrame | None
    generation: int


class WorkQueue:
    """The hand-over between callbacks and the worker. ``lock`` (re-entrant) also guards what the callers share."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._commands: deque[Command] = deque()
        self._frame: PendingFrame | None = None
        self._generation = 0
        self._stopped = False

    def put_frame(self, frame: PendingFrame) -> bool:
        """Make ``frame`` the next to process; True when it replaced one the worker had not taken (a drop)."""
        with self.lock:
            dropped = self._frame is not None
            self._frame = frame
            self.lock.notify()
        return dropped

    def put(self, command: Command) -> None:
        """Queue ``command``; an init or a reset starts a new generation."""
        with self.lock:
            if not isinstance(command, ConfigCommand):
                self._generation += 1
            self._commands.append(command)
            self.lock.notify()

    def discard_frame(self) -> None:
        """Forget the frame not yet taken (the node stops processing, e.g. while inactive)."""
        with self.lock:
            self._frame = None

    def take(self) -> Work | None:
        """Block until there is work and take all of it; None once :meth:`stop` was called."""
        with self.lock:
            while not self._stopped and self._frame is None and not self._commands:
                self.lock.wait()
            if self._stopped:
                return None
            work = Work(tuple(self._commands), self._frame, self._generation)
            self._commands.clear()
            self._frame = None
            return work

    @property
    def stopped(self) -> bool:
        return self._stopped

    def is_current(self, generation: int) -> bool:
        """False when an init or reset was queued after work of ``generation`` was taken."""
        with self.lock:
            return generation == self._generation

    def stop(self) -> None:
        """Wake the worker for good; pending work is dropped."""
        with self.lock:
            self._stopped = True
            self._commands.clear()
            self._frame = None
            self.lock.notify_all()

    def restart(self) -> None:
        """Accept work again after :meth:`stop` (a new worker)."""
        with self.lock:
            self._stopped = False
