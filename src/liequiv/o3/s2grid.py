r"""Grids on the sphere S²: quasi-uniform point sets, exact quadrature, SH <-> grid and SH <-> 2D Fourier.

Angles follow e3nn: ``(x, y, z) = (sin β sin α, cos β, sin β cos α)``, polar axis ``y``, and the real harmonics of
:func:`liequiv.o3.harmonics.spherical_harmonics` separate as ``Y_lm(β, α) = Λ_{l|m|}(β) Φ_m(α)`` with
``Φ_0 = 1``, ``Φ_{m>0} = cos(mα)``, ``Φ_{m<0} = sin(|m|α)``.

* :func:`fibonacci_sphere`: ``n`` quasi-uniform unit vectors (golden spiral), e.g. a fixed grid of orientations.
* :func:`s2_grid`, :func:`to_grid`, :func:`from_grid`: Gauss-Legendre nodes in ``cos β`` times a uniform
  azimuth. ``n_beta`` nodes integrate polynomials in ``cos β`` of degree ``2 n_beta - 1`` exactly and ``n_alpha``
  azimuths every frequency below ``n_alpha``, so the grid of :func:`quadrature_size` ``(degree)`` integrates every
  polynomial of degree ``<= degree`` on the sphere exactly. Transforms are separable (a small per-``m`` Legendre
  product over ``β``, then a product over ``α``): ``O(L^3)`` per signal.
* :func:`sh_to_fourier`, :func:`fourier_to_sh`, :func:`fourier_eval`: the change of basis between real harmonics
  and the 2D Fourier basis ``e^{i(uθ + vφ)}`` on the torus ``(θ, φ) = (β, α)`` used by the Gaunt tensor product
  (Luo et al., 2024). ``Λ_{lk}(θ) = q_l^k(cos θ) sin^k θ`` is a trigonometric polynomial of degree ``l``
  (a cosine series for even ``k``, a sine series for odd ``k``), extended to ``θ ∈ (π, 2π)`` by the same
  formula, so a signal of degree ``<= L`` has coefficients ``[2L+1, 2L+1]`` and the product of two signals
  is the 2D convolution of their coefficients. The way back integrates the series against each ``Y_lm``
  over the sphere with the exact integrals ``∫_0^π e^{inθ} sin θ dθ`` (``2/(1-n²)`` for even ``n``,
  ``±iπ/2`` for ``n = ±1``, 0 otherwise), so it projects any torus series exactly.

All tables are built once in float64 and cached per (sizes, normalization) and per (dtype, device).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from liequiv.o3.harmonics import _check_normalization, _degree_scale, _legendre_lambda
from liequiv.validation import check_degree, check_positive_int

__all__ = [
    "fibonacci_sphere",
    "fourier_eval",
    "fourier_to_sh",
    "from_grid",
    "grid_vectors",
    "half_spectrum_to_sh",
    "quadrature_size",
    "s2_grid",
    "sh_to_fourier",
    "sh_to_half_spectrum",
    "to_grid",
]


def fibonacci_sphere(n: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """``n`` quasi-uniform unit vectors ``[n, 3]`` on the golden-angle spiral (Fibonacci lattice).

    Point k sits at height z_k = 1 - (2k + 1)/n (equal-area bands) and azimuth k·π(3 - √5), so every
    point covers the same area 4π/n; the grid is deterministic.
    """
    check_positive_int(n, "n")
    k = torch.arange(n, dtype=torch.float64)
    z = 1 - (2 * k + 1) / n
    radius = torch.sqrt((1 - z * z).clamp_min(0))
    phi = k * math.pi * (3 - math.sqrt(5))
    grid = torch.stack([radius * torch.cos(phi), radius * torch.sin(phi), z], -1)
    return grid.to(dtype=dtype or torch.get_default_dtype(), device=device)


# ----------------------------------------------------------------------------------------------- helpers


def _lmax_of(dim: int, name: str = "x") -> int:
    lmax = math.isqrt(dim) - 1
    if (lmax + 1) ** 2 != dim or dim == 0:
        raise ValueError(f"the last dimension of {name} must be (lmax+1)^2, got {dim}")
    return lmax


_CACHE: dict[tuple, tuple[Tensor, ...]] = {}


def _to(key: tuple, arrays: tuple[np.ndarray, ...], dtype: torch.dtype, device: torch.device | None):
    """Cache float64/complex128 numpy tables as tensors of ``dtype`` (its complex counterpart for complex)."""
    full = (*key, dtype, device)
    out = _CACHE.get(full)
    if out is None:
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        out = tuple(
            torch.tensor(np.ascontiguousarray(a), dtype=cdtype if np.iscomplexobj(a) else dtype, device=device)
            if a.dtype != np.int64
            else torch.tensor(a, device=device)
            for a in arrays
        )
        _CACHE[full] = out
    return out


@functools.cache
def _layout(lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """``gather [2L+1, L+1]``: index into ``(L+1)^2`` (or ``(L+1)^2`` = a zero pad) of coefficient ``(l, m)``
    at row ``L + m``, column ``l``; ``scatter [(L+1)^2]``: flat position in ``[2L+1, L+1]`` of each ``(l, m)``."""
    K = (lmax + 1) ** 2
    gather = np.full((2 * lmax + 1, lmax + 1), K, dtype=np.int64)
    scatter = np.zeros(K, dtype=np.int64)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            gather[lmax + m, l] = l * l + l + m
            scatter[l * l + l + m] = (lmax + m) * (lmax + 1) + l
    return gather, scatter


def _by_m(x: Tensor, lmax: int) -> Tensor:
    """``[..., (L+1)^2] -> [..., 2L+1 (m), L+1 (l)]``, zeros where ``l < |m|``."""
    gather, _ = _to(("layout", lmax), _layout(lmax), x.dtype, x.device)
    xp = torch.cat([x, x.new_zeros(*x.shape[:-1], 1)], -1)
    return xp.index_select(-1, gather.reshape(-1)).reshape(*x.shape[:-1], 2 * lmax + 1, lmax + 1)


def _from_m(c: Tensor, lmax: int) -> Tensor:
    """``[..., 2L+1, L+1] -> [..., (L+1)^2]`` (inverse of :func:`_by_m`)."""
    _, scatter = _to(("layout", lmax), _layout(lmax), torch.float64, c.device)
    return c.reshape(*c.shape[:-2], -1).index_select(-1, scatter)


# The transforms below work on coefficients "by m", ``a [R, 2L+1 (m), L+1 (l)]`` for ``R`` signals: one batched
# matrix product over ``m`` (the per-m Legendre step) and one matrix product over ``m`` or ``α``, without copies.


def _grid_values(a: Tensor, lam: Tensor, phi: Tensor) -> Tensor:
    """``a [R, m, l]``, ``lam [m, l, n_beta]``, ``phi [m, n_alpha]`` -> grid values ``[R, n_beta, n_alpha]``."""
    g = torch.bmm(a.transpose(0, 1), lam)  # [m, R, b]
    return torch.mm(g.reshape(g.shape[0], -1).t(), phi).view(a.shape[0], lam.shape[-1], phi.shape[-1])


def _grid_project(f: Tensor, phi: Tensor, lam_back: Tensor) -> Tensor:
    """Grid values ``f [R, n_beta, n_alpha]`` -> coefficients ``[R, m, l]`` (a transposed view)."""
    g = torch.mm(phi, f.reshape(-1, f.shape[-1]).t())  # [m, R * b]
    return torch.bmm(g.view(phi.shape[0], f.shape[0], f.shape[1]), lam_back.transpose(1, 2)).transpose(0, 1)


def _flat(x: Tensor) -> Tensor:
    """``[..., m, l] -> [R, m, l]``."""
    return x.reshape(-1, *x.shape[-2:])


def _phi(lmax: int, alpha: np.ndarray) -> np.ndarray:
    """``Φ [2L+1 (m), n]``: ``1, cos(mα), sin(|m|α)`` at the azimuths ``alpha``."""
    m = np.arange(-lmax, lmax + 1)[:, None]
    return np.where(m > 0, np.cos(m * alpha), np.where(m < 0, np.sin(-m * alpha), 1.0))


def _lambda_by_m(lmax: int, cos: np.ndarray, sin: np.ndarray, normalization: str) -> np.ndarray:
    """``[2L+1 (m), L+1 (l), n]``: ``s_l Λ_{l|m|}`` at the given polar points (0 where ``l < |m|``)."""
    lam = _legendre_lambda(lmax, cos, sin) * _degree_scale(lmax, normalization)[:, None]  # [n, l, k]
    k = np.abs(np.arange(-lmax, lmax + 1))
    return np.transpose(lam[:, :, k], (2, 1, 0))


# ----------------------------------------------------------------------------------------------- quadrature


def quadrature_size(degree: int) -> tuple[int, int]:
    """``(n_beta, n_alpha)`` of the smallest grid that integrates every polynomial of degree ``<= degree`` exactly.

    ``n_beta = degree // 2 + 1`` Gauss-Legendre nodes in ``cos β`` and ``n_alpha = degree + 1`` azimuths. For the
    SH -> grid -> SH round trip of signals of degree ``L`` use ``degree = 2L``; for the product of two signals of
    degrees ``L1``, ``L2`` projected to ``L3`` use ``degree = L1 + L2 + L3``.
    """
    check_degree(degree, "degree")
    return degree // 2 + 1, degree + 1


@functools.cache
def _grid_f64(n_beta: int, n_alpha: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(n_beta)
    t, w = t[::-1].copy(), w[::-1].copy()  # β increasing
    beta = np.arccos(t)
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    return beta, alpha, w * (2 * np.pi / n_alpha)


def s2_grid(
    n_beta: int, n_alpha: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(beta [n_beta], alpha [n_alpha], weights [n_beta])`` of the Gauss-Legendre x uniform grid.

    ``Σ_{b,a} weights[b] f(beta[b], alpha[a]) = ∫_{S²} f dΩ`` (weights sum to ``4π``), exactly for polynomials of
    degree ``< min(2 n_beta, n_alpha)``.
    """
    check_positive_int(n_beta, "n_beta")
    check_positive_int(n_alpha, "n_alpha")
    return tuple(torch.tensor(a, dtype=dtype, device=device) for a in _grid_f64(n_beta, n_alpha))  # type: ignore


def grid_vectors(
    n_beta: int, n_alpha: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> Tensor:
    """Unit vectors ``[n_beta, n_alpha, 3]`` of the grid points of :func:`s2_grid`."""
    beta, alpha, _ = s2_grid(n_beta, n_alpha, dtype=torch.float64)
    b, a = beta[:, None], alpha[None, :]
    xyz = torch.stack(
        torch.broadcast_tensors(torch.sin(b) * torch.sin(a), torch.cos(b), torch.sin(b) * torch.cos(a)), -1
    )
    return xyz.to(dtype=dtype, device=device)


@functools.cache
def _grid_tables(lmax: int, n_beta: int, n_alpha: int, normalization: str) -> tuple[np.ndarray, ...]:
    beta, alpha, w = _grid_f64(n_beta, n_alpha)
    lam = _lambda_by_m(lmax, np.cos(beta), np.sin(beta), normalization)  # [m, l, b]
    phi = _phi(lmax, alpha)  # [m, a]
    # from_grid: c_lm = ∫ f Y_lm / ∫ Y_lm², with ∫ Y_lm² = 4π s_l²
    norm2 = 4 * np.pi * _degree_scale(lmax, normalization) ** 2
    lam_back = lam * w[None, None, :] / norm2[None, :, None]
    return lam, phi, lam_back


def _grid_tensors(lmax: int, n_beta: int, n_alpha: int, normalization: str, x: Tensor) -> tuple[Tensor, ...]:
    """``(lam [m, l, b], phi [m, a], lam_back [m, l, b])`` in ``x``'s dtype and device."""
    key = ("grid", lmax, n_beta, n_alpha, normalization)
    return _to(key, _grid_tables(lmax, n_beta, n_alpha, normalization), x.dtype, x.device)


def _half_tensors(lmax: int, n: int, normalization: str, x: Tensor) -> tuple[Tensor, ...]:
    """``(lam, phase, w, cols)`` of :func:`_half_tables` and :func:`_half_project_tables` in ``x``'s dtype."""
    out = _to(("half", lmax, n, normalization), _half_tables(lmax, n, normalization), x.dtype, x.device)
    key = ("half_project", lmax, n, normalization)
    return out + _to(key, _half_project_tables(lmax, n, normalization), x.dtype, x.device)


def to_grid(
    x: Tensor, n_beta: int | None = None, n_alpha: int | None = None, *, normalization: str = "component"
) -> Tensor:
    """Values ``[..., n_beta, n_alpha]`` on the grid of :func:`s2_grid` of the signal ``f = Σ_lm x_lm Y_lm``.

    ``x [..., (L+1)^2]``; the default grid is the one of ``quadrature_size(2L)`` (exact round trip).
    """
    _check_normalization(normalization)
    lmax = _lmax_of(x.shape[-1])
    nb0, na0 = quadrature_size(2 * lmax)
    n_beta = check_positive_int(nb0 if n_beta is None else n_beta, "n_beta")
    n_alpha = check_positive_int(na0 if n_alpha is None else n_alpha, "n_alpha")
    lam, phi, _ = _grid_tensors(lmax, n_beta, n_alpha, normalization, x)
    f = _grid_values(_flat(_by_m(x, lmax)), lam, phi)
    return f.view(*x.shape[:-1], n_beta, n_alpha)


def from_grid(f: Tensor, lmax: int, *, normalization: str = "component") -> Tensor:
    """Coefficients ``[..., (lmax+1)^2]`` of the projection of grid values ``f [..., n_beta, n_alpha]`` on degrees
    ``<= lmax``: ``x_lm = ∫ f Y_lm dΩ / ∫ Y_lm² dΩ`` by the quadrature of :func:`s2_grid`.

    Exact when ``f`` is the restriction of a polynomial of degree ``D`` with ``D + lmax < min(2 n_beta, n_alpha)``.
    """
    check_degree(lmax, "lmax")
    _check_normalization(normalization)
    if f.ndim < 2:
        raise ValueError(f"f must have shape [..., n_beta, n_alpha], got {tuple(f.shape)}")
    n_beta, n_alpha = f.shape[-2:]
    _, phi, lam_back = _grid_tensors(lmax, n_beta, n_alpha, normalization, f)
    c = _grid_project(f.reshape(-1, n_beta, n_alpha), phi, lam_back)
    return _from_m(c, lmax).view(*f.shape[:-2], -1)


# ----------------------------------------------------------------------------------------------- 2D Fourier


@functools.cache
def _lambda_fourier(lmax: int) -> np.ndarray:
    """``Λ̂ [L+1 (l), L+1 (k), 2L+1 (u)]`` complex: ``Λ_lk(θ) = Σ_u Λ̂[l, k, L+u] e^{iuθ}`` (degree-``l`` series).

    From ``2L+2`` equispaced samples of the trigonometric polynomial (an FFT, exact up to rounding in float64).
    """
    n = 2 * lmax + 2
    theta = 2 * np.pi * np.arange(n) / n
    lam = _legendre_lambda(lmax, np.cos(theta), np.sin(theta))  # [n, l, k]
    coef = np.fft.fft(lam, axis=0) / n  # index u mod n
    u = np.arange(-lmax, lmax + 1)
    out = np.transpose(coef[u % n], (1, 2, 0))  # [l, k, u]
    # parity: degree-l series has only u ≡ l (mod 2), cosine (real) for even k, sine (imaginary) for odd k
    l = np.arange(lmax + 1)[:, None, None]
    k = np.arange(lmax + 1)[None, :, None]
    keep = ((u[None, None, :] - l) % 2 == 0) & (np.abs(u)[None, None, :] <= l) & (k <= l)
    out = np.where(keep, np.where(k % 2 == 0, out.real, 1j * out.imag), 0)
    return out


@functools.cache
def _to_fourier_tables(lmax: int, normalization: str) -> tuple[np.ndarray, np.ndarray]:
    lf = _lambda_fourier(lmax) * _degree_scale(lmax, normalization)[:, None, None]  # [l, k, u]
    k = np.abs(np.arange(-lmax, lmax + 1))
    lam = np.transpose(lf[:, k, :], (1, 0, 2))  # [m, l, u]
    # Φ_m(φ) = Σ_v Φ̂[m, v] e^{ivφ}
    phi = np.zeros((2 * lmax + 1, 2 * lmax + 1), dtype=np.complex128)
    phi[lmax, lmax] = 1
    for m in range(1, lmax + 1):
        phi[lmax + m, lmax + m] = phi[lmax + m, lmax - m] = 0.5  # cos(mφ)
        phi[lmax - m, lmax + m] = -0.5j  # sin(mφ) = (e^{imφ} - e^{-imφ}) / 2i
        phi[lmax - m, lmax - m] = 0.5j
    return lam, phi


def sh_to_fourier(x: Tensor, *, normalization: str = "component") -> Tensor:
    """2D Fourier coefficients ``F [..., 2L+1 (u), 2L+1 (v)]`` (complex) of ``f = Σ_lm x_lm Y_lm``.

    ``f(β, α) = Σ_{u,v} F[..., L+u, L+v] e^{i(uβ + vα)}`` for ``|u|, |v| <= L`` on the sphere (and the torus
    extension for ``β ∈ (π, 2π)``). Built from per-``m`` dense blocks ``[L+1, 2L+1]`` (``O(L^3)``).
    """
    _check_normalization(normalization)
    lmax = _lmax_of(x.shape[-1])
    lam, phi = _to(("to_fourier", lmax, normalization), _to_fourier_tables(lmax, normalization), x.dtype, x.device)
    a = _by_m(x, lmax).to(lam.dtype)  # [..., m, l]
    au = torch.einsum("...ml,mlu->...mu", a, lam)
    return torch.einsum("...mu,mv->...uv", au, phi)


def _theta_integrals(n: np.ndarray) -> np.ndarray:
    """``∫_0^π e^{inθ} sin θ dθ`` for integer ``n``."""
    n = np.asarray(n)
    even = 2 / (1 - n.astype(np.float64) ** 2 + (n % 2 == 1))  # guarded: only used where n is even
    return np.where(n % 2 == 0, even, np.where(n == 1, 0.5j * np.pi, np.where(n == -1, -0.5j * np.pi, 0))).astype(
        np.complex128
    )


@functools.cache
def _from_fourier_tables(lmax: int, U: int, V: int, normalization: str) -> tuple[np.ndarray, np.ndarray]:
    """``psi [2L+1 (m), 2U+1 (u), L+1 (l)]`` and ``phi [2V'+1 (v), 2L+1 (m)]``, ``V' = min(V, L)``, such that
    ``x_lm = Re Σ_{u,v} F[u, v] phi[v, m] psi[m, u, l]`` (the projection ``∫ f Y_lm / ∫ Y_lm²``)."""
    lf = _lambda_fourier(lmax)  # [l, k, u'] unscaled ("component")
    u = np.arange(-U, U + 1)
    up = np.arange(-lmax, lmax + 1)
    integ = _theta_integrals(u[:, None] + up[None, :])  # [u, u']
    psi_lk = np.einsum("lkw,uw->lku", lf, integ)  # ∫ e^{iuθ} Λ_lk sinθ dθ, [l, k, u]
    scale = _degree_scale(lmax, normalization)
    norm2 = 4 * np.pi * scale**2
    psi_lk = psi_lk * (scale / norm2)[:, None, None]
    k = np.abs(np.arange(-lmax, lmax + 1))
    psi = np.transpose(psi_lk[:, k, :], (1, 2, 0))  # [m, u, l]
    Vp = min(V, lmax)
    phi = np.zeros((2 * Vp + 1, 2 * lmax + 1), dtype=np.complex128)
    # ∫_0^{2π} e^{ivφ} Φ_m(φ) dφ
    phi[Vp, lmax] = 2 * np.pi
    for m in range(1, Vp + 1):
        phi[Vp + m, lmax + m] = phi[Vp - m, lmax + m] = np.pi  # cos
        phi[Vp + m, lmax - m] = 1j * np.pi  # sin: iπ(δ_{v,m} - δ_{v,-m})
        phi[Vp - m, lmax - m] = -1j * np.pi
    return psi, phi


def fourier_to_sh(F: Tensor, lmax: int, *, normalization: str = "component") -> Tensor:
    """Real coefficients ``[..., (lmax+1)^2]`` of the projection on degrees ``<= lmax`` of the torus series
    ``F [..., 2U+1, 2V+1]`` restricted to the sphere: ``x_lm = ∫_{S²} f Y_lm dΩ / ∫ Y_lm² dΩ``, exact for any
    ``U, V`` (it inverts :func:`sh_to_fourier`, and projects products of series).
    """
    check_degree(lmax, "lmax")
    _check_normalization(normalization)
    if F.ndim < 2 or F.shape[-2] % 2 == 0 or F.shape[-1] % 2 == 0:
        raise ValueError(f"F must have shape [..., 2U+1, 2V+1], got {tuple(F.shape)}")
    U, V = F.shape[-2] // 2, F.shape[-1] // 2
    real = torch.float64 if F.dtype == torch.complex128 else torch.float32
    psi, phi = _to(
        ("from_fourier", lmax, U, V, normalization), _from_fourier_tables(lmax, U, V, normalization), real, F.device
    )
    Vp = min(V, lmax)
    Fv = F[..., V - Vp : V + Vp + 1] if Vp < V else F
    b = torch.einsum("...uv,vm->...um", Fv, phi)
    c = torch.einsum("...um,mul->...ml", b, psi).real
    return _from_m(c, lmax)


def fourier_eval(F: Tensor, beta: Tensor, alpha: Tensor) -> Tensor:
    """Evaluate the series ``F [..., 2U+1, 2V+1]`` at angles ``beta, alpha [P]``: ``[..., P]`` (real part)."""
    U, V = F.shape[-2] // 2, F.shape[-1] // 2
    u = torch.arange(-U, U + 1, device=F.device, dtype=beta.dtype)
    v = torch.arange(-V, V + 1, device=F.device, dtype=alpha.dtype)
    eu = torch.polar(torch.ones_like(beta[:, None] * u), beta[:, None] * u)  # [P, u]
    ev = torch.polar(torch.ones_like(alpha[:, None] * v), alpha[:, None] * v)  # [P, v]
    return torch.einsum("...uv,pu,pv->...p", F, eu.to(F.dtype), ev.to(F.dtype)).real


# ------------------------------------------------------------------ half spectra on an n x n torus grid (real FFTs)


def _wrapped(n: int) -> np.ndarray:
    """Frequency ``u`` of each row ``0..n-1`` of an FFT of size ``n`` (``n//2`` counted as positive)."""
    i = np.arange(n)
    return np.where(i <= n // 2, i, i - n)


@functools.cache
def _half_tables(lmax: int, n: int, normalization: str) -> tuple[np.ndarray, np.ndarray]:
    """Tables of :func:`sh_to_half_spectrum`: ``lam [2L+1 (m), L+1 (l), n (u)]`` (real) and
    ``phase [2L+1 (m), n//2+1 (v), 2]`` (real and imaginary parts)."""
    if n < 2 * lmax + 1:
        raise ValueError(f"the torus grid needs n >= 2 lmax + 1 = {2 * lmax + 1}, got {n}")
    lam_c, _ = _to_fourier_tables(lmax, normalization)  # [m, l, u = -L..L], real (even k) or imaginary (odd k)
    k = np.abs(np.arange(-lmax, lmax + 1))
    odd = (k % 2 == 1)[:, None, None]
    lam_r = np.where(odd, lam_c.imag, lam_c.real)  # Λ̂ = phase_k · lam_r, phase_k = i for odd k, 1 for even k
    lam = np.zeros((2 * lmax + 1, lmax + 1, n))
    lam[:, :, np.arange(-lmax, lmax + 1) % n] = lam_r
    # F[u, v >= 0] = Σ_m A[m, u] Q[m, v], Q = phase_k · Φ̂[m, v]: Φ_0 = 1, cos kφ -> 1/2 at v = k, sin kφ -> -i/2
    q = np.zeros((2 * lmax + 1, n // 2 + 1), dtype=np.complex128)
    q[lmax, 0] = 1
    for m in range(1, lmax + 1):
        ph = 1j if m % 2 else 1.0
        q[lmax + m, m] = 0.5 * ph
        q[lmax - m, m] = -0.5j * ph
    return lam, np.stack([q.real, q.imag], -1)


def sh_to_half_spectrum(x: Tensor, n: int, *, normalization: str = "component") -> Tensor:
    """The 2D Fourier coefficients of :func:`sh_to_fourier` in the layout of ``torch.fft.rfft2`` on an ``n x n`` grid.

    ``[..., n (u mod n), n//2+1 (v >= 0)]`` complex, so that ``torch.fft.irfft2(h, s=(n, n), norm="forward")`` is
    the signal on the uniform torus grid ``(β, α) = (2πa/n, 2πb/n)``. Real arithmetic, ``O(L^2 n)`` per signal.
    """
    _check_normalization(normalization)
    lmax = _lmax_of(x.shape[-1])
    lam, phase = _to(("half", lmax, n, normalization), _half_tables(lmax, n, normalization), x.dtype, x.device)
    return _half_values(_flat(_by_m(x, lmax)), lam, phase).view(*x.shape[:-1], n, n // 2 + 1)


def _half_values(a: Tensor, lam: Tensor, phase: Tensor) -> Tensor:
    """``a [R, m, l]`` -> half spectra ``[R, n, n//2+1]`` (tables of :func:`_half_tables`)."""
    g = torch.bmm(a.transpose(0, 1), lam)  # [m, R, u]
    h = torch.mm(g.reshape(g.shape[0], -1).t(), phase.reshape(phase.shape[0], -1))  # [R * u, v * 2]
    return torch.view_as_complex(h.view(a.shape[0], lam.shape[-1], phase.shape[1], 2))


def _half_project(h: Tensor, w: Tensor, cols: Tensor) -> Tensor:
    """Half spectra ``h [R, n, n//2+1]`` -> coefficients ``[R, m, l]`` (tables of :func:`_half_project_tables`)."""
    hm = torch.view_as_real(h.index_select(-1, cols))  # [R, u, m, 2]
    t = hm.permute(2, 0, 1, 3).reshape(w.shape[0], h.shape[0], -1)  # [m, R, u * 2]
    return torch.bmm(t, w.reshape(w.shape[0], -1, w.shape[-1])).transpose(0, 1)


@functools.cache
def _half_project_tables(lmax: int, n: int, normalization: str) -> tuple[np.ndarray, np.ndarray]:
    """``w [2L+1 (m), n (u), 2, L+1 (l)]`` and the column ``|m|`` read for each ``m``: for a real signal with
    half spectrum ``h``, ``x_lm = Σ_u Re(h[u, |m|] W_m[u, l])`` folds in the columns ``v = -|m|`` by symmetry."""
    u = _wrapped(n)
    U = (n - 1) // 2
    psi, phi = _from_fourier_tables(lmax, U, lmax, normalization)  # psi [m, u = -U..U, l], phi [v = -L..L, m]
    W = np.zeros((2 * lmax + 1, n, lmax + 1), dtype=np.complex128)
    rows = np.abs(u) <= U
    for m in range(-lmax, lmax + 1):
        k = abs(m)
        p = psi[lmax + m]  # [u, l]
        a = phi[lmax + k, lmax + m] * p[u[rows] + U]
        if k == 0:
            W[lmax + m, rows] = a
        else:  # + conj(phi[-k, m] psi[m, -u, l]) from the column v = -k
            W[lmax + m, rows] = a + np.conj(phi[lmax - k, lmax + m] * p[-u[rows] + U])
    w = np.stack([W.real, -W.imag], 2)  # Re(h W) = h_re W_re - h_im W_im
    return w, np.abs(np.arange(-lmax, lmax + 1))


def half_spectrum_to_sh(h: Tensor, lmax: int, *, normalization: str = "component") -> Tensor:
    """Inverse of :func:`sh_to_half_spectrum` and projection: ``h [..., n, n//2+1]`` (the ``rfft2`` with
    ``norm="forward"`` of a real signal on the ``n x n`` torus grid) ``-> [..., (lmax+1)^2]``, the coefficients
    ``∫_{S²} f Y_lm / ∫ Y_lm²`` of its restriction to the sphere; exact when its series has ``|u|, |v| < n/2``."""
    check_degree(lmax, "lmax")
    _check_normalization(normalization)
    n = h.shape[-2]
    if h.shape[-1] != n // 2 + 1 or lmax > n // 2:
        raise ValueError(f"h must have shape [..., n, n//2+1] with n > 2 lmax, got {tuple(h.shape)}")
    real = torch.float64 if h.dtype == torch.complex128 else torch.float32
    w, cols = _to(
        ("half_project", lmax, n, normalization), _half_project_tables(lmax, n, normalization), real, h.device
    )
    c = _half_project(h.reshape(-1, n, n // 2 + 1), w, cols)
    return _from_m(c, lmax).view(*h.shape[:-2], -1)
