"""Reading TracKit-format and our own Ocean checkpoints, strictly and without executing code.

TracKit files are a bare state_dict or `{"state_dict": ...}` (training checkpoints), keys possibly prefixed
`module.` and/or `feature_extractor.`, tensors float32 or float16. Our own format is
`{"format": "ocean_ros.v1", "variant": {"align", "online"}, "config": {...}, "state_dict": float32 tensors}`.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .model import LiteNetConfig, OceanLiteNet, OceanNet, OceanNetConfig, OnlineOceanNet
from .model.fuse import fuse_for_inference

FORMAT = "ocean_ros.v1"
TRACKIT_FORMAT = "trackit"
_PREFIXES = ("module.", "feature_extractor.")
_SKIPPED_SUFFIX = "num_batches_tracked"
_ALIGN_PREFIX = "align_head."
_ONLINE_PREFIX = "features.features.layeronline."
_CLASSIFIER_PREFIX = "classifier."
_LITE_ARCH = OceanLiteNet.arch
_LITE_MARKER = "backbone.features.0.0.weight"  # first trunk tensor of Ocean-Lite / NanoTrack
_LIST_LIMIT = 10


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not match the network; the message names the cause."""


def _key_list(keys: Any) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_LIST_LIMIT])
    more = f", ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
    return f"{len(keys)}: {shown}{more}"


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else "no details"
    return first if len(first) <= limit else first[:limit] + "..."


def _unpickler_detail(exc: BaseException) -> tuple[bool, str]:
    """(needs code, the informative line) of torch's weights-only unpickler error; its messages are long."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line:  # a class or function reference: loading would run code
            return True, _short(ValueError(line.split(". Please", 1)[0]))
    marker = "WeightsUnpickler error:"
    for index, line in enumerate(lines):
        if marker in line:
            rest = line.split(marker, 1)[1].strip() or (lines[index + 1] if index + 1 < len(lines) else "")
            return False, _short(ValueError(rest))
    return False, _short(exc)


def _load_file(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a regular file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty: {path}")
    try:
        with warnings.catch_warnings():
            # Foreign or corrupt files trigger a noisy protocol warning before failing; the error says it all.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs_code, detail = _unpickler_detail(exc)
        if needs_code:
            raise CheckpointError(
                f"{path}: refused to load: the file holds objects that need code to unpickle; only tensors "
                f"and plain containers are accepted ({detail})"
            ) from exc
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({detail})") from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for corrupt or foreign files
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {_short(exc)})"
        ) from exc


def _strip_prefixes(raw: dict[Any, Any], path: Path) -> tuple[dict[str, Tensor], list[str]]:
    bad = [str(k) for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state dict entries that are not named tensors ({_key_list(bad)})")
    out: dict[str, Tensor] = {}
    seen: set[str] = set()
    clashes: list[str] = []
    for key, value in raw.items():
        name = key
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                seen.add(prefix)
        if name.endswith(_SKIPPED_SUFFIX):
            continue
        if name in out:
            clashes.append(name)
        out[name] = value
    if clashes:
        raise CheckpointError(f"{path}: keys collide after stripping prefixes ({_key_list(clashes)})")
    return out, [p for p in _PREFIXES if p in seen]


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    path = Path(path)
    obj = _load_file(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    meta: dict[str, Any] = {"path": str(path), "format": TRACKIT_FORMAT, "variant": None, "config": {}}
    if "format" in obj:
        if obj["format"] != FORMAT:
            raise CheckpointError(
                f"{path}: unsupported checkpoint format {obj['format']!r} (expected {FORMAT!r})"
            )
        if not isinstance(obj.get("state_dict"), dict):
            raise CheckpointError(f"{path}: {FORMAT} checkpoint without a 'state_dict' dict")
        meta.update(format=FORMAT, variant=obj.get("variant"), config=obj.get("config") or {})
        raw = obj["state_dict"]
    elif isinstance(obj.get("state_dict"), dict):
        raw = obj["state_dict"]
    else:
        raw = obj
    state, stripped = _strip_prefixes(raw, path)
    if not state:
        raise CheckpointError(f"{path}: the state dict is empty")
    meta["stripped_prefixes"] = stripped
    meta["file_dtypes"] = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()})
    return state, meta


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(prefix-stripped tensors as stored, metadata: path, format, variant, config, ...) of a checkpoint file."""
    return _read(path)


def checkpoint_preset(path: str | os.PathLike[str]) -> str | None:
    """The tracker preset stored with one of our checkpoints (``config["preset"]``), None for TracKit files."""
    _, meta = _read(path)
    preset = (meta.get("config") or {}).get("preset")
    return preset if isinstance(preset, str) else None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Load a checkpoint's tensors (CPU, dtypes as stored) with `module.` / `feature_extractor.` prefixes
    stripped and BN `num_batches_tracked` entries dropped. Never executes code from the file."""
    return _read(path)[0]


def infer_net_config(state_dict: dict[str, Tensor]) -> OceanNetConfig:
    """Variant of a prefix-stripped state dict: align iff `align_head.*`, online iff `layeronline` keys."""
    keys = state_dict.keys()
    return OceanNetConfig(
        align=any(k.startswith(_ALIGN_PREFIX) for k in keys),
        online=any(k.startswith(_ONLINE_PREFIX) for k in keys),
    )


def has_classifier(state_dict: dict[str, Tensor]) -> bool:
    """True when a prefix-stripped state dict holds online classifier weights (`classifier.*`)."""
    return any(k.startswith(_CLASSIFIER_PREFIX) for k in state_dict)


_PROJECTION_KEY = _CLASSIFIER_PREFIX + "feature_extractor.0.weight"  # [feature_dim, in_dim, 3, 3]


def _online_mismatch(expected: dict[str, Tensor], state: dict[str, Tensor], net: Any) -> str | None:
    """Why the file's online classifier cannot belong to ``net`` (another variant's, or one too many/few)."""
    file_has = _PROJECTION_KEY in state
    net_has = _PROJECTION_KEY in expected
    name = "Ocean-Lite" if isinstance(net, OceanLiteNet) else "Ocean ResNet-50"
    if file_has and not net_has:
        return (f"the file holds online classifier weights (classifier.*) but this {name} network has no online "
                "classifier (Ocean-Lite: config.net.online_dim = 0)")
    if not file_has:
        return None
    got, want = tuple(state[_PROJECTION_KEY].shape), tuple(expected[_PROJECTION_KEY].shape)
    if got != want:
        return (f"online classifier of another variant: the file projects {got[1]} → {got[0]} channels, this "
                f"{name} network {want[1]} → {want[0]} (ResNet-50 online files and Ocean-Lite online files are "
                "not interchangeable)")
    return None


def _check_against(net: OceanNet | OceanLiteNet, state: dict[str, Tensor], path: str) -> None:
    expected = {k: v for k, v in net.state_dict().items() if not k.endswith(_SKIPPED_SUFFIX)}
    online = _online_mismatch(expected, state, net)
    if online:
        raise CheckpointError(f"{path}: {online}")
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    problems = []
    if missing:
        problems.append(f"missing keys ({_key_list(missing)})")
    if unexpected:
        problems.append(f"unexpected keys ({_key_list(unexpected)})")
    if problems:
        raise CheckpointError(f"{path} does not match the Ocean network: " + "; ".join(problems))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in sorted(expected.items())
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if shapes:
        more = f" ... and {len(shapes) - _LIST_LIMIT} more" if len(shapes) > _LIST_LIMIT else ""
        raise CheckpointError(
            f"{path}: shape mismatch ({len(shapes)}): " + "; ".join(shapes[:_LIST_LIMIT]) + more
        )
    not_float = [k for k in expected if not state[k].is_floating_point()]
    if not_float:
        raise CheckpointError(f"{path}: non-floating-point tensors ({_key_list(not_float)})")


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    fuse: bool = True,
) -> tuple[OceanNet | OceanLiteNet, dict[str, Any]]:
    """Build the Ocean variant a checkpoint holds and load it strictly.

    Returns (eval-mode net on device/dtype, metadata). Metadata: path, format ("trackit" or "ocean_ros.v1"),
    variant {"align", "online"}, classifier (bool), config (our stored config, else {}), stripped_prefixes,
    file_dtypes. A file with online classifier weights (`classifier.*`, as TracKit's `OceanV19on.pth`) gives an
    :class:`OnlineOceanNet` (Siamese net + `layeronline` + classifier), checked as strictly as the rest.
    Ocean-Lite files (our format, ``variant.arch == "ocean_lite"``) give an :class:`OceanLiteNet`; with ``fuse``
    (default) its BN layers are folded and its trunk runs channels-last, for inference (same outputs to float
    rounding; its state dict then no longer matches the file, so pass ``fuse=False`` to fine-tune or re-save it).
    Raises CheckpointError on any mismatch.
    """
    return model_from_read(*_read(path), device=device, dtype=dtype, fuse=fuse)


def model_from_read(
    state: dict[str, Tensor], meta: dict[str, Any], device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32, fuse: bool = True,
) -> tuple[OceanNet | OceanLiteNet, dict[str, Any]]:
    """:func:`load_model` on a file already read by :func:`read_checkpoint` (its tensors and metadata)."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    meta = dict(meta)
    if _is_lite(state, meta):
        return _load_lite(state, meta, device, dtype, fuse)
    config = infer_net_config(state)
    variant = {"align": config.align, "online": config.online}
    if meta["variant"] is not None and meta["variant"] != variant:
        raise CheckpointError(
            f"{meta['path']}: stored variant {meta['variant']} disagrees with its keys ({variant})"
        )
    meta["variant"] = variant
    meta["classifier"] = has_classifier(state)
    # Classifier keys make the online variant (with `layeronline`), so a file lacking those keys is named.
    net = OnlineOceanNet(config) if meta["classifier"] else OceanNet(config)
    _check_against(net, state, meta["path"])
    state = {k: v.to(torch.float32) for k, v in state.items()}
    _finite_or_raise(state, meta["path"])
    net.load_state_dict(state, strict=False)
    # Left in NCHW: channels-last made CPU oneDNN convs ~7% faster but ~20x less accurate vs the reference.
    net.to(device=device, dtype=dtype)
    net.eval().requires_grad_(False)
    return net, meta


def _is_lite(state: dict[str, Tensor], meta: dict[str, Any]) -> bool:
    variant = meta.get("variant") or {}
    if isinstance(variant, dict) and variant.get("arch") == _LITE_ARCH:
        return True
    if _LITE_MARKER in state:
        raise CheckpointError(
            f"{meta['path']}: holds Ocean-Lite (NanoTrack-trunk) weights without this package's checkpoint format; "
            "Ocean-Lite needs the stored net config (train with ocean-train, or load the trunk with "
            "load_pretrained_trunk)"
        )
    return False


def _finite_or_raise(state: dict[str, Tensor], path: str) -> None:
    # A NaN/inf anywhere makes the sum non-finite; the exact per-element test runs only on suspects.
    not_finite = [
        k for k, v in state.items() if not math.isfinite(float(v.sum())) and not bool(torch.isfinite(v).all())
    ]
    if not_finite:
        raise CheckpointError(f"{path}: tensors with NaN or infinite values ({_key_list(not_finite)})")


def _load_lite(
    state: dict[str, Tensor], meta: dict[str, Any], device: str | torch.device, dtype: torch.dtype, fuse: bool
) -> tuple[OceanLiteNet, dict[str, Any]]:
    path = meta["path"]
    net_values = (meta.get("config") or {}).get("net")
    if not isinstance(net_values, dict):
        raise CheckpointError(f"{path}: Ocean-Lite checkpoint without its net config (config.net)")
    try:
        net = OceanLiteNet(LiteNetConfig.from_dict(net_values))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad Ocean-Lite net config {net_values}: {exc}") from None
    _check_against(net, state, path)
    state = {k: v.to(torch.float32) for k, v in state.items()}
    _finite_or_raise(state, path)
    net.load_state_dict(state, strict=False)
    net.eval().requires_grad_(False)
    if fuse:  # BN folded in float32 before any cast
        fuse_for_inference(net)
        net.use_channels_last_trunk()
    net.to(device=device, dtype=dtype)
    meta["variant"] = {"arch": _LITE_ARCH, "align": net.has_align, "online": net.has_classifier}
    meta["fused"] = fuse
    meta["classifier"] = net.has_classifier
    return net, meta


def _allow_numpy_scalars() -> list[Any]:
    """The safe globals NanoTrack's optimiser state needs under weights_only loading (numpy scalars)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype]
    allowed += [getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType") if hasattr(np, "dtypes")]
    return allowed


def read_nanotrack(path: str | os.PathLike[str], what: str = "pretrained trunk") -> dict[str, Tensor]:
    """Every tensor of a NanoTrack v3 checkpoint's state dict, keys as stored (``what`` names the file's role in
    the not-found message)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path} (NanoTrack v3 checkpoint, see training docs)")
    try:
        with torch.serialization.safe_globals(_allow_numpy_scalars()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {_short(exc)})") from exc
    raw = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: no state dict inside")
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, Tensor)}


def state_part(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose keys start with ``prefix``, prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_strict(module: nn.Module, part: dict[str, Tensor], path: str | os.PathLike[str], prefix: str) -> None:
    """Load ``part`` (keys without ``prefix``) into ``module`` strictly; a CheckpointError names the file and every
    missing, unexpected or mis-shaped key with its ``prefix``, as the file spells it."""
    expected = module.state_dict()
    missing, unexpected = expected.keys() - part.keys(), part.keys() - expected.keys()
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: {prefix}* keys do not match NanoTrack v3 (missing {_key_list(prefix + k for k in missing)}; "
            f"unexpected {_key_list(prefix + k for k in unexpected)})"
        )
    bad = [prefix + k for k, v in expected.items() if tuple(v.shape) != tuple(part[k].shape)]
    if bad:
        raise CheckpointError(f"{path}: {prefix}* shape mismatch ({_key_list(bad)})")
    module.load_state_dict(part, strict=True)


def read_pretrained_trunk(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The ``backbone.*`` tensors of a NanoTrack v3 checkpoint, prefix removed (CPU float32; BN counters kept)."""
    trunk = state_part(read_nanotrack(path), "backbone.")
    if not trunk:
        raise CheckpointError(f"{path}: no backbone.* tensors (is it a NanoTrack checkpoint?)")
    return trunk


def load_pretrained_trunk(net: OceanLiteNet, path: str | os.PathLike[str]) -> None:
    """Load NanoTrack v3's trunk into ``net.backbone`` strictly (missing/unexpected/shape errors name keys)."""
    load_strict(net.backbone, read_pretrained_trunk(path), path, "backbone.")


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"config key {key!r} at {where} is not a string")
            _check_plain(item, f"{where}.{key}")
        return
    raise CheckpointError(
        f"config value at {where} has type {type(value).__name__}; only plain data can be stored"
    )


def save_checkpoint(path: str | os.PathLike[str], net: OceanNet | OceanLiteNet, config: dict | None = None) -> None:
    """Write `net` in our format (float32 CPU tensors, variant flags, a plain-data `config`), atomically.

    Ocean-Lite files also store the net config under ``config["net"]`` (needed to rebuild the network).
    """
    config = dict(config or {})
    if isinstance(net, OceanLiteNet):
        config["net"] = net.config.to_dict()
    _check_plain(config, "config")
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in net.state_dict().items()
        if not k.endswith(_SKIPPED_SUFFIX)
    }
    payload = {
        "format": FORMAT,
        "variant": (
            {"arch": _LITE_ARCH, "align": net.has_align, "online": net.has_classifier}
            if isinstance(net, OceanLiteNet)
            else {"align": net.has_align, "online": net.features.has_online}
        ),
        "config": config,
        "state_dict": state,
    }
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
