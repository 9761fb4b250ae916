"""Long-term test sequences from short ones: the target leaves the picture for a chosen time and comes back.

``make_longterm`` writes an OTB-layout folder (``img/0001.jpg ...``, ``groundtruth_rect.txt`` 1-based ``x,y,w,h``,
``nan,nan,nan,nan`` while the target is not visible) that :func:`ocean_ros.eval.sequences.open_sequence` reads back,
plus ``longterm.json`` with the plan: per output frame its source frame and window offset. Modes:

- ``pan``: a virtual camera window (``window`` x the frame's width and height; auto: 0.6, grown until the largest
  target side is at most :data:`FIT` of the window's, at most the whole frame) follows the target (its centre,
  smoothed over :data:`SMOOTH` frames, at the window centre, the window kept inside the frame). Around the absence
  it pans in a straight line at a constant speed, over :data:`RAMP_S` seconds, to a hold position where the target
  (a VOT polygon's bounds, plus :data:`HOLD_MARGIN` of the window) stays wholly outside the window for the whole
  absence (of the 4 directions, the one showing the least area off the frame, which is a fixed seeded texture),
  holds, and pans back over the same time to follow the target again with a shifted offset (:data:`RETURN_SHIFT`
  window sides on each axis, signs seeded), so the target re-enters elsewhere in the window. Offsets are whole
  pixels: a window frame is the source frame's pixels ``[x0, x0 + W) x [y0, y0 + H)``.
- ``occlude``: full-size frames; during the absence a patch covers the target grown by :data:`OCCLUDER_MARGIN` of
  its sides + 4 px (a VOT polygon's bounds rather than its box): the same-sized region of the same frame at a fixed
  place that never meets the grown target during the absence (seeded choice on a grid), else the frame's mean colour
  with seeded noise. The ground truth is the source's, NaN during the absence.

Visibility (pan): the ground truth of a frame is the target's box in window coordinates cut to the window when at
least :data:`VISIBLE` (half) of the box's area lies inside the window, NaN otherwise (and where the source has
none). The absence lasts ``A = round(absence_s * fps)`` frames from ``start`` (fps from ``--fps``, else the
sequence's ``source.json`` or ``longterm.json``: ``fps``, or 30 / ``frame_stride``; else 30); the pan ramps are
placed so that the first absent frame is ``start`` and the first visible one ``start + A``, as closely as whole-pixel
steps allow (a frame off at most; the achieved span is checked, to within the ramp, and recorded). ``start``
defaults to a third of the sequence and must leave :data:`LEAD` frames before the ramp; :data:`TAIL` frames must
follow the return. A sequence too short for that fails unless ``extend``: its frames then play back and forth,
turning in the middle of the absence.
Everything random is seeded by the sequence name and the options (no global RNG): equal inputs, equal bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ocean_ros.eval.sequences import Sequence

MODES = ("pan", "occlude")
DEFAULT_FPS = 30.0
DEFAULT_WINDOW = 0.6
FIT = 0.8
MIN_WINDOW = 64
VISIBLE = 0.5
RAMP_S = 0.5
LEAD = 20
TAIL = 30
SMOOTH = 9
RETURN_SHIFT = 0.2
HOLD_MARGIN = 0.05
OCCLUDER_MARGIN = 0.3
PLAN_FILE = "longterm.json"


class LongTermError(ValueError):
    """Options that cannot work for a sequence; the message says why and what to change."""


@dataclass(frozen=True)
class LongTermOptions:
    """How to make a long-term version (see the module docstring)."""

    mode: str = "pan"
    absence_s: float = 1.0
    fps: float | None = None
    start: int | None = None  # first absent frame, 0-based
    window: float | None = None  # pan: fraction of the frame side; None: auto
    extend: bool = False
    image_format: str = "jpg"
    jpeg_quality: int = 95


@dataclass(frozen=True)
class LongTermPlan:
    """Output frame ``k`` is source frame ``source_frames[k]`` seen through the window at ``offsets[k]`` (x0, y0),
    whole pixels (0 in occlude mode). ``ground_truth`` is 0-based xywh in output pixels, NaN while absent;
    ``occluders`` the pasted patch boxes (NaN rows where none), ``patch_origin`` where the patch is cut from."""

    name: str
    mode: str
    fps: float
    size: tuple[int, int]
    source_frames: np.ndarray
    offsets: np.ndarray
    ground_truth: np.ndarray
    absence: tuple[int, int]  # first, last absent frame (inclusive)
    requested: int
    ramp: int
    occluders: np.ndarray | None = None
    patch_origin: tuple[int, int] | None = None
    seed: int = 0
    notes: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The JSON plan (``ground_truth`` is in the text file, 1-based there)."""
        return {
            "name": self.name, "mode": self.mode, "fps": self.fps, "width": self.size[0], "height": self.size[1],
            "frames": len(self.source_frames), "absence": list(self.absence),
            "absent_frames": self.absence[1] - self.absence[0] + 1, "requested_absent_frames": self.requested,
            "ramp_frames": self.ramp, "seed": self.seed, "patch_origin": self.patch_origin, **self.notes,
            "source_frames": self.source_frames.tolist(), "offsets": self.offsets.tolist(),
        }


def output_name(sequence_name: str, options: LongTermOptions) -> str:
    """``<seq>-<mode>-<absence>s``, e.g. ``Crossing-pan-1s``."""
    return f"{sequence_name}-{options.mode}-{options.absence_s:g}s"


def sequence_fps(sequence: Sequence) -> float | None:
    """The frame rate stated beside the sequence (``source.json`` or ``longterm.json``: ``fps``, or 30 /
    ``frame_stride``), None when nothing says."""
    folder = Path(sequence.frames[0]).parent
    for path in (folder / "source.json", folder.parent / "source.json", folder.parent / PLAN_FILE):
        if path.is_file():
            info = json.loads(path.read_text())
            if info.get("fps"):
                return float(info["fps"])
            if info.get("frame_stride"):
                return DEFAULT_FPS / float(info["frame_stride"])
    return None


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _timeline(n: int, length: int, turn: int) -> np.ndarray:
    """Source frame of each output frame: forward to ``turn``, then back and forth over ``[0, n)``."""
    k = np.arange(length)
    if length <= n:
        return k
    period = 2 * (n - 1)
    back = np.mod(turn - (k - turn), period)
    back = np.where(back > n - 1, period - back, back)
    return np.where(k <= turn, k, back)


def _centres(gt: np.ndarray) -> np.ndarray:
    """Box centres, missing ones taken from the nearest annotated frame, smoothed over SMOOTH frames."""
    centres = gt[:, :2] + gt[:, 2:] / 2
    known = np.flatnonzero(np.all(np.isfinite(centres), axis=1))
    index = known[np.clip(np.searchsorted(known, np.arange(len(gt))), 0, len(known) - 1)]
    centres = centres[index]
    pad = SMOOTH // 2
    padded = np.concatenate([np.repeat(centres[:1], pad, 0), centres, np.repeat(centres[-1:], pad, 0)])
    kernel = np.ones(SMOOTH) / SMOOTH
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(2)], axis=1)


def visible_boxes(boxes: np.ndarray, offsets: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Source boxes seen through windows at ``offsets`` of ``size``: cut to the window where at least VISIBLE of
    the area is inside, NaN elsewhere."""
    shifted = np.array(boxes, dtype=np.float64)
    shifted[:, :2] -= offsets
    low = np.maximum(shifted[:, :2], 0.0)
    high = np.minimum(shifted[:, :2] + shifted[:, 2:], np.asarray(size, dtype=np.float64))
    cut = np.concatenate([low, np.maximum(high - low, 0.0)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (cut[:, 2] * cut[:, 3]) / (shifted[:, 2] * shifted[:, 3])
    cut[~(share >= VISIBLE)] = np.nan
    return cut


def _window_size(sequence: Sequence, gt: np.ndarray, frame: tuple[int, int], fraction: float | None
                 ) -> tuple[int, int]:
    largest = np.nanmax(gt[:, 2:], axis=0) / np.asarray(frame, dtype=np.float64)
    if fraction is None:
        fraction = min(1.0, max(DEFAULT_WINDOW, float(np.max(largest)) / FIT))
    elif not 0 < fraction <= 1:
        raise LongTermError(f"--window must be in (0, 1] (a fraction of the frame side), got {fraction:g}")
    elif np.max(largest) > FIT * fraction:
        raise LongTermError(
            f"{sequence.name}: the target (up to {np.nanmax(gt[:, 2]):.0f}x{np.nanmax(gt[:, 3]):.0f} px) is too "
            f"large for a window of {fraction:g} x the frame: its sides must stay within {FIT:g} of the window's; "
            "use a larger --window or leave it out (auto)")
    size = (int(round(fraction * frame[0])), int(round(fraction * frame[1])))
    if min(size) < MIN_WINDOW:
        raise LongTermError(f"{sequence.name}: frames of {frame[0]}x{frame[1]} px are too small for the virtual "
                            f"window ({size[0]}x{size[1]} px at {fraction:g}); it needs {MIN_WINDOW} px a side or more")
    return size


def _hold_offset(boxes: np.ndarray, follow: np.ndarray, size: tuple[int, int], frame: tuple[int, int]
                 ) -> tuple[np.ndarray, str]:
    """A window position keeping every box (plus a margin) wholly outside, the one showing least off-frame area."""
    margin = HOLD_MARGIN * np.asarray(size)
    lo, hi = np.nanmin(boxes[:, :2], axis=0) - margin, np.nanmax(boxes[:, :2] + boxes[:, 2:], axis=0) + margin
    base = follow.astype(np.float64)
    options = []
    for axis, sign, label in ((0, 1, "right"), (0, -1, "left"), (1, 1, "down"), (1, -1, "up")):
        place = base.copy()
        place[axis] = math.ceil(hi[axis]) if sign > 0 else math.floor(lo[axis]) - size[axis]
        inside = [max(0.0, min(place[a] + size[a], frame[a]) - max(place[a], 0.0)) for a in (0, 1)]
        outside = 1.0 - inside[0] * inside[1] / (size[0] * size[1])
        options.append((round(outside, 6), float(np.abs(place - base).sum()), label, place))
    _, _, label, place = min(options, key=lambda o: o[:3])
    return place.astype(np.int64), label


def _pan_path(follow: np.ndarray, back: np.ndarray, hold: np.ndarray, out_at: int, in_at: int, ramp: int
              ) -> np.ndarray:
    """Window offsets: follow, a linear ramp of ``ramp`` frames from ``out_at`` to the hold, hold, a ramp from
    ``in_at`` back, then ``back`` (the shifted follow path)."""
    k = np.arange(len(follow))[:, None]
    alpha = np.clip((k - out_at + 1) / ramp, 0.0, 1.0)
    beta = np.clip((k - in_at + 1) / ramp, 0.0, 1.0)
    away = follow + alpha * (hold - follow)
    path = np.where(k < in_at, away, hold + beta * (back - hold))
    return np.round(path).astype(np.int64)


def _absent(boxes: np.ndarray, offsets: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.isnan(visible_boxes(boxes, offsets, size)[:, 0])


def _place_ramps(boxes: np.ndarray, follow: np.ndarray, back: np.ndarray, hold: np.ndarray, start: int,
                 count: int, ramp: int, size: tuple[int, int]) -> tuple[int, int]:
    """Ramp starts giving the first absent frame ``start`` and the first visible one ``start + count`` (the
    closest achievable when the exact frame is not)."""

    def first(mask: np.ndarray, since: int) -> int:
        hits = np.flatnonzero(mask[since:])
        return since + int(hits[0]) if hits.size else len(mask)

    far = len(follow) + ramp
    out_at = min(range(start - ramp, start + 1), key=lambda p: (abs(first(
        _absent(boxes, _pan_path(follow, back, hold, p, far, ramp), size), p) - start), -p))
    gone = first(_absent(boxes, _pan_path(follow, back, hold, out_at, far, ramp), size), out_at)
    back_at = start + count
    in_at = min(range(back_at - ramp, back_at + 1), key=lambda q: (abs(first(
        ~_absent(boxes, _pan_path(follow, back, hold, out_at, q, ramp), size), gone) - back_at), -q))
    return out_at, in_at


def plan_longterm(sequence: Sequence, options: LongTermOptions, name: str | None = None) -> LongTermPlan:
    """Where every output frame comes from and its ground truth (no image is written; one frame is read for the
    size). Errors (:class:`LongTermError`) say what does not fit."""
    if options.mode not in MODES:
        raise LongTermError(f"unknown mode {options.mode!r}; choose one of {', '.join(MODES)}")
    if not options.absence_s > 0:
        raise LongTermError(f"the absence must be positive seconds, got {options.absence_s:g}")
    fps = options.fps or sequence_fps(sequence) or DEFAULT_FPS
    if not fps > 0:
        raise LongTermError(f"--fps must be positive, got {fps:g}")
    name = name or output_name(sequence.name, options)
    n, gt = len(sequence), np.asarray(sequence.ground_truth, dtype=np.float64)
    if n < 2 or not np.all(np.isfinite(gt[0])):
        raise LongTermError(f"{sequence.name}: needs at least 2 frames and a ground-truth box on the first")
    count = int(round(options.absence_s * fps))
    ramp = max(2, int(round(RAMP_S * fps))) if options.mode == "pan" else 0
    start = options.start if options.start is not None else max(n // 3, LEAD + ramp)
    needed = start + count + TAIL
    if count < 1 or count >= n:
        raise LongTermError(f"{sequence.name}: an absence of {options.absence_s:g} s at {fps:g} fps is {count} "
                            f"frames; it must be at least 1 and shorter than the sequence ({n} frames)")
    if start < LEAD + ramp:
        raise LongTermError(f"{sequence.name}: the absence cannot start at frame {start}: {LEAD} tracked frames"
                            f"{f' and a {ramp}-frame pan' if ramp else ''} must come first (start >= {LEAD + ramp})")
    if needed > n and not options.extend:
        raise LongTermError(
            f"{sequence.name}: an absence of {count} frames ({options.absence_s:g} s at {fps:g} fps) from frame "
            f"{start} needs {needed} frames ({TAIL} after the return) but the sequence has {n}; use a shorter "
            "--absence-s, an earlier --start, or --extend (play the frames back and forth)")
    length = max(n, needed)
    source = _timeline(n, length, min(start + count // 2, n - 1))
    boxes = gt[source]
    frame_size = sequence.image_size()
    seed = _seed(sequence.name, options.mode, count, start, options.window, length)
    rng = np.random.default_rng(seed)
    notes: dict[str, object] = {"source": sequence.name, "source_frame_count": n, "extended": length > n}
    extent = _extent(sequence)[source]
    if options.mode == "occlude":
        return _plan_occlusion(name, fps, frame_size, source, boxes, extent, start, count, rng, seed, notes)
    size = _window_size(sequence, gt, frame_size, options.window)
    half = np.asarray(size) / 2
    limit = np.maximum(np.asarray(frame_size) - size, 0)
    centres = _centres(boxes)
    follow = np.clip(np.round(centres - half), 0, limit)
    shift = np.where(rng.random(2) < 0.5, -1.0, 1.0) * RETURN_SHIFT * np.asarray(size)
    back = np.clip(np.round(centres - half - shift), 0, limit)
    span = slice(max(start - ramp, 0), min(start + count + ramp, length))
    hold, direction = _hold_offset(extent[span], follow[start], size, frame_size)
    out_at, in_at = _place_ramps(boxes, follow, back, hold, start, count, ramp, size)
    offsets = _pan_path(follow, back, hold, out_at, in_at, ramp)
    truth = visible_boxes(boxes, offsets, size)
    notes.update({"window": list(size), "direction": direction, "return_shift": shift.tolist(),
                  "ramp_out_start": out_at, "ramp_in_start": in_at})
    absence = _check_absence(name, truth, start, count, ramp)
    return LongTermPlan(name, "pan", fps, size, source, offsets, truth, absence, count, ramp, seed=seed,
                        notes=notes)


def _check_absence(name: str, truth: np.ndarray, start: int, count: int, ramp: int) -> tuple[int, int]:
    """The one span of frames the generation made absent (beyond the source's own); an error when the target
    shows during it or the span misses the request by more than the ramp."""
    absent = np.isnan(truth[:, 0])
    lo, hi = max(start - ramp - 1, 0), min(start + count + ramp + 1, len(truth))
    spans = np.flatnonzero(np.diff(np.concatenate([[0], absent[lo:hi].astype(np.int8), [0]])))
    if len(spans) != 2 or abs((spans[1] - spans[0]) - count) > ramp:
        raise LongTermError(f"{name}: the target could not be kept out of view for frames {start}-{start + count - 1}"
                            " (it moves back into the hold window); try another --start or a smaller --window")
    return int(lo + spans[0]), int(lo + spans[1] - 1)


def _extent(sequence: Sequence) -> np.ndarray:
    """Per source frame, the xywh box around everything annotated: the polygon's bounds where there is one
    (VOT's area-preserving box is smaller than the target), else the box."""
    boxes = np.array(sequence.ground_truth, dtype=np.float64)
    if sequence.polygons is not None:
        points = np.asarray(sequence.polygons, dtype=np.float64).reshape(len(boxes), 4, 2)
        ok = np.all(np.isfinite(points.reshape(len(boxes), 8)), axis=1)
        low, high = points[ok].min(axis=1), points[ok].max(axis=1)
        boxes[ok] = np.concatenate([low, high - low], axis=1)
    return boxes


def _grown(boxes: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """Boxes grown by OCCLUDER_MARGIN of their sides + 4 px, rounded outwards to whole pixels, cut to the frame."""
    grow = OCCLUDER_MARGIN * boxes[:, 2:] + 4
    corners = np.concatenate([np.floor(boxes[:, :2] - grow), np.ceil(boxes[:, :2] + boxes[:, 2:] + grow)], 1)
    corners = np.clip(corners, 0, np.tile(frame, 2))
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], 1)


def _plan_occlusion(name: str, fps: float, frame: tuple[int, int], source: np.ndarray, boxes: np.ndarray,
                    extent: np.ndarray, start: int, count: int, rng: np.random.Generator, seed: int,
                    notes: dict[str, object]) -> LongTermPlan:
    truth = boxes.copy()
    truth[start:start + count] = np.nan
    occluders = np.full_like(boxes, np.nan)
    covered = _grown(extent[start:start + count], frame)
    occluders[start:start + count] = covered
    width, height = np.nanmax(covered[:, 2:], axis=0)
    origin = None
    xs = np.linspace(0, max(frame[0] - width, 0), 8).round()
    ys = np.linspace(0, max(frame[1] - height, 0), 6).round()
    for i in rng.permutation(len(xs) * len(ys)):
        x, y = xs[i % len(xs)], ys[i // len(xs)]
        apart = ((x >= covered[:, 0] + covered[:, 2]) | (x + width <= covered[:, 0])
                 | (y >= covered[:, 1] + covered[:, 3]) | (y + height <= covered[:, 1]))
        if x + width <= frame[0] and y + height <= frame[1] and apart.all():
            origin = (int(x), int(y))
            break
    notes["patch"] = "cut" if origin else "noise"
    return LongTermPlan(name, "occlude", fps, frame, source, np.zeros((len(source), 2), dtype=np.int64), truth,
                        (start, start + count - 1), count, 0, occluders, origin, seed, notes)


# --- images ---------------------------------------------------------------------------------------------------------
def _texture(frame: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A fixed smooth texture around the frame's mean colour: what the virtual camera sees off the frame."""
    height, width = frame.shape[0] + 2 * size[1], frame.shape[1] + 2 * size[0]
    coarse = rng.normal(0.0, 18.0, (max(height // 24, 2), max(width // 24, 2))).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)[:, :, None]
    fine = rng.normal(0.0, 3.0, (height, width, 3)).astype(np.float32)
    mean = frame.reshape(-1, 3).mean(axis=0).astype(np.float32)
    return np.clip(mean + smooth + fine, 0, 255).astype(np.uint8)


def window_image(frame: np.ndarray, texture: np.ndarray, offset: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The ``size`` window of ``frame`` at ``offset`` (x0, y0); where it leaves the frame, the texture (which
    extends the frame by one window on every side, repeating beyond)."""
    x0, y0 = int(offset[0]), int(offset[1])
    ys = (np.arange(size[1]) + y0 + size[1]) % texture.shape[0]
    xs = (np.arange(size[0]) + x0 + size[0]) % texture.shape[1]
    out = texture[ys][:, xs].copy()
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + size[0], frame.shape[1]), min(y0 + size[1], frame.shape[0])
    if fx0 < fx1 and fy0 < fy1:
        out[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    return out


def _occlude(frame: np.ndarray, box: np.ndarray, origin: tuple[int, int] | None, rng: np.random.Generator
             ) -> np.ndarray:
    x, y, w, h = (int(v) for v in box)
    out = frame.copy()
    if w <= 0 or h <= 0:
        return out
    if origin is not None:
        out[y:y + h, x:x + w] = frame[origin[1]:origin[1] + h, origin[0]:origin[0] + w]
    else:
        mean = frame.reshape(-1, 3).mean(axis=0)
        out[y:y + h, x:x + w] = np.clip(mean + rng.normal(0.0, 12.0, (h, w, 3)), 0, 255).astype(np.uint8)
    return out


def write_plan(sequence: Sequence, plan: LongTermPlan, folder: Path, options: LongTermOptions) -> Path:
    """Write the plan's frames, ``groundtruth_rect.txt`` (1-based, ``nan`` rows while absent) and
    ``longterm.json`` into ``folder`` (created; frame files of an earlier run there are replaced)."""
    if options.image_format not in ("jpg", "png"):
        raise LongTermError(f"image format must be jpg or png, got {options.image_format!r}")
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    for old in images.iterdir():
        old.unlink()
    rng = np.random.default_rng(plan.seed + 1)
    texture = None
    params = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality] if options.image_format == "jpg" else []
    for k, index in enumerate(plan.source_frames):
        frame = sequence.read(int(index))
        if plan.mode == "pan":
            texture = _texture(frame, plan.size, rng) if texture is None else texture
            image = window_image(frame, texture, plan.offsets[k], plan.size)
        elif plan.occluders is not None and np.all(np.isfinite(plan.occluders[k])):
            image = _occlude(frame, plan.occluders[k], plan.patch_origin, rng)
        else:
            image = frame
        path = images / f"{k + 1:04d}.{options.image_format}"
        if not cv2.imwrite(str(path), image, params):
            raise OSError(f"cannot write {path}")
    lines = ["nan,nan,nan,nan" if np.isnan(b[0]) else f"{b[0] + 1:.4f},{b[1] + 1:.4f},{b[2]:.4f},{b[3]:.4f}"
             for b in plan.ground_truth]
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    (folder / PLAN_FILE).write_text(json.dumps(plan.as_dict(), indent=1) + "\n")
    return folder


def make_longterm(sequence: Sequence, out: Path, options: LongTermOptions) -> LongTermPlan:
    """Plan and write the long-term version of ``sequence`` into ``out/<name>`` (see :func:`output_name`)."""
    plan = plan_longterm(sequence, options)
    write_plan(sequence, plan, Path(out) / plan.name, options)
    return plan
