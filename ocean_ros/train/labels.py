"""Training targets on the score grid (training-spec §1.4), for any stride.

Cell (i, j) sits on search pixel (origin + stride·j, origin + stride·i), the grid the tracker decodes with.
Classification positives are the cells within L1 distance ``radius`` (cells) of the cell nearest the *true*
box centre (TracKit takes the centre from the requested shift with a literal stride 8; at stride 16 that misses
the centre by up to 30 px, rounding the true centre bounds the miss by half a cell). Regression targets are
the distances l, t, r, b from each cell to the box sides in search pixels; a cell is a regression positive
when it lies strictly inside the box.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ocean_ros.core.geometry import grid_coords

__all__ = ["Targets", "grid_coords", "make_targets"]


class Targets(NamedTuple):
    """Per-pair targets: cls [N,N] (1 positive, 0 negative), reg [4,N,N] px, reg_weight [N,N] (0/1)."""

    cls: np.ndarray
    reg: np.ndarray
    reg_weight: np.ndarray


def make_targets(box_xywh: np.ndarray, n: int, origin: float, stride: int, radius: int,
                 negative: bool = False) -> Targets:
    """Targets for a search crop whose target box is ``box_xywh`` (search px, corner coordinates).

    A negative pair (search from another video) has no positive and no regression target.
    """
    coords = grid_coords(n, origin, stride)
    x, y, w, h = (float(v) for v in box_xywh)
    x1, y1, x2, y2 = x, y, x + w, y + h
    gx = coords[None, :]
    gy = coords[:, None]
    left = np.broadcast_to(gx - x1, (n, n))
    top = np.broadcast_to(gy - y1, (n, n))
    right = np.broadcast_to(x2 - gx, (n, n))
    bottom = np.broadcast_to(y2 - gy, (n, n))
    reg = np.stack([left, top, right, bottom]).astype(np.float32)
    cls = np.zeros((n, n), dtype=np.float32)
    if negative:
        return Targets(cls, reg, np.zeros((n, n), dtype=np.float32))
    inside = (np.minimum(np.minimum(left, top), np.minimum(right, bottom)) > 0).astype(np.float32)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    cj = int(np.floor((cx - origin) / stride + 0.5))
    ci = int(np.floor((cy - origin) / stride + 0.5))
    ii, jj = np.mgrid[0:n, 0:n]
    cls[(np.abs(ii - ci) + np.abs(jj - cj)) <= radius] = 1.0
    return Targets(cls, reg, inside)
