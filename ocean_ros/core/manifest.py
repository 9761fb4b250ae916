"""The ``manifest.json`` of an exported network folder: what the graphs are, how to feed them, where they came from.

An export folder holds one template graph (template crop → template features), one search graph per search size
(search crop + template features → maps), optionally the online branch's feature extractor and the online
classifier's torch weights, and this manifest. :func:`read_manifest` validates its structure;
:func:`check_against_config`, :func:`check_against_checkpoint` and :func:`check_graph_io` refuse a folder that does
not fit the tracker, the checkpoint or the runtime, with the reason. Files are checked against their sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "ExportManifestError",
    "GraphSpec",
    "Manifest",
    "TensorSpec",
    "check_against_checkpoint",
    "check_against_config",
    "check_graph_io",
    "read_manifest",
    "sha256_file",
    "write_manifest",
]

MANIFEST_FORMAT = "ocean_ros.export.v1"
MANIFEST_NAME = "manifest.json"
PRECISIONS = ("float32", "float16")
# What every graph is fed (the tracker's crops): NCHW, BGR, 0..255; the online graph takes ImageNet-normalised RGB.
SIAMESE_INPUT = {"layout": "NCHW", "channels": "BGR", "range": "0..255"}
ONLINE_INPUT = {"layout": "NCHW", "channels": "RGB", "range": "ImageNet mean/std normalised"}


class ExportManifestError(ValueError):
    """An export folder or its manifest is missing, malformed or does not fit; the message says why."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape (a str for a dynamic axis) and element type."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> TensorSpec:
        try:
            shape = tuple(v if isinstance(v, str) else int(v) for v in d["shape"])
            return cls(str(d["name"]), shape, str(d["dtype"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportManifestError(f"{where}: bad tensor entry {dict(d)!r} ({exc})") from None

    def describe(self) -> str:
        return f"{self.name} {list(self.shape)} {self.dtype}"


@dataclass(frozen=True)
class GraphSpec:
    """One graph file of the folder with its sha256 and interface."""

    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> GraphSpec:
        try:
            inputs = tuple(TensorSpec.from_dict(t, f"{where}.inputs") for t in d["inputs"])
            outputs = tuple(TensorSpec.from_dict(t, f"{where}.outputs") for t in d["outputs"])
            return cls(str(d["file"]), str(d["sha256"]), inputs, outputs)
        except (KeyError, TypeError) as exc:
            raise ExportManifestError(f"{where}: missing or malformed entry ({exc!r})") from None


@dataclass(frozen=True)
class SearchGraph:
    """The search graph of one search size and the score-grid geometry the tracker needs for it."""

    size: int
    score_size: int
    grid_origin: float
    graph: GraphSpec


@dataclass(frozen=True)
class OnlineGraph:
    """The online branch's feature extractor (dynamic batch up to ``max_batch``) and its classifier weights."""

    graph: GraphSpec
    sample_size: int
    max_batch: int
    classifier_file: str
    classifier_sha256: str
    classifier_dims: dict[str, int]


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest of an export folder (:func:`read_manifest`)."""

    folder: Path
    arch: str  # "ocean_lite" or "ocean_resnet50"
    net: dict[str, Any]  # the network's config (LiteNetConfig / OceanNetConfig as a dict)
    preset: str
    align: bool  # the search graphs output the object-aware map
    stride: int
    precision: str
    opset: int
    checkpoint_sha256: str
    checkpoint_name: str
    template: GraphSpec
    search: dict[int, SearchGraph]
    online: OnlineGraph | None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def search_sizes(self) -> tuple[int, ...]:
        """The search sizes with a graph, ascending."""
        return tuple(sorted(self.search))

    def path(self, spec: GraphSpec) -> Path:
        """Absolute path of a graph file of this folder."""
        return self.folder / spec.file


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def graph_entry(folder: Path, file: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> dict:
    """The manifest entry of a written graph file (with its sha256)."""
    return {
        "file": file,
        "sha256": sha256_file(folder / file),
        "inputs": [asdict(t) for t in inputs],
        "outputs": [asdict(t) for t in outputs],
    }


def write_manifest(folder: Path, content: Mapping[str, Any]) -> Path:
    """Write ``content`` (already in the manifest layout) as ``folder/manifest.json``."""
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, **content}, indent=2, sort_keys=False) + "\n")
    return path


def _require(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ExportManifestError(f"{where}: missing key {key!r}")
    value = d[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ExportManifestError(f"{where}: {key!r} has type {type(value).__name__}")
    return value


def _check_file(folder: Path, spec_file: str, sha256: str, where: str) -> None:
    path = folder / spec_file
    if not path.is_file():
        raise ExportManifestError(f"{where}: graph file {path} is missing")
    got = sha256_file(path)
    if got != sha256:
        raise ExportManifestError(
            f"{where}: {path} is corrupt or was replaced (sha256 {got[:12]}…, the manifest says {sha256[:12]}…); "
            "export the checkpoint again (ocean-export) or delete the folder to let the cache rebuild it"
        )


def read_manifest(folder: str | os.PathLike[str], verify_files: bool = True) -> Manifest:
    """Parse and validate ``folder/manifest.json``; with ``verify_files`` every file's sha256 is checked too.

    Raises :class:`ExportManifestError` naming what is missing or wrong.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ExportManifestError(f"export folder not found: {folder}")
    if not path.is_file():
        raise ExportManifestError(
            f"{folder} is not an export folder: no {MANIFEST_NAME} (create one with ocean-export)"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportManifestError(f"{path} is not readable JSON ({exc})") from None
    where = str(path)
    if not isinstance(raw, dict):
        raise ExportManifestError(f"{where}: expected an object, found {type(raw).__name__}")
    if raw.get("format") != MANIFEST_FORMAT:
        raise ExportManifestError(f"{where}: unsupported format {raw.get('format')!r} (expected {MANIFEST_FORMAT!r})")
    variant = _require(raw, "variant", dict, where)
    geometry = _require(raw, "geometry", dict, where)
    graphs = _require(raw, "graphs", dict, where)
    checkpoint = _require(raw, "checkpoint", dict, where)
    precision = _require(raw, "precision", str, where)
    if precision not in PRECISIONS:
        raise ExportManifestError(f"{where}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    template = GraphSpec.from_dict(_require(graphs, "template", dict, f"{where} graphs"), f"{where} graphs.template")
    search_raw = _require(graphs, "search", dict, f"{where} graphs")
    origins = _require(geometry, "search", dict, f"{where} geometry")
    search: dict[int, SearchGraph] = {}
    for key, entry in search_raw.items():
        try:
            size = int(key)
        except ValueError:
            raise ExportManifestError(f"{where}: search size {key!r} is not an integer") from None
        geo = origins.get(key)
        if not isinstance(geo, dict):
            raise ExportManifestError(f"{where}: no geometry for search size {size}")
        search[size] = SearchGraph(
            size,
            int(_require(geo, "score_size", int, f"{where} geometry.search.{key}")),
            float(_require(geo, "grid_origin", (int, float), f"{where} geometry.search.{key}")),
            GraphSpec.from_dict(entry, f"{where} graphs.search.{key}"),
        )
    if not search:
        raise ExportManifestError(f"{where}: no search graph")
    online = None
    online_raw = graphs.get("online")
    if online_raw is not None:
        ctx = f"{where} graphs.online"
        online = OnlineGraph(
            GraphSpec.from_dict(online_raw, ctx),
            int(_require(online_raw, "sample_size", int, ctx)),
            int(_require(online_raw, "max_batch", int, ctx)),
            str(_require(online_raw, "classifier_file", str, ctx)),
            str(_require(online_raw, "classifier_sha256", str, ctx)),
            {str(k): int(v) for k, v in _require(online_raw, "classifier_dims", dict, ctx).items()},
        )
    manifest = Manifest(
        folder=folder,
        arch=str(_require(variant, "arch", str, f"{where} variant")),
        net=dict(_require(raw, "net", dict, where)),
        preset=str(_require(raw, "preset", str, where)),
        align=bool(_require(variant, "align", bool, f"{where} variant")),
        stride=int(_require(geometry, "stride", int, f"{where} geometry")),
        precision=precision,
        opset=int(_require(raw, "opset", int, where)),
        checkpoint_sha256=str(_require(checkpoint, "sha256", str, f"{where} checkpoint")),
        checkpoint_name=str(checkpoint.get("name", "")),
        template=template,
        search=search,
        online=online,
        versions={str(k): str(v) for k, v in (raw.get("versions") or {}).items()},
    )
    if verify_files:
        _check_file(folder, template.file, template.sha256, where)
        for entry in search.values():
            _check_file(folder, entry.graph.file, entry.graph.sha256, where)
        if online is not None:
            _check_file(folder, online.graph.file, online.graph.sha256, where)
            _check_file(folder, online.classifier_file, online.classifier_sha256, where)
    return manifest


def check_against_checkpoint(manifest: Manifest, checkpoint: str | os.PathLike[str]) -> None:
    """Refuse a folder exported from another checkpoint than ``checkpoint`` (sha256 compared)."""
    got = sha256_file(checkpoint)
    if got != manifest.checkpoint_sha256:
        raise ExportManifestError(
            f"{manifest.folder} was exported from another checkpoint (sha256 {manifest.checkpoint_sha256[:12]}…, "
            f"{manifest.checkpoint_name or 'unnamed'}) than {checkpoint} (sha256 {got[:12]}…); export it again"
        )


def check_against_config(
    manifest: Manifest, *, search_sizes: Iterable[int], total_stride: int, align: bool, online: bool, half: bool
) -> None:
    """Refuse a folder whose graphs cannot serve a tracker configured so (the reason names the mismatch)."""
    where = str(manifest.folder)
    missing = sorted(set(search_sizes) - set(manifest.search))
    if missing:
        raise ExportManifestError(
            f"{where} has search graphs for {list(manifest.search_sizes)} but the preset also picks "
            f"{missing}; export with --search-sizes {' '.join(map(str, sorted(set(search_sizes))))}"
        )
    if manifest.stride != total_stride:
        raise ExportManifestError(
            f"{where}: the exported network has stride {manifest.stride}, the config total_stride {total_stride}"
        )
    if align and not manifest.align:
        raise ExportManifestError(
            f"{where}: the config fuses the object-aware head (align) but the graphs were exported without it; "
            "export with --align"
        )
    if online and manifest.online is None:
        raise ExportManifestError(
            f"{where}: the config turns the online branch on but the folder has no online feature graph (the "
            "checkpoint has no online classifier)"
        )
    want = "float16" if half else "float32"
    if manifest.precision != want:
        raise ExportManifestError(
            f"{where}: the graphs are {manifest.precision} but the config asks for {want} (half={half}); "
            f"export {'with' if half else 'without'} --half"
        )


def check_graph_io(
    path: Path, expected: GraphSpec, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> None:
    """Refuse a graph whose runtime-reported inputs/outputs differ from the manifest's (names, ranks, sizes,
    element types; dynamic axes match any size)."""

    def same(a: TensorSpec, b: TensorSpec) -> bool:
        if a.name != b.name or a.dtype != b.dtype or len(a.shape) != len(b.shape):
            return False
        return all(isinstance(x, str) or isinstance(y, str) or x == y for x, y in zip(a.shape, b.shape, strict=True))

    for kind, want, got in (("inputs", expected.inputs, inputs), ("outputs", expected.outputs, outputs)):
        if len(want) != len(got) or not all(same(a, b) for a, b in zip(want, got, strict=False)):
            raise ExportManifestError(
                f"{path}: the runtime sees {kind} [{'; '.join(t.describe() for t in got)}] but the manifest "
                f"records [{'; '.join(t.describe() for t in want)}]"
            )
