"""Pinhole camera model for followers: pixel offsets to angular errors and back.

Pure Python (no ROS). Angles follow REP-103 seen from the camera body (x forward, y left, z up):
azimuth > 0 means the target is left of the optical axis, elevation > 0 means above it. Pixel coordinates
are those of ``vision_msgs`` boxes: u to the right, v down, in pixels. Lens distortion is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CameraModel"]


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics ``fx, fy`` (pixels), principal point ``cx, cy`` (pixels) and image size (pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0 and math.isfinite(self.fx) and math.isfinite(self.fy)):
            raise ValueError(f"focal lengths must be positive and finite, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not (math.isfinite(self.cx) and math.isfinite(self.cy)):
            raise ValueError(f"principal point must be finite, got ({self.cx}, {self.cy})")

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov: float) -> CameraModel:
        """Ideal camera from the horizontal field of view (rad, in (0, pi)): square pixels, centred axis."""
        if not 0 < horizontal_fov < math.pi:
            raise ValueError(f"horizontal field of view must be in (0, pi) rad, got {horizontal_fov}")
        focal = (width / 2) / math.tan(horizontal_fov / 2)
        return cls(focal, focal, width / 2, height / 2, int(width), int(height))

    @property
    def horizontal_fov(self) -> float:
        """Horizontal field of view, rad."""
        return math.atan(self.cx / self.fx) + math.atan((self.width - self.cx) / self.fx)

    def angles(self, u: float, v: float) -> tuple[float, float]:
        """``(azimuth, elevation)`` in rad of the pixel ``(u, v)``: atan(offset / focal length) per axis."""
        return math.atan((self.cx - u) / self.fx), math.atan((self.cy - v) / self.fy)

    def project(self, azimuth: float, elevation: float) -> tuple[float, float]:
        """Pixel ``(u, v)`` of a direction given as ``(azimuth, elevation)`` in rad (inverse of ``angles``)."""
        return self.cx - self.fx * math.tan(azimuth), self.cy - self.fy * math.tan(elevation)
