"""The exported Ocean network run by a graph runtime, behind the interface the tracker calls on a torch network.

:class:`GraphNet` offers what :class:`~ocean_ros.core.tracker.OceanTracker` and the online branch use of
``OceanNet`` / ``OceanLiteNet``: ``template``, ``track``, ``classification_features``, the online ``classifier``
(torch: its filter initialiser and optimiser run there), ``stride``, ``score_size``, ``grid_origin``, ``has_align``
and ``has_classifier``. So the tracker's step is the same code whichever runtime computes the maps.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .backends import GraphSession, open_session
from .manifest import ExportManifestError, GraphSpec, Manifest, check_graph_io
from .model.ocean import TEMPLATE_SIZE, OceanOutput
from .model.online_classifier import OnlineClassifier

__all__ = ["GraphNet"]


class GraphNet:
    """An export folder (:class:`~ocean_ros.core.manifest.Manifest`) loaded with one graph ``backend``.

    Every graph's inputs and outputs, as the runtime reports them, must equal the manifest's (else
    :class:`~ocean_ros.core.manifest.ExportManifestError`). CPU backends use ``threads`` threads (default: torch's).
    """

    def __init__(
        self,
        manifest: Manifest,
        backend: str,
        device: str | torch.device = "cpu",
        *,
        threads: int | None = None,
        engine_cache: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.device = torch.device(device)
        self.arch = manifest.arch
        self.stride = manifest.stride
        self.dtype = torch.float16 if manifest.precision == "float16" else torch.float32
        self._threads = int(threads or torch.get_num_threads())
        self._engine_cache = engine_cache
        self.template_session = self._open(manifest.template)
        self.search_sessions = {size: self._open(entry.graph) for size, entry in manifest.search.items()}
        self.online_session: GraphSession | None = None
        self.classifier: OnlineClassifier | None = None
        if manifest.online is not None:
            self.online_session = self._open(manifest.online.graph, manifest.online.max_batch)
            self.classifier = self._load_classifier()

    def _open(self, spec: GraphSpec, max_batch: int = 1) -> GraphSession:
        path = self.manifest.path(spec)
        names = [t.name for t in (*spec.inputs, *spec.outputs)]
        session = open_session(
            self.backend, path, device=self.device, threads=self._threads, names=names,
            half=self.dtype == torch.float16, engine_cache=self._engine_cache, max_batch=max_batch,
        )
        check_graph_io(path, spec, session.inputs, session.outputs)
        return session

    def _load_classifier(self) -> OnlineClassifier:
        online = self.manifest.online
        assert online is not None
        path = self.manifest.folder / online.classifier_file
        dims = online.classifier_dims
        try:
            classifier = OnlineClassifier(dims["in_dim"], dims["feature_dim"], dims["filter_size"])
            state = torch.load(path, map_location="cpu", weights_only=True)
            classifier.load_state_dict(state, strict=True)
        except (KeyError, RuntimeError, OSError, ValueError) as exc:
            raise ExportManifestError(f"{path}: cannot load the online classifier ({exc})") from None
        return classifier.to(self.device).eval().requires_grad_(False)

    # --- what the tracker reads
    @property
    def has_align(self) -> bool:
        """True when the search graphs output the object-aware map."""
        return self.manifest.align

    @property
    def has_classifier(self) -> bool:
        """True when the folder holds the online feature graph and classifier."""
        return self.classifier is not None

    @property
    def search_sizes(self) -> frozenset[int]:
        """The search sizes with a graph."""
        return frozenset(self.manifest.search)

    def _entry(self, search_size: int):
        entry = self.manifest.search.get(int(search_size))
        if entry is None:
            raise ValueError(
                f"no exported search graph for search size {search_size} (the folder has "
                f"{list(self.manifest.search_sizes)}); export with --search-sizes including it"
            )
        return entry

    def score_size(self, search_size: int) -> int:
        """Side N of the score maps for ``search_size`` (from the manifest)."""
        return self._entry(search_size).score_size

    def grid_origin(self, search_size: int) -> float:
        """Search-crop pixel of score cell 0 for ``search_size`` (from the manifest)."""
        return self._entry(search_size).grid_origin

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> GraphNet:
        """Accept the tracker's placement when it is this runner's (graphs do not move); ValueError otherwise."""
        if device is not None:
            device = torch.device(device)
            same = device.type == self.device.type and (device.index or 0) == (self.device.index or 0)
            if not same:
                raise ValueError(f"the {self.backend} network was loaded for {self.device}, not {device}")
        if dtype is not None and dtype != self.dtype:
            raise ValueError(
                f"the exported graphs are {str(self.dtype).removeprefix('torch.')}, the tracker asks for "
                f"{str(dtype).removeprefix('torch.')}: export {'with' if dtype == torch.float16 else 'without'} --half"
            )
        return self

    def eval(self) -> GraphNet:
        """No-op (graphs are inference-only); for the tracker's ``model.to(...).eval()``."""
        return self

    # --- the network
    def template(self, z: Tensor) -> tuple[Tensor, ...]:
        """Template crop [1,3,127,127] (BGR 0..255) → the six encoded template branches."""
        if z.dim() != 4 or tuple(z.shape[1:]) != (3, TEMPLATE_SIZE, TEMPLATE_SIZE) or z.shape[0] != 1:
            raise ValueError(f"template crop must be [1,3,{TEMPLATE_SIZE},{TEMPLATE_SIZE}], got {tuple(z.shape)}")
        return tuple(self.template_session.run([z]))

    def track(self, x: Tensor, zf: tuple[Tensor, ...], use_align: bool = True) -> OceanOutput:
        """Search crop [1,3,S,S] (BGR 0..255) and template branches → maps; ``align`` only with ``use_align`` and
        an exported object-aware map."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
            raise ValueError(f"search crop must be [1,3,S,S], got {tuple(x.shape)}")
        size = int(x.shape[-1])
        session = self.search_sessions.get(size)
        if session is None:
            self._entry(size)  # raises with the folder's sizes
        outputs = session.run([x, *zf])
        align = outputs[2] if use_align and self.has_align else None
        return OceanOutput(outputs[0], outputs[1], align)

    def classification_features(self, x: Tensor) -> Tensor:
        """Normalised RGB samples [B,3,224,224] → online classification features (float32), in batches the
        graph accepts."""
        if self.online_session is None:
            raise RuntimeError("this exported network has no online feature graph")
        limit = self.manifest.online.max_batch if self.manifest.online else 1
        parts = [self.online_session.run([chunk])[0] for chunk in x.split(limit)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.to(device=self.device, dtype=torch.float32)

    def __repr__(self) -> str:
        return (f"GraphNet({self.arch}, backend={self.backend}, device={self.device}, "
                f"search sizes {list(self.manifest.search_sizes)}, folder {self.manifest.folder})")
