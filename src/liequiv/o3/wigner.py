"""Wigner-D matrices and Clebsch-Gordan (Wigner-3j) coefficients in e3nn's real basis.

The real basis of degree ``l`` is the one of :func:`liequiv.o3.harmonics.spherical_harmonics`: degree 1 is
ordered ``(x, y, z)`` and ``wigner_D(1, R) == R``. All constants are built once in float64 and cached.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import torch

from liequiv.groups.so3 import matrix_to_quaternion, quaternion_log
from liequiv.validation import check_degree, check_tensor

__all__ = ["change_basis_real_to_complex", "clebsch_gordan", "so3_generators", "wigner_D"]


@functools.cache
def _real_to_complex(l: int) -> torch.Tensor:
    """Unitary ``Q [2l+1, 2l+1]`` (complex128) with rows indexed by complex ``m`` and columns by real ``m``.

    The Wikipedia real form of the spherical harmonics, times the phase ``(-i)^l`` that makes the
    Clebsch-Gordan coefficients real (e3nn's choice).
    """
    n = 2 * l + 1
    q = torch.zeros(n, n, dtype=torch.complex128)
    s = 1 / math.sqrt(2)
    q[l, l] = 1
    for m in range(1, l + 1):
        sign = (-1) ** m
        # row l - m: complex Y_{-m}; row l + m: complex Y_{+m}
        q[l - m, l + m] = s
        q[l - m, l - m] = -1j * s
        q[l + m, l + m] = sign * s
        q[l + m, l - m] = 1j * sign * s
    return (-1j) ** l * q


def change_basis_real_to_complex(l: int) -> torch.Tensor:
    """Change of basis ``Q [2l+1, 2l+1]`` (complex128) from e3nn's real basis of degree ``l`` to the complex one."""
    return _real_to_complex(check_degree(l)).clone()


@functools.cache
def _generators(l: int) -> torch.Tensor:
    m = torch.arange(-l, l + 1, dtype=torch.float64)
    # standard ladder operators: (J+)[m+1, m] = sqrt(l(l+1) - m(m+1)), J- its transpose
    up = torch.diag(torch.sqrt(l * (l + 1) - m[:-1] * (m[:-1] + 1)), diagonal=-1).to(torch.complex128)
    down = up.T
    jx = (up + down) / 2
    jy = (up - down) / 2j
    jz = torch.diag(m).to(torch.complex128)
    # anti-Hermitian generators; e3nn's real basis has its quantization axis along y
    gen = torch.stack([-1j * jy, 1j * jz, 1j * jx])
    q = _real_to_complex(l)
    real = q.conj().T @ gen @ q
    if real.imag.abs().max() > 1e-12:
        raise RuntimeError("so3 generators are not real")  # pragma: no cover
    return real.real.contiguous()


def so3_generators(l: int) -> torch.Tensor:
    """Generators ``J [3, 2l+1, 2l+1]`` (float64) of rotations about x, y, z in the real basis of degree ``l``.

    ``J_a`` is antisymmetric, ``wigner_D(l, exp(θ L_a)) = matrix_exp(θ J_a)`` and ``J`` of degree 1 is the cross
    product: ``J_a v = e_a × v``.
    """
    return _generators(check_degree(l)).clone()


def wigner_D(l: int, R: torch.Tensor) -> torch.Tensor:
    """Wigner-D matrix ``[..., 2l+1, 2l+1]`` of rotation matrices ``R [..., 3, 3]`` in the real basis of degree ``l``.

    ``D(R1 R2) = D(R1) D(R2)``, ``D(R)^T = D(R^{-1})`` and ``wigner_D(1, R) == R``. Computed as
    ``matrix_exp(θ n·J)`` from the rotation vector of ``R`` (``groups.so3``'s matrix -> quaternion -> log,
    stable at angles 0 and π). ``R`` must be a proper
    rotation; for improper matrices use :meth:`liequiv.o3.irreps.Irrep.D_from_matrix`.
    """
    check_degree(l)
    check_tensor(R, "R", (3, 3), finite=False)
    if l == 0:
        return torch.ones(*R.shape[:-2], 1, 1, dtype=R.dtype, device=R.device)
    omega = quaternion_log(matrix_to_quaternion(R))
    J = _generators(l).to(dtype=R.dtype, device=R.device)
    return torch.linalg.matrix_exp(torch.einsum("...a,aij->...ij", omega, J))


def _su2_cg(j1: int, m1: int, j2: int, m2: int, j3: int, m3: int) -> float:
    """Condon-Shortley Clebsch-Gordan coefficient ``<j1 m1; j2 m2 | j3 m3>`` (Racah's formula, exact rationals)."""
    if m1 + m2 != m3:
        return 0.0
    f = math.factorial
    pre = Fraction(
        (2 * j3 + 1)
        * f(j1 + j2 - j3)
        * f(j1 - j2 + j3)
        * f(-j1 + j2 + j3)
        * f(j3 + m3)
        * f(j3 - m3)
        * f(j1 - m1)
        * f(j1 + m1)
        * f(j2 - m2)
        * f(j2 + m2),
        f(j1 + j2 + j3 + 1),
    )
    total = Fraction(0)
    kmin = max(0, j2 - j3 - m1, j1 - j3 + m2)
    kmax = min(j1 + j2 - j3, j1 - m1, j2 + m2)
    for k in range(kmin, kmax + 1):
        den = f(k) * f(j1 + j2 - j3 - k) * f(j1 - m1 - k) * f(j2 + m2 - k) * f(j3 - j2 + m1 + k) * f(j3 - j1 - m2 + k)
        total += Fraction((-1) ** k, den)
    # sqrt of the prefactor as a float, then the exact sum
    return math.sqrt(pre) * float(total)


@functools.cache
def _clebsch_gordan(l1: int, l2: int, l3: int) -> torch.Tensor:
    c = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -l3 - m1), min(l2, l3 - m1) + 1):
            c[l1 + m1, l2 + m2, l3 + m1 + m2] = _su2_cg(l1, m1, l2, m2, l3, m1 + m2)
    q1, q2, q3 = _real_to_complex(l1), _real_to_complex(l2), _real_to_complex(l3)
    real = torch.einsum("ai,bj,ck,abc->ijk", q1, q2, q3.conj(), c.to(torch.complex128))
    if real.imag.abs().max() > 1e-12:
        raise RuntimeError("Clebsch-Gordan coefficients are not real")  # pragma: no cover
    out = real.real
    return (out / torch.linalg.vector_norm(out)).contiguous()


def clebsch_gordan(
    l1: int, l2: int, l3: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """Real Clebsch-Gordan (Wigner-3j) tensor ``C [2l1+1, 2l2+1, 2l3+1]``, equal to ``e3nn.o3.wigner_3j``.

    Frobenius norm 1 and ``C_ijk = D1_ia D2_jb D3_kc C_abc`` for every rotation (``D = wigner_D``). Requires
    ``|l1 - l2| <= l3 <= l1 + l2``. Cached in float64, returned as a fresh tensor of ``dtype`` on ``device``.
    """
    check_degree(l1, "l1"), check_degree(l2, "l2"), check_degree(l3, "l3")
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(f"l1, l2, l3 = {l1}, {l2}, {l3} violate the triangle inequality")
    return _clebsch_gordan(l1, l2, l3).to(dtype=dtype, device=device, copy=True)
