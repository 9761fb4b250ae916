"""The online branch's first-frame augmentation: 23 image transforms of the expanded initial crop and channel-dropout
copies of the identity sample's features (TracKit's ONLINE.yaml augmentation, spec §6.3).

Images are [1, 3, S, S] float32 RGB 0..255 on the device; shifts are (dy, dx) in sample pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import BLUR_SIGMAS, RELATIVE_SHIFTS, ROTATIONS, OnlineParams
from .sampling import SAMPLE_SIZE

__all__ = ["AugmentationDraws", "Transform", "augment", "draw_augmentation", "draw_transforms", "dropout_copies"]


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

    Flip, blurs and rotations get a random shift, uniform in ±(SAMPLE_SIZE·random_shift_factor)/2 px and
    truncated toward zero, drawn from ``generator`` in that order. Only the identity without augmentation.
    """
    transforms = [Transform("identity")]
    if not params.augmentation:
        return transforms
    size = SAMPLE_SIZE

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
