"""Graph runtimes that run exported Ocean graphs: ONNX Runtime and OpenVINO on CPU, TensorRT on CUDA.

Each runtime package is optional and imported only inside the function that opens a graph (importing the core
never loads one); a missing package raises :class:`BackendUnavailableError` naming what to install. A
:class:`GraphSession` takes and returns torch tensors: CPU runtimes read and write host memory (numpy views, no
copy in), TensorRT reads and writes CUDA tensors on torch's current stream, so it can be captured in a CUDA graph.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .manifest import TensorSpec, sha256_file

__all__ = [
    "BACKENDS",
    "GRAPH_BACKENDS",
    "BackendError",
    "BackendUnavailableError",
    "GraphSession",
    "import_runtime",
    "open_session",
]

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
GRAPH_BACKENDS = BACKENDS[1:]
CPU_BACKENDS = ("onnxruntime", "openvino")
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64, "int32": torch.int32}


class BackendError(ValueError):
    """A graph backend cannot run here or cannot load a graph; the message says why."""


class BackendUnavailableError(BackendError):
    """The Python package of a backend is not installed (the message names it)."""


def import_runtime(backend: str) -> ModuleType:
    """The runtime package of ``backend`` (imported on demand); BackendUnavailableError names what to install."""
    if backend not in PACKAGES:
        raise BackendError(f"unknown graph backend {backend!r}; one of {', '.join(GRAPH_BACKENDS)}")
    package = PACKAGES[backend]
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        hint = " (on a Jetson: the JetPack TensorRT Python bindings)" if backend == "tensorrt" else ""
        raise BackendUnavailableError(
            f"backend {backend!r} needs the Python package {package!r}, which cannot be imported ({exc}): "
            f"pip install {package}{hint}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


class GraphSession:
    """One loaded graph: :attr:`inputs` / :attr:`outputs` as the runtime reports them, :meth:`run` on tensors."""

    backend = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()

    def run(self, feeds: Sequence[Tensor]) -> list[Tensor]:
        """Run on ``feeds`` (one tensor per input, in order); returns the outputs in order."""
        raise NotImplementedError


# --- ONNX Runtime ----------------------------------------------------------------------------------------
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


def _ort_spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


def _host_array(tensor: Tensor, dtype: torch.dtype) -> np.ndarray:
    return tensor.detach().to(device="cpu", dtype=dtype).contiguous().numpy()


class OrtSession(GraphSession):
    """An ONNX Runtime CPU session (all graph optimisations, ``threads`` intra-op threads that do not spin)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int) -> None:
        super().__init__(path)
        ort = import_runtime("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Pool threads spin inside a run (its parallel sections hand over fast) but stop the moment it returns:
        # the tracker's own crop and post-processing (and, in the node, image conversion) run on the same cores
        # right after each graph. Measured on 2 cores, search graph alone: 3.50 ms without spinning, 2.09 ms
        # spinning and stopped at return, and torch work right after it 0.61 / 0.47 ms; spinning that outlives
        # the run (ONNX Runtime's default) slowed that torch work to 2.6 ms (the tracker's post-processing: 0.3 to
        # 20 ms per frame).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for corrupt files
            raise BackendError(f"onnxruntime cannot load {path}: {_first_line(exc)}") from None
        self.inputs = tuple(_ort_spec(a) for a in self._session.get_inputs())
        self.outputs = tuple(_ort_spec(a) for a in self._session.get_outputs())
        self._dtypes = [_TORCH_DTYPES.get(s.dtype, torch.float32) for s in self.inputs]
        self._names = [s.name for s in self.inputs]

    def run(self, feeds: Sequence[Tensor]) -> list[Tensor]:
        feed = {n: _host_array(t, d) for n, t, d in zip(self._names, feeds, self._dtypes, strict=True)}
        return [torch.from_numpy(out) for out in self._session.run(None, feed)]


# --- OpenVINO --------------------------------------------------------------------------------------------
_OV_TYPES = {"f32": "float32", "f16": "float16", "i64": "int64", "i32": "int32"}


def _ov_spec(port: Any, names: Sequence[str]) -> TensorSpec:
    known = port.get_names()
    name = next((n for n in names if n in known), port.get_any_name())
    shape = tuple(d.get_length() if d.is_static else "dynamic" for d in port.get_partial_shape())
    kind = port.get_element_type().get_type_name()
    return TensorSpec(name, shape, _OV_TYPES.get(kind, kind))


class OpenVinoSession(GraphSession):
    """An OpenVINO CPU compiled model (latency hint, one stream, ``threads`` threads, float32 inference)."""

    backend = "openvino"

    def __init__(self, path: Path, threads: int, names: Sequence[str], half: bool = False) -> None:
        super().__init__(path)
        ov = import_runtime("openvino")
        config = {
            "INFERENCE_NUM_THREADS": int(threads),
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_PRECISION_HINT": "f16" if half else "f32",  # never bf16 behind our back
        }
        try:
            core = ov.Core()
            self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses of its own
            raise BackendError(f"openvino cannot load {path}: {_first_line(exc)}") from None
        self.inputs = tuple(_ov_spec(p, names) for p in self._compiled.inputs)
        self.outputs = tuple(_ov_spec(p, names) for p in self._compiled.outputs)
        self._request = self._compiled.create_infer_request()
        self._dtypes = [_TORCH_DTYPES.get(s.dtype, torch.float32) for s in self.inputs]

    def run(self, feeds: Sequence[Tensor]) -> list[Tensor]:
        arrays = [_host_array(t, d) for t, d in zip(feeds, self._dtypes, strict=True)]
        result = self._request.infer(arrays, share_inputs=True, share_outputs=False)
        return [torch.from_numpy(np.asarray(result[port])) for port in self._compiled.outputs]


# --- TensorRT --------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def engine_cache_name(onnx_path: Path, device: torch.device, trt_version: str) -> str:
    """File name of the engine built from ``onnx_path``: graph sha256, TensorRT version, GPU name and capability
    (an engine runs only on the GPU model and TensorRT version that built it)."""
    major, minor = torch.cuda.get_device_capability(device)
    gpu = _slug(torch.cuda.get_device_name(device))
    return f"{onnx_path.stem}-{sha256_file(onnx_path)[:16]}-trt{_slug(trt_version)}-{gpu}-sm{major}{minor}.engine"


class TensorRtSession(GraphSession):
    """A TensorRT engine built from the ONNX graph (once; cached by graph, GPU and TensorRT version).

    The engine's precision is the graph's (strongly typed: float16 graphs from ``ocean-export --half`` give
    float16 engines). Inputs and outputs are CUDA tensors; it runs on torch's current CUDA stream.
    """

    backend = "tensorrt"

    def __init__(
        self, path: Path, device: torch.device, cache_dir: Path, max_batch: int = 1, half: bool = False
    ) -> None:
        super().__init__(path)
        self._half = half
        if device.type != "cuda" or not torch.cuda.is_available():
            raise BackendError(f"backend 'tensorrt' needs a CUDA device, got {device}")
        trt = import_runtime("tensorrt")
        self._trt = trt
        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        cache_dir.mkdir(parents=True, exist_ok=True)
        engine_path = cache_dir / engine_cache_name(path, device, trt.__version__)
        with torch.cuda.device(device):
            data = engine_path.read_bytes() if engine_path.is_file() else self._build(path, engine_path, max_batch)
            self._runtime = trt.Runtime(self._logger)  # kept: the engine must not outlive its runtime
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                raise BackendError(f"tensorrt cannot deserialise {engine_path}; delete it to rebuild the engine")
            self._context = self._engine.create_execution_context()
        dtypes = {trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16", trt.DataType.INT32: "int32"}
        inputs, outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(d if d >= 0 else "dynamic" for d in self._engine.get_tensor_shape(name))
            spec = TensorSpec(name, shape, dtypes.get(self._engine.get_tensor_dtype(name), "unknown"))
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(spec)
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)

    def _build(self, path: Path, engine_path: Path, max_batch: int) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        flags = 0
        strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strongly is not None:  # required by TensorRT 11, opt-in on 10.x: precision is the graph's
            flags |= 1 << int(strongly)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(path.read_bytes(), str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"tensorrt cannot parse {path}: {errors[:400]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if strongly is None and self._half and hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 8 (JetPack 5)
            config.set_flag(trt.BuilderFlag.FP16)
        inputs = [network.get_input(i) for i in range(network.num_inputs)]
        dynamic = [tensor for tensor in inputs if any(d < 0 for d in tensor.shape)]
        if dynamic:
            profile = builder.create_optimization_profile()
            for tensor in dynamic:
                shape = tuple(tensor.shape)
                low = tuple(1 if d < 0 else d for d in shape)
                high = tuple(max_batch if d < 0 else d for d in shape)
                profile.set_shape(tensor.name, low, low, high)
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"tensorrt could not build an engine from {path} (see the TensorRT log above)")
        data = bytes(serialized)
        fd, tmp = tempfile.mkstemp(prefix=f".{engine_path.name}.", dir=engine_path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, engine_path)
        return data

    def run(self, feeds: Sequence[Tensor]) -> list[Tensor]:
        keep = []
        for spec, tensor in zip(self.inputs, feeds, strict=True):
            t = tensor.to(device=self.device, dtype=_TORCH_DTYPES[spec.dtype]).contiguous()
            keep.append(t)
            self._context.set_input_shape(spec.name, tuple(t.shape))
            self._context.set_tensor_address(spec.name, t.data_ptr())
        outs = []
        for spec in self.outputs:
            out = torch.empty(tuple(self._context.get_tensor_shape(spec.name)), dtype=_TORCH_DTYPES[spec.dtype],
                              device=self.device)
            self._context.set_tensor_address(spec.name, out.data_ptr())
            outs.append(out)
        if not self._context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise BackendError(f"tensorrt failed to run {self.path}")
        return outs


def open_session(
    backend: str,
    path: Path,
    *,
    device: torch.device,
    threads: int,
    names: Sequence[str] = (),
    half: bool = False,
    engine_cache: Path | None = None,
    max_batch: int = 1,
) -> GraphSession:
    """Load one graph file with ``backend`` on ``device`` (CPU backends: ``threads`` threads)."""
    if backend in CPU_BACKENDS and device.type != "cpu":
        raise BackendError(f"backend {backend!r} runs on the CPU, not on {device}; use 'tensorrt' or 'torch' on CUDA")
    if backend == "onnxruntime":
        return OrtSession(path, threads)
    if backend == "openvino":
        return OpenVinoSession(path, threads, names, half)
    if backend == "tensorrt":
        cache = engine_cache if engine_cache is not None else path.parent / "tensorrt"
        return TensorRtSession(path, device, cache, max_batch, half)
    raise BackendError(f"unknown graph backend {backend!r}; one of {', '.join(GRAPH_BACKENDS)}")

