"""Exp and Log of symmetric matrices and the polar decomposition A = R · Exp(S) of GL+(n)."""

from __future__ import annotations

import torch
from torch import Tensor

from liequiv.groups.linear.spectral import add_first_order, log_divided_difference, symmetric_part
from liequiv.validation import (
    check_like,
    check_positive_det,
    check_rotation_matrix,
    check_square,
    check_symmetric,
    checking_values,
)

__all__ = ["polar_compose", "polar_decompose", "sym_expm", "sym_logm"]


def sym_expm(S: Tensor) -> Tensor:
    """Exp of symmetric matrices ``[..., n, n]`` -> symmetric positive definite ``[..., n, n]``.

    ``torch.linalg.matrix_exp`` of the symmetric part: its autograd is exact to any order, also at
    repeated eigenvalues (no eigendecomposition is differentiated).
    """
    S = check_square(S, "S")
    check_symmetric(S, "S")
    return symmetric_part(torch.linalg.matrix_exp(symmetric_part(S)))


def sym_logm(P: Tensor) -> Tensor:
    """Principal logarithm of symmetric positive definite matrices ``[..., n, n]`` -> symmetric ``[..., n, n]``.

    Value from ``eigh``; gradient by the Daleckii-Krein formula with divided differences of log
    (limit 1/λ at ties), finite and exact at P = I and at repeated eigenvalues.
    """
    P = check_square(P, "P")
    check_symmetric(P, "P")
    lam, V = torch.linalg.eigh(symmetric_part(P.detach()))
    if checking_values() and bool((lam <= 0).any()):
        raise ValueError("P must be positive definite")
    value = symmetric_part((V * torch.log(lam)[..., None, :]) @ V.mT)
    return add_first_order(value, symmetric_part(P), V, log_divided_difference(lam))


def polar_decompose(A: Tensor) -> tuple[Tensor, Tensor]:
    """A ``[..., n, n]`` with det A > 0 -> (R ``[..., n, n]`` in SO(n), S ``[..., n, n]`` symmetric), A = R · Exp(S).

    From the SVD A = U diag(σ) Wᵀ: R = U Wᵀ, S = W diag(log σ) Wᵀ (det A > 0 makes det R = +1). Gradients
    with X = Uᵀ dA W: Uᵀ dR W = (X - Xᵀ)_ij / (σ_i + σ_j) and Wᵀ dS W = (XᵀΣ + ΣX)_ij L_ij / (σ_i + σ_j),
    L the divided differences of log; all finite at repeated σ (at A = I: dR = skew(dA), dS = sym(dA)).
    """
    A = check_square(A, "A")
    check_positive_det(A, "A")
    U, sigma, Wh = torch.linalg.svd(A.detach())
    W = Wh.mT
    R = U @ Wh
    S = symmetric_part((W * torch.log(sigma)[..., None, :]) @ Wh)
    if A.requires_grad:
        X = U.mT @ (A - A.detach()) @ W
        total = sigma[..., :, None] + sigma[..., None, :]
        R = R + U @ ((X - X.mT) / total) @ Wh
        sym_part = X.mT * sigma[..., None, :] + sigma[..., :, None] * X
        S = S + W @ (sym_part * log_divided_difference(sigma) / total) @ Wh
    return R, S


def polar_compose(R: Tensor, S: Tensor) -> Tensor:
    """(R in SO(n), S symmetric) ``[..., n, n]`` -> A = R · Exp(S) ``[..., n, n]`` (batch shapes broadcast)."""
    R = check_square(R, "R")
    S = check_square(S, "S", R.shape[-1])
    check_like(S, R, "S")
    check_rotation_matrix(R, "R")
    return R @ sym_expm(S)
