"""ONNX export of an Ocean network: the graphs a non-torch runtime runs, and the ``manifest.json`` describing them.

Graphs (``torch.onnx``, TorchScript exporter, opset 17 by default):

- ``template.onnx``: template crop [1,3,127,127] → the six encoded template branches (cls 11/12/21, reg 11/12/21),
  computed once per target;
- ``search_<S>.onnx`` per search size S: search crop [1,3,S,S] + the six branches → ``cls``, ``reg`` (and
  ``align``, the object-aware map, when exported with it: its box-aligned sampling is ONNX ``GridSample``);
- ``online_features.onnx`` where the network has an online classifier: normalised RGB samples [B,3,224,224]
  (dynamic batch) → classification features; the classifier's filter initialiser and optimiser stay in torch
  (``classifier.pth``).

Crops are BGR 0..255 floats as the tracker makes them. :func:`cached_export` exports a checkpoint once into a
cache folder keyed by the checkpoint's sha256 and the export options. A module or operator that cannot be
exported raises :class:`ExportError` naming the module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import checkpoint_preset, load_model
from .config import PRESETS, TrackerConfig
from .manifest import (
    ONLINE_INPUT,
    SIAMESE_INPUT,
    Manifest,
    TensorSpec,
    graph_entry,
    read_manifest,
    sha256_file,
    write_manifest,
)
from .model import OceanLiteNet, OceanNet
from .model.ocean import TEMPLATE_SIZE

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "ExportOptions",
    "cached_export",
    "default_cache_dir",
    "export_checkpoint",
    "export_network",
    "options_for",
]

DEFAULT_OPSET = 17
ONLINE_MAX_BATCH = 64  # the online initialisation scores 23 augmented samples at once
CACHE_ENV = "OCEAN_ROS_CACHE"
BRANCHES = ("cls_11", "cls_12", "cls_21", "reg_11", "reg_12", "reg_21")
_EXPORT_VERSION = 1  # bump when the graphs' content changes, so cached exports are rebuilt


class ExportError(ValueError):
    """A network or checkpoint that cannot be exported; the message names the module and the operator."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export: search sizes, object-aware map, online feature graph, precision and opset."""

    search_sizes: tuple[int, ...]
    align: bool = False
    online: bool = True  # export the online feature graph where the network has a classifier
    half: bool = False
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        sizes = tuple(sorted({int(s) for s in self.search_sizes}))
        if not sizes:
            raise ExportError("no search size to export")
        bad = [s for s in sizes if s < TEMPLATE_SIZE]
        if bad:
            raise ExportError(f"search sizes {bad} are smaller than the template ({TEMPLATE_SIZE} px)")
        object.__setattr__(self, "search_sizes", sizes)

    def tag(self) -> str:
        """A folder name for these options (cache key part)."""
        sizes = "-".join(map(str, self.search_sizes))
        return (f"v{_EXPORT_VERSION}_s{sizes}_{'align' if self.align else 'noalign'}_"
                f"{'online' if self.online else 'offline'}_{'fp16' if self.half else 'fp32'}_op{self.opset}")


def options_for(config: TrackerConfig, opset: int = DEFAULT_OPSET) -> ExportOptions:
    """The export a tracker with ``config`` needs: its two search sizes, its align flag, its precision."""
    return ExportOptions((config.small_sz, config.big_sz), align=config.align, half=config.half, opset=opset)


def default_cache_dir() -> Path:
    """Where exports made on first use go: ``$OCEAN_ROS_CACHE``, else ``$XDG_CACHE_HOME/ocean_ros``
    (``~/.cache/ocean_ros``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ocean_ros"


# --- the graphs ------------------------------------------------------------------------------------------
class TemplateGraph(nn.Module):
    """Template crop → the six encoded template branches (what the search graph takes back)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: Tensor) -> tuple[Tensor, ...]:
        zf = self.net.template(z)
        if isinstance(zf, Tensor):  # ResNet-50 Ocean returns the neck map; encode its branches once here
            zf = self.net.connect_model.encode_template(zf)
        return tuple(zf)


class SearchGraph(nn.Module):
    """Search crop + template branches → cls, reg (and the object-aware map with ``align``)."""

    def __init__(self, net: nn.Module, align: bool) -> None:
        super().__init__()
        self.net = net
        self.align = align

    def forward(self, x: Tensor, *zf: Tensor) -> tuple[Tensor, ...]:
        out = self.net.track(x, tuple(zf), use_align=self.align)
        return (out.cls, out.reg, out.align) if self.align else (out.cls, out.reg)


class OnlineFeatureGraph(nn.Module):
    """Normalised RGB samples → the online classifier's features (trunk or layeronline, projection, L2 norm)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.classification_features(x)


# --- naming what failed ----------------------------------------------------------------------------------
def _module_label(root: nn.Module, name: str) -> str:
    modules = dict(root.named_modules())
    module = modules.get(name)
    shown = name.removeprefix("net.") or "(the whole network)"
    return f"{shown} ({type(module).__name__})" if module is not None else shown


def _module_raising(root: nn.Module, args: Sequence[Tensor]) -> str | None:
    """The innermost module whose forward raises on ``args`` (None when the forward runs)."""
    stack: list[str] = []
    names = {id(m): n for n, m in root.named_modules()}
    def enter(module: nn.Module, _args: object) -> None:
        stack.append(names[id(module)])

    def leave(_module: nn.Module, _args: object, _out: object) -> None:
        stack.pop()

    handles = []
    for module in root.modules():
        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        with torch.no_grad():
            root(*args)
    except Exception:  # noqa: BLE001 - we only want to know where it fails
        return _module_label(root, stack[-1]) if stack else None
    finally:
        for handle in handles:
            handle.remove()
    return None


def _module_using(root: nn.Module, args: Sequence[Tensor], op: str) -> str | None:
    """The module whose forward emits the operator ``op`` (e.g. 'aten::grid_sampler') in a trace."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(root, tuple(args), check_trace=False)
    except Exception:  # noqa: BLE001
        return None
    for node in traced.inlined_graph.nodes():
        if node.kind() == op:
            scope = node.scopeName().split("/")[-1].removeprefix("__module.")
            return _module_label(root, scope)
    return None


def _explain(root: nn.Module, args: Sequence[Tensor], exc: BaseException, graph: str, opset: int) -> ExportError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    module = _module_raising(root, args)
    if module is None:
        match = re.search(r"operator '([\w:.]+)'", str(exc))
        if match:
            module = _module_using(root, args, match.group(1))
    where = f"module {module}" if module else "an unidentified module"
    return ExportError(f"cannot export the {graph} graph at opset {opset}: {where}: {detail}")


def _onnx_export(
    root: nn.Module, args: tuple[Tensor, ...], path: Path, inputs: Sequence[str], outputs: Sequence[str],
    opset: int, graph: str, dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> None:
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                root, args, str(path), dynamo=False, opset_version=opset, input_names=list(inputs),
                output_names=list(outputs), dynamic_axes=dynamic_axes, do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - every exporter failure is reported with the module
        raise _explain(root, args, exc, graph, opset) from exc


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _specs(names: Sequence[str], tensors: Sequence[Tensor], dynamic: dict[int, str] | None = None) -> list[TensorSpec]:
    specs = []
    for name, tensor in zip(names, tensors, strict=True):
        shape = [dynamic.get(i, s) if dynamic else s for i, s in enumerate(tensor.shape)]
        specs.append(TensorSpec(name, tuple(shape), _dtype_name(tensor.dtype)))
    return specs


# --- the export ------------------------------------------------------------------------------------------
def _arch(net: nn.Module) -> str:
    if isinstance(net, OceanLiteNet):
        return net.arch
    if isinstance(net, OceanNet):
        return OceanNet.arch
    raise ExportError(f"cannot export {type(net).__name__}: only OceanNet and OceanLiteNet are supported")


def _net_config(net: nn.Module) -> dict[str, Any]:
    if isinstance(net, OceanLiteNet):
        return net.config.to_dict()
    return asdict(net.config)


def _classifier_dims(net: nn.Module) -> dict[str, int]:
    conv = net.classifier.feature_extractor[0]
    return {"in_dim": conv.in_channels, "feature_dim": conv.out_channels, "filter_size": net.classifier.filter_size}


def export_network(
    net: nn.Module,
    folder: str | os.PathLike[str],
    options: ExportOptions,
    *,
    preset: str,
    checkpoint_sha256: str,
    checkpoint_name: str = "",
) -> Manifest:
    """Export ``net`` (eval mode, unfused) into ``folder`` (created; must be empty) and write its manifest.

    The graphs are traced on the network's device in its dtype (float16 when ``options.half``).
    """
    arch = _arch(net)
    if importlib.util.find_spec("onnx") is None:
        raise ExportError("exporting needs the Python package 'onnx' (torch.onnx writes through it): pip install onnx")
    if options.align and not getattr(net, "has_align", False):
        raise ExportError("the object-aware map was requested but the network has no object-aware head (align_head)")
    if getattr(net, "fused_for_inference", False):
        raise ExportError("export the unfused network (load_model(..., fuse=False)); its graphs are optimised by "
                          "the runtime")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise ExportError(f"export folder {folder} is not empty")
    dtype = torch.float16 if options.half else torch.float32
    device = next(net.parameters()).device
    net = net.to(dtype=dtype).eval()
    gen = torch.Generator().manual_seed(0)

    def image(side: int) -> Tensor:
        return (torch.rand(1, 3, side, side, generator=gen) * 255).to(device=device, dtype=dtype)

    template = TemplateGraph(net).eval()
    z = image(TEMPLATE_SIZE)
    with torch.no_grad():
        zf = template(z)
    graphs: dict[str, Any] = {"search": {}}
    geometry: dict[str, Any] = {"stride": int(net.stride), "template_size": TEMPLATE_SIZE, "search": {}}
    outputs = ("cls", "reg", "align") if options.align else ("cls", "reg")
    search = SearchGraph(net, options.align).eval()
    for size in options.search_sizes:
        x = image(size)
        with torch.no_grad():
            maps = search(x, *zf)
        file = f"search_{size}.onnx"
        _onnx_export(search, (x, *zf), folder / file, ["search", *BRANCHES], outputs, options.opset, f"search {size}")
        graphs["search"][str(size)] = graph_entry(
            folder, file, _specs(["search", *BRANCHES], [x, *zf]), _specs(outputs, maps)
        )
        geometry["search"][str(size)] = {
            "score_size": int(net.score_size(size)), "grid_origin": float(net.grid_origin(size))
        }
    # after the search graphs, which hold every operator a template graph has: an unsupported one fails sooner
    _onnx_export(template, (z,), folder / "template.onnx", ["template"], BRANCHES, options.opset, "template")
    graphs["template"] = graph_entry(folder, "template.onnx", _specs(["template"], [z]), _specs(BRANCHES, zf))
    if options.online and getattr(net, "has_classifier", False):
        graphs["online"] = _export_online(net, folder, options, device, dtype, gen)
    content = {
        "variant": {"arch": arch, "align": options.align, "online": "online" in graphs},
        "net": _net_config(net),
        "preset": preset,
        "precision": _dtype_name(dtype),
        "opset": options.opset,
        "input": {"siamese": SIAMESE_INPUT, "online": ONLINE_INPUT, "dtype": _dtype_name(dtype)},
        "geometry": geometry,
        "graphs": graphs,
        "checkpoint": {"sha256": checkpoint_sha256, "name": checkpoint_name},
        "versions": _versions(),
    }
    write_manifest(folder, content)
    return read_manifest(folder)


def _export_online(
    net: nn.Module, folder: Path, options: ExportOptions, device: torch.device, dtype: torch.dtype,
    gen: torch.Generator,
) -> dict[str, Any]:
    from .online import SAMPLE_SIZE

    side = SAMPLE_SIZE
    samples = torch.randn(2, 3, side, side, generator=gen).to(device=device, dtype=torch.float32)
    graph = OnlineFeatureGraph(net).eval()
    with torch.no_grad():
        feat = graph(samples)
    dynamic = {"samples": {0: "batch"}, "features": {0: "batch"}}
    _onnx_export(graph, (samples,), folder / "online_features.onnx", ["samples"], ["features"], options.opset,
                 "online features", dynamic)
    torch.save({k: v.detach().to("cpu", torch.float32) for k, v in net.classifier.state_dict().items()},
               folder / "classifier.pth")
    entry = graph_entry(folder, "online_features.onnx", _specs(["samples"], [samples], {0: "batch"}),
                        _specs(["features"], [feat], {0: "batch"}))
    entry.update(
        sample_size=side, max_batch=ONLINE_MAX_BATCH, classifier_file="classifier.pth",
        classifier_sha256=sha256_file(folder / "classifier.pth"), classifier_dims=_classifier_dims(net),
    )
    return entry


def _versions() -> dict[str, str]:
    from importlib import metadata

    from ocean_ros import __version__

    versions = {"ocean_ros": __version__, "torch": torch.__version__}
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["onnx"] = metadata.version("onnx")  # torch.onnx needs it to export
    return versions


def _default_options(
    checkpoint: str | os.PathLike[str], net: nn.Module, preset: str | None
) -> tuple[str, list[int], bool]:
    """(preset, search sizes, align) a checkpoint exports with when none are given: its stored preset's sizes and
    align flag; TracKit files (no preset): every size a TracKit preset picks, align where the net has the head."""
    preset = preset or checkpoint_preset(checkpoint)
    if preset is not None and preset != "custom":
        config = TrackerConfig.from_preset(preset)
        return preset, sorted({config.small_sz, config.big_sz}), config.align
    sizes = sorted({v for values in PRESETS.values() for k, v in values.items() if k in ("small_sz", "big_sz")
                    and (values.get("total_stride", 8) == int(net.stride))})
    return "custom", sizes, bool(getattr(net, "has_align", False))


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    search_sizes: Iterable[int] | None = None,
    preset: str | None = None,
    align: bool | None = None,
    online: bool = True,
    half: bool = False,
    opset: int = DEFAULT_OPSET,
    device: str | torch.device = "cpu",
) -> Manifest:
    """Export a checkpoint file into ``folder``. Unset options come from the preset (``preset``, else the one
    stored with the checkpoint): its search sizes and its align flag."""
    net, _ = load_model(checkpoint, device=device, fuse=False)
    preset_name, sizes, preset_align = _default_options(checkpoint, net, preset)
    options = ExportOptions(
        tuple(search_sizes) if search_sizes is not None else tuple(sizes),
        align=preset_align if align is None else align, online=online, half=half, opset=opset,
    )
    return export_network(
        net, folder, options, preset=preset_name, checkpoint_sha256=sha256_file(checkpoint),
        checkpoint_name=Path(checkpoint).name,
    )


def cached_export(
    checkpoint: str | os.PathLike[str],
    options: ExportOptions,
    *,
    preset: str = "custom",
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> Path:
    """The export folder of ``checkpoint`` with ``options`` under the cache, exported on first use.

    Keyed by the checkpoint's sha256 and :meth:`ExportOptions.tag`; written to a temporary folder and renamed, so a
    concurrent or interrupted export never leaves a half-written folder behind.
    """
    digest = sha256_file(checkpoint)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "exports" / digest / options.tag()
    if (folder / "manifest.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export_", dir=folder.parent))
    try:
        net, _ = load_model(checkpoint, device=device, fuse=False)
        export_network(net, staging, options, preset=preset, checkpoint_sha256=digest,
                       checkpoint_name=Path(checkpoint).name)
        try:
            staging.rename(folder)
        except OSError:  # another process finished the same export first
            if not (folder / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
