"""Bases of the Lie algebra so(n) and of the symmetric matrices Sym(n): dimensions, hat and vee.

so(n): the generator of the pair i < j (row-major) has +1 at [j, i] and -1 at [i, j], except for n = 3
where the basis is the cross product's of ``SO3`` (ω^ = ``skew(ω)``). Sym(n) and its traceless part get
orthonormal bases for the Frobenius inner product: the diagonal (traceless: a Helmert basis of the
sum-zero diagonals), then (E_ij + E_ji)/√2 for i < j.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import Tensor

from liequiv.validation import check_positive_int, check_square, check_tensor

__all__ = ["group_dim", "so_dim", "so_hat", "so_vee", "sym_dim", "sym_hat", "sym_vee"]


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
