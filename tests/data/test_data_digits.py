"""Digits data: the layout, a deterministic split, and warps that match their matrices exactly."""

from __future__ import annotations

import math

import pytest
import torch

from liequiv.data.digits import (
    DIGIT_SPLITS,
    RENDER_WIDTH,
    load_digit_images,
    load_digits_split,
    perturbed_digits,
    random_linear_maps,
    render_digits,
    warp_images,
)


def test_images_layout_and_range():
    images, labels = load_digit_images()
    assert images.shape == (1797, 1, 28, 28) and labels.shape == (1797,)
    assert images.dtype == torch.float32 and labels.dtype == torch.long
    assert 0 <= float(images.min()) and float(images.max()) <= 1 and float(images.max()) > 0.9
    assert set(labels.tolist()) == set(range(10))
    assert images[..., :2, :].abs().max() < 0.02 and images[..., -2:].abs().max() < 0.02  # the border, 3σ away


def test_split_is_deterministic_and_disjoint():
    splits = {name: load_digits_split(name) for name in DIGIT_SPLITS}
    assert {name: len(labels) for name, (_, labels) in splits.items()} == DIGIT_SPLITS
    again, labels = load_digits_split("test")
    assert torch.equal(again, splits["test"][0]) and torch.equal(labels, splits["test"][1])
    other, _ = load_digits_split("test", seed=1)
    assert not torch.equal(other, again)
    rows = {name: {tuple(x.flatten().tolist()) for x in images} for name, (images, _) in splits.items()}
    assert not rows["train"] & rows["test"] and not rows["valid"] & rows["test"]


def test_magnitude_zero_is_identity_and_perturbation_is_seeded():
    images, labels = load_digits_split("valid")
    same, same_labels, matrices = perturbed_digits("valid", 0.0)
    assert torch.equal(matrices, torch.eye(2).expand(270, 2, 2)) and torch.equal(same_labels, labels)
    assert (same - images).abs().max() < 1e-6
    a, _, ma = perturbed_digits("valid", 0.7, seed=3)
    b, _, mb = perturbed_digits("valid", 0.7, seed=3)
    assert torch.equal(a, b) and torch.equal(ma, mb) and not torch.equal(a, images)


def test_rendering_is_the_sum_of_bumps_and_moves_exactly():
    """A single source pixel renders as its Gaussian bump (closed form); a moved digit is the upright rendering's
    function at A⁻¹ p, which a quarter turn and a shear check on the pixel grid."""
    values = torch.zeros(1, 8, 8, dtype=torch.float64)
    values[0, 2, 5] = 1.0  # row 2, column 5
    image = render_digits(values, size=28, digit_size=20)[0, 0].double()
    spacing, width = 2.5, RENDER_WIDTH * 2.5
    centre = torch.tensor([(5 - 3.5) * spacing, (2 - 3.5) * spacing], dtype=torch.float64)  # (column, row)
    r = torch.arange(28, dtype=torch.float64) - 13.5
    d2 = (r[None, :] - centre[0]) ** 2 + (r[:, None] - centre[1]) ** 2
    k = torch.arange(-8, 9, dtype=torch.float64) * spacing
    norm = float(torch.exp(-(k**2) / (2 * width**2)).sum()) ** 2
    torch.testing.assert_close(image, torch.exp(-d2 / (2 * width**2)) / norm, rtol=1e-6, atol=1e-7)
    flat = render_digits(torch.ones(1, 8, 8))[0, 0, 12:16, 12:16]
    assert (flat - 1).abs().max() < 0.04  # a constant source renders nearly constant (bumps of 0.5 spacing ripple)
    source = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    upright = render_digits(source)
    quarter = torch.tensor([[0.0, 1.0], [-1.0, 0.0]]).expand(2, 2, 2)  # torch.rot90's map, as in warp_images
    torch.testing.assert_close(render_digits(source, quarter), torch.rot90(upright, 1, (-2, -1)), rtol=0,
                               atol=1e-6)
    shear = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).expand(2, 2, 2)  # A⁻¹ (c, r) = (c - r, r): pixels to pixels
    moved, upright = render_digits(source, shear, size=29), render_digits(source, size=29)  # centre on a pixel
    for row in range(29):
        for col in range(29):
            source_col = col - (row - 14)
            if 0 <= source_col < 29:
                assert abs(float(moved[0, 0, row, col] - upright[0, 0, row, source_col])) < 1e-6


def test_maps_stay_in_their_ranges():
    A = random_linear_maps(500, 0.5, max_angle=1.0, max_log_stretch=0.4, generator=torch.Generator().manual_seed(0))
    log_sigma = torch.linalg.svdvals(A).log()
    assert float(log_sigma.abs().max()) <= 0.2 + 1e-12 and float(log_sigma.abs().max()) > 0.15
    U, _, Vh = torch.linalg.svd(A)
    R = U @ Vh  # the polar rotation
    angle = torch.atan2(R[:, 1, 0], R[:, 0, 0])
    assert float(angle.abs().max()) <= 0.5 + 1e-12 and float(angle.abs().max()) > 0.45
    assert torch.linalg.det(A).min() > 0
    sl = random_linear_maps(50, 1.0, special=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(torch.linalg.det(sl), torch.ones(50, dtype=torch.float64))


def test_warp_matches_the_matrix():
    x = torch.rand(3, 2, 9, 9, dtype=torch.float64)
    # a quarter turn moves the grid onto itself: torch.rot90 is f(Q⁻¹ p) with Q⁻¹ = [[0, -1], [1, 0]]
    Q = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64).expand(3, 2, 2)
    assert (warp_images(x, Q) - torch.rot90(x, 1, (-2, -1))).abs().max() < 1e-12
    # so does a shear, A⁻¹ (c, r) = (c - r, r): out[row, col] = x[row, col - (row - 4)] or 0 outside
    shear = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64).expand(3, 2, 2)
    expected = torch.zeros_like(x)
    for row in range(9):
        for col in range(9):
            source = col - (row - 4)
            if 0 <= source < 9:
                expected[..., row, col] = x[..., row, source]
    assert (warp_images(x, shear) - expected).abs().max() < 1e-12
    # a general map on a smooth image, against the image function itself (bilinear interpolation error only)
    A = random_linear_maps(3, 1.0, generator=torch.Generator().manual_seed(1))
    rows, cols = torch.meshgrid(torch.arange(31, dtype=torch.float64) - 15, torch.arange(41, dtype=torch.float64) - 20,
                                indexing="ij")  # not square: the normalized coordinates scale rows and columns apart
    p = torch.stack([cols, rows], -1)

    def f(q: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((q - torch.tensor([3.0, -2.0], dtype=torch.float64)) ** 2).sum(-1) / (2 * 4.0**2))

    image = f(p).expand(3, 1, 31, 41)
    exact = f(torch.einsum("nab,hwb->nhwa", torch.linalg.inv(A), p))[:, None]
    assert (warp_images(image, A) - exact).abs().max() < 2e-2  # h² max|f''| / 4 = 1/64


def test_bad_input():
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits_split("training")
    with pytest.raises(ValueError, match="digit_size"):
        load_digit_images(size=16, digit_size=20)
    with pytest.raises(ValueError, match="values must be a tensor"):
        render_digits(torch.rand(2, 7, 8))
    with pytest.raises(ValueError, match="matrices must have shape"):
        render_digits(torch.rand(2, 8, 8), torch.eye(2)[None])
    with pytest.raises(ValueError, match="magnitude"):
        random_linear_maps(4, 1.5)
    with pytest.raises(ValueError, match="max_angle"):
        random_linear_maps(4, 0.5, max_angle=-math.pi)
    with pytest.raises(ValueError, match="images must be a floating tensor"):
        warp_images(torch.rand(1, 28, 28), torch.eye(2)[None])
    with pytest.raises(ValueError, match="matrices must have shape"):
        warp_images(torch.rand(2, 1, 28, 28), torch.eye(2)[None])
