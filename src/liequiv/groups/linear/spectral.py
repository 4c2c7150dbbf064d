"""Spectral functions of symmetric matrices with exact, finite first derivatives at repeated eigenvalues.

``eigh``/``svd`` backward divides by eigenvalue gaps and is NaN/inf at repeated eigenvalues. Instead, a
function is evaluated on detached inputs and its first-order term is added back in the Daleckii-Krein
form V (L ∘ Vᵀ dM V) Vᵀ, L the divided differences of the scalar function, whose limits on ties are finite.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from liequiv.groups import series

__all__ = ["add_first_order", "divided_difference", "log_divided_difference", "symmetric_part"]


def log_divided_difference(x: Tensor) -> Tensor:
    """[..., n] positive -> [..., n, n] divided differences (log x_i - log x_j)/(x_i - x_j), 1/x_i on ties."""
    xi, xj = x[..., :, None], x[..., None, :]
    return series.log1p_ratio((xi - xj) / xj) / xj  # (xi - xj)/xj > -1: no cancellation except at 0


def divided_difference(fx: Tensor, df: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """[..., n] -> [..., n, n] (f(x_i) - f(x_j))/(x_i - x_j) from fx = f(x), and f' at the midpoint for
    |x_i - x_j| < eps^(1/3) (truncation and round-off errors both ≈ eps^(2/3) there)."""
    xi, xj = x[..., :, None], x[..., None, :]
    diff = xi - xj
    close = diff.abs() < torch.finfo(x.dtype).eps ** (1 / 3)
    quotient = (fx[..., :, None] - fx[..., None, :]) / torch.where(close, torch.ones_like(diff), diff)
    return torch.where(close, df((xi + xj) / 2), quotient)


def add_first_order(value: Tensor, matrix: Tensor, basis: Tensor, weights: Tensor) -> Tensor:
    """value + V (weights ∘ Vᵀ dM V) Vᵀ with dM = matrix - matrix.detach(): zero, but it carries the gradient."""
    if not matrix.requires_grad:
        return value
    delta = basis.mT @ (matrix - matrix.detach()) @ basis
    return value + basis @ (weights * delta) @ basis.mT


def symmetric_part(m: Tensor) -> Tensor:
    """(M + Mᵀ)/2 of matrices ``[..., n, n]``."""
    return 0.5 * (m + m.mT)
