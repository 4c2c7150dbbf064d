"""Grids on the sphere S²."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def fibonacci_sphere(n: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """``n`` quasi-uniform unit vectors ``[n, 3]`` on the golden-angle spiral (Fibonacci lattice).

    Point k sits at height z_k = 1 - (2k + 1)/n (equal-area bands) and azimuth k·π(3 - √5), so every
    point covers the same area 4π/n; the grid is deterministic.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    k = torch.arange(n, dtype=torch.float64)
    z = 1 - (2 * k + 1) / n
    radius = torch.sqrt((1 - z * z).clamp_min(0))
    phi = k * math.pi * (3 - math.sqrt(5))
    grid = torch.stack([radius * torch.cos(phi), radius * torch.sin(phi), z], -1)
    return grid.to(dtype=dtype or torch.get_default_dtype(), device=device)
