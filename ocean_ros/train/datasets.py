"""Training sources: the shared crop pack, any sequence layout ``ocean-eval`` reads, and COCO-style json.

Every reader returns :class:`TrainSequence` objects: frame files with one ``x, y, w, h`` box each (0-based
pixels of that file). Crop-pack files are already target-centred crops; full frames are cropped on the fly
by the same augmentation code (it only needs an image and a box), so all sources share one pipeline.
Malformed annotations raise :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "TrainSequence", "read_coco", "read_crop_pack", "read_sequences", "read_source"]

CROP_PACK_SIDE = 381  # side of the shared pack's crops (px)


class DataError(ValueError):
    """A training source cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class TrainSequence:
    """One video (or one static image) of a training source.

    ``boxes`` [N, 4] xywh in each frame file's own pixels; ``frame_ids`` [N] the original frame numbers, used
    for the template/search frame range; ``static`` marks single-image sequences (template and search are
    then drawn from the same image). ``category`` and ``image`` let the pair sampler draw distractor
    negatives: other objects of the same kind, and other objects of the same frame.
    """

    name: str
    frames: tuple[Path, ...]
    boxes: np.ndarray
    frame_ids: np.ndarray
    static: bool = False
    category: str = ""  # object class (COCO name) when the source names one; "" unknown
    image: str = ""  # the source image a static crop was cut from ("" unknown): crops sharing it share a frame

    def __len__(self) -> int:
        return len(self.frames)


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{path}:{line}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: column {column!r} is not finite: {text!r}")
    return value


def _check_box(box: tuple[float, float, float, float], path: Path, line: int, side: float | None) -> None:
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise DataError(f"{path}:{line}: box has a non-positive size w={w}, h={h}")
    if side is not None and (x + w <= 0 or y + h <= 0 or x >= side or y >= side):
        raise DataError(f"{path}:{line}: box {box} lies outside the {side:g}x{side:g} crop")


def read_box_csv(path: Path, crop_side: float | None = CROP_PACK_SIDE) -> list[dict[str, object]]:
    """Rows of a crop-pack ``boxes.csv`` (``file,frame,x,y,w,h[,...]``) with checked numbers."""
    if not path.is_file():
        raise DataError(f"{path}: box file not found")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty box file (no header)") from None
        need = ["file", "frame", "x", "y", "w", "h"]
        if header[:6] != need:
            raise DataError(f"{path}:1: header must start with {','.join(need)}, got {','.join(header)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 6:
                raise DataError(f"{path}:{line}: expected at least 6 columns, got {len(row)}")
            box = tuple(_number(row[i], path, line, need[i]) for i in range(2, 6))
            _check_box(box, path, line, crop_side)  # type: ignore[arg-type]
            frame = _number(row[1], path, line, "frame")
            extra = dict(zip(header[6:], (c.strip() for c in row[6:]), strict=False))
            rows.append({"file": row[0], "frame": int(frame), "box": box, "line": line,
                         "category": extra.get("category", ""), "image": extra.get("image_id", "")})
    if not rows:
        raise DataError(f"{path}: no boxes")
    return rows


def _folder_sequences(folder: Path, static: bool) -> list[TrainSequence]:
    rows = read_box_csv(folder / "boxes.csv")
    for row in rows:
        if not (folder / str(row["file"])).is_file():
            raise DataError(f"{folder / 'boxes.csv'}:{row['line']}: image {row['file']} not found")
    if static:
        return [
            TrainSequence(f"{folder.name}/{row['file']}", (folder / str(row["file"]),),
                          np.array([row["box"]], dtype=np.float64), np.array([0]), static=True,
                          category=str(row["category"]), image=str(row["image"]))
            for row in rows
        ]
    return [TrainSequence(
        folder.name,
        tuple(folder / str(r["file"]) for r in rows),
        np.array([r["box"] for r in rows], dtype=np.float64),
        np.array([r["frame"] for r in rows], dtype=np.int64),
    )]


def read_crop_pack(root: str | Path, exclude: tuple[str, ...] = ()) -> list[TrainSequence]:
    """The shared crop pack: one sequence per video folder; every ``coco`` crop its own static sequence.

    Folders are those of ``index.csv`` (``folder,source,frames,fps_class``; static rows are single images).
    """
    root = Path(root)
    index = root / "index.csv"
    if not index.is_file():
        raise DataError(f"{index}: crop-pack index not found (is {root} a training crop pack?)")
    sequences: list[TrainSequence] = []
    with index.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"folder", "fps_class"} <= set(reader.fieldnames):
            raise DataError(f"{index}:1: header must name folder and fps_class")
        for line, row in enumerate(reader, start=2):
            name = (row.get("folder") or "").strip()
            if not name:
                raise DataError(f"{index}:{line}: empty folder name")
            if name in exclude:
                continue
            folder = root / name
            if not folder.is_dir():
                raise DataError(f"{index}:{line}: folder {name} not found")
            sequences += _folder_sequences(folder, static=(row.get("fps_class") or "").strip() == "static")
    if not sequences:
        raise DataError(f"{root}: the crop pack holds no usable sequence")
    return sequences


def read_sequences(root: str | Path, exclude: tuple[str, ...] = ()) -> list[TrainSequence]:
    """Full-frame videos in any layout ``ocean-eval`` reads (GOT-10k train, LaSOT, OTB, VOT, UAV123, ...).

    Frames whose target is absent or whose box is missing or empty are left out.
    """
    from ocean_ros.eval.datasets import open_dataset

    dataset = open_dataset(root)
    sequences = []
    for seq in dataset.sequences:
        if seq.name in exclude:
            continue
        gt = np.asarray(seq.ground_truth, dtype=np.float64)
        keep = np.asarray(seq.visible, dtype=bool) & np.all(np.isfinite(gt), axis=1)
        keep &= (gt[:, 2] > 0) & (gt[:, 3] > 0)
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            continue
        sequences.append(TrainSequence(seq.name, tuple(seq.frames[i] for i in idx), gt[idx], idx.astype(np.int64)))
    if not sequences:
        raise DataError(f"{root}: no sequence with a usable box")
    return sequences


def read_coco(root: str | Path, annotations: str, min_size: float = 16.0) -> list[TrainSequence]:
    """COCO-style detection json: every non-crowd box of at least ``min_size`` px becomes a static pair source.

    ``annotations`` is the json path relative to ``root``; images are looked up under ``root`` by file name
    (directly or in an ``images/`` folder).
    """
    root = Path(root)
    path = root / annotations
    if not path.is_file():
        raise DataError(f"{path}: COCO annotation file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid json ({exc})") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(f"{path}: expected a COCO json with 'images' and 'annotations'")
    files = {img["id"]: img["file_name"] for img in data["images"]}
    categories = {c.get("id"): str(c.get("name", c.get("id"))) for c in data.get("categories", [])}
    sequences = []
    for n, ann in enumerate(data["annotations"]):
        if ann.get("iscrowd", 0):
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(f"{path}: annotation #{n} (id {ann.get('id')}) has no 4-value bbox")
        box = tuple(float(v) for v in bbox)
        if not all(math.isfinite(v) for v in box):
            raise DataError(f"{path}: annotation #{n} (id {ann.get('id')}) has a non-finite bbox {bbox}")
        if box[2] < min_size or box[3] < min_size:
            continue
        name = files.get(ann.get("image_id"))
        if name is None:
            raise DataError(f"{path}: annotation #{n} names unknown image id {ann.get('image_id')}")
        image = root / name if (root / name).is_file() else root / "images" / name
        sequences.append(TrainSequence(f"coco/{ann.get('id', n)}", (image,), np.array([box]), np.array([0]), True,
                                       categories.get(ann.get("category_id"), ""), str(ann.get("image_id"))))
    if not sequences:
        raise DataError(f"{path}: no usable box")
    return sequences


def read_source(path: Path, kind: str, exclude: tuple[str, ...] = (), annotations: str = "") -> list[TrainSequence]:
    """Dispatch on a source's ``kind`` (crop_pack | sequences | coco)."""
    if not path.exists():
        raise DataError(f"training source not found: {path}")
    if kind == "crop_pack":
        return read_crop_pack(path, exclude)
    if kind == "sequences":
        return read_sequences(path, exclude)
    if kind == "coco":
        return read_coco(path, annotations)
    raise DataError(f"{path}: unknown source kind {kind!r} (crop_pack, sequences or coco)")
