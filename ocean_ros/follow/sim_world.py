"""The virtual world of ``pan_tilt_sim``: a target path, pan-tilt joints, a stand-in tracker, a rendered view.

No ROS here (numpy and cv2 only). Angles are REP-103 as in :mod:`ocean_ros.follow.camera`: azimuth/pan > 0 to
the left, elevation/tilt > 0 up, rad. The model is separable: the target's direction relative to the camera
is ``(azimuth - pan, elevation - tilt)``, projected through the pinhole camera; that is exact for pan alone
and a good approximation near the image centre otherwise.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from .camera import CameraModel
from .target import Observation

__all__ = [
    "PATHS", "TargetPath", "Joint", "StandInTracker", "World", "find_background", "generated_texture", "observe",
]

PATHS = ("static", "sine", "lissajous")


@dataclass(frozen=True)
class TargetPath:
    """Where the target is at time t: around ``(azimuth, elevation)`` (rad) with ``amplitude`` (rad), ``period`` (s).

    ``static``: fixed; ``sine``: horizontal sine; ``lissajous``: a figure eight (horizontal amplitude, half
    of it vertically at twice the frequency).
    """

    kind: str = "static"
    azimuth: float = 0.0
    elevation: float = 0.0
    amplitude: float = 0.0
    period: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in PATHS:
            raise ValueError(f"target path must be one of {PATHS}, got {self.kind!r}")
        if not self.period > 0:
            raise ValueError(f"path period must be > 0 s, got {self.period}")

    def at(self, t: float) -> tuple[float, float]:
        """``(azimuth, elevation)`` of the target at time ``t`` (s), rad."""
        if self.kind == "static":
            return self.azimuth, self.elevation
        phase = 2 * math.pi * t / self.period
        if self.kind == "sine":
            return self.azimuth + self.amplitude * math.sin(phase), self.elevation
        return (self.azimuth + self.amplitude * math.sin(phase),
                self.elevation + 0.5 * self.amplitude * math.sin(2 * phase))


@dataclass
class Joint:
    """One simulated joint: position (rad), limits (rad), speed limit (rad/s), last applied velocity (rad/s)."""

    position: float = 0.0
    lower: float = -math.pi
    upper: float = math.pi
    max_velocity: float = 3.0
    velocity: float = 0.0

    def step_velocity(self, command: float, dt: float) -> None:
        """Integrate a velocity command (rad/s) over ``dt`` (s); stops at the limits."""
        velocity = min(max(command, -self.max_velocity), self.max_velocity) if math.isfinite(command) else 0.0
        position = min(max(self.position + velocity * dt, self.lower), self.upper)
        self.velocity = (position - self.position) / dt if dt > 0 else 0.0
        self.position = position

    def step_position(self, command: float, dt: float) -> None:
        """Move towards a position command (rad) at up to ``max_velocity`` for ``dt`` (s)."""
        if not math.isfinite(command):
            self.velocity = 0.0
            return
        target = min(max(command, self.lower), self.upper)
        step = min(max(target - self.position, -self.max_velocity * dt), self.max_velocity * dt)
        self.velocity = step / dt if dt > 0 else 0.0
        self.position += step


def observe(
    camera: CameraModel, relative: tuple[float, float], size_px: float, visible: bool = True, score: float = 1.0
) -> Observation | None:
    """The exact box of a target at ``relative`` (azimuth, elevation) rad, ``size_px`` wide; None when out of view."""
    if not (visible and abs(relative[0]) < math.pi / 2 and abs(relative[1]) < math.pi / 2):
        return None
    u, v = camera.project(*relative)
    if not (0 <= u < camera.width and 0 <= v < camera.height):
        return None
    return Observation(u, v, size_px, size_px, score)


class StandInTracker:
    """Detections derived from the true target position, with latency (s), pixel noise and random dropouts.

    ``capture`` is called once per camera frame; ``release`` returns what is due at a time: pairs of
    ``(capture time, Observation or None)``; None means the target is not in view (the tracker reports LOST).
    A dropped frame yields nothing at all.
    """

    def __init__(
        self,
        camera: CameraModel,
        latency_s: float = 0.0,
        noise_px: float = 0.0,
        dropout_probability: float = 0.0,
        score: float = 0.9,
        seed: int = 0,
    ) -> None:
        self.camera = camera
        self.latency_s = latency_s
        self.noise_px = noise_px
        self.dropout_probability = dropout_probability
        self.score = score
        self._rng = random.Random(seed)
        self._queue: deque[tuple[float, float, Observation | None]] = deque()

    def capture(self, t: float, relative: tuple[float, float], size_px: float, visible: bool = True) -> None:
        """Take a frame at time ``t`` (s) with the target at ``relative`` (azimuth, elevation) rad, ``size_px`` wide."""
        if self.dropout_probability > 0 and self._rng.random() < self.dropout_probability:
            return
        observation = observe(self.camera, relative, size_px, visible, self.score)
        if observation is not None and self.noise_px > 0:
            observation = replace(observation, u=observation.u + self._rng.gauss(0.0, self.noise_px),
                                  v=observation.v + self._rng.gauss(0.0, self.noise_px))
        self._queue.append((t + self.latency_s, t, observation))

    def release(self, t: float) -> list[tuple[float, Observation | None]]:
        """Outputs whose latency has passed at time ``t`` (s), oldest first."""
        due = []
        while self._queue and self._queue[0][0] <= t + 1e-9:
            _, captured, observation = self._queue.popleft()
            due.append((captured, observation))
        return due


def generated_texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic BGR texture with structure at several scales, for when no real image is available."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, size=(max(height // 64, 2), max(width // 64, 2), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(-25, 25, size=(height, width, 1), dtype=np.int16)
    image = np.clip(image.astype(np.int16) + fine, 0, 255).astype(np.uint8)
    for x in range(0, width, 80):
        cv2.line(image, (x, 0), (x, height - 1), (30, 30, 30), 1)
    for y in range(0, height, 80):
        cv2.line(image, (0, y), (width - 1, y), (30, 30, 30), 1)
    return image


def find_background(data_root: str | None) -> Path | None:
    """The first frame of the first sequence under ``<data_root>/sequences/*/`` (img/ or color/), if any."""
    if not data_root:
        return None
    sequences = Path(data_root) / "sequences"
    if not sequences.is_dir():
        return None
    for sequence in sorted(p for p in sequences.iterdir() if p.is_dir()):
        for folder in (sequence / "img", sequence / "color"):
            if folder.is_dir():
                frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
                if frames:
                    return frames[0]
    return None


class World:
    """Renders the camera's view: a window over a large background image, plus the target drawn as a disc.

    The background is scaled so that one radian spans ``fx`` pixels and the whole pan/tilt range stays
    covered (its border is replicated beyond that).
    """

    def __init__(
        self,
        camera: CameraModel,
        pan_range: tuple[float, float],
        tilt_range: tuple[float, float],
        background: np.ndarray | None = None,
    ) -> None:
        self.camera = camera
        span_x = (pan_range[1] - pan_range[0]) * camera.fx + camera.width
        span_y = (tilt_range[1] - tilt_range[0]) * camera.fy + camera.height
        need_w, need_h = int(min(span_x, 4096)) + 2, int(min(span_y, 4096)) + 2
        if background is None:
            background = generated_texture(need_w, need_h)
        scale = max(need_w / background.shape[1], need_h / background.shape[0])
        size = (max(int(background.shape[1] * scale), need_w), max(int(background.shape[0] * scale), need_h))
        self.image = cv2.resize(background, size, interpolation=cv2.INTER_LINEAR)
        # world pixel of the direction (pan, tilt) = (0, 0): the middle of the covered range
        self._origin = (
            self.image.shape[1] / 2 + (pan_range[0] + pan_range[1]) / 2 * camera.fx,
            self.image.shape[0] / 2 + (tilt_range[0] + tilt_range[1]) / 2 * camera.fy,
        )

    def render(self, pan: float, tilt: float, target: tuple[float, float] | None, size_px: float) -> np.ndarray:
        """The BGR view for joint angles ``pan, tilt`` (rad), with the target disc at pixel ``target`` if given."""
        cam = self.camera
        centre = (self._origin[0] - pan * cam.fx, self._origin[1] - tilt * cam.fy)
        radius = max(int(round(size_px / 2)), 2)
        view = cv2.getRectSubPix(self.image, (cam.width, cam.height), centre)
        if target is not None and (
            -radius < target[0] < cam.width + radius and -radius < target[1] < cam.height + radius
        ):
            u, v = int(round(target[0])), int(round(target[1]))
            cv2.circle(view, (u, v), radius, (0, 0, 230), -1, cv2.LINE_AA)
            cv2.circle(view, (u, v), max(radius * 2 // 3, 1), (255, 255, 255), max(radius // 5, 1), cv2.LINE_AA)
            cv2.circle(view, (u, v), max(radius // 4, 1), (20, 20, 20), -1, cv2.LINE_AA)
        return view
