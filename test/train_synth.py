"""Synthetic training data for the ``ocean_ros.train`` tests: scenes with a known rectangle, tiny crop packs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

PACK_SIDE = 381  # side of a crop-pack image (the shared pack's crop size)
TARGET = (255, 255, 255)  # BGR of the target rectangle
MARKER = (0, 200, 0)  # BGR of the small marker inside the rectangle's left part


def textured_background(height: int, width: int, rng: np.random.Generator, low: int = 40, high: int = 80
                        ) -> np.ndarray:
    """Smooth-ish random texture, every channel within [low, high) (far from the target's white)."""
    coarse = rng.integers(low, high, size=(max(height // 8, 2), max(width // 8, 2), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
    noise = rng.integers(-6, 7, size=image.shape)
    return np.clip(image.astype(np.int64) + noise, low, high - 1).astype(np.uint8)


def draw_target(image: np.ndarray, box: Sequence[int], marker: bool = True) -> np.ndarray:
    """Fill the integer box ``x, y, w, h`` (pixels x..x+w-1, y..y+h-1) with the target colour.

    The marker (a green square in the left quarter, vertically centred) shows whether a crop was mirrored.
    """
    x, y, w, h = (int(v) for v in box)
    image[y:y + h, x:x + w] = TARGET
    if marker:
        side = max(min(w, h) // 4, 2)
        my = y + h // 2 - side // 2
        image[my:my + side, x + 2:x + 2 + side] = MARKER
    return image


def scene(height: int, width: int, box: Sequence[int], seed: int, marker: bool = True) -> np.ndarray:
    """A textured image holding the target rectangle ``box``."""
    rng = np.random.default_rng(seed)
    return draw_target(textured_background(height, width, rng), box, marker)


def write_pack(root: Path, videos: dict[str, list[Sequence[int]]], statics: Sequence[Sequence[int]] = (),
               seed: int = 0) -> Path:
    """A crop pack in the shared layout: ``index.csv`` + one folder per video (``boxes.csv`` + JPEG crops).

    ``videos`` maps a folder name to the integer boxes of its frames (one 381×381 image each; frame numbers
    0, 3, 6, ...); ``statics`` become a ``coco`` folder of one-image sequences.
    """
    root.mkdir(parents=True, exist_ok=True)
    rows = ["folder,source,frames,fps_class"]
    n = 0
    for name, boxes in videos.items():
        _write_folder(root / name, boxes, seed + 1000 * n, frame_step=3)
        rows.append(f"{name},synth,{len(boxes)},30")
        n += 1
    if statics:
        _write_folder(root / "coco", statics, seed + 1000 * n, frame_step=0)
        rows.append(f"coco,coco,{len(statics)},static")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root


def _write_folder(folder: Path, boxes: Sequence[Sequence[int]], seed: int, frame_step: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file,frame,x,y,w,h"]
    for i, box in enumerate(boxes):
        name = f"{i:06d}.jpg"
        image = scene(PACK_SIDE, PACK_SIDE, box, seed + i)
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        x, y, w, h = box
        lines.append(f"{name},{i * frame_step},{x:.2f},{y:.2f},{w:.2f},{h:.2f}")
    (folder / "boxes.csv").write_text("\n".join(lines) + "\n")


def centred_box(w: int, h: int, dx: int = 0, dy: int = 0) -> tuple[int, int, int, int]:
    """Integer box of size w×h whose centre is near the pack's crop centre (190.5), moved by (dx, dy)."""
    return (round(190.5 - w / 2) + dx, round(190.5 - h / 2) + dy, w, h)


def target_extent(crop: np.ndarray, threshold: float = 160.0) -> tuple[float, float, float, float] | None:
    """Box x, y, w, h (corner coordinates) of the target's pixels in a crop: pixels whose every channel is
    above ``threshold`` or which are marker-coloured; None when none."""
    img = np.asarray(crop, dtype=np.float32)
    white = img.min(axis=2) > threshold
    green = (img[:, :, 1] > 130) & (img[:, :, 0] < 100) & (img[:, :, 2] < 100)
    mask = white | green
    if not mask.any():
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])


def marker_side(crop: np.ndarray, box: Sequence[float]) -> str:
    """'left' or 'right': where the green marker sits relative to the box centre."""
    img = np.asarray(crop, dtype=np.float32)
    green = (img[:, :, 1] > 130) & (img[:, :, 0] < 100) & (img[:, :, 2] < 100)
    cols = np.flatnonzero(green.any(axis=0))
    assert len(cols), "no marker pixel in the crop"
    return "left" if cols.mean() < box[0] + box[2] / 2 else "right"
