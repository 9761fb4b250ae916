"""Ocean network: architecture, parity with TracKit golden maps, box-aligned deformable sampling, float16."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import data_root

from ocean_ros.core.checkpoint import load_model
from ocean_ros.core.model import OceanNet, OceanNetConfig, box_offsets, deform_conv3x3, score_size

WEIGHTS = "ocean_random_seed1.pth"
PARITY = 1e-4  # max |ours - reference| / max |reference|, per map
# The chained object-aware map (our reg → tap positions → sampling) amplifies float32 conv rounding, which
# depends on the CPU's kernels: 2.6e-5 on the machine the reference was checked on, 2.8e-4 on an AMD EPYC
# (cls/reg 1e-5 there). The align branch itself is held to PARITY on the reference's own reg ("ref boxes").
ALIGN_CHAIN_PARITY = 1e-3
# The random golden weights predict boxes up to ~1e9 px on some ball1 cells. There the tap positions come from
# float32 cancellation (cy ≈ -1e5 plus hf/2 ≈ +1e5) and carry ~1e-2-cell rounding noise in TracKit itself, so
# object-aware logits are compared end to end only where every side is below this many crop sides; the branch
# is checked on all cells separately by feeding it the reference's own boxes.
SANE_SIDES = 256


def _golden_runs() -> list[str]:
    """Offline golden runs (files holding z, x_i and the output maps), discovered at collection time."""
    runs = []
    for path in sorted((data_root() / "golden").glob("*.npz")):
        with np.load(path) as data:
            if {"z", "x0", "cls0", "reg0", "align0"} <= set(data.files):
                runs.append(path.stem)
    return runs or ["no-golden-runs"]


def rel_err(got: torch.Tensor | np.ndarray, ref: np.ndarray) -> float:
    got = got.detach().float().cpu().numpy() if isinstance(got, torch.Tensor) else got
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def golden_net(golden_dir):
    net, meta = load_model(golden_dir / WEIGHTS)
    assert meta["variant"] == {"align": True, "online": False}
    return net


# --------------------------------------------------------------------------------------------- architecture


def test_parameter_counts_match_the_published_model():
    def millions(config: OceanNetConfig) -> float:
        return sum(p.numel() for p in OceanNet(config).parameters()) / 1e6

    base = millions(OceanNetConfig(align=False))
    assert round(base, 2) == 25.87
    assert round(millions(OceanNetConfig(align=True)) - base, 2) == 0.59
    assert round(millions(OceanNetConfig(align=False, online=True)) - base, 2) == 11.29


def test_state_dict_uses_trackit_key_layout():
    keys = OceanNet(OceanNetConfig(align=True, online=True)).state_dict()
    assert tuple(keys["features.features.layer2.0.downsample.0.weight"].shape) == (512, 256, 3, 3)
    assert tuple(keys["features.features.layer3.0.downsample.0.weight"].shape) == (1024, 512, 3, 3)
    assert tuple(keys["features.features.layeronline.0.downsample.0.weight"].shape) == (1024, 512, 3, 3)
    assert tuple(keys["connect_model.cls_encode.matrix12_k.0.weight"].shape) == (256, 256, 3, 3)
    assert tuple(keys["connect_model.reg_dw.weight"].shape) == (3,)
    assert tuple(keys["connect_model.bbox_tower.9.weight"].shape) == (256, 256, 3, 3)
    assert tuple(keys["connect_model.bias"].shape) == (1, 4, 1, 1)
    assert tuple(keys["align_head.rpn_conv.conv.weight"].shape) == (256, 256, 3, 3)
    assert tuple(keys["align_head.rpn_cls.weight"].shape) == (1, 256, 1, 1)
    assert len(OceanNet(OceanNetConfig(align=False)).state_dict()) == 400


@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(0)
    return OceanNet(OceanNetConfig(align=True)).eval()


@pytest.mark.parametrize("search_size", [255, 271, 287])
def test_output_shapes_and_template_broadcast(random_net, search_size):
    n = score_size(search_size)
    assert n == {255: 25, 271: 27, 287: 29}[search_size]
    with torch.inference_mode():
        zf = random_net.template(torch.rand(1, 3, 127, 127) * 255)
        assert zf.shape == (1, 256, 7, 7)
        out = random_net.track(torch.rand(2, 3, search_size, search_size) * 255, zf)
    assert out.cls.shape == (2, 1, n, n)
    assert out.reg.shape == (2, 4, n, n)
    assert out.align is not None and out.align.shape == (2, 1, n, n)
    assert bool((out.reg > 0).all())
    assert all(bool(torch.isfinite(t).all()) for t in out)


def test_align_is_none_when_not_requested_or_not_built(random_net):
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.inference_mode():
        zf = random_net.template(torch.rand(1, 3, 127, 127) * 255)
        assert random_net.has_align
        assert random_net.track(x, zf, use_align=False).align is None
        bare = OceanNet(OceanNetConfig(align=False)).eval()
        assert not bare.has_align
        assert bare.track(x, bare.template(torch.rand(1, 3, 127, 127) * 255)).align is None


def test_batched_track_equals_per_item_track(random_net):
    torch.manual_seed(1)
    z = torch.rand(2, 3, 127, 127) * 255
    x = torch.rand(2, 3, 255, 255) * 255
    with torch.inference_mode():
        zf = random_net.template(z)
        both = random_net.track(x, zf)
        one = random_net.track(x[1:], zf[1:])
    for a, b in zip(both, one, strict=True):
        torch.testing.assert_close(a[1:], b, rtol=1e-4, atol=1e-5)


def test_bad_input_shapes_are_rejected(random_net):
    with pytest.raises(ValueError, match="127"):
        random_net.template(torch.zeros(1, 3, 255, 255))
    with pytest.raises(ValueError, match=r"\[B,3,S,S\]"):
        random_net.track(torch.zeros(1, 3, 255, 271), torch.zeros(1, 256, 7, 7))


# ------------------------------------------------------------------------------------------- golden parity


@pytest.mark.parametrize("run", _golden_runs())
def test_network_matches_trackit_golden_maps(run, golden_dir, golden_net):
    data = np.load(golden_dir / f"{run}.npz")
    use_align = run.endswith("_align")
    frames = sum(1 for name in data.files if name.startswith("x"))
    assert frames >= 1
    captured = {}
    hook = golden_net.connect_model.register_forward_hook(lambda _m, _i, out: captured.update(head=out))
    worst = {"cls": 0.0, "reg": 0.0, "align": 0.0, "align(all cells)": 0.0, "align(ref boxes)": 0.0}
    try:
        with torch.inference_mode():
            zf = golden_net.template(torch.from_numpy(data["z"]).float())
            for i in range(frames):
                x = torch.from_numpy(data[f"x{i}"]).float()
                size = x.shape[-1]
                out = golden_net.track(x, zf, use_align=use_align)
                n = score_size(size)
                assert out.cls.shape == (1, 1, n, n) and out.reg.shape == (1, 4, n, n)
                worst["cls"] = max(worst["cls"], rel_err(out.cls, data[f"cls{i}"]))
                worst["reg"] = max(worst["reg"], rel_err(out.reg, data[f"reg{i}"]))
                if not use_align:
                    assert out.align is None
                    assert np.all(data[f"align{i}"] == 0)
                    continue
                ref, ref_reg = data[f"align{i}"], data[f"reg{i}"]
                diff = np.abs(out.align.numpy() - ref) / np.abs(ref).max()
                sane = ref_reg.max(axis=1, keepdims=True) <= SANE_SIDES * size
                assert sane.any()
                worst["align"] = max(worst["align"], float(diff[sane].max()))
                worst["align(all cells)"] = max(worst["align(all cells)"], float(diff.max()))
                reg_feat = captured["head"][2]
                alone = golden_net.align_head(reg_feat, torch.from_numpy(ref_reg), size)
                worst["align(ref boxes)"] = max(worst["align(ref boxes)"], rel_err(alone, ref))
    finally:
        hook.remove()
    shown = worst if use_align else {k: worst[k] for k in ("cls", "reg")}
    summary = ", ".join(f"{k} {v:.2e}" for k, v in shown.items())
    print(f"\n{run}: worst relative errors over {frames} frames: {summary}")
    checked = ["cls", "reg"] + (["align(ref boxes)"] if use_align else [])
    assert all(worst[k] <= PARITY for k in checked), worst
    assert worst["align"] <= ALIGN_CHAIN_PARITY, worst


# ------------------------------------------------------------------------------------ deformable sampling


def _bilinear(plane: np.ndarray, y: float, x: float) -> float:
    """Reference bilinear read with zeros outside (deformable-conv border rule), one point at a time."""
    h, w = plane.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    value = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                value += wy * wx * float(plane[yy, xx])
    return value


def _brute_deform(x: np.ndarray, offset: np.ndarray, weight: np.ndarray) -> np.ndarray:
    b, c, h, w = x.shape
    out = np.zeros((b, weight.shape[0], h, w))
    for n in range(b):
        for i in range(h):
            for j in range(w):
                for k in range(9):
                    ka, kc = divmod(k, 3)
                    y = i - 1 + ka + float(offset[n, 2 * k, i, j])
                    xx = j - 1 + kc + float(offset[n, 2 * k + 1, i, j])
                    column = np.array([_bilinear(x[n, ch], y, xx) for ch in range(c)])
                    out[n, :, i, j] += weight[:, :, ka, kc] @ column
    return out


def test_deformable_conv_matches_brute_force_bilinear_taps():
    gen = torch.Generator().manual_seed(3)
    b, c, o, h, w = 2, 3, 4, 5, 6
    x = torch.randn(b, c, h, w, generator=gen)
    weight = torch.randn(o, c, 3, 3, generator=gen)
    offset = (torch.rand(b, 18, h, w, generator=gen) - 0.5) * 8  # many taps land outside the map
    # Border cases: exact integer taps, exactly -1 and W (read zero), half a cell outside, far away.
    offset[0, 0:2, 0, 0] = torch.tensor([0.0, 0.0])  # tap (-1,-1) of cell (0,0): exactly (-1, -1)
    offset[0, 8:10, 2, 3] = torch.tensor([1.0, -2.0])  # integer position (3, 2)
    offset[0, 10:12, 4, 5] = torch.tensor([0.0, 0.5])  # x = 6.5 > W - 1
    offset[1, 16:18, 4, 5] = torch.tensor([-0.5, -0.5])  # (4.5, 5.5): half a cell beyond both borders
    offset[1, 0:2, 0, 0] = torch.tensor([0.5, 0.5])  # (-0.5, -0.5)
    offset[1, 2:4, 1, 1] = torch.tensor([-40.0, 55.0])
    offset[1, 4:6, 2, 0] = torch.tensor([0.0, -1.0 - 1e-3])  # x just beyond -1
    got = deform_conv3x3(x, offset, weight)
    expected = _brute_deform(x.double().numpy(), offset.double().numpy(), weight.double().numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_deformable_conv_with_zero_offsets_is_a_plain_padded_conv():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 8, 9, 7, generator=gen)
    weight = torch.randn(5, 8, 3, 3, generator=gen)
    got = deform_conv3x3(x, torch.zeros(1, 18, 9, 7), weight)
    torch.testing.assert_close(got, torch.nn.functional.conv2d(x, weight, padding=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("search_size", [255, 271])
def test_box_offsets_put_the_taps_on_the_predicted_box(search_size):
    n = score_size(search_size)
    gen = torch.Generator().manual_seed(5)
    reg = torch.rand(2, 4, n, n, generator=gen) * 60 + 1
    offset = box_offsets(reg, search_size)
    assert offset.shape == (2, 18, n, n) and offset.dtype == torch.float32
    for bi, i, j in [(0, 0, 0), (0, 3, 17), (1, n // 2, n // 2), (1, n - 1, 2)]:
        left, top, right, bottom = (float(v) for v in reg[bi, :, i, j])
        gx = (j - n // 2) * 8 + search_size // 2
        gy = (i - n // 2) * 8 + search_size // 2
        x1, y1, x2, y2 = gx - left, gy - top, gx + right, gy + bottom
        cx = ((x1 + x2) / 2 - search_size * 0.5) / 8 + n // 2
        cy = ((y1 + y2) / 2 - search_size * 0.5) / 8 + n // 2
        wf, hf = (x2 - x1 + 1) / 8, (y2 - y1 + 1) / 8
        for k in range(9):
            a, c = k // 3 - 1, k % 3 - 1
            tap_y = i + a + float(offset[bi, 2 * k, i, j])
            tap_x = j + c + float(offset[bi, 2 * k + 1, i, j])
            assert tap_y == pytest.approx(cy + a * hf / 2, abs=1e-4)
            assert tap_x == pytest.approx(cx + c * wf / 2, abs=1e-4)


def test_box_offsets_keep_trackits_half_pixel_centre_quirk():
    # A symmetric 32×32 box on a cell: its centre tap sits 1/16 cell up-left (S*0.5 vs S//2), and the
    # corner taps (32 + 1)/16 cells further out.
    n = score_size(255)
    offset = box_offsets(torch.full((1, 4, n, n), 16.0), 255)
    torch.testing.assert_close(offset[:, 8:10], torch.full((1, 2, n, n), -1 / 16))
    torch.testing.assert_close(offset[:, 0:2], torch.full((1, 2, n, n), -1 / 16 - 33 / 16 + 1))


# ------------------------------------------------------------------------------------------------ float16


def _devices() -> list:
    cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    # Half-precision convolutions on CPU are correct but emulated and slow (several seconds here).
    return [pytest.param("cpu", marks=pytest.mark.slow), pytest.param("cuda", marks=cuda)]


@pytest.mark.parametrize("device", _devices())
def test_float16_forward_stays_close_to_float32(device, golden_dir):
    try:
        ones = torch.ones(1, 1, 3, 3, dtype=torch.float16, device=device)
        torch.nn.functional.conv2d(ones, ones)
    except RuntimeError:  # builds without half-precision CPU kernels
        pytest.skip("float16 needs CUDA")
    data = np.load(golden_dir / "bag_VOT2019_align.npz")
    net, _ = load_model(golden_dir / WEIGHTS, device=device, dtype=torch.float16)
    z = torch.from_numpy(data["z"]).to(device)
    x = torch.from_numpy(data["x0"]).to(device)
    with torch.inference_mode():
        out = net.track(x, net.template(z))
    assert all(t.dtype == torch.float16 and t.device.type == device for t in out)
    assert all(bool(torch.isfinite(t).all()) for t in out)
    assert rel_err(out.cls, data["cls0"]) < 0.1
    assert rel_err(out.reg, data["reg0"]) < 0.05
    assert rel_err(out.align, data["align0"]) < 0.1
