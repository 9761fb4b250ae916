"""Per-frame region comparisons: box IoU (optionally bounded by the image), centre errors, polygon overlap.

Boxes are ``[N, 4]`` xywh arrays (pixels); polygons ``[N, 8]`` (x1, y1, ..., x4, y4). A NaN prediction (no box
for that frame) gives NaN here; the scoring layer decides what a missing box counts as.
"""

from __future__ import annotations

import numpy as np


def _as_boxes(values: np.ndarray) -> np.ndarray:
    return np.array(values, dtype=np.float64).reshape(-1, 4)


def clip_to_bound(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes cut to the image ``[0, width] x [0, height]`` (x, y clamped first, then w, h to what is left)."""
    out = _as_boxes(boxes)
    out[:, 0] = np.clip(out[:, 0], 0, width)
    out[:, 1] = np.clip(out[:, 1], 0, height)
    out[:, 2] = np.clip(out[:, 2], 0, width - out[:, 0])
    out[:, 3] = np.clip(out[:, 3], 0, height - out[:, 1])
    return out


def box_iou(pred: np.ndarray, gt: np.ndarray, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Intersection over union of each pair of xywh rows, in [0, 1]; NaN where either box is NaN.

    ``bound`` = (width, height) first cuts both boxes to the image (GOT-10k's rule). Degenerate pairs (zero
    union) give 0.
    """
    a, b = _as_boxes(pred), _as_boxes(gt)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    if bound is not None:
        a, b = clip_to_bound(a, *bound), clip_to_bound(b, *bound)
    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    iou = np.clip(iou, 0.0, 1.0)
    missing = np.any(np.isnan(a), axis=1) | np.any(np.isnan(b), axis=1)
    return np.where(missing, np.nan, iou)


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """``[N, 2]`` centres (x + w/2, y + h/2)."""
    b = _as_boxes(boxes)
    return b[:, :2] + b[:, 2:] / 2


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance between box centres, pixels; NaN where either box is NaN."""
    d = box_centers(pred) - box_centers(gt)
    return np.hypot(d[:, 0], d[:, 1])


def normalized_center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre distance with x divided by the ground-truth width and y by its height (unitless; LaSOT/TrackingNet).

    Infinite where the ground truth has no area, NaN where either box is NaN.
    """
    g = _as_boxes(gt)
    d = box_centers(pred) - box_centers(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = d / g[:, 2:]
        err = np.hypot(scaled[:, 0], scaled[:, 1])
    degenerate = np.any(g[:, 2:] <= 0, axis=1) & ~np.any(np.isnan(d), axis=1)
    return np.where(degenerate, np.inf, err)


# --- polygons (VOT) ---------------------------------------------------------------------------------------------
def _clip_polygon(points: list[tuple[float, float]], x0: float, y0: float, x1: float, y1: float
                  ) -> list[tuple[float, float]]:
    """Part of a polygon inside the axis-aligned rectangle [x0, x1] x [y0, y1] (clipping one edge at a time)."""
    edges = (
        (lambda p: p[0] >= x0, lambda p, q: (x0, p[1] + (q[1] - p[1]) * (x0 - p[0]) / (q[0] - p[0]))),
        (lambda p: p[0] <= x1, lambda p, q: (x1, p[1] + (q[1] - p[1]) * (x1 - p[0]) / (q[0] - p[0]))),
        (lambda p: p[1] >= y0, lambda p, q: (p[0] + (q[0] - p[0]) * (y0 - p[1]) / (q[1] - p[1]), y0)),
        (lambda p: p[1] <= y1, lambda p, q: (p[0] + (q[0] - p[0]) * (y1 - p[1]) / (q[1] - p[1]), y1)),
    )
    for inside, cross in edges:
        if not points:
            break
        kept: list[tuple[float, float]] = []
        previous = points[-1]
        for current in points:
            if inside(current):
                if not inside(previous):
                    kept.append(cross(previous, current))
                kept.append(current)
            elif inside(previous):
                kept.append(cross(previous, current))
            previous = current
        points = kept
    return points


def _area(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def polygon_box_overlap(polygon: np.ndarray, box: np.ndarray, bound: tuple[float, float] | None = None) -> float:
    """IoU of a ground-truth polygon (8 values) and a predicted xywh box, both cut to the image when ``bound``.

    The polygon may be any simple quadrilateral; the box is the clip region, so the result is exact. NaN when
    either is NaN (no region).
    """
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1)
    x, y, w, h = np.asarray(box, dtype=np.float64).reshape(4)
    if np.any(np.isnan(poly)) or np.isnan([x, y, w, h]).any():
        return float("nan")
    points = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly), 2)]
    bx0, by0, bx1, by1 = x, y, x + max(w, 0.0), y + max(h, 0.0)
    if bound is not None:
        width, height = bound
        points = _clip_polygon(points, 0.0, 0.0, width, height)
        bx0, by0 = max(bx0, 0.0), max(by0, 0.0)
        bx1, by1 = min(bx1, width), min(by1, height)
    area_box = max(bx1 - bx0, 0.0) * max(by1 - by0, 0.0)
    area_poly = _area(points)
    inter = _area(_clip_polygon(points, bx0, by0, bx1, by1)) if area_box > 0 else 0.0
    union = area_poly + area_box - inter
    return float(np.clip(inter / union, 0.0, 1.0)) if union > 0 else 0.0
