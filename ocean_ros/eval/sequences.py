"""One tracking sequence: its frames on disk and its ground truth, plus the parsers of annotation files.

Boxes are ``xywh`` in 0-based pixels everywhere in memory. Annotation files of benchmarks born in MATLAB (OTB,
UAV123, DTB70, LaSOT) are 1-based: their x, y lose 1 on reading (TracKit's convention, spec §5.1) and
:attr:`Sequence.annotation_offset` remembers it, so result files can be written back in the file's own
convention. VOT polygons become boxes by TracKit's area-preserving rule; rows without a target (NaN) stay NaN.

The readers of single-sequence folders live here too (:func:`open_sequence`, :func:`read_sequence_folder`);
:mod:`ocean_ros.eval.datasets` builds dataset folders on them and documents the layouts. This module imports
nothing from it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocean_ros.core.geometry import polygon_to_xywh

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_SEPARATORS = re.compile(r"[,;\t ]+")
_DIGITS = re.compile(r"(\d+)")


class AnnotationError(ValueError):
    """An annotation file or folder cannot be read; the message names the file and, for rows, the line."""


@dataclass(frozen=True)
class Sequence:
    """A sequence on disk: frame files in order and one ground-truth box per frame.

    ``ground_truth`` is ``[N, 4]`` xywh in 0-based pixels, a NaN row where the frame has no box.
    ``polygons`` is ``[N, 8]`` (0-based) when the file held VOT polygons, else None.
    ``visible`` is False where the dataset's labels say the target is absent (GOT-10k ``absence.label``,
    LaSOT ``full_occlusion``/``out_of_view``) or the box is missing. ``cover`` holds GOT-10k's visible-ratio
    labels (0 = invisible ... 8 = fully visible) where the dataset has them.
    """

    name: str
    frames: tuple[Path, ...]
    ground_truth: np.ndarray
    layout: str
    annotation_offset: float = 0.0
    polygons: np.ndarray | None = None
    visible: np.ndarray | None = None
    cover: np.ndarray | None = None
    resolution: tuple[int, int] | None = None  # (width, height) when the dataset states it

    def __post_init__(self) -> None:
        if self.visible is None:
            object.__setattr__(self, "visible", np.all(np.isfinite(self.ground_truth), axis=1))

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 BGR; an error naming the file if it cannot be decoded."""
        frame = cv2.imread(str(self.frames[index]), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"cannot decode frame {self.frames[index]}")
        return frame

    def iter_frames(self) -> Iterator[np.ndarray]:
        for index in range(len(self.frames)):
            yield self.read(index)

    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels: the stated resolution, else that of the first frame."""
        if self.resolution is not None:
            return self.resolution
        frame = self.read(0)
        return int(frame.shape[1]), int(frame.shape[0])

    def sliced(self, start: int, stop: int | None) -> Sequence:
        """Frames ``start`` .. ``stop - 1`` (Python slice rules) with their annotations, as a new sequence."""
        picked = slice(start, stop)
        frames = self.frames[picked]
        if not frames:
            raise ValueError(f"{self.name}: frame range {start}:{stop} selects no frame of {len(self)}")

        def cut(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[picked]

        return dataclasses.replace(
            self, frames=frames, ground_truth=self.ground_truth[picked], polygons=cut(self.polygons),
            visible=cut(self.visible), cover=cut(self.cover),
        )


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``img2.jpg`` before ``img10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(path.name)]


def list_images(folder: Path) -> tuple[Path, ...]:
    """Image files directly inside ``folder``, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return tuple(sorted(files, key=natural_key))


def parse_rows(text: str, source: str | Path = "<text>") -> list[list[float]]:
    """Rows of numbers separated by commas, tabs, semicolons or spaces; blank lines skipped.

    ``NaN`` is accepted. Raises :class:`AnnotationError` naming ``source`` and the line for anything else.
    """
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            rows.append([float(v) for v in _SEPARATORS.split(stripped) if v])
        except ValueError:
            raise AnnotationError(f"{source}, line {line_no}: not a row of numbers: {stripped[:80]!r}") from None
    return rows


def parse_boxes(text: str, source: str | Path = "<text>") -> tuple[np.ndarray, np.ndarray | None]:
    """Ground-truth rows of 4 (``x,y,w,h``) or 8 (polygon ``x1,y1,...,x4,y4``) values -> boxes, polygons.

    Returns ``([N, 4] xywh, [N, 8] polygons or None)`` with the values as written (no offset applied).
    Polygon rows become boxes by the area-preserving rule; a 4-value row in a polygon file becomes its
    rectangle's corners. Rows with any NaN become NaN boxes (target absent).
    """
    rows = parse_rows(text, source)
    lengths = {len(r) for r in rows}
    bad = lengths - {4, 8}
    if bad:
        line = next(i for i, r in enumerate(rows, 1) if len(r) in bad)
        raise AnnotationError(
            f"{source}: row {line} (non-blank) has {len(rows[line - 1])} values; expected 4 (x,y,w,h) or 8 (polygon)"
        )
    boxes = np.full((len(rows), 4), np.nan)
    polygons = np.full((len(rows), 8), np.nan) if 8 in lengths else None
    for i, row in enumerate(rows):
        values = np.asarray(row, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            continue
        if len(row) == 4:
            boxes[i] = values
            if polygons is not None:
                x, y, w, h = values
                polygons[i] = [x, y, x + w, y, x + w, y + h, x, y + h]
        else:
            boxes[i] = polygon_to_xywh(values)
            polygons[i] = values
    return boxes, polygons


def read_boxes(path: Path, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a ground-truth file; ``offset`` (1 for 1-based files) is subtracted from x, y (and polygon points)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not a text file") from None
    boxes, polygons = parse_boxes(text, path)
    if len(boxes) == 0:
        raise AnnotationError(f"{path}: no ground-truth rows")
    if offset:
        boxes[:, :2] -= offset
        if polygons is not None:
            polygons -= offset
    return boxes, polygons


def read_flags(path: Path, expected: int | None = None) -> np.ndarray:
    """Per-frame integer labels (one per line, or comma separated on one line, as LaSOT writes them)."""
    values = [v for row in parse_rows(path.read_text(), path) for v in row]
    flags = np.asarray(values, dtype=np.int64)
    if expected is not None and len(flags) != expected:
        raise AnnotationError(f"{path}: {len(flags)} labels for {expected} frames")
    return flags


# --- sequence folders of each layout (dataset folders holding many: ocean_ros.eval.datasets) -------------------
ONE_BASED = {"OTB": 1.0, "DTB70": 1.0, "UAV123": 1.0, "LaSOT": 1.0, "VOT": 0.0, "GOT-10k": 0.0}
LOOKED_FOR = (
    "OTB/DTB70: img/ + groundtruth_rect.txt (or groundtruth_rect.N.txt); "
    "VOT: color/ (or images) + groundtruth.txt; "
    "GOT-10k: images + groundtruth.txt + absence.label/cover.label/meta_info.ini, list.txt in the split folder; "
    "LaSOT: img/ + groundtruth.txt (+ full_occlusion.txt, out_of_view.txt), optionally under class folders; "
    "UAV123: anno/<subset>/<seq>.txt + data_seq/<subset>/<folder>/"
)

# OTB-100 sequences whose annotation covers only part of the image folder (first, last; 1-based).
OTB_RANGES: dict[str, tuple[int, int]] = {
    "david": (300, 770), "football1": (1, 74), "freeman3": (1, 460), "freeman4": (1, 283), "diving": (1, 215),
}

_OTB_GT = re.compile(r"^groundtruth_rect(?:\.(\d+))?\.txt$")


def frames_for(name: str, images: tuple[Path, ...], rows: int, source: Path,
               ranges: dict[str, tuple[int, int]] | None = None) -> tuple[Path, ...]:
    """The images an annotation of ``rows`` rows covers: a known range, else the first ``rows`` images."""
    if not images:
        raise AnnotationError(f"{source}: no images (looked for {', '.join(('.jpg', '.png', '.bmp'))})")
    span = (ranges or {}).get(name.lower())
    if span is not None and span[1] - span[0] + 1 == rows and len(images) >= span[1]:
        return images[span[0] - 1: span[1]]
    if rows > len(images):
        raise AnnotationError(f"{source}: {rows} ground-truth rows but only {len(images)} images")
    return images[:rows]


def _read_otb(folder: Path, layout: str) -> list[Sequence]:
    files = sorted((p for p in folder.iterdir() if _OTB_GT.match(p.name)), key=natural_key)
    images = list_images(folder / "img")
    sequences = []
    for gt_file in files:
        target = _OTB_GT.match(gt_file.name).group(1)
        name = folder.name if target is None else f"{folder.name}-{target}"
        boxes, _ = read_boxes(gt_file, ONE_BASED[layout])
        frames = frames_for(folder.name, images, len(boxes), gt_file, OTB_RANGES)
        sequences.append(Sequence(name, frames, boxes, layout, ONE_BASED[layout]))
    return sequences


def _read_vot(folder: Path, image_dir: Path) -> Sequence:
    gt_file = folder / "groundtruth.txt"
    boxes, polygons = read_boxes(gt_file)
    frames = frames_for(folder.name, list_images(image_dir), len(boxes), gt_file)
    return Sequence(folder.name, frames, boxes, "VOT", 0.0, polygons=polygons)


def _read_got10k(folder: Path) -> Sequence:
    gt_file = folder / "groundtruth.txt"
    boxes, _ = read_boxes(gt_file)
    images = list_images(folder)
    if not images:
        raise AnnotationError(f"{folder}: no images")
    if len(boxes) == 1 and len(images) > 1:
        # The test split publishes only the first box; the rest is scored by the benchmark's server.
        boxes = np.vstack([boxes, np.full((len(images) - 1, 4), np.nan)])
    frames = frames_for(folder.name, images, len(boxes), gt_file)
    n = len(frames)
    absence = read_flags(folder / "absence.label", n) if (folder / "absence.label").is_file() else None
    cover = read_flags(folder / "cover.label", n) if (folder / "cover.label").is_file() else None
    visible = np.all(np.isfinite(boxes), axis=1)
    if absence is not None:
        visible &= absence == 0
    return Sequence(folder.name, frames, boxes, "GOT-10k", 0.0, visible=visible, cover=cover,
                    resolution=_got10k_resolution(folder / "meta_info.ini"))


def _got10k_resolution(meta: Path) -> tuple[int, int] | None:
    """(width, height) from ``meta_info.ini``'s ``resolution: (W, H)`` line, if there is one."""
    if not meta.is_file():
        return None
    match = re.search(r"^\s*resolution\s*:\s*\(?\s*(\d+)\s*,\s*(\d+)", meta.read_text(errors="replace"), re.M)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _read_lasot(folder: Path) -> Sequence:
    gt_file = folder / "groundtruth.txt"
    boxes, _ = read_boxes(gt_file, ONE_BASED["LaSOT"])
    frames = frames_for(folder.name, list_images(folder / "img"), len(boxes), gt_file)
    visible = np.all(np.isfinite(boxes), axis=1)
    for label in ("full_occlusion.txt", "out_of_view.txt"):
        if (folder / label).is_file():
            visible &= read_flags(folder / label, len(frames)) == 0
    return Sequence(folder.name, frames, boxes, "LaSOT", 1.0, visible=visible)


def sequence_layout(folder: Path) -> str | None:
    """The layout name of a single-sequence folder, or None when it is not one."""
    if not folder.is_dir():
        return None
    has = {p.name for p in folder.iterdir()}
    if "img" in has and any(_OTB_GT.match(n) for n in has):
        return "OTB"
    if "img" in has and "groundtruth.txt" in has:
        return "LaSOT"
    if "groundtruth.txt" in has:
        if "color" in has:
            return "VOT"
        if has & {"absence.label", "cover.label", "meta_info.ini"}:
            return "GOT-10k"
        if list_images(folder):
            return "VOT"
    return None


def read_sequence_folder(folder: Path, layout: str | None = None) -> list[Sequence]:
    """The sequence(s) of one folder (several for multi-target OTB folders); an error lists the known layouts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder} is not a folder")
    found = sequence_layout(folder)
    if found is None:
        raise AnnotationError(f"{folder} is not a sequence folder of a known layout. Looked for: {LOOKED_FOR}")
    if found == "OTB":
        return _read_otb(folder, "DTB70" if layout == "DTB70" else "OTB")
    if found == "LaSOT":
        return [_read_lasot(folder)]
    if found == "GOT-10k":
        return [_read_got10k(folder)]
    image_dir = folder / "color" if (folder / "color").is_dir() else folder
    return [_read_vot(folder, image_dir)]


def open_sequence(folder: str | Path, target: int | None = None) -> Sequence:
    """Open one sequence folder of any supported layout (see :mod:`ocean_ros.eval.datasets`).

    OTB folders with several targets (``groundtruth_rect.1.txt``, ``.2.txt``) need ``target`` (1, 2, ...).
    """
    sequences = read_sequence_folder(Path(folder))
    if target is not None:
        wanted = [s for s in sequences if s.name.endswith(f"-{target}")]
        if not wanted:
            raise AnnotationError(f"{folder}: no target {target}; it has {', '.join(s.name for s in sequences)}")
        return wanted[0]
    if len(sequences) > 1:
        raise AnnotationError(
            f"{folder} holds {len(sequences)} targets ({', '.join(s.name for s in sequences)}); choose one with target="
        )
    return sequences[0]
