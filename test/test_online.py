"""The online classifier, piece by piece, against TracKit's golden online runs (CPU, float32), plus its rules.

Parity: the merged online checkpoint (built in a temporary folder as the golden README says) loads strictly
through `load_model`; sample crops, augmentation, classification features, the PrRoIPool initialiser, one
optimiser step, the 25 initial steps, per-frame scoring, the memory update and the update steps are compared
with `bag_VOT2019ON.npz` and `ball1_VOT2018ON.npz` (relative error = max abs diff / max abs of reference).

One number is not reproducible at 1e-4 in principle: ball1's 25 initial steps (filter_final). Its Gauss-Newton
steps reach step lengths ~10 (steps 10 and 23), which amplify float32 rounding about tenfold each: a 1-ulp
change of the initial filter moves the 25-step result by ~2-3e-4 (`test_ball1_initial_steps_are_ill_conditioned`),
so the reference's own float32 rounding is of that size. Here it comes out at ~5e-5, but it is held to 2e-3 so
that another CPU's rounding cannot fail it; bag's is held to 1e-4, and one step and every later update match
to ~1e-7.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ocean_ros.core import online as ol
from ocean_ros.core.checkpoint import load_model
from ocean_ros.core.config import BLUR_SIGMAS
from ocean_ros.core.geometry import frame_to_device
from ocean_ros.core.model import OnlineOceanNet
from ocean_ros.core.online import augmentation as aug
from ocean_ros.core.scalars import Numbers

RUNS = {"bag_VOT2019ON": "bag", "ball1_VOT2018ON": "ball1"}
TOL = 1e-4
BALL1_FINAL_TOL = 2e-3
HOST = Numbers(torch.device("cpu"), on_host=True)  # the online state as host numbers (the OpenCV-crop step's)


def rel(got, want) -> float:
    got, want = torch.as_tensor(got).double(), torch.as_tensor(want).double()
    return float((got - want).abs().max() / want.abs().max())


@pytest.fixture(scope="module")
def merged_path(online_checkpoint) -> Path:
    return online_checkpoint


@pytest.fixture(scope="module")
def net(merged_path):
    net, meta = load_model(merged_path)
    assert meta["classifier"] and meta["variant"] == {"align": False, "online": True}
    return net


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, golden_dir, sequences_dir):
    name = request.param
    data = dict(np.load(golden_dir / f"{name}.npz"))
    boxes = np.loadtxt(golden_dir / f"{name}.txt", delimiter=",")
    frames = sorted((sequences_dir / RUNS[name] / "color").glob("*.jpg"))
    return name, data, boxes, frames


def golden_state(run) -> tuple[tuple[float, float], tuple[float, float], float]:
    _, data, _, _ = run
    pos = tuple(float(v) for v in data["init_pos"])
    size = tuple(float(v) for v in data["init_target_sz"])
    return pos, size, float(data["init_target_scale"])


def update(branch: ol.OnlineBranch, result: ol.OnlineScore, center, size, image_wh) -> tuple[str, bool]:
    """The step's online update for a target at ``center`` (x, y) of ``size`` (w, h), then the schedule: (flag,
    whether the filter was re-optimised)."""
    branch.adopt(result, (*center, *size), image_wh)
    flag, iterations = branch.finish(int(result.flag))
    branch.optimise(iterations)
    return flag, iterations > 0


def peak_position(scores: torch.Tensor, window: ol.SampleWindow) -> tuple[float, float]:
    """Frame position (y, x) of the first maximum of a raw score map [.., H, W] cut with ``window``: a cell is
    224/(H - 1) sample px; the map centre (H-1)/2, (W-1)/2 sits at the window centre."""
    height, width = scores.shape[-2:]
    row, col = divmod(int(scores.reshape(-1).argmax()), width)
    cell = 224 / (height - 1) * window.scale
    return window.pos[0] + (row - (height - 1) / 2) * cell, window.pos[1] + (col - (width - 1) / 2) * cell


def golden_transforms(data) -> list[ol.Transform]:
    kinds = ol.draw_transforms(ol.OnlineParams(), torch.Generator().manual_seed(0))
    return [ol.Transform(t.kind, (int(s[0]), int(s[1])), t.sigma, t.angle)
            for t, s in zip(kinds, data["transform_shifts"], strict=False)]


# ----------------------------------------------------------------------------------------- checkpoint
def test_merged_checkpoint_loads_strictly_with_the_classifier(net, golden_dir):
    assert isinstance(net, OnlineOceanNet)
    extra = torch.load(golden_dir / "ocean_online_extra_seed2.pth", weights_only=True)
    state = net.state_dict()
    for key, value in extra.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(state[key], value.float()), key
    assert sum(k.startswith("classifier.") for k in extra) == 8
    assert isinstance(net.classifier, torch.nn.Module) and not net.training


# -------------------------------------------------------------------------------------- samples, features
@torch.inference_mode()
def test_first_frame_sample_and_features(net, run):
    name, data, _, frames = run
    pos, size, scale = golden_state(run)
    branch = ol.OnlineBranch(net, ol.OnlineParams(), HOST)
    frame_t = frame_to_device(cv2.imread(str(frames[0])), "cpu")
    samples = branch.initial_samples(frame_t, pos, scale, golden_transforms(data))
    patches = torch.from_numpy(data["init_patches"].astype(np.float32))
    grey = (samples - patches).abs().amax(dim=(1, 2, 3))
    assert float(grey[0]) <= 0.5, f"{name}: identity sample off by {float(grey[0])} grey levels"
    assert float(grey.max()) <= 0.5, f"{name}: augmented samples off by {grey.tolist()}"
    feat = branch.features(samples)
    assert rel(feat[:1], data["init_feat"][:1]) < TOL
    assert rel(feat, data["init_feat"][:23]) < TOL


def test_target_scale_and_boxes_of_the_initial_samples(run):
    _, data, _, _ = run
    pos, size, _ = golden_state(run)
    scale = math.sqrt(16 * size[0] * size[1]) / 224
    assert scale == pytest.approx(float(data["init_target_scale"]), rel=1e-6)
    base = ol.target_box(pos, size, (float(round(pos[0])), float(round(pos[1]))), scale, 224)
    shifts = data["transform_shifts"]
    boxes = np.array([[base[0] + dx, base[1] + dy, base[2], base[3]] for dy, dx in shifts])
    np.testing.assert_allclose(boxes, data["init_boxes"], rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------------- initialiser, optimiser
@torch.inference_mode()
def test_initialiser_and_optimiser_steps(net, run):
    name, data, _, _ = run
    clf = net.classifier
    feat, boxes = torch.from_numpy(data["init_feat"]), torch.from_numpy(data["init_boxes"])
    start = torch.from_numpy(data["filter_init"])
    assert rel(clf.init_filter(feat, boxes), data["filter_init"]) < TOL
    assert rel(clf.optimize(start, feat, boxes, None, 1), data["filter_iter1"]) < TOL
    final = clf.optimize(start, feat, boxes, None, 25)
    assert rel(final, data["filter_final"]) < (BALL1_FINAL_TOL if name.startswith("ball1") else TOL)


@torch.inference_mode()
def test_ball1_initial_steps_are_ill_conditioned(net, golden_dir):
    data = np.load(golden_dir / "ball1_VOT2018ON.npz")
    clf = net.classifier
    feat, boxes = torch.from_numpy(data["init_feat"]), torch.from_numpy(data["init_boxes"])
    start = torch.from_numpy(data["filter_init"])
    base = clf.optimize(start, feat, boxes, None, 25)
    gen = torch.Generator().manual_seed(0)
    spread = 0.0
    for _ in range(3):
        ulp = torch.randint(-1, 2, start.shape, generator=gen).float() * 2.0**-24
        spread = max(spread, rel(clf.optimize(start * (1 + ulp), feat, boxes, None, 25), base))
    # A 1-ulp (6e-8) change of the start moves filter_final by orders of magnitude more: 2-3e-4 on the machine the
    # reference was checked on, 4.6e-5 on an AMD EPYC. Float32 rounding alone explains departures of this size.
    assert spread > 1e-5


@torch.inference_mode()
def test_optimiser_lowers_the_training_loss(net, run):
    """Every step lowers the loss, except the first one from the initialiser, which overshoots in TracKit
    too (its own filter_iter1 has a higher loss than filter_init); that step is still a descent direction."""
    _, data, _, _ = run
    opt = net.classifier.filter_optimizer
    feat, boxes = torch.from_numpy(data["init_feat"]), torch.from_numpy(data["init_boxes"])
    targets = opt.targets(boxes, (14, 14))
    weights = opt.residual_weights(targets, None)

    def loss(f: torch.Tensor) -> float:
        return float(opt.loss(f, feat, targets, weights))

    start = torch.from_numpy(data["filter_init"])
    assert loss(torch.from_numpy(data["filter_iter1"])) > loss(start)
    tiny = start + 1e-3 * (opt.step(start, feat, targets, weights) - start)
    assert loss(tiny) < loss(start)
    filt = opt.step(start, feat, targets, weights)
    for _ in range(24):
        new = opt.step(filt, feat, targets, weights)
        assert loss(new) < loss(filt)
        filt = new


# --------------------------------------------------------------------------------- per-frame chain
@torch.inference_mode()
def test_tracked_frames_scores_flags_memory_and_updates(net, run):
    """Replays the reference's online state frame by frame (positions from its box file, flags from its
    npz): this frame's crop and features, the scores of the filter in force, the flag, the memory update and,
    at each update frame, the optimiser on the memory (then the loss drops at each of its steps)."""
    name, data, boxes, frames = run
    pos, size, scale = golden_state(run)
    height, width = cv2.imread(str(frames[0])).shape[:2]
    branch = ol.OnlineBranch(net, ol.OnlineParams(), HOST)
    branch._filter = torch.from_numpy(data["filter_final"]).clone()  # the reference's first-frame state
    branch._memory = ol.SampleMemory(250, (512, 13, 13), "cpu")
    branch._memory.reset(torch.from_numpy(data["init_feat"]), torch.from_numpy(data["init_boxes"]))
    branch.target.load([*pos, *size])
    branch.target_scale, branch.frame_num, branch.feature_size, branch.initialised = scale, 1, (13, 13), True
    opt = net.classifier.filter_optimizer
    tracked = sum(1 for key in data if key.endswith("_test_x"))
    updates = 0
    for k in range(1, tracked + 1):
        result = branch.score(frame_to_device(cv2.imread(str(frames[k])), "cpu"))
        assert rel(result.features, data[f"f{k}_test_x"]) < TOL, (name, k)
        # ball1's filter is ill-conditioned (below): its scores inherit the filter's CPU-dependent rounding
        score_tol = BALL1_FINAL_TOL if name.startswith("ball1") else TOL
        assert rel(result.scores, data[f"f{k}_scores_raw"]) < score_tol, (name, k)
        assert ol.flag_name(result.flag) == data["flags"][k - 1], (name, k)
        result = result._replace(features=torch.from_numpy(data[f"f{k}_test_x"]))
        before = branch.filter.clone()
        x, y, w, h = boxes[k]
        flag, updated = update(branch, result, (x + w / 2, y + h / 2), (w, h), (width, height))
        assert updated == (f"f{k}_filter_updated" in data), (name, k, flag)
        if updated:
            updates += 1
            assert rel(branch.filter, data[f"f{k}_filter_updated"]) < TOL, (name, k)
            feat, bxs, wts = branch.memory.training_set()
            targets = opt.targets(bxs, (14, 14))
            weights = opt.residual_weights(targets, wts)
            losses = [float(opt.loss(before, feat, targets, weights))]
            for _ in range(int(data[f"f{k}_opt_iters"])):
                before = opt.step(before, feat, targets, weights)
                losses.append(float(opt.loss(before, feat, targets, weights)))
            assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
            branch.filter.copy_(torch.from_numpy(data[f"f{k}_filter_updated"]))
    assert updates == 2


# ------------------------------------------------------------------------------------------ the rules
def test_memory_weight_rule_matches_hand_computed_weights():
    lr = 0.1
    memory = ol.SampleMemory(5, (1,), "cpu")
    memory.weights = torch.zeros(5, dtype=torch.float64)  # the rule in float64, to check it to 1e-15

    def add(rate: float) -> tuple[torch.Tensor, int]:
        memory.add(torch.zeros(1, 1), torch.zeros(4), rate)
        return memory.weights, int(memory.previous)

    memory.weights[:2] = 0.5
    memory.count_t.fill_(2)
    w, slot = add(lr)  # first update: old / 0.9, new = 0.1, renormalise
    total = 0.5 / 0.9 * 2 + 0.1
    expected = [0.5 / 0.9 / total, 0.5 / 0.9 / total, 0.1 / total, 0, 0]
    assert slot == 2
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    w, slot = add(lr)  # new = previous new / 0.9
    raw = [expected[0], expected[1], expected[2], expected[2] / 0.9, 0]
    assert slot == 3
    torch.testing.assert_close(w, torch.tensor(raw, dtype=torch.float64) / sum(raw), rtol=0, atol=1e-15)
    memory.weights.copy_(torch.tensor([0.3, 0.1, 0.2, 0.25, 0.15], dtype=torch.float64))
    memory.count_t.fill_(5)
    memory.previous.fill_(4)
    w, slot = add(0.02)  # full: replace the lowest weight (slot 1)
    raw = [0.3, 0.15 / 0.98, 0.2, 0.25, 0.15]
    assert slot == 1
    torch.testing.assert_close(w, torch.tensor(raw, dtype=torch.float64) / sum(raw), rtol=0, atol=1e-15)
    w, slot = add(1.0)  # learning rate 1 keeps the new sample only
    assert slot == 0 and w.tolist() == [1, 0, 0, 0, 0]
    weights, count = memory.weights.clone(), memory.count
    memory.add(torch.ones(1, 1), torch.ones(4), lr, torch.tensor(False))  # a masked write changes nothing
    assert torch.equal(memory.weights, weights) and memory.count == count and float(memory.features[0]) == 0


def test_memory_is_preallocated_and_replaces_the_lowest_weight():
    memory = ol.SampleMemory(4, (2, 3, 3), "cpu")
    pointers = (memory.features.data_ptr(), memory.boxes.data_ptr(), memory.weights.data_ptr())
    memory.reset(torch.ones(2, 2, 3, 3), torch.ones(2, 4))
    for i in range(4):
        memory.add(torch.full((1, 2, 3, 3), 10.0 + i), torch.full((4,), 10.0 + i), 0.0075)
    assert memory.count == 6 and memory.stored == 4
    assert (memory.features.data_ptr(), memory.boxes.data_ptr(), memory.weights.data_ptr()) == pointers
    feat, boxes, weights = memory.training_set()
    assert float(weights.sum()) == pytest.approx(1.0)
    # Slots 2, 3 were filled in turn; once full, the lowest weight goes first: the oldest tracked sample
    # (new samples weigh lr/(1 - lr)^k, far below the initial ones).
    assert boxes[:, 0].tolist() == [1.0, 1.0, 12.0, 13.0]
    assert float(feat[2].mean()) == 12.0 and float(weights[3]) > float(weights[2])


def test_augmentation_is_reproducible_with_a_seed():
    params = ol.OnlineParams()
    a, b = ol.draw_augmentation(params, 512), ol.draw_augmentation(params, 512)
    assert a.transforms == b.transforms and torch.equal(a.dropout_keep, b.dropout_keep)
    c = ol.draw_augmentation(ol.OnlineParams(seed=7), 512)
    assert c.transforms != a.transforms and not torch.equal(c.dropout_keep, a.dropout_keep)
    kinds = [t.kind for t in a.transforms]
    assert kinds == ["identity"] + ["shift"] * 4 + ["flip"] + ["blur"] * 5 + ["rotate"] * 12
    assert all(abs(v) <= 224 / 6 for t in a.transforms[5:] for v in t.shift)
    assert a.dropout_keep.shape == (7, 512) and 0.7 < float(a.dropout_keep.float().mean()) < 0.9
    image = torch.rand(1, 3, 448, 448, generator=torch.Generator().manual_seed(1)) * 255
    first = ol.augment(image, a.transforms, 224)
    assert first.shape == (23, 3, 224, 224) and torch.equal(first, ol.augment(image, b.transforms, 224))
    feat = torch.randn(1, 512, 13, 13)
    copies = ol.dropout_copies(feat, a.dropout_keep, 0.2)
    assert torch.equal(copies, ol.dropout_copies(feat, b.dropout_keep, 0.2))
    kept = copies[0].abs().sum(dim=(1, 2)) > 0
    torch.testing.assert_close(copies[0][kept], feat[0][kept] / 0.8)
    assert len(ol.draw_augmentation(ol.OnlineParams(augmentation=False), 512).transforms) == 1


def flag_of(scores: torch.Tensor, params: ol.OnlineParams | None = None, target=(2.0, 2.0), prev=(0.0, 0.0)):
    return ol.flag_name(int(ol.localize(scores, target, prev, params or ol.OnlineParams())))


def test_localisation_flags():
    base = torch.full((14, 14), -0.05)
    assert flag_of(base) == "not_found"
    single = base.clone()
    single[6, 7] = 1.0
    single[7, 7] = 0.5  # inside the target neighbourhood: ignored
    assert flag_of(single) == "normal"
    distractor = single.clone()
    distractor[1, 12] = 0.5
    assert flag_of(distractor) == "hard_negative"
    distractor[1, 12] = 0.4
    assert flag_of(distractor) == "normal"
    # A second peak above distractor_threshold x the first: hard negative only if exactly one of the two is
    # far (> 0.7*14/2 = 4.9 cells) from the previous position, else uncertain.
    params = ol.OnlineParams(distractor_threshold=0.3)
    distractor[1, 12] = 0.5
    assert flag_of(distractor, params, prev=(0.0, 0.0)) == "hard_negative"
    near = single.clone()
    near[4, 9] = 0.5
    assert flag_of(near, params, target=(1.0, 1.0), prev=(0.0, 0.0)) == "uncertain"
    assert flag_of(distractor, params, prev=(-20.0, 0.0)) == "uncertain"


def test_sample_window_geometry():
    window = ol.sample_window((100.7, 50.2), 404.62, 224)  # TracKit: truncate, round the side, floor halves
    assert (window.top, window.left, window.size, window.step) == (100 - 202, 50 - 202, 405, 1)
    assert window.pos == (100.0, 50.0) and window.scale == pytest.approx(405 / 224)
    big = ol.sample_window((301.0, 400.0), 3 * 224.0, 224)  # pre-decimation by int(3 - 0.1) = 2
    assert big.step == 2 and big.offset == (1, 0) and big.size == 336
    assert big.scale == pytest.approx(3.0)


# ------------------------------------------------------------------------------- synthetic sequence
def _checker(side: int, bright: tuple[int, int, int], dark: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    mask = ((yy * 4 // side) + (xx * 4 // side)) % 2 == 0
    patch = np.empty((side, side, 3), np.uint8)
    patch[mask], patch[~mask] = bright, dark
    return patch


def synthetic_sequence(count: int = 40, side: int = 40):
    """A checkered target moving over smooth coloured clutter; a look-alike passes ~1.4 target sides away."""
    width, height = 480, 360
    rng = np.random.RandomState(1)
    small = rng.rand(height // 8, width // 8, 3)
    clutter = (60 + cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 130)
    clutter = clutter.astype(np.uint8)
    target = _checker(side, (255, 40, 40), (20, 20, 220))
    look_alike = _checker(side, (250, 45, 45), (25, 25, 215))
    frames, centres, gaps = [], [], []
    for k in range(count):
        t = k / (count - 1)
        wave = 50 * math.sin(2 * math.pi * t)
        tc, dc = (120 + 240 * t, 180 + wave), (400 - 260 * t, 180 + wave - 55)
        frame = clutter.copy()
        for patch, (cx, cy) in ((look_alike, dc), (target, tc)):
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            frame[y0 : y0 + side, x0 : x0 + side] = patch
        frames.append(frame)
        centres.append(tc)
        gaps.append(math.hypot(tc[0] - dc[0], tc[1] - dc[1]) / side)
    return frames, centres, gaps, (width, height), side


@torch.inference_mode()
def test_online_branch_alone_follows_a_target_past_a_look_alike(net):
    frames, centres, gaps, image_wh, side = synthetic_sequence()
    branch = ol.OnlineBranch(net, ol.OnlineParams(), HOST)
    branch.initialize(frame_to_device(frames[0], "cpu"), centres[0], (side, side))
    errors, flags = [], []
    for frame, (cx, cy) in zip(frames[1:], centres[1:], strict=True):
        result = branch.score(frame_to_device(frame, "cpu"))
        py, px = peak_position(result.scores, result.window)
        cell = 224 / 13 * result.window.scale
        errors.append(math.hypot(py - cy, px - cx) / cell)
        flag, _ = update(branch, result, (px, py), (side, side), image_wh)  # its own estimate, fixed size
        flags.append(flag)
    within = sum(e <= 1.5 for e in errors) / len(errors)
    assert within >= 0.9, errors
    close = [f for f, g in zip(flags, gaps[1:], strict=True) if g < 2.5]
    far = [f for f, g in zip(flags, gaps[1:], strict=True) if g > 3.5]
    assert "hard_negative" in close, list(zip(flags, gaps[1:], strict=True))
    assert "hard_negative" not in far


@pytest.mark.parametrize("shift", [(0, 0), (37, -30), (-120, 10), (112, 112)])
def test_windowed_rotation_and_blur_equal_the_whole_image_then_crop(shift):
    """The initial augmentation rotates and blurs only the output window: bit-identical to transforming the whole
    expanded crop and cutting the window (also where the window reaches the replicated border)."""
    image = torch.rand(1, 3, 448, 448, generator=torch.Generator().manual_seed(3)) * 255
    rows, cols = aug._output_taps(448, shift, 224, image.device)
    for angle in (5, -45, 60):
        whole = aug._crop_to_output(aug._rotate(image, angle), shift, 224)
        assert torch.equal(aug._rotate(image, angle, rows, cols), whole)
    for sigma in BLUR_SIGMAS:
        whole = aug._crop_to_output(aug._blur(image, sigma), shift, 224)
        assert torch.equal(aug._blurred_window(image, sigma, shift, 224), whole)


def test_optimiser_targets_equal_the_1x1_conv_over_the_distance_bins():
    """FilterOptimizer.targets evaluates TracKit's 1x1 convs over the 100-bin encoding from the <= 3 bins that can
    be non-zero: the same maps as the conv to float32 rounding (the saturating last bin included)."""
    from ocean_ros.core.model import distance_bins
    from ocean_ros.core.model.online_classifier import FEATURE_STRIDE, FilterOptimizer

    torch.manual_seed(0)
    opt = FilterOptimizer()
    layers = (opt.label_map_predictor, opt.target_mask_predictor[0], opt.spatial_weight_predictor)
    for layer in layers:
        torch.nn.init.normal_(layer.weight)
    boxes = torch.rand(40, 4) * 300  # centres up to ~28 cells from some cells: past the last bin (9.9 cells)
    with torch.no_grad():
        targets = opt.targets(boxes, (19, 19))
        centers = ((boxes[:, :2] + boxes[:, 2:] / 2) / FEATURE_STRIDE).flip(1)
        bins = distance_bins(centers, (19, 19))
        label, mask, weight = (torch.nn.functional.conv2d(bins, layer.weight) for layer in layers)
    torch.testing.assert_close(targets.label, label, rtol=0, atol=1e-6)
    torch.testing.assert_close(targets.mask, torch.sigmoid(mask), rtol=0, atol=1e-6)
    torch.testing.assert_close(targets.spatial_weight, weight, rtol=0, atol=1e-6)
