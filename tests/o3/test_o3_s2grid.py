"""Spherical grids."""

from __future__ import annotations

import pytest
import torch

from liequiv.o3.s2grid import fibonacci_sphere


def test_fibonacci_sphere_is_unit_and_quasi_uniform() -> None:
    grid = fibonacci_sphere(500, dtype=torch.float64)
    assert grid.shape == (500, 3)
    torch.testing.assert_close(torch.linalg.vector_norm(grid, dim=-1), torch.ones(500, dtype=torch.float64))
    # equal-area: the mean of a degree-1 or degree-2 polynomial over the grid is close to its spherical mean
    torch.testing.assert_close(grid.mean(0), torch.zeros(3, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(grid.T @ grid / 500, torch.eye(3, dtype=torch.float64) / 3, atol=2e-3, rtol=0)
    # no two points closer than a fraction of the mean spacing sqrt(4π/n)
    dist = torch.cdist(grid, grid) + 10 * torch.eye(500, dtype=torch.float64)
    assert dist.min() > 0.5 * (4 * torch.pi / 500) ** 0.5


def test_fibonacci_sphere_bad_input() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        fibonacci_sphere(0)
