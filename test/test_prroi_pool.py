"""Precise RoI pooling: exact bin integrals of the bilinear interpolant, checked by brute-force integration."""

from __future__ import annotations

import pytest
import torch

from ocean_ros.core.model.prroi_pool import hat_integral, prroi_pool2d

SUBSAMPLES = 256  # midpoint-rule points per bin side for the brute force


def bilinear_zero_outside(feature: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[C, H, W] map sampled at points (x, y) (pixel (i, j) at x=j, y=i); pixels outside the map read as 0."""
    height, width = feature.shape[-2:]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    out = torch.zeros(feature.shape[0], *x.shape, dtype=feature.dtype)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = (x0 + dx).long(), (y0 + dy).long()
            valid = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            value = feature[:, yi.clamp(0, height - 1), xi.clamp(0, width - 1)]
            out += value * (wx * wy * valid)
    return out


def brute_force(features: torch.Tensor, roi: torch.Tensor, pooled: tuple[int, int], scale: float) -> torch.Tensor:
    """Fine-grid midpoint-rule mean of the interpolant over each bin: [C, ph, pw] (float64)."""
    feature = features[int(roi[0])].double()
    ph, pw = pooled
    x0, y0, x1, y1 = (float(v) * scale for v in roi[1:])
    bin_w, bin_h = max(x1 - x0, 0.0) / pw, max(y1 - y0, 0.0) / ph
    if bin_w == 0 or bin_h == 0:
        return torch.zeros(feature.shape[0], ph, pw, dtype=torch.float64)
    ys = y0 + (torch.arange(ph * SUBSAMPLES, dtype=torch.float64) + 0.5) * (bin_h / SUBSAMPLES)
    xs = x0 + (torch.arange(pw * SUBSAMPLES, dtype=torch.float64) + 0.5) * (bin_w / SUBSAMPLES)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    samples = bilinear_zero_outside(feature, grid_x, grid_y)
    return samples.view(-1, ph, SUBSAMPLES, pw, SUBSAMPLES).mean(dim=(2, 4))


def random_rois(generator: torch.Generator, count: int, batch: int, width: float, height: float) -> torch.Tensor:
    rows = []
    for k in range(count):
        x0 = float(torch.empty(1).uniform_(-0.3 * width, width, generator=generator))
        y0 = float(torch.empty(1).uniform_(-0.3 * height, height, generator=generator))
        w = float(torch.empty(1).uniform_(0.5, 0.8 * width, generator=generator))
        h = float(torch.empty(1).uniform_(0.5, 0.8 * height, generator=generator))
        rows.append([k % batch, x0, y0, x0 + w, y0 + h])
    return torch.tensor(rows, dtype=torch.float32)


def relative_error(got: torch.Tensor, want: torch.Tensor, features: torch.Tensor) -> float:
    """Max abs difference relative to the map's scale (outputs of boxes mostly outside the map are tiny)."""
    return float((got.double() - want).abs().max() / features.abs().max())


def test_hat_integral_closed_form():
    a = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, -0.5, 0.9])
    b = torch.tensor([2.0, 0.0, 0.5, 1.0, 0.75, -0.25, 3.0])
    want = torch.tensor([1.0, 0.5, 0.75, 0.5, 0.25, 0.15625, 0.005])
    torch.testing.assert_close(hat_integral(a, b), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1.0 / 16])
def test_matches_brute_force_on_random_maps_and_boxes(scale):
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 3, 7, 9, generator=gen)
    image_w, image_h = 9 / scale, 7 / scale
    rois = random_rois(gen, 6, 2, image_w, image_h)
    # Boxes straddling each border, one beyond the map, and sub-pixel boxes.
    extra = [
        [0, -3.0, 2.0, 4.0, 5.5],
        [1, 6.2, -2.5, 10.5, 3.1],
        [0, 7.5, 5.5, 11.0, 9.0],
        [1, -2.0, -2.0, 10.5, 8.5],
        [0, 3.3, 2.45, 3.6, 2.7],
        [1, 8.7, 6.8, 8.95, 7.4],
    ]
    rois = torch.cat([rois, torch.tensor(extra) * torch.tensor([1, 1 / scale, 1 / scale, 1 / scale, 1 / scale])])
    got = prroi_pool2d(features, rois, 4, scale)
    assert got.shape == (len(rois), 3, 4, 4)
    for k, roi in enumerate(rois):
        want = brute_force(features, roi, (4, 4), scale)
        assert relative_error(got[k], want, features) < 1e-4, (k, roi.tolist())


def test_non_square_pooling_and_a_box_wholly_outside_gives_zero():
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(1, 2, 6, 6, generator=gen)
    rois = torch.tensor([[0, 1.2, 0.7, 4.9, 5.3], [0, 20.0, 20.0, 25.0, 25.0]])
    got = prroi_pool2d(features, rois, (3, 2), 1.0)
    assert got.shape == (2, 2, 3, 2)
    assert relative_error(got[0], brute_force(features, rois[0], (3, 2), 1.0), features) < 1e-4
    assert torch.count_nonzero(got[1]) == 0


def test_empty_box_gives_zero():
    features = torch.randn(1, 2, 5, 5)
    rois = torch.tensor([[0, 2.0, 2.0, 2.0, 4.0], [0, 3.0, 1.0, 1.0, 4.0]])  # zero width; x1 < x0
    assert torch.count_nonzero(prroi_pool2d(features, rois, 2, 1.0)) == 0


def test_constant_map_inside_gives_the_constant():
    features = torch.full((1, 1, 8, 8), 2.5)
    rois = torch.tensor([[0, 1.0, 1.5, 6.0, 6.25]])
    torch.testing.assert_close(prroi_pool2d(features, rois, 4, 1.0), torch.full((1, 1, 4, 4), 2.5))


def test_gradient_with_respect_to_the_input():
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, -1.0, 0.5, 3.5, 4.0], [1, 2.2, 1.1, 6.5, 5.5]], dtype=torch.float64)
    out = prroi_pool2d(features, rois, 2, 1.0)
    out.sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0
    features.grad = None
    assert torch.autograd.gradcheck(lambda f: prroi_pool2d(f, rois, 2, 1.0), (features,))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="features"):
        prroi_pool2d(torch.zeros(2, 5, 5), torch.zeros(1, 5), 4, 1.0)
    with pytest.raises(ValueError, match="rois"):
        prroi_pool2d(torch.zeros(1, 2, 5, 5), torch.zeros(1, 4), 4, 1.0)
