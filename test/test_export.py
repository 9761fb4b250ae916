"""ONNX export and the graph backends: maps equal torch's, the tracker on them follows torch, and bad input is refused.

Parity: the exported maps equal torch's to 1e-4 relative (max |a - b| / max |b|) for Ocean-Lite and ResNet-50 Ocean,
with and without the object-aware head, at every search size a preset of that variant picks; the ONNX Runtime
tracker follows the torch boxes within 0.01 px on the first frames of the golden runs (wherever torch follows
TracKit), and the shipped model's trajectories agree on a validation subset (the whole 11-sequence comparison is
``benchmarks/backend_parity.py``). ResNet-50 is exported once, with the object-aware map (exports cost seconds
each): its no-align runs use that graph's cls/reg, the sub-graph a no-align export holds; the no-align export itself
is checked on Ocean-Lite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import data_root

from ocean_ros.core import geometry as g
from ocean_ros.core.backends import BackendError, BackendUnavailableError, import_runtime
from ocean_ros.core.checkpoint import load_model
from ocean_ros.core.config import TrackerConfig
from ocean_ros.core.export import ExportError, ExportOptions, cached_export, export_checkpoint
from ocean_ros.core.graph_net import GraphNet
from ocean_ros.core.manifest import ExportManifestError, read_manifest
from ocean_ros.core.network import load_network, resolve_backend
from ocean_ros.core.tracker import OceanTracker
from ocean_ros.models import DEFAULT_MODEL

RELATIVE = 1e-4
# ball1's random-weight boxes are degenerate (up to ~1e9 px): its object-aware taps come from float32 cancellation and
# amplify conv rounding, which differs between kernels (test_model.py: ALIGN_CHAIN_PARITY, 2.8e-4 torch vs TracKit on
# an AMD EPYC). Its cls/reg, and every other align map, are held to RELATIVE.
DEGENERATE_ALIGN = {"ball1_VOT2018_align": 1e-3}
TOLERANCE_PX = 0.01
GOLDEN_WEIGHTS = "ocean_random_seed1.pth"
GOLDEN_RUNS = {  # run -> (sequence, image folder, preset)
    "bag_VOT2019_align": ("bag", "color", "VOT2019"),
    "Crossing_OTB2015": ("Crossing", "img", "OTB2015"),
}
CPU_BACKENDS = ("onnxruntime", "openvino")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _images(side: int, count: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, side, side, generator=gen) * 255


def _crops(side: int, frame: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(template crop, search crop of ``side``) of the bundled Crossing sequence's target, as the tracker cuts
    them: real images, so the maps are not those of noise (where exp(reg) overflows with random weights)."""
    from ocean_ros.eval.sequences import open_sequence

    seq = open_sequence(DEFAULT_MODEL.parent.parent / "data" / "Crossing")
    image, (x, y, w, h) = seq.read(frame), (float(v) for v in seq.ground_truth[frame])
    centre, avg = (x + w / 2, y + h / 2), g.average_colour(image)
    z = g.crop_opencv(image, centre, 127, g.round_half_even(g.template_crop_side(w, h, 0.5)), avg)
    _, search_side = g.search_crop_side(w, h, 0.5, 127, side)
    return z, g.crop_opencv(image, centre, side, search_side, avg)


@pytest.fixture(scope="module")
def lite_torch():
    return load_model(DEFAULT_MODEL)[0]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def lite_folders(cache_root, tmp_path_factory):
    """The shipped model at the LITE preset's sizes: as the tracker exports it on first use (no object-aware map,
    online feature graph), and through ``ocean-export --align --no-online``."""
    from ocean_ros.tools.export import main

    _, meta = load_network(DEFAULT_MODEL, TrackerConfig.from_preset("LITE", backend="onnxruntime"),
                           cache_dir=cache_root)
    align = tmp_path_factory.mktemp("lite") / "align"
    assert main([str(DEFAULT_MODEL), "--out", str(align), "--align", "--no-online"]) == 0
    return {False: Path(meta["export"]), True: align}


@pytest.fixture(scope="module")
def resnet_folder(golden_dir, tmp_path_factory) -> Path:
    """The golden ResNet-50 weights with the object-aware map at every ResNet preset size (255, 271, 287)."""
    root = tmp_path_factory.mktemp("resnet")
    return export_checkpoint(golden_dir / GOLDEN_WEIGHTS, root / "align", search_sizes=(255, 271, 287)).folder


@pytest.fixture(scope="module")
def resnet_torch(golden_dir):
    return load_model(golden_dir / GOLDEN_WEIGHTS)[0]


@pytest.fixture(scope="module")
def resnet_graphs(resnet_folder) -> GraphNet:
    return GraphNet(read_manifest(resnet_folder), "onnxruntime")


# --- maps --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("align", [False, True])
def test_lite_maps_equal_torch_at_every_preset_size(lite_folders, lite_torch, backend, align):
    manifest = read_manifest(lite_folders[align])
    assert manifest.search_sizes == (255, 287) and manifest.stride == 16 and manifest.opset == 17
    net = GraphNet(manifest, backend)
    for size in manifest.search_sizes:
        z, x = _crops(size)
        with torch.inference_mode():
            zf_ref = lite_torch.template(z)
            zf = net.template(z)
            for a, b in zip(zf, zf_ref, strict=True):
                assert relative_error(a, b) <= RELATIVE
            assert net.score_size(size) == lite_torch.score_size(size)
            assert net.grid_origin(size) == lite_torch.grid_origin(size)
            ref = lite_torch.track(x, zf_ref, use_align=align)
            out = net.track(x, zf, use_align=align)
            assert relative_error(out.cls, ref.cls) <= RELATIVE and relative_error(out.reg, ref.reg) <= RELATIVE
            assert (out.align is None) == (not align)
            if align:
                assert relative_error(out.align, ref.align) <= RELATIVE


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_lite_online_features_equal_torch_at_any_batch(lite_folders, lite_torch, backend):
    net = GraphNet(read_manifest(lite_folders[False]), backend)
    samples = torch.randn(23, 3, 224, 224, generator=torch.Generator().manual_seed(3))  # the initial 23 samples
    with torch.inference_mode():
        ref = lite_torch.classification_features(samples)
        for batch in (samples[:1], samples):
            assert relative_error(net.classification_features(batch), ref[: len(batch)]) <= RELATIVE
    assert net.has_classifier
    state, ref_state = net.classifier.state_dict(), lite_torch.classifier.state_dict()
    assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)


@pytest.mark.parametrize("run", ["bag_VOT2019_align", "ball1_VOT2018_align", "Crossing_OTB2015", "Surfing06_LASOT"])
def test_resnet_maps_equal_torch_on_golden_crops(resnet_graphs, resnet_torch, golden_dir, run):
    ref = np.load(golden_dir / f"{run}.npz")
    align = run.endswith("_align")
    net = resnet_graphs
    z, x = torch.from_numpy(ref["z"]).float(), torch.from_numpy(ref["x0"]).float()
    with torch.inference_mode():
        zf_ref = resnet_torch.template(z)
        torch_out = resnet_torch.track(x, zf_ref, use_align=align)
        out = net.track(x, net.template(z), use_align=align)
    assert relative_error(out.cls, torch_out.cls) <= RELATIVE
    assert relative_error(out.reg, torch_out.reg) <= RELATIVE
    if align:
        assert relative_error(out.align, torch_out.align) <= DEGENERATE_ALIGN.get(run, RELATIVE)
    assert relative_error(out.cls, torch.from_numpy(ref["cls0"])) <= RELATIVE  # and TracKit's, as torch does


def test_resnet_maps_at_287(resnet_graphs, resnet_torch):
    """The online presets' big search size (287)."""
    net = resnet_graphs
    z, x = _crops(287)
    with torch.inference_mode():
        ref = resnet_torch.track(x, resnet_torch.template(z), use_align=True)
        out = net.track(x, net.template(z), use_align=True)
    for name in ("cls", "reg", "align"):
        assert relative_error(getattr(out, name), getattr(ref, name)) <= RELATIVE, name


# --- the tracker on the graphs ---------------------------------------------------------------------------
def _initial_box(sequences_dir: Path, seq: str) -> tuple[float, ...]:
    gt_file = next((sequences_dir / seq).glob("groundtruth*.txt"))
    first = gt_file.read_text().splitlines()[0].replace("\t", ",").replace(" ", ",")
    values = [float(v) for v in first.split(",") if v]
    return g.polygon_to_xywh(values) if len(values) == 8 else tuple(values)


@pytest.mark.parametrize("run", list(GOLDEN_RUNS))
def test_onnxruntime_tracker_follows_torch_on_golden_runs(run, resnet_graphs, resnet_torch, golden_dir,
                                                         sequences_dir):
    """Every frame of the run, wherever torch follows TracKit: ONNX Runtime's box within 0.01 px of torch's,
    until the two search crops start on different pixels. That happens when a centre difference far below
    0.01 px straddles a rounding boundary of the crop origin (bag, frame 152: 201.0013 vs 200.99996 px); from
    there on the trackers see crops one pixel apart and nothing is held to 0.01 px."""
    seq, folder, preset = GOLDEN_RUNS[run]
    cfg = TrackerConfig.from_preset(preset, crop_backend="opencv")
    ref_boxes = np.loadtxt(golden_dir / f"{run}.txt", delimiter=",")
    frames = sorted((sequences_dir / seq / folder).glob("*.jpg"))
    trackers = [OceanTracker(resnet_torch, cfg), OceanTracker(resnet_graphs, cfg.replace(backend="onnxruntime"))]
    assert trackers[1].backend == "onnxruntime"
    for tracker in trackers:
        tracker.initialize(cv2.imread(str(frames[0])), _initial_box(sequences_dir, seq))
    compared = 0
    for k in range(1, len(frames)):
        image = cv2.imread(str(frames[k]))
        centres = [t.target.center for t in trackers]
        results = [t.track(image) for t in trackers]
        torch_box, graph_box = (np.array(r.box_xywh) for r in results)
        origins = {g.crop_origin(c, r.crop_side) for c, r in zip(centres, results, strict=True)}
        if len(origins) > 1:
            assert np.abs(np.subtract(*centres)).max() <= TOLERANCE_PX, f"frame {k + 1}: crops apart by more"
            break
        if np.abs(torch_box - ref_boxes[k]).max() > TOLERANCE_PX:
            break  # torch no longer follows TracKit: nothing to hold the graphs to
        assert np.abs(graph_box - torch_box).max() <= TOLERANCE_PX, f"frame {k + 1}"
        compared += 1
    assert compared >= min(len(frames) - 1, 100), compared


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


@pytest.mark.parametrize(("online", "sequence"), [(False, "validation/traffic"), (True, "sequences/bag")])
def test_shipped_model_on_onnxruntime_tracks_as_torch(lite_folders, lite_torch, online, sequence):
    """A validation subset (the 11-sequence figure is benchmarks/backend_parity.py): trajectories overlap."""
    from ocean_ros.eval.sequences import open_sequence

    path = data_root() / sequence
    if not path.exists():
        pytest.skip(f"{path} not found")
    seq = open_sequence(path)
    cfg = TrackerConfig.from_preset("LITE", online=online)
    trackers = [OceanTracker(lite_torch, cfg), OceanTracker(GraphNet(read_manifest(lite_folders[False]),
                                                                     "onnxruntime"), cfg)]
    boxes: list[list] = [[], []]
    for tracker in trackers:
        tracker.initialize(seq.read(0), tuple(float(v) for v in seq.ground_truth[0]))
    for i in range(1, 12 if online else 21):  # online: up to the first scheduled update (frame 10) and past it
        frame = seq.read(i)
        results = [t.track(frame) for t in trackers]
        for out, result in zip(boxes, results, strict=True):
            out.append(result.box_xywh)
        if online:
            assert results[0].online_flag == results[1].online_flag
    assert _iou(np.array(boxes[0]), np.array(boxes[1])).mean() >= 0.99


def test_static_step_on_the_graphs_equals_the_classic_step(lite_folders, sequences_dir):
    """The step is the same code whichever runner computes the maps: static (device step, eager) = classic."""
    from ocean_ros.eval.sequences import open_sequence

    seq = open_sequence(sequences_dir / "Crossing")
    net = GraphNet(read_manifest(lite_folders[False]), "onnxruntime")
    cfg = TrackerConfig.from_preset("LITE", crop_backend="torch", online=False)
    classic, static = OceanTracker(net, cfg), OceanTracker(net, cfg, step_mode="static")
    for tracker in (classic, static):
        tracker.initialize(seq.read(0), tuple(float(v) for v in seq.ground_truth[0]))
    for i in range(1, 6):
        frame = seq.read(i)
        a, b = classic.track(frame), static.track(frame)
        assert np.abs(np.array(a.box_xywh) - np.array(b.box_xywh)).max() <= 1e-4 and a.peak == b.peak


# --- loading, caching, defaults -------------------------------------------------------------------------------
def test_load_network_exports_on_first_use_into_a_cache_keyed_by_the_checkpoint(lite_folders, cache_root):
    folder = lite_folders[False]  # made by load_network on first use
    manifest = read_manifest(folder)
    assert folder.parent.name == manifest.checkpoint_sha256 and folder.is_relative_to(cache_root)
    assert manifest.preset == "LITE" and not manifest.align and manifest.online is not None
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    cfg = TrackerConfig.from_preset("LITE", backend="onnxruntime")
    net, meta = load_network(DEFAULT_MODEL, cfg, cache_dir=cache_root)  # from the cache: no new export
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp and meta["export"] == str(folder)
    assert isinstance(net, GraphNet) and OceanTracker(net, cfg).backend == "onnxruntime"


def test_auto_backend_is_onnxruntime_on_cpu_for_ocean_lite_and_torch_elsewhere(golden_dir, lite_folders):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu, DEFAULT_MODEL) == "onnxruntime"
    assert resolve_backend("auto", cpu, golden_dir / GOLDEN_WEIGHTS) == "torch"
    assert resolve_backend("auto", cuda, DEFAULT_MODEL) == "torch"
    assert resolve_backend("auto", cpu, lite_folders[False]) == "onnxruntime"
    assert resolve_backend("auto", cuda, lite_folders[False]) == "tensorrt"
    assert resolve_backend("openvino", cpu, DEFAULT_MODEL) == "openvino"
    assert TrackerConfig().backend == "auto"


def test_the_cli_exports_a_folder_the_tracker_loads(lite_folders, tmp_path, capsys):
    from ocean_ros.tools.export import main

    content = json.loads((lite_folders[True] / "manifest.json").read_text())  # ocean-export --align --no-online
    assert content["variant"] == {"arch": "ocean_lite", "align": True, "online": False}
    assert content["preset"] == "LITE" and content["opset"] == 17 and len(content["checkpoint"]["sha256"]) == 64
    assert content["geometry"]["stride"] == 16 and content["geometry"]["search"]["287"]["score_size"] == 13
    assert content["input"]["siamese"] == {"layout": "NCHW", "channels": "BGR", "range": "0..255"}
    cfg = TrackerConfig.from_preset("LITE", backend="openvino", align=True, online=False)
    net, meta = load_network(lite_folders[True], cfg)
    assert meta["backend"] == "openvino" and net.search_sizes == {255, 287} and net.has_align
    assert main([str(tmp_path / "missing.pth"), "--out", str(tmp_path / "x")]) == 1
    assert "checkpoint file not found" in capsys.readouterr().err


# --- bad input -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_corrupt_graph_fails_the_node_configuration_and_the_node_stays_up(lite_folders, tmp_path, node_process,
                                                                          ros_session):
    pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable: run scripts/setup_env.py or source a ROS install")
    import time

    from lifecycle_msgs.srv import GetState
    from tracker_harness import TrackerHarness, node_argv

    folder = _copy(lite_folders[False], tmp_path / "corrupt_node")
    (folder / "template.onnx").write_bytes(b"not a graph")
    process = node_process(node_argv("/corrupt", {"device": "cpu", "checkpoint": str(folder),
                                                  "backend": "onnxruntime"}))
    client = ros_session("corrupt_peer").node.create_client(GetState, "/corrupt/ocean_tracker/get_state")
    assert client.wait_for_service(timeout_sec=90), process.output()
    words = "template.onnx is corrupt or was replaced"
    deadline = time.monotonic() + 30
    while words not in process.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert words in process.output() and "cannot build the tracker" in process.output()
    assert TrackerHarness.call(client, GetState.Request(), 10).current_state.label == "unconfigured"
    assert process.proc.poll() is None, "the node must stay up, unconfigured"


def test_an_operator_that_cannot_be_exported_names_the_module_and_leaves_no_cache_entry(tmp_path):
    options = ExportOptions((255,), align=True, opset=15, online=False)  # GridSample needs opset 16
    with pytest.raises(ExportError, match=r"module align_head\.rpn_conv\.conv \(DeformConv3x3\).*grid_sampler"):
        cached_export(DEFAULT_MODEL, options, cache_dir=tmp_path)
    entries = list((tmp_path / "exports").rglob("*"))
    assert all(p.is_dir() for p in entries) and not any(p.name.startswith(".export_") for p in entries)


def test_a_network_without_the_requested_head_or_of_another_kind_is_refused(tmp_path, golden_dir):
    plain, _ = load_model(golden_dir / GOLDEN_WEIGHTS, fuse=False)
    plain.align_head = None
    from ocean_ros.core.export import export_network

    with pytest.raises(ExportError, match="no object-aware head"):
        export_network(plain, tmp_path / "a", ExportOptions((255,), align=True), preset="custom", checkpoint_sha256="")
    with pytest.raises(ExportError, match="only OceanNet and OceanLiteNet"):
        export_network(torch.nn.Conv2d(3, 3, 1), tmp_path / "b", ExportOptions((255,)), preset="custom",
                       checkpoint_sha256="")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "tensorrt"])
def test_a_missing_runtime_package_names_what_to_install(monkeypatch, backend):
    monkeypatch.setitem(sys.modules, backend, None)  # as if not installed: importing it raises ImportError
    with pytest.raises(BackendUnavailableError, match=rf"needs the Python package '{backend}'.*pip install {backend}"):
        import_runtime(backend)


def test_tensorrt_needs_cuda(lite_folders):
    with pytest.raises(BackendError, match="needs a CUDA device"):
        GraphNet(read_manifest(lite_folders[False]), "tensorrt", "cpu")
    with pytest.raises(BackendError, match="runs on the CPU"):
        GraphNet(read_manifest(lite_folders[False]), "onnxruntime", "cuda")


def test_a_folder_from_another_checkpoint_or_for_other_sizes_is_refused(lite_folders, golden_dir, tmp_path):
    folder = lite_folders[False]
    cfg = TrackerConfig.from_preset("LITE", backend="onnxruntime")
    from ocean_ros.core.manifest import check_against_checkpoint

    with pytest.raises(ExportManifestError, match="exported from another checkpoint"):
        check_against_checkpoint(read_manifest(folder), golden_dir / GOLDEN_WEIGHTS)
    with pytest.raises(ExportManifestError, match=r"search graphs for \[255, 287\] but the preset also picks \[271\]"):
        load_network(folder, cfg.replace(small_sz=271))
    with pytest.raises(ExportManifestError, match="exported without it"):
        load_network(folder, cfg.replace(align=True, online=False))
    with pytest.raises(ExportManifestError, match="stride 16"):
        load_network(folder, TrackerConfig.from_preset("GOT10K", backend="onnxruntime"))
    net = GraphNet(read_manifest(folder), "onnxruntime")
    with pytest.raises(ValueError, match="config.backend='openvino' but the network given runs on onnxruntime"):
        OceanTracker(net, cfg.replace(backend="openvino"))
    with pytest.raises(ValueError, match="search graphs for"):
        OceanTracker(net, cfg.replace(big_sz=271))


def _copy(folder: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(folder, dest)
    return dest


def test_a_manifest_that_disagrees_with_the_graphs_is_refused(lite_folders, tmp_path):
    folder = _copy(lite_folders[False], tmp_path / "edited")
    path = folder / "manifest.json"
    content = json.loads(path.read_text())
    content["graphs"]["template"]["inputs"][0]["shape"] = [1, 3, 255, 255]
    path.write_text(json.dumps(content))
    with pytest.raises(ExportManifestError, match=r"the runtime sees inputs \[template \[1, 3, 127, 127\]"):
        GraphNet(read_manifest(folder), "onnxruntime")
    path.write_text("{not json")
    with pytest.raises(ExportManifestError, match="not readable JSON"):
        read_manifest(folder)


def test_a_corrupt_graph_file_is_refused_with_the_reason(lite_folders, tmp_path):
    folder = _copy(lite_folders[False], tmp_path / "corrupt")
    graph = folder / "search_287.onnx"
    graph.write_bytes(graph.read_bytes()[:5000])
    with pytest.raises(ExportManifestError, match="search_287.onnx is corrupt or was replaced"):
        read_manifest(folder)
    with pytest.raises(BackendError, match="onnxruntime cannot load .*search_287.onnx"):
        GraphNet(read_manifest(folder, verify_files=False), "onnxruntime")
    with pytest.raises(BackendError, match="openvino cannot load .*search_287.onnx"):
        GraphNet(read_manifest(folder, verify_files=False), "openvino")


# --- TensorRT (on a CUDA machine only) --------------------------------------------------------------------
def _tensorrt_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "TensorRT runs on CUDA: no CUDA device here"
    try:
        import_runtime("tensorrt")
    except BackendUnavailableError as err:
        return str(err)
    return None


@pytest.mark.skipif(_tensorrt_skip_reason() is not None, reason=str(_tensorrt_skip_reason()))
@pytest.mark.parametrize("half", [False, True])
def test_tensorrt_maps_equal_torch(tmp_path, half):
    folder = export_checkpoint(DEFAULT_MODEL, tmp_path / "trt", half=half, device="cuda").folder
    net = GraphNet(read_manifest(folder), "tensorrt", "cuda", engine_cache=tmp_path / "engines")
    ref_net = load_model(DEFAULT_MODEL, device="cuda")[0]
    z, x = _images(127).cuda(), _images(287, seed=2).cuda()
    with torch.inference_mode():
        ref = ref_net.track(x, ref_net.template(z), use_align=False)
        out = net.track(x.to(net.dtype), net.template(z.to(net.dtype)), use_align=False)
    limit = 2e-2 if half else RELATIVE
    assert relative_error(out.cls.float(), ref.cls) <= limit and relative_error(out.reg.float(), ref.reg) <= limit
    assert list((tmp_path / "engines").glob("search_287-*.engine")), "engines cached by graph, GPU and version"
