"""Benchmark folders as users have them: the supported layouts, and the reader of dataset folders.

Layouts (a sequence folder, or a dataset folder holding many):
- ``OTB`` (also DTB70): ``<seq>/img/*.jpg`` + ``groundtruth_rect.txt`` (1-based ``x,y,w,h``; comma, tab or space);
  several targets as ``groundtruth_rect.1.txt``, ``groundtruth_rect.2.txt`` -> sequences ``<seq>-1``, ``<seq>-2``.
- ``VOT``: ``<seq>/color/*.jpg`` (or images beside) + ``groundtruth.txt`` (4-value rectangles or 8-value polygons,
  0-based); a dataset folder may hold ``list.txt``.
- ``UAV123``: ``data_seq/UAV123/<folder>/*.jpg`` + ``anno/UAV123/<seq>.txt`` (1-based, NaN rows where the target is
  absent); split sequences (``bird1_2``) take their frame range from :data:`UAV123_RANGES`.
- ``GOT-10k``: ``<split>/list.txt``, ``<seq>/*.jpg`` + ``groundtruth.txt`` (0-based) + ``absence.label``,
  ``cover.label``, ``meta_info.ini``.
- ``LaSOT``: ``[<class>/]<class>-<n>/img/*.jpg`` + ``groundtruth.txt`` (1-based) + ``full_occlusion.txt``,
  ``out_of_view.txt``.

Single-sequence folders are read by :mod:`ocean_ros.eval.sequences` (imported from there, never the other way);
this module adds dataset folders: lists, class folders, UAV123's split annotations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ocean_ros.eval.sequences import (
    LOOKED_FOR,
    ONE_BASED,
    AnnotationError,
    Sequence,
    frames_for,
    list_images,
    natural_key,
    read_boxes,
    read_sequence_folder,
    sequence_layout,
)

LAYOUTS = ("OTB", "DTB70", "VOT", "UAV123", "GOT-10k", "LaSOT")

# Frame ranges (first, last; 1-based image numbers) of UAV123's split sequences, from the benchmark's sequence
# configuration: several annotated sequences share one image folder (``bird1_1`` .. ``bird1_3`` in ``bird1/``).
UAV123_RANGES: dict[str, tuple[int, int]] = {
    "bird1_1": (1, 253), "bird1_2": (775, 1477), "bird1_3": (1573, 2437), "car1_1": (1, 751),
    "car1_2": (751, 1627), "car1_3": (1627, 2629), "car6_1": (1, 487), "car6_2": (487, 1807),
    "car6_3": (1807, 2953), "car6_4": (2953, 3925), "car6_5": (3925, 4861), "car8_1": (1, 1357),
    "car8_2": (1357, 2575), "car16_1": (1, 415), "car16_2": (415, 1993), "group1_1": (1, 1333),
    "group1_2": (1333, 2515), "group1_3": (2515, 3925), "group1_4": (3925, 4873), "group2_1": (1, 907),
    "group2_2": (907, 1771), "group2_3": (1771, 2683), "group3_1": (1, 1567), "group3_2": (1567, 2827),
    "group3_3": (2827, 4369), "group3_4": (4369, 5527), "person2_1": (1, 1189), "person2_2": (1189, 2623),
    "person4_1": (1, 1501), "person4_2": (1501, 2743), "person5_1": (1, 877), "person5_2": (877, 2101),
    "person7_1": (1, 1249), "person7_2": (1249, 2065), "person8_1": (1, 1075), "person8_2": (1075, 1525),
    "person12_1": (1, 601), "person12_2": (601, 1621), "person14_1": (1, 847), "person14_2": (847, 1813),
    "person14_3": (1813, 2923), "person17_1": (1, 1501), "person17_2": (1501, 2347), "person19_1": (1, 1243),
    "person19_2": (1243, 2791), "person19_3": (2791, 4357), "truck4_1": (1, 577), "truck4_2": (577, 1261),
    "uav1_1": (1, 1555), "uav1_2": (1555, 2377), "uav1_3": (2473, 3469),
}

_UAV_SPLIT = re.compile(r"^(.+)_(\d+)$")


@dataclass(frozen=True)
class Dataset:
    """Sequences read from one folder, in the dataset's order."""

    name: str
    layout: str
    root: Path
    sequences: tuple[Sequence, ...]

    def __len__(self) -> int:
        return len(self.sequences)

    def select(self, names: list[str] | None) -> Dataset:
        """Only the sequences named (in the given order); an error lists unknown names."""
        if not names:
            return self
        by_name = {s.name: s for s in self.sequences}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise AnnotationError(
                f"{self.root}: no sequence {', '.join(unknown)}; it has {', '.join(list(by_name)[:20])}"
                + (" ..." if len(by_name) > 20 else "")
            )
        return Dataset(self.name, self.layout, self.root, tuple(by_name[n] for n in names))


# --- dataset folders --------------------------------------------------------------------------------------------
def _read_uav(root: Path, subset: str | None) -> Dataset:
    subsets = sorted(p.name for p in (root / "anno").iterdir() if p.is_dir() and any(p.glob("*.txt")))
    if not subsets:
        raise AnnotationError(f"{root}/anno has no subset folder with annotation files (e.g. anno/UAV123/*.txt)")
    subset = subset or ("UAV123" if "UAV123" in subsets else subsets[0])
    if subset not in subsets:
        raise AnnotationError(f"{root}: no annotation subset {subset!r}; found {', '.join(subsets)}")
    sequences = []
    for anno in sorted((root / "anno" / subset).glob("*.txt"), key=natural_key):
        name = anno.stem
        span = UAV123_RANGES.get(name) if subset == "UAV123" else None
        split = _UAV_SPLIT.match(name)
        folder_names = [split.group(1)] if span is not None and split else [name] + ([split.group(1)] if split else [])
        candidates = [root / "data_seq" / s / f for f in folder_names for s in dict.fromkeys((subset, "UAV123"))]
        image_dir = next((c for c in candidates if c.is_dir()), None)
        if image_dir is None:
            raise AnnotationError(f"{anno}: no image folder; looked in {', '.join(map(str, candidates))}")
        split = split if image_dir.name != name else None
        boxes, _ = read_boxes(anno, ONE_BASED["UAV123"])
        images = list_images(image_dir)
        if span is not None:
            by_number = {int(m.group(1)): p for p in images if (m := re.search(r"(\d+)", p.stem))}
            missing = [n for n in range(span[0], span[1] + 1) if n not in by_number]
            if missing:
                raise AnnotationError(f"{image_dir}: frames {missing[0]}..{missing[-1]} of {name} are missing")
            if len(boxes) != span[1] - span[0] + 1:
                raise AnnotationError(f"{anno}: {len(boxes)} rows for frames {span[0]}..{span[1]} of {image_dir.name}")
            frames = tuple(by_number[n] for n in range(span[0], span[1] + 1))
        else:
            if split and len(boxes) != len(images):
                raise AnnotationError(
                    f"{anno}: {len(boxes)} rows for {len(images)} images and no known frame range for the "
                    f"sub-sequence {name} of subset {subset}"
                )
            frames = frames_for(name, images, len(boxes), anno)
        sequences.append(Sequence(name, frames, boxes, "UAV123", 1.0))
    return Dataset(subset, "UAV123", root, tuple(sequences))


def _listed_names(root: Path) -> list[str] | None:
    listing = root / "list.txt"
    if not listing.is_file():
        return None
    return [line.strip() for line in listing.read_text().splitlines() if line.strip()]


def open_dataset(path: str | Path, layout: str | None = None, subset: str | None = None) -> Dataset:
    """Read a sequence folder or a dataset folder of any supported layout.

    ``layout`` only labels OTB-style folders as ``DTB70``; every other layout is detected. ``subset`` picks the
    UAV123 annotation subset (``UAV123``, ``UAV20L``, ...). Unknown layouts raise :class:`AnnotationError`
    listing what was looked for.
    """
    root = Path(path)
    if layout is not None and layout not in LAYOUTS:
        raise AnnotationError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise AnnotationError(f"{root} is not a folder")
    if (root / "anno").is_dir() and (root / "data_seq").is_dir():
        return _read_uav(root, subset)
    if sequence_layout(root) is not None:
        sequences = read_sequence_folder(root, layout)
        return Dataset(root.name, sequences[0].layout, root, tuple(sequences))

    listed = _listed_names(root)
    if listed is not None:
        missing = [n for n in listed if sequence_layout(root / n) is None]
        if missing:
            raise AnnotationError(
                f"{root}/list.txt names {len(missing)} folder(s) that are not sequences: {', '.join(missing[:5])}. "
                f"Looked for: {LOOKED_FOR}"
            )
        folders = [root / n for n in listed]
    else:
        children = sorted((p for p in root.iterdir() if p.is_dir()), key=natural_key)
        folders = [c for c in children if sequence_layout(c) is not None]
        if not folders:  # LaSOT keeps sequences in class folders
            folders = [g for c in children for g in sorted(c.iterdir(), key=natural_key) if sequence_layout(g)]
    if not folders:
        raise AnnotationError(f"{root} holds no sequence of a known layout. Looked for: {LOOKED_FOR}")
    sequences = [s for folder in folders for s in read_sequence_folder(folder, layout)]
    layouts = sorted({s.layout for s in sequences})
    return Dataset(root.name, layouts[0] if len(layouts) == 1 else "+".join(layouts), root, tuple(sequences))
