"""Rotations of R^n: Exp and the principal Log of so(n), and Haar-uniform sampling of SO(n)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.linear.algebra import so_hat, so_vee
from liequiv.groups.linear.spectral import divided_difference, symmetric_part
from liequiv.groups.so3 import matrix_to_quaternion, quaternion_log
from liequiv.validation import check_positive_int, check_rotation_matrix

__all__ = ["rotation_exp", "rotation_log", "sample_rotation"]


def rotation_exp(omega: Tensor, n: int) -> Tensor:
    """ω ``[..., n(n-1)/2]`` -> R = Exp(ω^) ``[..., n, n]`` in SO(n) (``matrix_exp``; onto SO(n))."""
    return torch.linalg.matrix_exp(so_hat(omega, n))


def rotation_log(R: Tensor) -> Tensor:
    """R ``[..., n, n]`` in SO(n) -> ω ``[..., n(n-1)/2]`` with Exp(ω^) = R and every rotation angle in [0, π].

    n = 2: atan2; n = 3: ``SO3``'s quaternion logarithm. n ≥ 4: with C = (R + Rᵀ)/2 and K = (R - Rᵀ)/2
    (they commute), Log R = f(C) K with f(cos θ) = θ / sin θ, evaluated in the eigenbasis of C where the
    angles come from atan2(sin, cos) (accurate up to π), with first-order Daleckii-Krein gradients. At
    angle π, where the logarithm is not unique, one of the logarithms is returned.
    """
    R = check_rotation_matrix(R, "R")
    n = R.shape[-1]
    if n == 1:
        return R.new_zeros(*R.shape[:-2], 0)
    if n == 2:
        return torch.atan2(0.5 * (R[..., 1, 0] - R[..., 0, 1]), 0.5 * (R[..., 0, 0] + R[..., 1, 1]))[..., None]
    if n == 3:
        return quaternion_log(matrix_to_quaternion(R))
    # In the eigenbasis Q of C, M = Qᵀ K Q is sin θ times a complex structure on each eigenspace, so the
    # norm of row i of M is sin θ_i to absolute round-off: θ_i = atan2(‖M_i‖, c_i) keeps the accuracy that
    # arccos(c_i) would lose near 0 and π.
    # Entries of M between eigenvalues of C further apart than sqrt(eps) vanish exactly (C and K commute)
    # and are dropped: their round-off would otherwise be scaled by θ / sin θ near π.
    c, Q = torch.linalg.eigh(symmetric_part(R.detach()))
    K = 0.5 * (R.detach() - R.detach().mT)
    M = Q.mT @ K @ Q
    same = (c[..., :, None] - c[..., None, :]).abs() < torch.finfo(c.dtype).eps ** 0.5
    M = torch.where(same, 0.5 * (M - M.mT), torch.zeros_like(M))
    s = torch.linalg.vector_norm(M, dim=-1)
    x = s / c.abs().clamp_min(torch.finfo(c.dtype).tiny)
    small = (x < 0.1) & (c > 0)  # θ/s = atan(x)/(x c), x = s/c, as a series in x²
    atan_ratio = series.atanc(torch.where(small, x * x, torch.zeros_like(x)))
    s_safe = torch.where(small, torch.ones_like(s), s.clamp_min(torch.finfo(s.dtype).tiny))
    ratio = torch.where(small, atan_ratio / c.clamp_min(0.5), torch.atan2(s, c) / s_safe)  # f(c) = θ / sin θ
    # Angle π to round-off (R = -I on an even-dimensional eigenspace, first in eigh's order): M carries no
    # direction there, and any complex structure J gives a logarithm π J; pair the eigenvectors (0, 1), (2, 3), …
    flat = (c < 0) & (s <= 100 * torch.finfo(s.dtype).eps)
    idx = torch.arange(n, device=R.device)
    pairing = (idx[:, None] == idx[None, :] + 1) & (idx[None, :] % 2 == 0)
    pairing = (pairing.to(R.dtype) - pairing.mT.to(R.dtype)) * (flat[..., :, None] & flat[..., None, :])
    M = torch.where(flat[..., :, None], pairing, M)
    ratio = torch.where(flat, torch.full_like(ratio, math.pi), ratio)
    L = Q @ (ratio[..., :, None] * M) @ Q.mT
    if R.requires_grad:  # first order of f(C) K: df(C) K + f(C) dK, df(C) by Daleckii-Krein
        dR = R - R.detach()
        dd = divided_difference(ratio, series.theta_over_sine_derivative, c.clamp(-1 + torch.finfo(c.dtype).eps, 1))
        dC = Q @ (dd * (Q.mT @ symmetric_part(dR) @ Q)) @ Q.mT
        L = L + dC @ K + (Q * ratio[..., None, :]) @ Q.mT @ (0.5 * (dR - dR.mT))
    return so_vee(L)


def sample_rotation(n: int, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
                    dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Haar-uniform rotations ``[*batch_shape, n, n]`` in SO(n): QR of a Gaussian matrix with the signs fixed.

    Q diag(sign diag R) is Haar on O(n); flipping the first column where det = -1 is a right translation
    of that component onto SO(n), so the result is Haar on SO(n).
    """
    n = check_positive_int(n, "n")
    z = torch.randn(*batch_shape, n, n, generator=generator, dtype=dtype, device=device)
    q, r = torch.linalg.qr(z)
    d = torch.diagonal(r, dim1=-2, dim2=-1).sign()
    q = q * torch.where(d == 0, torch.ones_like(d), d)[..., None, :]
    flip = torch.ones_like(d)
    flip[..., 0] = torch.linalg.det(q).sign()
    return q * flip[..., None, :]
