"""GL+(n), SL(n) and the affine groups R^n ⋊ GL+(n), R^n ⋊ SL(n), through the polar decomposition.

After Mironenco & Forré, "Lie Group Decompositions for Equivariant Neural Networks" (ICLR 2024). The
exponential map of GL+(n) is not surjective (``diag(-1, -2)`` has no real logarithm), so instead of
Exp/Log every element is split into a compact and a Euclidean factor:

    A = R · P,   R = A (AᵀA)^(-1/2) ∈ SO(n),   P = (AᵀA)^(1/2) = Exp(S),   S ∈ Sym(n)

(``polar_decompose`` / ``polar_compose``; det A > 0 makes det R = +1, and ``S`` is traceless exactly
when det A = 1). ``(R, S) ↦ R · Exp(S)`` is a diffeomorphism SO(n) × Sym(n) → GL+(n), so GL+(n) ≅
SO(n) × R^(n(n+1)/2) and SL(n) ≅ SO(n) × R^(n(n+1)/2 - 1).

Dimension bookkeeping (``group_dim``) and the global coordinates ``x = (ω, s)`` (``from_coordinates``,
``to_coordinates``):

    ========  =============  ===========================  ===========================
    group     dim            ω: rotation part             s: symmetric part
    ========  =============  ===========================  ===========================
    GL+(n)    n²             n(n-1)/2 (so(n))              n(n+1)/2 (Sym(n))
    SL(n)     n² - 1         n(n-1)/2                      n(n+1)/2 - 1 (traceless)
    affine    + n            translation b comes first: (b, ω, s)
    ========  =============  ===========================  ===========================

e.g. GL+(2): 1 + 3 = 4, SL(2): 1 + 2 = 3, GL+(3): 3 + 6 = 9, SL(3): 3 + 5 = 8.

- ``s`` are orthonormal coordinates of Sym(n) for the Frobenius inner product (``sym_hat``/``sym_vee``):
  the diagonal entries (or, traceless, the diagonal in a Helmert basis of the sum-zero vectors), then
  √2·S_ij for i < j, so ‖s‖ = ‖S‖_F. This part of the chart is global: Sym(n) = R^(n(n+1)/2).
- ``ω`` are coordinates of so(n) (``so_hat``/``so_vee``): the generator of the pair i < j (row-major)
  has +1 at [j, i] and -1 at [i, j] (a rotation from axis i towards axis j), except for n = 3 where
  ω is the rotation vector of ``SO3`` (ω^ = ``skew(ω)``); for n = 2, ω is the angle. R = Exp(ω^)
  (``rotation_exp``) is onto SO(n) and one-to-one on the fundamental domain where every rotation angle
  of ω^ is below π; ``rotation_log`` is its inverse there (the principal logarithm).

Haar measure (``haar_log_density``). Writing dA = R(Ω P + dP) with Ω = Rᵀ dR, in the eigenbasis of
P = Q diag(σ) Qᵀ the pair (Ω_ij, dP_ij), i < j, maps to (Ω_ij σ_j + dP_ij, -Ω_ij σ_i + dP_ij) with
determinant σ_i + σ_j. With the Daleckii-Krein Jacobian of P = Exp(S), ∏_i σ_i ∏_{i<j} (σ_i - σ_j)/(λ_i - λ_j)
(λ = log σ the eigenvalues of S), the Haar measure dA / det(A)^n of GL+(n) becomes

    dA / det(A)^n = 2^(n(n-1)/4) · dΩ · h(S) ds,      h(S) = ∏_{i<j} sinh(λ_i - λ_j) / (λ_i - λ_j),

dΩ the Haar measure of SO(n) (the volume of Rᵀ dR in ``so_vee`` coordinates) and ds Lebesgue measure
in the coordinates s. So Haar on G is Haar on SO(n) times the measure h(S) ds on Sym(n) (h is also the
density of the invariant measure of Pos(n) = GL+(n)/SO(n) at AᵀA = Exp(2S)). h does not depend on
tr S, so SL(n) has the same h on traceless s. Below, μ = dR · h(S) ds with dR the Haar probability of
SO(n). The measure is infinite; ``sample_glplus``/``sample_sl`` draw R Haar-uniform and s ~ N(0,
scale²), a bi-SO(n)-invariant proposal q, and return ``log_weight = log h(S) - log q(s)``: for any
integrable φ, E_q[exp(log_weight) φ(A)] = ∫ φ dμ, and self-normalized weights turn the samples into
samples of any target ρ · μ. The affine group R^n ⋊ G has left Haar measure db dμ(A) / det A.

Gradients. ``eigh``/``svd`` backward divides by eigenvalue gaps and is NaN/inf at repeated eigenvalues
(at the identity, for instance). Here every spectral function is evaluated on detached inputs and its
first-order term is added back in the Daleckii-Krein form, where the divided differences have finite
limits (1/σ for log, 1/(σ_i + σ_j) for the polar factors), so gradients are finite and exact at P = I and
at repeated eigenvalues. This gives exact first derivatives; the eigenbasis is held fixed, so second
derivatives through ``polar_decompose``, ``sym_logm`` and ``rotation_log`` (n ≥ 4) are not exact.
``sym_expm`` and ``rotation_exp`` use ``torch.linalg.matrix_exp`` and are differentiable to any order.

Why functions and a small affine class rather than ``LieGroup`` subclasses: ``LieGroup`` is built on
Exp/Log (⊕, ⊖, ``between``, the Jacobians) and a fixed ``param_dim``; on GL+(n) Log is only partial,
which is the point of the paper. The decomposition is the chart here, and the affine groups expose the
group operations (compose, inverse, act, matrices) plus the global coordinates, for any n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import cache
from math import factorial
from typing import ClassVar, NamedTuple, TypeVar

import torch
from torch import Tensor

from liequiv.groups.series import bernoulli as _bernoulli
from liequiv.groups.so3 import matrix_to_quaternion, quaternion_log
from liequiv.validation import (
    check_homogeneous_rows,
    check_like,
    check_positive_det,
    check_positive_int,
    check_rotation_matrix,
    check_square,
    check_symmetric,
    check_tensor,
    check_unit_det,
    checking_values,
)

__all__ = [
    "AffineGLPlus",
    "AffineSL",
    "HaarSample",
    "from_coordinates",
    "group_dim",
    "haar_log_density",
    "polar_compose",
    "polar_decompose",
    "rotation_exp",
    "rotation_log",
    "sample_affine",
    "sample_glplus",
    "sample_rotation",
    "sample_sl",
    "so_dim",
    "so_hat",
    "so_vee",
    "sym_dim",
    "sym_expm",
    "sym_hat",
    "sym_logm",
    "sym_vee",
    "to_coordinates",
]

# ------------------------------------------------------------------ bases of so(n) and Sym(n)


def so_dim(n: int) -> int:
    """dim so(n) = n(n-1)/2."""
    return n * (n - 1) // 2


def sym_dim(n: int, traceless: bool = False) -> int:
    """dim Sym(n) = n(n+1)/2, one less if traceless."""
    return n * (n + 1) // 2 - int(traceless)


def group_dim(n: int, special: bool = False) -> int:
    """dim GL+(n) = n², dim SL(n) = n² - 1 (= dim so(n) + dim of the symmetric part)."""
    n = check_positive_int(n, "n")
    return so_dim(n) + sym_dim(n, special)


def _build_basis(kind: str, n: int) -> Tensor:
    """[d, n, n] basis of so(n) ("so"), Sym(n) ("sym", orthonormal) or traceless Sym(n) ("sym0", orthonormal)."""
    basis = []
    if kind == "so" and n == 3:  # the cross-product convention of SO3: ω^ p = ω × p
        for j, k in ((1, 2), (2, 0), (0, 1)):  # e_x^, e_y^, e_z^: +1 at [k, j], -1 at [j, k]
            b = torch.zeros(3, 3, dtype=torch.float64)
            b[k, j], b[j, k] = 1.0, -1.0
            basis.append(b)
        return torch.stack(basis)
    if kind == "sym":
        basis += [torch.diag(torch.eye(n, dtype=torch.float64)[i]) for i in range(n)]
    elif kind == "sym0":  # Helmert: (1, …, 1, -k, 0, …) / sqrt(k(k+1)), k = 1 … n-1
        for k in range(1, n):
            h = torch.zeros(n, dtype=torch.float64)
            h[:k], h[k] = 1.0, -float(k)
            basis.append(torch.diag(h / math.sqrt(k * (k + 1))))
    for i in range(n):
        for j in range(i + 1, n):
            b = torch.zeros(n, n, dtype=torch.float64)
            if kind == "so":
                b[j, i], b[i, j] = 1.0, -1.0
            else:
                b[i, j] = b[j, i] = 1 / math.sqrt(2)
            basis.append(b)
    return torch.stack(basis) if basis else torch.zeros(0, n, n, dtype=torch.float64)


_cached_basis = cache(_build_basis)


def _basis(kind: str, n: int, like: Tensor) -> Tensor:
    """The basis in ``like``'s dtype and device; built once per (kind, n), or traced as constants when compiling."""
    basis = _build_basis(kind, n) if torch.compiler.is_compiling() else _cached_basis(kind, n)
    return basis.to(dtype=like.dtype, device=like.device)


def so_hat(omega: Tensor, n: int) -> Tensor:
    """ω ``[..., n(n-1)/2]`` -> skew matrix ω^ ``[..., n, n]`` (n = 3: ``skew(ω)``; n = 2: [[0, -θ], [θ, 0]])."""
    n = check_positive_int(n, "n")
    omega = check_tensor(omega, "omega", (so_dim(n),))
    return torch.einsum("...k,kij->...ij", omega, _basis("so", n, omega))


def so_vee(algebra: Tensor) -> Tensor:
    """Matrix ``[..., n, n]`` -> the coordinates ``[..., n(n-1)/2]`` of its skew part."""
    algebra = check_square(algebra, "algebra")
    return 0.5 * torch.einsum("...ij,kij->...k", algebra, _basis("so", algebra.shape[-1], algebra))


def sym_hat(s: Tensor, n: int, *, traceless: bool = False) -> Tensor:
    """Orthonormal coordinates s ``[..., n(n+1)/2]`` (``-1`` if traceless) -> symmetric S ``[..., n, n]``."""
    n = check_positive_int(n, "n")
    s = check_tensor(s, "s", (sym_dim(n, traceless),))
    return torch.einsum("...k,kij->...ij", s, _basis("sym0" if traceless else "sym", n, s))


def sym_vee(matrix: Tensor, *, traceless: bool = False) -> Tensor:
    """Matrix ``[..., n, n]`` -> orthonormal coordinates of its symmetric part (traceless: of its traceless part)."""
    matrix = check_square(matrix, "matrix")
    basis = _basis("sym0" if traceless else "sym", matrix.shape[-1], matrix)
    return torch.einsum("...ij,kij->...k", matrix, basis)


# ------------------------------------------------------------------ spectral functions with stable gradients


def _log_ratio_over_difference(x: Tensor) -> Tensor:
    """[..., n] positive -> [..., n, n] divided differences (log x_i - log x_j)/(x_i - x_j), 1/x_i on ties."""
    xi, xj = x[..., :, None], x[..., None, :]
    r = (xi - xj) / xj  # > -1; log1p(r)/r has no cancellation except at r = 0
    small = r.abs() < torch.finfo(x.dtype).eps ** 0.25
    r_big = torch.where(small, torch.ones_like(r), r)
    r_small = torch.where(small, r, torch.zeros_like(r))
    series = 1 - r_small * (1 / 2 - r_small * (1 / 3 - r_small * (1 / 4 - r_small / 5)))
    return torch.where(small, series, torch.log1p(r_big) / r_big) / xj


def _divided_difference(fx: Tensor, df: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """[..., n] -> [..., n, n] (f(x_i) - f(x_j))/(x_i - x_j) from fx = f(x), and f' at the midpoint for
    |x_i - x_j| < eps^(1/3) (truncation and round-off errors both ≈ eps^(2/3) there)."""
    xi, xj = x[..., :, None], x[..., None, :]
    diff = xi - xj
    close = diff.abs() < torch.finfo(x.dtype).eps ** (1 / 3)
    quotient = (fx[..., :, None] - fx[..., None, :]) / torch.where(close, torch.ones_like(diff), diff)
    return torch.where(close, df((xi + xj) / 2), quotient)


def _first_order(value: Tensor, matrix: Tensor, basis: Tensor, weights: Tensor) -> Tensor:
    """value + V (weights ∘ Vᵀ dM V) Vᵀ with dM = matrix - matrix.detach(): zero, but it carries the gradient."""
    if not matrix.requires_grad:
        return value
    delta = basis.mT @ (matrix - matrix.detach()) @ basis
    return value + basis @ (weights * delta) @ basis.mT


def _symmetric(m: Tensor) -> Tensor:
    return 0.5 * (m + m.mT)


def sym_expm(S: Tensor) -> Tensor:
    """Exp of symmetric matrices ``[..., n, n]`` -> symmetric positive definite ``[..., n, n]``.

    ``torch.linalg.matrix_exp`` of the symmetric part: its autograd is exact to any order, also at
    repeated eigenvalues (no eigendecomposition is differentiated).
    """
    S = check_square(S, "S")
    check_symmetric(S, "S")
    return _symmetric(torch.linalg.matrix_exp(_symmetric(S)))


def sym_logm(P: Tensor) -> Tensor:
    """Principal logarithm of symmetric positive definite matrices ``[..., n, n]`` -> symmetric ``[..., n, n]``.

    Value from ``eigh``; gradient by the Daleckii-Krein formula with divided differences of log
    (limit 1/λ at ties), finite and exact at P = I and at repeated eigenvalues.
    """
    P = check_square(P, "P")
    check_symmetric(P, "P")
    lam, V = torch.linalg.eigh(_symmetric(P.detach()))
    if checking_values() and bool((lam <= 0).any()):
        raise ValueError("P must be positive definite")
    value = _symmetric((V * torch.log(lam)[..., None, :]) @ V.mT)
    return _first_order(value, _symmetric(P), V, _log_ratio_over_difference(lam))


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
    S = _symmetric((W * torch.log(sigma)[..., None, :]) @ Wh)
    if A.requires_grad:
        X = U.mT @ (A - A.detach()) @ W
        total = sigma[..., :, None] + sigma[..., None, :]
        R = R + U @ ((X - X.mT) / total) @ Wh
        sym_part = X.mT * sigma[..., None, :] + sigma[..., :, None] * X
        S = S + W @ (sym_part * _log_ratio_over_difference(sigma) / total) @ Wh
    return R, S


def polar_compose(R: Tensor, S: Tensor) -> Tensor:
    """(R in SO(n), S symmetric) ``[..., n, n]`` -> A = R · Exp(S) ``[..., n, n]`` (batch shapes broadcast)."""
    R = check_square(R, "R")
    S = check_square(S, "S", R.shape[-1])
    check_like(S, R, "S")
    check_rotation_matrix(R, "R")
    return R @ sym_expm(S)


# ------------------------------------------------------------------ rotations: Exp/Log of so(n), Haar sampling


_ACOS_SERIES = [float(Fraction(2**k * factorial(k) ** 2, factorial(2 * k + 1))) for k in range(14)]


def _theta_over_sine_derivative(c: Tensor) -> Tensor:
    """f'(c) for f(c) = arccos(c) / sqrt(1 - c²) = θ / sin θ (c = cos θ): (c f(c) - 1) / (1 - c²), a series
    near c = 1 (f(1 - u) = Σ 2^k (k!)² / (2k+1)! u^k, radius 2)."""
    u = 1 - c
    small = u < 0.1
    u_s = torch.where(small, u, torch.zeros_like(u))
    u_c = torch.where(small, torch.ones_like(u), u)
    series = torch.zeros_like(u)
    for k in reversed(range(1, len(_ACOS_SERIES))):
        series = series * u_s + k * _ACOS_SERIES[k]
    c_c, sine_sq = 1 - u_c, u_c * (2 - u_c)
    return torch.where(small, -series, (c_c * torch.arccos(c_c) / torch.sqrt(sine_sq) - 1) / sine_sq)


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
    R = check_square(R, "R")
    check_rotation_matrix(R, "R")
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
    c, Q = torch.linalg.eigh(_symmetric(R.detach()))
    K = 0.5 * (R.detach() - R.detach().mT)
    M = Q.mT @ K @ Q
    same = (c[..., :, None] - c[..., None, :]).abs() < torch.finfo(c.dtype).eps ** 0.5
    M = torch.where(same, 0.5 * (M - M.mT), torch.zeros_like(M))
    s = torch.linalg.vector_norm(M, dim=-1)
    x = s / c.abs().clamp_min(torch.finfo(c.dtype).tiny)
    small = (x < 0.1) & (c > 0)  # θ/s = atan(x)/(x c), x = s/c, as a series in x²
    x_sq = torch.where(small, x * x, torch.zeros_like(x))
    atan_series = torch.zeros_like(x)
    for k in reversed(range(12)):
        atan_series = atan_series * -x_sq + 1.0 / (2 * k + 1)
    s_safe = torch.where(small, torch.ones_like(s), s.clamp_min(torch.finfo(s.dtype).tiny))
    ratio = torch.where(small, atan_series / c.clamp_min(0.5), torch.atan2(s, c) / s_safe)  # f(c) = θ / sin θ
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
        dd = _divided_difference(ratio, _theta_over_sine_derivative, c.clamp(-1 + torch.finfo(c.dtype).eps, 1))
        dC = Q @ (dd * (Q.mT @ _symmetric(dR) @ Q)) @ Q.mT
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


# ------------------------------------------------------------------ global coordinates R^d <-> G


def from_coordinates(coords: Tensor, n: int, *, special: bool = False) -> Tensor:
    """x = (ω, s) ``[..., group_dim(n, special)]`` -> A = Exp(ω^) · Exp(S(s)) ``[..., n, n]`` in GL+(n) or SL(n).

    Onto the group; one-to-one where every rotation angle of ω^ is below π (see the module notes).
    """
    n = check_positive_int(n, "n")
    coords = check_tensor(coords, "coords", (group_dim(n, special),))
    omega, s = coords[..., : so_dim(n)], coords[..., so_dim(n):]
    return rotation_exp(omega, n) @ sym_expm(sym_hat(s, n, traceless=special))


def to_coordinates(A: Tensor, *, special: bool = False) -> Tensor:
    """A ``[..., n, n]`` in GL+(n) (det > 0) or SL(n) (det = 1) -> (ω, s) ``[..., group_dim(n, special)]``."""
    A = check_square(A, "A")
    if special:
        check_unit_det(A, "A")
    R, S = polar_decompose(A)
    return torch.cat([rotation_log(R), sym_vee(S, traceless=special)], dim=-1)


# ------------------------------------------------------------------ Haar measure and sampling

_LOG_SINHC_SERIES = [float(Fraction(4**k) * _bernoulli(2 * k)[-1] / (2 * k * factorial(2 * k))) for k in range(1, 11)]


def _log_sinhc(d: Tensor) -> Tensor:
    """log(sinh d / d) for d ≥ 0: a series below 0.5 (radius π), d + log((1 - e^(-2d)) / (2d)) above."""
    small = d < 0.5
    d_s = torch.where(small, d, torch.zeros_like(d))
    d_c = torch.where(small, torch.ones_like(d), d)
    x = d_s * d_s
    series = torch.zeros_like(d)
    for c in reversed(_LOG_SINHC_SERIES):
        series = (series + c) * x
    return torch.where(small, series, d_c + torch.log(-torch.expm1(-2 * d_c) / (2 * d_c)))


def haar_log_density(S: Tensor) -> Tensor:
    """log h(S) = Σ_{i<j} log(sinh(λ_i - λ_j) / (λ_i - λ_j)) ``[...]``, λ the eigenvalues of S ``[..., n, n]``.

    The Haar measure of GL+(n) (and of SL(n), S traceless) is dR · h(S) ds in the polar coordinates
    A = R · Exp(S), with dR the Haar probability of SO(n) and ds Lebesgue measure in ``sym_vee``
    coordinates; see the module notes. Gradients are finite at repeated eigenvalues.
    """
    S = check_square(S, "S")
    check_symmetric(S, "S")
    lam = torch.linalg.eigvalsh(_symmetric(S))
    n = lam.shape[-1]
    i, j = torch.triu_indices(n, n, 1, device=lam.device)
    return _log_sinhc((lam[..., j] - lam[..., i]).abs()).sum(-1)


class HaarSample(NamedTuple):
    """Draws of ``sample_glplus``/``sample_sl``: A = R · Exp(S) and log(dμ_Haar / dq) at A."""

    matrix: Tensor
    """A ``[..., n, n]``."""
    rotation: Tensor
    """R ``[..., n, n]``, Haar-uniform on SO(n)."""
    log_spd: Tensor
    """S ``[..., n, n]`` symmetric (traceless for SL(n)), the logarithm of the positive definite factor."""
    log_weight: Tensor
    """``[...]``: log h(S) - log q(s), so that E[exp(log_weight) φ(A)] = ∫ φ dμ_Haar."""


def _sample(n: int, batch_shape: Sequence[int], special: bool, scale: float, generator: torch.Generator | None,
            dtype: torch.dtype | None, device: torch.device | str | None) -> HaarSample:
    n = check_positive_int(n, "n")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    R = sample_rotation(n, batch_shape, generator=generator, dtype=dtype, device=device)
    m = sym_dim(n, special)
    s = scale * torch.randn(*batch_shape, m, generator=generator, dtype=R.dtype, device=R.device)
    S = sym_hat(s, n, traceless=special)
    log_q = -0.5 * (s * s).sum(-1) / scale**2 - 0.5 * m * math.log(2 * math.pi * scale**2)
    return HaarSample(R @ sym_expm(S), R, S, haar_log_density(S) - log_q)


def sample_glplus(n: int, batch_shape: Sequence[int] = (), *, scale: float = 1.0,
                  generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> HaarSample:
    """Draws from GL+(n) with importance weights for its Haar measure.

    R is Haar-uniform on SO(n); the coordinates s of S are N(0, scale² I) (so S is a Gaussian on
    Sym(n) with density ∝ exp(-‖S‖²_F / 2 scale²)); A = R · Exp(S). The proposal is invariant under
    A ↦ k A k' for rotations k, k'. ``log_weight`` = log h(S) - log q(s) corrects it to the Haar
    measure dR · h(S) ds. Example::

        >>> A, R, S, log_w = sample_glplus(2, (1000,), scale=0.5)
        >>> w = torch.softmax(log_w, 0)  # self-normalized weights: E_Haar-ρ[φ] ≈ Σ w ρ(A) φ(A) / Σ w ρ(A)
    """
    return _sample(n, batch_shape, False, scale, generator, dtype, device)


def sample_sl(n: int, batch_shape: Sequence[int] = (), *, scale: float = 1.0,
              generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> HaarSample:
    """As ``sample_glplus`` on SL(n): S is traceless, its n(n+1)/2 - 1 coordinates N(0, scale² I)."""
    return _sample(n, batch_shape, True, scale, generator, dtype, device)


# ------------------------------------------------------------------ affine groups R^n ⋊ GL+(n), R^n ⋊ SL(n)

F = TypeVar("F", bound="_Affine")


class _Affine:
    """Elements (A, b) of R^n ⋊ G, acting on points by x ↦ A x + b; matrix [[A, b], [0, 1]] ``[..., n+1, n+1]``.

    Product (A₁, b₁)(A₂, b₂) = (A₁A₂, A₁b₂ + b₁), inverse (A⁻¹, -A⁻¹b). Any n; batch dimensions lead
    and broadcast like torch.
    """

    special: ClassVar[bool]
    __slots__ = ("_linear", "_translation")

    def __init__(self, linear: Tensor, translation: Tensor) -> None:
        linear = check_square(linear, "linear")
        translation = check_tensor(translation, "translation", (linear.shape[-1],))
        check_like(translation, linear, "translation")
        if self.special:
            check_unit_det(linear, "linear")
        else:
            check_positive_det(linear, "linear")
        try:
            shape = torch.broadcast_shapes(linear.shape[:-2], translation.shape[:-1])
        except RuntimeError as err:
            raise ValueError(f"linear and translation batch shapes do not broadcast: {err}") from None
        n = linear.shape[-1]
        self._linear, self._translation = linear.expand(*shape, n, n), translation.expand(*shape, n)

    @classmethod
    def _wrap(cls: type[F], linear: Tensor, translation: Tensor) -> F:
        out = object.__new__(cls)
        shape = torch.broadcast_shapes(linear.shape[:-2], translation.shape[:-1])
        n = linear.shape[-1]
        out._linear, out._translation = linear.expand(*shape, n, n), translation.expand(*shape, n)
        return out

    # ----------------------------------------------------------------- tensor-like plumbing
    @property
    def linear(self) -> Tensor:
        """A ``[..., n, n]``."""
        return self._linear

    @property
    def translation(self) -> Tensor:
        """b ``[..., n]``."""
        return self._translation

    @property
    def n(self) -> int:
        return self._translation.shape[-1]

    @property
    def shape(self) -> torch.Size:
        return self._translation.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self._translation.dtype

    @property
    def device(self) -> torch.device:
        return self._translation.device

    @classmethod
    def dim(cls, n: int) -> int:
        """n + dim G: n² + n for GL+(n), n² + n - 1 for SL(n)."""
        return n + group_dim(n, cls.special)

    def __getitem__(self: F, index: object) -> F:
        if not isinstance(index, tuple):
            index = (index,)
        return self._wrap(self._linear[(*index, slice(None), slice(None))], self._translation[(*index, slice(None))])

    def __len__(self) -> int:
        return self.shape[0]

    def to(self: F, *args: object, **kwargs: object) -> F:
        return self._wrap(self._linear.to(*args, **kwargs), self._translation.to(*args, **kwargs))

    def detach(self: F) -> F:
        return self._wrap(self._linear.detach(), self._translation.detach())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, shape={tuple(self.shape)})"

    def _check_other(self, other: _Affine) -> None:
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {type(other).__name__}")
        if other.n != self.n:
            raise ValueError(f"other acts on R^{other.n} but this element acts on R^{self.n}")
        check_like(other.translation, self.translation, "other")

    # ----------------------------------------------------------------- construction
    @classmethod
    def identity(cls: type[F], n: int, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> F:
        n = check_positive_int(n, "n")
        eye = torch.eye(n, dtype=dtype, device=device).expand(*batch_shape, n, n).clone()
        return cls._wrap(eye, eye.new_zeros(*batch_shape, n))

    @classmethod
    def random(cls: type[F], n: int, batch_shape: Sequence[int] = (), *, scale: float = 1.0,
               translation_scale: float = 1.0, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> F:
        """Draws of ``sample_affine`` (R Haar, s ~ N(0, scale²), b ~ N(0, translation_scale²)), without weights."""
        return sample_affine(n, batch_shape, special=cls.special, scale=scale, translation_scale=translation_scale,
                             generator=generator, dtype=dtype, device=device)[0]

    @classmethod
    def from_matrix(cls: type[F], matrix: Tensor, *, project: bool = False) -> F:
        """From homogeneous matrices ``[..., n+1, n+1]``; raises ``ValueError`` outside the group.

        ``project=True`` sets the last row to (0, …, 0, 1) and, for SL(n), rescales A to det 1 (det A
        must still be > 0).
        """
        matrix = check_square(matrix, "matrix")
        n = matrix.shape[-1] - 1
        if n < 1:
            raise ValueError(f"matrix must have shape [..., n+1, n+1] with n ≥ 1, got {list(matrix.shape)}")
        if not project:
            check_homogeneous_rows(matrix, "matrix", hint="; pass project=True to project it")
        linear, translation = matrix[..., :n, :n], matrix[..., :n, n]
        if cls.special and project:
            check_positive_det(linear, "matrix")
            linear = linear * torch.linalg.det(linear).pow(-1 / n)[..., None, None]
        return cls(linear, translation)

    @classmethod
    def from_coordinates(cls: type[F], coords: Tensor, n: int) -> F:
        """(b, ω, s) ``[..., dim(n)]`` -> (from_coordinates(ω, s), b); see the module notes."""
        n = check_positive_int(n, "n")
        coords = check_tensor(coords, "coords", (cls.dim(n),))
        return cls._wrap(from_coordinates(coords[..., n:], n, special=cls.special), coords[..., :n])

    # ----------------------------------------------------------------- the group
    def compose(self: F, other: F) -> F:
        """(A₁A₂, A₁b₂ + b₁) = self · other (also ``self @ other``)."""
        self._check_other(other)
        return self._wrap(self._linear @ other.linear,
                          (self._linear @ other.translation[..., None])[..., 0] + self._translation)

    def __matmul__(self: F, other: F) -> F:
        return self.compose(other)

    def inverse(self: F) -> F:
        """(A⁻¹, -A⁻¹ b)."""
        inv = torch.linalg.inv(self._linear)
        return self._wrap(inv, -(inv @ self._translation[..., None])[..., 0])

    def act(self, points: Tensor) -> Tensor:
        """x ↦ A x + b on points ``[..., n]``."""
        points = check_tensor(points, "points", (self.n,))
        check_like(points, self.translation, "points")
        return (self._linear @ points[..., None])[..., 0] + self._translation

    def as_matrix(self) -> Tensor:
        """[[A, b], [0, 1]] ``[..., n+1, n+1]``."""
        top = torch.cat([self._linear, self._translation[..., None]], dim=-1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, -1] = 1
        return torch.cat([top, bottom], dim=-2)

    def polar(self) -> tuple[Tensor, Tensor]:
        """``polar_decompose`` of the linear part: (R, S) with A = R · Exp(S)."""
        return polar_decompose(self._linear)

    def coordinates(self) -> Tensor:
        """(b, ω, s) ``[..., dim(n)]``, the inverse of ``from_coordinates`` on its fundamental domain."""
        return torch.cat([self._translation, to_coordinates(self._linear, special=self.special)], dim=-1)


class AffineGLPlus(_Affine):
    """R^n ⋊ GL+(n): x ↦ A x + b with det A > 0. Left Haar measure db dμ(A) / det A (not unimodular)."""

    special = False


class AffineSL(_Affine):
    """R^n ⋊ SL(n): x ↦ A x + b with det A = 1 (within 1e-8 in float64, 1e-3 in float32). Haar: db dμ(A)."""

    special = True

    def normalize(self) -> AffineSL:
        """Rescale A to det 1 exactly (up to round-off), after drift from many compositions."""
        det = torch.linalg.det(self._linear)
        return self._wrap(self._linear * det.pow(-1 / self.n)[..., None, None], self._translation)


def sample_affine(n: int, batch_shape: Sequence[int] = (), *, special: bool = False, scale: float = 1.0,
                  translation_scale: float = 1.0, generator: torch.Generator | None = None,
                  dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  ) -> tuple[_Affine, Tensor]:
    """Draws (A, b) of R^n ⋊ GL+(n) (or SL(n)) and log weights for the left Haar measure db dμ(A) / det A.

    A as in ``sample_glplus``/``sample_sl``; b ~ N(0, translation_scale² I). Returns (element, log_weight
    ``[...]``) with log_weight = log h(S) - log q(s) - tr S - log q(b) (tr S = log det A, 0 for SL).
    """
    if not (isinstance(translation_scale, (int, float)) and math.isfinite(translation_scale)
            and translation_scale > 0):
        raise ValueError(f"translation_scale must be a finite number > 0, got {translation_scale!r}")
    draw = _sample(n, batch_shape, special, scale, generator, dtype, device)
    b = translation_scale * torch.randn(*batch_shape, n, generator=generator, dtype=draw.matrix.dtype,
                                        device=draw.matrix.device)
    log_q_b = -0.5 * (b * b).sum(-1) / translation_scale**2 - 0.5 * n * math.log(2 * math.pi * translation_scale**2)
    log_det = torch.diagonal(draw.log_spd, dim1=-2, dim2=-1).sum(-1)
    cls = AffineSL if special else AffineGLPlus
    return cls._wrap(draw.matrix, b), draw.log_weight - log_det - log_q_b
