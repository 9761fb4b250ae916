"""The online classifier at run time (spec §6.2-6.7): samples, augmentation, memory, schedule, localisation flags.

Conventions: positions are ``(y, x)`` and sizes ``(h, w)`` in frame pixels (TracKit's online state order);
target boxes inside a sample are ``x, y, w, h`` in sample pixels; frames are HxWx3 uint8 BGR tensors on the
device (:func:`~ocean_ros.core.geometry.frame_to_device`); samples are float32 [N, 3, 224, 224] RGB 0..255
before :func:`normalise`. The per-frame work stays on the device; the only host read is the one localisation
flag per frame (:meth:`OnlineBranch.update`). The filter, the optimiser and the sample memory are float32 even
when the backbone runs in float16.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BLUR_SIGMAS",
    "FLAGS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RELATIVE_SHIFTS",
    "ROTATIONS",
    "AugmentationDraws",
    "OnlineBranch",
    "OnlineParams",
    "OnlineScore",
    "SampleMemory",
    "SampleWindow",
    "Transform",
    "augment",
    "crop_sample",
    "crop_sample_t",
    "draw_augmentation",
    "draw_transforms",
    "dropout_copies",
    "flag_name",
    "localize",
    "normalise",
    "peak_position",
    "sample_window",
    "sample_window_t",
    "target_box",
    "update_sample_weights",
    "window_shape",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Initial augmentation of TracKit's ONLINE.yaml: relative shifts (dy, dx) in half sample sides, blur sigmas
# (vertical, horizontal) in pixels, rotations in degrees.
RELATIVE_SHIFTS = ((0.6, 0.6), (-0.6, 0.6), (0.6, -0.6), (-0.6, -0.6))
BLUR_SIGMAS = ((2.0, 0.2), (0.2, 2.0), (3.0, 1.0), (1.0, 3.0), (2.0, 2.0))
ROTATIONS = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60)
FLAGS = ("normal", "hard_negative", "uncertain", "not_found")
_NORMAL, _HARD_NEGATIVE, _UNCERTAIN, _NOT_FOUND = range(4)


def flag_name(code: int) -> str:
    """Name of a localisation flag code (0 normal, 1 hard_negative, 2 uncertain, 3 not_found)."""
    return FLAGS[code]


@dataclass(frozen=True)
class OnlineParams:
    """Online-branch tunables (TracKit's ONLINE.yaml defaults); built from a TrackerConfig by :meth:`from_config`."""

    sample_size: int = 224
    search_area_scale: float = 4.0
    augmentation_expansion: float = 2.0
    init_iterations: int = 25
    update_iterations: int = 3
    hard_negative_iterations: int = 3
    update_interval: int = 10
    memory_size: int = 250
    learning_rate: float = 0.0075
    hard_negative_learning_rate: float = 0.02
    augmentation: bool = True
    dropout_copies: int = 7
    dropout_prob: float = 0.2
    random_shift_factor: float = 1.0 / 3.0
    seed: int = 1234
    not_found_threshold: float = 0.0
    distractor_threshold: float = 100.0
    hard_negative_threshold: float = 0.45
    neighborhood_scale: float = 2.2
    displacement_scale: float = 0.7
    inside_ratio: float = 0.2

    @classmethod
    def from_config(cls, config: Any) -> OnlineParams:
        """Take the ``online_*`` fields of a :class:`~ocean_ros.core.config.TrackerConfig`."""
        return cls(
            search_area_scale=config.online_search_area_scale,
            init_iterations=config.online_init_iterations,
            update_iterations=config.online_update_iterations,
            hard_negative_iterations=config.online_hard_negative_iterations,
            update_interval=config.online_update_interval,
            memory_size=config.online_memory_size,
            learning_rate=config.online_learning_rate,
            hard_negative_learning_rate=config.online_hard_negative_learning_rate,
            augmentation=config.online_augmentation,
            dropout_copies=config.online_dropout_copies,
            dropout_prob=config.online_dropout_prob,
            random_shift_factor=config.online_random_shift_factor,
            seed=config.online_seed,
            not_found_threshold=config.online_not_found_threshold,
            distractor_threshold=config.online_distractor_threshold,
            hard_negative_threshold=config.online_hard_negative_threshold,
            neighborhood_scale=config.online_neighborhood_scale,
            displacement_scale=config.online_displacement_scale,
        )

    @property
    def num_initial_samples(self) -> int:
        """Training samples made at initialisation: identity (+ 22 transforms + dropout copies if augmenting)."""
        if not self.augmentation:
            return 1
        return 1 + len(RELATIVE_SHIFTS) + 1 + len(BLUR_SIGMAS) + len(ROTATIONS) + self.dropout_copies


# --------------------------------------------------------------------------------------------- sampling
class SampleWindow(NamedTuple):
    """Where a sample is cut from a frame (host integers) and what it covers (frame pixels).

    The frame is first decimated by ``step`` starting at ``offset`` (rows, cols); rows ``top .. top+rows-1``
    and cols ``left .. left+cols-1`` of the decimated frame (replicated at the borders) are resized to the
    output size. ``pos`` (y, x) is the window centre and ``scale`` the frame pixels per sample pixel.
    """

    top: int
    left: int
    rows: int
    cols: int
    step: int
    offset: tuple[int, int]
    pos: tuple[float, float]
    scale: float


def window_shape(sample_side: float, output_size: int) -> tuple[int, int, float]:
    """The host-only part of a sample window of side ``sample_side`` frame px: (decimation df, crop side in
    decimated px, frame px per sample px). It depends on the side alone, never on where the window sits.

    df = max(int(side/output - 0.1), 1); crop side = round(side/df) (at least 2); scale = df·side'/output.
    """
    df = max(int(sample_side / output_size - 0.1), 1)
    size = max(_round_half_even(sample_side / df), 2)
    extent = df * size  # y1 - y0 (and x1 - x0) of the window, frame px
    return df, size, math.sqrt(extent / output_size * extent / output_size)


def sample_window(pos: tuple[float, float], sample_side: float, output_size: int) -> SampleWindow:
    """TracKit's online crop window (``sample_patch``) of side ``sample_side`` frame px around ``pos`` (y, x).

    The centre is truncated to integers; frames are pre-decimated by df (:func:`window_shape`); integer
    halves are floor divisions (PyTorch 1.1 semantics).
    """
    posl = [int(p) for p in pos]  # truncation toward zero, as Tensor.long()
    df, size, scale = window_shape(sample_side, output_size)
    offset = (0, 0)
    if df > 1:
        offset = (posl[0] % df, posl[1] % df)
        posl = [(p - o) // df for p, o in zip(posl, offset, strict=True)]
    top = posl[0] - (size - 1) // 2
    left = posl[1] - (size - 1) // 2
    bottom = posl[0] + size // 2 + 1
    right = posl[1] + size // 2 + 1
    y0, x0, y1, x1 = df * top, df * left, df * bottom, df * right  # TracKit leaves out the decimation offset
    centre = (0.5 * (y0 + y1 - 1), 0.5 * (x0 + x1 - 1))
    return SampleWindow(top, left, size, size, df, offset, centre, scale)


def sample_window_t(pos: Tensor, df: int, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`sample_window` with the position on the device: ``pos`` (y, x) float64 [2] → (top-left in
    decimated px, decimation offset, both int64 [2]; window centre (y, x) float64 [2]). ``df`` and ``size``
    come from :func:`window_shape`; the integer arithmetic is the host function's, without a host read."""
    posl = pos.long()  # truncation toward zero
    offset = torch.remainder(posl, df)
    posl = torch.div(posl - offset, df, rounding_mode="floor")
    top_left = posl - (size - 1) // 2
    bottom_right = posl + size // 2 + 1
    centre = (df * top_left + df * bottom_right - 1).double() * 0.5
    return top_left, offset, centre


def _round_half_even(x: float) -> int:
    return int(round(x))


def crop_sample(frame_t: Tensor, window: SampleWindow, output_size: int) -> Tensor:
    """Cut ``window`` from an HxWx3 uint8 BGR frame on the device → [1, 3, out, out] float32 RGB 0..255.

    Border pixels are replicated; the resize is bilinear with half-pixel centres (no antialiasing).
    """
    device = frame_t.device
    height, width = frame_t.shape[:2]
    df = window.step
    n_rows = -(-(height - window.offset[0]) // df)
    n_cols = -(-(width - window.offset[1]) // df)
    rows = (torch.arange(window.rows, device=device) + window.top).clamp_(0, n_rows - 1) * df + window.offset[0]
    cols = (torch.arange(window.cols, device=device) + window.left).clamp_(0, n_cols - 1) * df + window.offset[1]
    return _resized_patch(frame_t, rows, cols, output_size)


def crop_sample_t(
    frame_t: Tensor, top_left: Tensor, offset: Tensor, size: int, df: int, output_size: int
) -> Tensor:
    """:func:`crop_sample` for a window from :func:`sample_window_t` (device integers, fixed shapes: no host
    read, so it can be captured in a CUDA graph) → [1, 3, out, out] float32 RGB 0..255."""
    height, width = frame_t.shape[:2]
    extent = torch.stack([height - offset[0], width - offset[1]])  # no host tensor: nothing to copy in a graph
    last = -torch.div(-extent, df, rounding_mode="floor") - 1  # last decimated row/col index inside the frame
    index = torch.arange(size, device=frame_t.device).view(1, -1) + top_left.view(2, 1)
    index = torch.minimum(index.clamp(min=0), last.view(2, 1)) * df + offset.view(2, 1)
    return _resized_patch(frame_t, index[0], index[1], output_size)


def _resized_patch(frame_t: Tensor, rows: Tensor, cols: Tensor, output_size: int) -> Tensor:
    patch = frame_t[rows[:, None], cols[None, :]].flip(-1)  # BGR -> RGB
    patch = patch.permute(2, 0, 1).unsqueeze(0).float()
    if patch.shape[-2:] != (output_size, output_size):
        patch = F.interpolate(patch, size=(output_size, output_size), mode="bilinear", align_corners=False)
    return patch


@lru_cache(maxsize=8)
def _imagenet_stats(device: torch.device) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def normalise(samples: Tensor) -> Tensor:
    """RGB 0..255 samples → /255, minus ImageNet mean, divided by ImageNet std (float32)."""
    mean, std = _imagenet_stats(samples.device)
    return (samples.float() / 255 - mean) / std


def target_box(
    pos: tuple[float, float], size: tuple[float, float], sample_pos: tuple[float, float], sample_scale: float,
    sample_size: int,
) -> tuple[float, float, float, float]:
    """Target ``x, y, w, h`` in sample pixels for a target at ``pos`` (y, x) of ``size`` (h, w), frame px.

    centre = (pos - sample_pos)/scale + (sample_size - 1)/2, size/scale, top-left = centre - (size - 1)/2.
    """
    cy = (pos[0] - sample_pos[0]) / sample_scale + (sample_size - 1) / 2
    cx = (pos[1] - sample_pos[1]) / sample_scale + (sample_size - 1) / 2
    h, w = size[0] / sample_scale, size[1] / sample_scale
    return cx - (w - 1) / 2, cy - (h - 1) / 2, w, h


# ------------------------------------------------------------------------------------------ augmentation
@dataclass(frozen=True)
class Transform:
    """One initial augmentation: ``kind`` identity / shift / flip / blur / rotate, its parameter and the
    (dy, dx) shift in sample pixels that moves the content (and the target box) inside the sample."""

    kind: str
    shift: tuple[int, int] = (0, 0)
    sigma: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0


def draw_transforms(params: OnlineParams, generator: torch.Generator) -> list[Transform]:
    """The 23 image transforms in TracKit's order (identity, 4 shifts, flip, 5 blurs, 12 rotations).

    Flip, blurs and rotations get a random shift, uniform in ±(sample_size·random_shift_factor)/2 px and
    truncated toward zero, drawn from ``generator`` in that order. Only the identity without augmentation.
    """
    transforms = [Transform("identity")]
    if not params.augmentation:
        return transforms
    size = params.sample_size

    def random_shift() -> tuple[int, int]:
        draw = (torch.rand(2, generator=generator, dtype=torch.float32) - 0.5) * size * params.random_shift_factor
        dy, dx = (int(v) for v in draw.tolist())
        return dy, dx

    for rel_y, rel_x in RELATIVE_SHIFTS:
        transforms.append(Transform("shift", (int(rel_y * size / 2), int(rel_x * size / 2))))
    transforms.append(Transform("flip", random_shift()))
    transforms.extend(Transform("blur", random_shift(), sigma=sigma) for sigma in BLUR_SIGMAS)
    transforms.extend(Transform("rotate", random_shift(), angle=angle) for angle in ROTATIONS)
    return transforms


def _window_start(size: int, shift: tuple[int, int], output_size: int) -> tuple[int, int]:
    """Source row and column (unclamped) of output pixel (0, 0): the centre ``output_size`` window of an S×S
    image whose content moves by ``shift`` (dy, dx)."""
    pad = math.floor((output_size - size) / 2)
    return -(pad + shift[0]), -(pad + shift[1])


def _output_taps(size: int, shift: tuple[int, int], output_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source rows and columns of that window, clamped (replicated borders)."""
    row0, col0 = _window_start(size, shift, output_size)
    index = torch.arange(output_size, device=device)
    return (index + row0).clamp(0, size - 1), (index + col0).clamp(0, size - 1)


def _crop_to_output(image: Tensor, shift: tuple[int, int], output_size: int) -> Tensor:
    """Centre ``output_size`` window of [1, 3, S, S], content moved by ``shift`` (dy, dx); replicate borders."""
    rows, cols = _output_taps(image.shape[-1], shift, output_size, image.device)
    return image[:, :, rows[:, None], cols[None, :]]


def _blur(image: Tensor, sigma: tuple[float, float]) -> Tensor:
    """Separable Gaussian blur (vertical sigma[0], horizontal sigma[1]; radius ceil(2σ); zero padding)."""
    out = image.reshape(-1, 1, *image.shape[-2:])
    for axis, s in enumerate(sigma):
        radius = math.ceil(2 * s)
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=image.device)
        kernel = torch.exp(-(taps * taps) / (2 * s * s))
        kernel = kernel / kernel.sum()
        shape = (1, 1, -1, 1) if axis == 0 else (1, 1, 1, -1)
        padding = (radius, 0) if axis == 0 else (0, radius)
        out = F.conv2d(out, kernel.view(shape), padding=padding)
    return out.reshape(image.shape)


def _blurred_window(image: Tensor, sigma: tuple[float, float], shift: tuple[int, int], output_size: int) -> Tensor:
    """``_crop_to_output(_blur(image, sigma), shift, output_size)``; where the window and the kernel's reach lie
    inside the image only that region is blurred (the same sums: a quarter of the work)."""
    size = image.shape[-1]
    ry, rx = (math.ceil(2 * s) for s in sigma)
    row0, col0 = _window_start(size, shift, output_size)
    r0, c0 = row0 - ry, col0 - rx
    r1, c1 = row0 + output_size + ry, col0 + output_size + rx
    if r0 < 0 or c0 < 0 or r1 > size or c1 > size:
        return _crop_to_output(_blur(image, sigma), shift, output_size)
    blurred = _blur(image[:, :, r0:r1, c0:c1], sigma)
    return blurred[:, :, ry:ry + output_size, rx:rx + output_size]


def _rotate(image: Tensor, angle_deg: float, rows: Tensor | None = None, cols: Tensor | None = None) -> Tensor:
    """Rotate [1, 3, S, S] about its centre ((S-1)/2) by ``angle_deg`` (positive = counter-clockwise on screen).

    Exact bilinear interpolation with replicated borders, source coordinates computed in float64 (the
    reference's rotated samples match this, not OpenCV's 1/32-pixel fixed-point warp). With ``rows`` and
    ``cols`` only those pixels of the rotated image are computed ([1, 3, len(rows), len(cols)]), each exactly as
    in the whole rotated image.
    """
    size = image.shape[-1]
    a = math.pi * angle_deg / 180
    c = (size - 1) / 2
    whole = torch.arange(size, device=image.device)
    rows = whole if rows is None else rows
    cols = whole if cols is None else cols
    dy = rows.to(torch.float64).view(-1, 1) - c
    dx = cols.to(torch.float64).view(1, -1) - c
    src_x = (math.cos(a) * dx - math.sin(a) * dy + c).clamp(0, size - 1)
    src_y = (math.sin(a) * dx + math.cos(a) * dy + c).clamp(0, size - 1)
    x0 = src_x.floor().clamp(max=size - 2)
    y0 = src_y.floor().clamp(max=size - 2)
    fx = (src_x - x0).to(image.dtype)
    fy = (src_y - y0).to(image.dtype)
    x0, y0 = x0.long(), y0.long()
    flat = image.reshape(image.shape[1], -1)

    out_shape = (image.shape[1], rows.numel(), cols.numel())

    def tap(rows: Tensor, cols: Tensor) -> Tensor:
        return flat[:, (rows * size + cols).reshape(-1)].reshape(out_shape)

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return (top * (1 - fy) + bottom * fy).unsqueeze(0)


def augment(image: Tensor, transforms: list[Transform], output_size: int) -> Tensor:
    """Apply ``transforms`` to the expanded initial crop [1, 3, S, S] → samples [T, 3, out, out] (float32 0..255).

    Everything runs on the image's device.
    """
    samples = []
    for t in transforms:
        if t.kind == "rotate":  # only the output window is rotated: the same pixels, a quarter of the work
            rows, cols = _output_taps(image.shape[-1], t.shift, output_size, image.device)
            samples.append(_rotate(image, t.angle, rows, cols))
            continue
        if t.kind == "blur":
            samples.append(_blurred_window(image, t.sigma, t.shift, output_size))
            continue
        if t.kind == "flip":
            source = image.flip(-1)
        elif t.kind in ("identity", "shift"):
            source = image
        else:
            raise ValueError(f"unknown transform kind {t.kind!r}")
        samples.append(_crop_to_output(source, t.shift, output_size))
    return torch.cat(samples)


def dropout_copies(feat: Tensor, keep: Tensor, prob: float) -> Tensor:
    """Channel-dropout copies of features [1, C, h, w]: ``keep`` [copies, C] (1 = kept) masks the channels,
    kept ones are scaled by 1/(1 - prob) → [copies, C, h, w]."""
    mask = keep.to(device=feat.device, dtype=feat.dtype).view(keep.shape[0], -1, 1, 1) / (1 - prob)
    return feat * mask


class AugmentationDraws(NamedTuple):
    """The random part of the initialisation: the image transforms (with their random shifts) and the
    channel keep-masks [copies, C] of the dropout copies."""

    transforms: list[Transform]
    dropout_keep: Tensor


def draw_augmentation(params: OnlineParams, channels: int) -> AugmentationDraws:
    """Draw the transforms, then the dropout masks (each channel kept with probability 1 - dropout_prob),
    from one CPU generator seeded with ``params.seed``: the same seed gives the same samples on any device."""
    generator = torch.Generator().manual_seed(params.seed)
    transforms = draw_transforms(params, generator)
    copies = params.dropout_copies if params.augmentation else 0
    keep = torch.rand(copies, channels, generator=generator) >= params.dropout_prob
    return AugmentationDraws(transforms, keep)


# ------------------------------------------------------------------------------------------------ memory
def update_sample_weights(
    weights: Tensor, previous: Tensor | int | None, count: int, learning_rate: float
) -> tuple[Tensor, Tensor | int]:
    """DiMP's sample-weight rule, in place on ``weights`` [capacity]; returns (weights, slot to write).

    Slot = ``count`` (the number stored so far) while there is room, else the lowest weight. The new weight is
    the previous new sample's weight / (1 - lr) (first update: every old weight / (1 - lr), new = lr); then
    all weights are renormalised to sum 1. ``learning_rate`` 1 (or an empty memory) keeps only the new sample.
    """
    if count == 0 or learning_rate >= 1:
        weights.zero_()
        weights[0] = 1
        return weights, 0
    slot: Tensor | int = count if count < weights.shape[0] else torch.argmin(weights)
    if previous is None:
        weights /= 1 - learning_rate
        weights.index_fill_(0, _index(slot, weights.device), learning_rate)
    else:
        new = weights.index_select(0, _index(previous, weights.device)) / (1 - learning_rate)
        weights.index_copy_(0, _index(slot, weights.device), new)
    weights /= weights.sum()
    return weights, slot


def _index(slot: Tensor | int, device: torch.device) -> Tensor:
    """A memory slot as a 1-element index tensor. Indexing with a 0-dim tensor would read it on the host (a
    device sync per update once the memory is full); index_select/index_copy_ keep it on the device."""
    if isinstance(slot, Tensor):
        return slot.reshape(1)
    return torch.full((1,), slot, dtype=torch.int64, device=device)


class SampleMemory:
    """Preallocated training memory on the device: features [capacity, C, h, w], boxes [capacity, 4]
    (x, y, w, h, sample px) and weights [capacity] (sum 1), all float32."""

    def __init__(self, capacity: int, feature_shape: tuple[int, ...], device: torch.device | str) -> None:
        self.capacity = capacity
        self.features = torch.zeros(capacity, *feature_shape, device=device)
        self.boxes = torch.zeros(capacity, 4, device=device)
        self.weights = torch.zeros(capacity, device=device)
        self.count = 0  # samples added so far (may exceed capacity)
        self._previous: Tensor | int | None = None

    @property
    def stored(self) -> int:
        """Number of occupied slots."""
        return min(self.count, self.capacity)

    def reset(self, features: Tensor, boxes: Tensor) -> None:
        """Fill the first slots with the initial samples, each weighted 1/N."""
        n = features.shape[0]
        if n > self.capacity:
            raise ValueError(f"{n} initial samples do not fit a memory of {self.capacity}")
        self.features.zero_()
        self.boxes.zero_()
        self.weights.zero_()
        self.features[:n] = features
        self.boxes[:n] = boxes.to(self.boxes)
        self.weights[:n] = 1.0 / n
        self.count = n
        self._previous = None

    def add(self, features: Tensor, box: Tensor, learning_rate: float) -> Tensor | int:
        """Store one sample ([1, C, h, w], box [4]) with the DiMP weight rule; returns the slot written."""
        _, slot = update_sample_weights(self.weights, self._previous, self.count, learning_rate)
        self._previous = slot
        index = _index(slot, self.features.device)
        self.features.index_copy_(0, index, features[:1].to(self.features))
        self.boxes.index_copy_(0, index, box.reshape(1, 4).to(self.boxes, non_blocking=True))
        self.count += 1
        return slot

    def training_set(self) -> tuple[Tensor, Tensor, Tensor]:
        """(features, boxes, weights) of the occupied slots."""
        n = self.stored
        return self.features[:n], self.boxes[:n], self.weights[:n]


# ---------------------------------------------------------------------------------------------- flags
def localize(
    scores: Tensor,
    target_size_cells: tuple[float, float],
    previous_cells: tuple[float, float],
    params: OnlineParams,
) -> Tensor:
    """Localisation flag code (0-dim int64 tensor on the scores' device; see :data:`FLAGS`), no host sync.

    ``scores``: raw map [.., H, W]; ``target_size_cells``: (h, w) of the target in score cells (output grid
    = H - 1 cells over the sample); ``previous_cells``: the previous target position relative to the sample
    centre, in cells (y, x). ATOM's advanced localisation: not_found if the peak < threshold; else the target
    neighbourhood (neighborhood_scale x target size) around the peak is zeroed and the second peak decides.
    """
    height, width = scores.shape[-2:]
    flat = scores.reshape(-1).float()
    peak1, index1 = flat.max(dim=0)
    row1 = torch.div(index1, width, rounding_mode="floor").double()
    col1 = (index1 % width).double()
    half_h = params.neighborhood_scale * target_size_cells[0] / 2
    half_w = params.neighborhood_scale * target_size_cells[1] / 2
    top = torch.round(row1 - half_h).clamp(min=0)
    bottom = torch.round(row1 + half_h + 1).clamp(max=height)
    left = torch.round(col1 - half_w).clamp(min=0)
    right = torch.round(col1 + half_w + 1).clamp(max=width)
    rows = torch.arange(height, device=scores.device, dtype=torch.float64).view(-1, 1)
    cols = torch.arange(width, device=scores.device, dtype=torch.float64).view(1, -1)
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    masked = torch.where(inside.reshape(-1), torch.zeros_like(flat), flat)
    peak2, index2 = masked.max(dim=0)
    row2 = torch.div(index2, width, rounding_mode="floor").double()
    col2 = (index2 % width).double()
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    dist1 = torch.hypot(row1 - centre_y - previous_cells[0], col1 - centre_x - previous_cells[1])
    dist2 = torch.hypot(row2 - centre_y - previous_cells[0], col2 - centre_x - previous_cells[1])
    limit = params.displacement_scale * math.sqrt(height * width) / 2
    one_far = ((dist2 > limit) & (dist1 < limit)) | ((dist2 < limit) & (dist1 > limit))
    distractor = torch.where(one_far, _HARD_NEGATIVE, _UNCERTAIN)
    hard = (peak2 > params.hard_negative_threshold * peak1) & (peak2 > params.not_found_threshold)
    code = torch.where(hard, _HARD_NEGATIVE, _NORMAL)
    code = torch.where(peak2 > params.distractor_threshold * peak1, distractor, code)
    return torch.where(peak1 < params.not_found_threshold, _NOT_FOUND, code).long()


def peak_position(scores: Tensor, window: SampleWindow, sample_size: int) -> tuple[float, float]:
    """Frame position (y, x) of the first maximum of a raw score map [.., H, W] cut with ``window``.

    A cell is sample_size/(H - 1) sample px; the map centre (H-1)/2, (W-1)/2 sits at the window centre.
    Reads the peak index back to the host (use it for the online branch on its own, not in the tracker).
    """
    height, width = scores.shape[-2:]
    row, col = divmod(int(scores.reshape(-1).argmax()), width)
    cell = sample_size / (height - 1) * window.scale
    return window.pos[0] + (row - (height - 1) / 2) * cell, window.pos[1] + (col - (width - 1) / 2) * cell


# ------------------------------------------------------------------------------------------- the branch
class OnlineScore(NamedTuple):
    """One frame's online result before the update: raw scores [1, 1, h+1, w+1] (float32, device; 14×14 for
    ResNet-50 Ocean, 15×15 for Ocean-Lite), the classification features [1, C, h, w] (512×13×13 / 64×14×14),
    the flag code (0-dim device tensor) and the sample window."""

    scores: Tensor
    features: Tensor
    flag_code: Tensor
    window: SampleWindow


class OnlineBranch:
    """Per-target online classifier state and its schedule, around a shared net with a ``classifier``.

    ``net`` must provide ``classification_features(x)`` (normalised RGB samples → float32 features) and
    ``classifier`` (:class:`~ocean_ros.core.model.OnlineClassifier`). Call :meth:`initialize` once, then per
    frame :meth:`score` (before the Siamese step; its scores are fused there) and :meth:`update` (after it).
    """

    def __init__(
        self,
        net: Any,
        params: OnlineParams,
        device: torch.device | str,
        draw: Callable[[OnlineParams, int], AugmentationDraws] = draw_augmentation,
    ) -> None:
        self.net = net
        self.params = params
        self.device = torch.device(device)
        self.draw = draw  # source of the initial augmentation's random draws (replaceable, e.g. for parity runs)
        self.filter: Tensor | None = None
        self.memory: SampleMemory | None = None
        self.transforms: list[Transform] = []
        self.feature_size = (0, 0)
        self.reset()

    def reset(self) -> None:
        """Forget the target (filter, memory and state)."""
        self.filter = None
        self.memory = None
        self.transforms = []
        self.pos, self.target_size, self.target_scale = (0.0, 0.0), (0.0, 0.0), 1.0
        self.frame_num = 0

    def _memory(self) -> SampleMemory:
        if self.memory is None:
            raise RuntimeError("the online branch is not initialised")
        return self.memory

    # --- pieces
    def features(self, samples: Tensor) -> Tensor:
        """RGB 0..255 samples [N, 3, S, S] → classification features [N, C, h, w] float32 (C = 512 for
        ResNet-50 Ocean, the model's ``online_dim`` for Ocean-Lite)."""
        return self.net.classification_features(normalise(samples))

    def initial_samples(
        self, frame_t: Tensor, pos: tuple[float, float], target_scale: float, transforms: list[Transform]
    ) -> Tensor:
        """The augmented initial samples [T, 3, S, S] (RGB 0..255) cut around round(pos) at 2x the sample side."""
        size = self.params.sample_size
        expanded = int(size * self.params.augmentation_expansion)
        expanded += (expanded - size) % 2
        centre = (float(round(pos[0])), float(round(pos[1])))
        window = sample_window(centre, target_scale * expanded, expanded)
        return augment(crop_sample(frame_t, window, expanded), transforms, size)

    # --- lifecycle
    def initialize(self, frame_t: Tensor, center_xy: tuple[float, float], size_wh: tuple[float, float]) -> None:
        """Train the filter on the first frame for a target of centre ``center_xy`` and size ``size_wh`` (px)."""
        p = self.params
        self.pos = (float(center_xy[1]), float(center_xy[0]))
        self.target_size = (float(size_wh[1]), float(size_wh[0]))
        self.target_scale = math.sqrt(p.search_area_scale**2 * self.target_size[0] * self.target_size[1]) / (
            p.sample_size
        )
        draws = self.draw(p, self.net.classifier.filter_initializer.filter_conv.in_channels)
        samples = self.initial_samples(frame_t, self.pos, self.target_scale, draws.transforms)
        feat = self.features(samples)
        self.transforms = list(draws.transforms)
        if draws.dropout_keep.shape[0] > 0:
            feat = torch.cat([feat, dropout_copies(feat[:1], draws.dropout_keep, p.dropout_prob)])
            self.transforms += [self.transforms[0]] * draws.dropout_keep.shape[0]
        self.feature_size = tuple(feat.shape[-2:])
        sample_pos = (float(round(self.pos[0])), float(round(self.pos[1])))
        base = target_box(self.pos, self.target_size, sample_pos, self.target_scale, p.sample_size)
        boxes = torch.tensor(
            [[base[0] + t.shift[1], base[1] + t.shift[0], base[2], base[3]] for t in self.transforms],
            dtype=torch.float32, device=feat.device,
        )
        classifier = self.net.classifier
        filt = classifier.init_filter(feat, boxes)
        self.filter = classifier.optimize(filt, feat, boxes, None, p.init_iterations)
        self.memory = SampleMemory(p.memory_size, tuple(feat.shape[1:]), feat.device)
        self.memory.reset(feat, boxes)
        self.frame_num = 1

    def sample_centre(self) -> tuple[float, float]:
        """Centre (y, x) of this frame's sample: the target shifted by half a cell for an even-sized filter."""
        k = self.net.classifier.filter_size
        shift = ((self.feature_size[0] + k) % 2) * self.target_scale * self.params.sample_size / (
            2 * self.feature_size[0]
        )
        return self.pos[0] + shift, self.pos[1] + shift

    def score(self, frame_t: Tensor) -> OnlineScore:
        """Sample the frame around the current target, score it with the filter and decide the flag (device)."""
        if self.filter is None:
            raise RuntimeError("the online branch is not initialised")
        p = self.params
        window = sample_window(self.sample_centre(), self.target_scale * p.sample_size, p.sample_size)
        feat = self.features(crop_sample(frame_t, window, p.sample_size))
        scores = self.net.classifier.classify(self.filter, feat)
        cell = p.sample_size / (scores.shape[-1] - 1) * window.scale  # frame px per score cell
        target_cells = (self.target_size[0] / cell, self.target_size[1] / cell)
        previous = ((self.pos[0] - window.pos[0]) / cell, (self.pos[1] - window.pos[1]) / cell)
        return OnlineScore(scores, feat, localize(scores, target_cells, previous, p), window)

    def update(
        self, result: OnlineScore, center_xy: tuple[float, float], size_wh: tuple[float, float],
        image_wh: tuple[int, int],
    ) -> tuple[str, bool]:
        """Adopt the tracker's new target (centre, size in frame px), update memory and filter as scheduled.

        Returns (flag name, whether the filter was re-optimised). Reads the flag: one scalar host copy.
        """
        p = self.params
        self.frame_num += 1
        flag = FLAGS[int(result.flag_code.item())]
        if flag != "not_found":
            size = (float(size_wh[1]), float(size_wh[0]))
            margin = ((p.inside_ratio - 0.5) * size[0], (p.inside_ratio - 0.5) * size[1])
            self.pos = (
                min(max(float(center_xy[1]), margin[0]), image_wh[1] - margin[0]),
                min(max(float(center_xy[0]), margin[1]), image_wh[0] - margin[1]),
            )
            self.target_size = size
            self.target_scale = result.window.scale
        if flag not in ("normal", "hard_negative"):
            return flag, False
        hard = flag == "hard_negative"
        box = target_box(self.pos, self.target_size, result.window.pos, result.window.scale, p.sample_size)
        memory = self._memory()
        learning_rate = p.hard_negative_learning_rate if hard else p.learning_rate
        box_t = torch.tensor(box, dtype=torch.float32)
        if self.device.type == "cuda":  # pinned: the copy to the device does not wait for the queued work
            box_t = box_t.pin_memory()
        memory.add(result.features, box_t, learning_rate)
        if hard:
            iterations = p.hard_negative_iterations
        elif (self.frame_num - 1) % p.update_interval == 0:
            iterations = p.update_iterations
        else:
            iterations = 0
        if iterations == 0:
            return flag, False
        feat, boxes, weights = memory.training_set()
        self.filter = self.net.classifier.optimize(self.filter, feat, boxes, weights, iterations)
        return flag, True
