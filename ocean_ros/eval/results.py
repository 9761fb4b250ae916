"""Per-sequence tracking results in memory and in the community's file layouts.

A result file holds one line per frame: ``x,y,w,h`` in the *same* convention as the dataset's ground-truth file
(1-based for OTB, UAV123, DTB70 and LaSOT, 0-based for VOT and GOT-10k), so other toolkits score it against the
raw annotation files. Supervised (VOT) runs write VOT's markers instead of a box: ``1`` initialisation, ``2``
failure, ``0`` skipped frame. Layouts inside a results folder, all accepted when reading:

- one-pass (OTB toolkit style): ``<seq>.txt``, times in ``times/<seq>_time.txt``
- GOT-10k: ``<seq>/<seq>_001.txt``, times in ``<seq>/<seq>_time.txt``
- VOT: ``baseline/<seq>/<seq>_001.txt``, times in ``baseline/<seq>/<seq>_time.txt``

The tracker's per-frame confidence (its published score, 0..1; ``nan`` where it gave none, e.g. VOT marker
frames) goes beside them, one value a line: ``confidence/<seq>_confidence.txt``, ``<seq>/<seq>_confidence.txt``
or ``baseline/<seq>/<seq>_001_confidence.value`` (VOT's long-term name). Whether the tracker reported the target
on each frame (``1``: a box was published, state TRACKING; ``0``: it declared the target lost, the node's detection
array is empty) goes the same way, one ``1``/``0`` a line: ``reported/<seq>_reported.txt``,
``<seq>/<seq>_reported.txt`` or ``baseline/<seq>/<seq>_001_reported.txt``; results without it read as None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocean_ros.core.geometry import polygon_to_xywh
from ocean_ros.eval.sequences import AnnotationError, parse_rows

BOX = -1
SKIPPED = 0
INIT = 1
FAILURE = 2


@dataclass
class Trajectory:
    """A tracker's output on one sequence.

    ``boxes``: ``[N, 4]`` xywh, 0-based pixels, NaN where the tracker gave no box. ``markers``: per-frame VOT
    codes for supervised runs (``BOX`` where a box was reported), None for one-pass runs. ``times``: seconds per
    frame (NaN where unknown), ``scores``: the tracker's confidence per frame (NaN where none). ``reported``:
    bool per frame, True where the tracker claimed the target (state TRACKING), None when not recorded.
    """

    boxes: np.ndarray
    markers: np.ndarray | None = None
    times: np.ndarray | None = None
    scores: np.ndarray | None = None
    reported: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def supervised(self) -> bool:
        return self.markers is not None


def _format_box(box: np.ndarray, offset: float) -> str:
    x, y, w, h = (float(v) for v in box)
    return f"{x + offset:.4f},{y + offset:.4f},{w:.4f},{h:.4f}"


def write_trajectory(path: Path, trajectory: Trajectory, offset: float = 0.0) -> None:
    """Write boxes (``offset`` added to x, y) or, for supervised runs, VOT markers; NaN boxes as ``nan`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, box in enumerate(trajectory.boxes):
        marker = BOX if trajectory.markers is None else int(trajectory.markers[i])
        lines.append(_format_box(box, offset) if marker == BOX else str(marker))
    path.write_text("\n".join(lines) + "\n")


def write_times(path: Path, times: np.ndarray) -> None:
    """One time per line, seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t:.6f}\n" for t in np.asarray(times, dtype=np.float64)))


def write_confidence(path: Path, scores: np.ndarray) -> None:
    """One score per line (``nan`` where none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s:.6f}\n" for s in np.asarray(scores, dtype=np.float64)))


def write_reported(path: Path, reported: np.ndarray) -> None:
    """One flag per line: ``1`` where the tracker reported the target, ``0`` where it did not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("1\n" if flag else "0\n" for flag in np.asarray(reported, dtype=bool)))


def read_trajectory(path: Path, offset: float = 0.0) -> Trajectory:
    """Read a result file: rows of 4 values (box), 8 (polygon, converted to a box) or 1 (VOT marker).

    ``offset`` is subtracted from x, y. A file with any marker row is a supervised run.
    """
    rows = parse_rows(path.read_text(), path)
    boxes = np.full((len(rows), 4), np.nan)
    markers = np.full(len(rows), BOX, dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) == 1:
            if row[0] not in (SKIPPED, INIT, FAILURE):
                raise AnnotationError(f"{path}, row {i + 1}: marker {row[0]:g} is not 0, 1 or 2")
            markers[i] = int(row[0])
        elif len(row) == 4:
            boxes[i] = row
        elif len(row) == 8:
            boxes[i] = polygon_to_xywh(row) if np.all(np.isfinite(row)) else np.nan
        else:
            raise AnnotationError(f"{path}, row {i + 1}: {len(row)} values; expected 4 (x,y,w,h), 8 or 1 (marker)")
    boxes[:, :2] -= offset
    supervised = bool(np.any(markers != BOX))
    return Trajectory(boxes, markers if supervised else None)


def result_paths(folder: Path, name: str, layout: str) -> tuple[Path, Path]:
    """Where to write ``name``'s boxes and times for a dataset ``layout`` (see the module docstring)."""
    if layout == "GOT-10k":
        return folder / name / f"{name}_001.txt", folder / name / f"{name}_time.txt"
    if layout == "VOT-supervised":
        return folder / "baseline" / name / f"{name}_001.txt", folder / "baseline" / name / f"{name}_time.txt"
    return folder / f"{name}.txt", folder / "times" / f"{name}_time.txt"


_VOT_SIDE_SUFFIX = {"confidence": ".value"}  # VOT's long-term toolkit name for the confidence file


def side_path(folder: Path, name: str, layout: str, kind: str) -> Path:
    """Where a per-frame side file (``kind``: ``confidence`` or ``reported``) of ``name`` goes for ``layout``."""
    if layout == "GOT-10k":
        return folder / name / f"{name}_{kind}.txt"
    if layout == "VOT-supervised":
        return folder / "baseline" / name / f"{name}_001_{kind}{_VOT_SIDE_SUFFIX.get(kind, '.txt')}"
    return folder / kind / f"{name}_{kind}.txt"


def confidence_path(folder: Path, name: str, layout: str) -> Path:
    """Where to write ``name``'s per-frame confidence for a dataset ``layout`` (see the module docstring)."""
    return side_path(folder, name, layout, "confidence")


def reported_path(folder: Path, name: str, layout: str) -> Path:
    """Where to write ``name``'s per-frame reported flags for a dataset ``layout`` (see the module docstring)."""
    return side_path(folder, name, layout, "reported")


def find_side_file(folder: Path, name: str, kind: str) -> Path | None:
    """The ``kind`` side file of sequence ``name`` in any accepted layout (None if absent)."""
    for layout in ("one-pass", "GOT-10k", "VOT-supervised"):
        path = side_path(folder, name, layout, kind)
        if path.is_file():
            return path
    return None


def find_confidence(folder: Path, name: str) -> Path | None:
    """The confidence file of sequence ``name`` in any accepted layout (None if absent)."""
    return find_side_file(folder, name, "confidence")


def _read_column(path: Path) -> np.ndarray:
    return np.asarray([r[0] for r in parse_rows(path.read_text(), path) if r], dtype=np.float64)


def find_result(folder: Path, name: str) -> tuple[Path, Path | None] | None:
    """The result file of sequence ``name`` in any accepted layout and its times file (None if absent)."""
    candidates = [
        (folder / f"{name}.txt", folder / "times" / f"{name}_time.txt"),
        (folder / name / f"{name}_001.txt", folder / name / f"{name}_time.txt"),
        (folder / "baseline" / name / f"{name}_001.txt", folder / "baseline" / name / f"{name}_time.txt"),
        (folder / name / f"{name}.txt", None),
    ]
    for boxes, times in candidates:
        if boxes.is_file():
            return boxes, times if times is not None and times.is_file() else None
    return None


def load_result(folder: Path, name: str, offset: float = 0.0) -> Trajectory:
    """Read ``name``'s result (and times, confidence and reported flags, when present and as long) from a results
    folder; an error lists what was tried."""
    found = find_result(folder, name)
    if found is None:
        raise AnnotationError(
            f"no result for sequence {name} in {folder} (looked for {name}.txt, {name}/{name}_001.txt, "
            f"baseline/{name}/{name}_001.txt)"
        )
    trajectory = read_trajectory(found[0], offset)
    if found[1] is not None:
        times = _read_column(found[1])
        if len(times) == len(trajectory):
            trajectory.times = times
    scores_file = find_confidence(folder, name)
    if scores_file is not None:
        scores = _read_column(scores_file)
        if len(scores) == len(trajectory):
            trajectory.scores = scores
    reported_file = find_side_file(folder, name, "reported")
    if reported_file is not None:
        flags = _read_column(reported_file)
        if len(flags) == len(trajectory):
            trajectory.reported = flags > 0.5
    return trajectory
