"""The isotropic Gaussian on SO(3), IGSO(3)(σ): the heat kernel of Brownian motion on SO(3) at time σ².

Its density with respect to the normalized Haar measure depends on the rotation angle ω ∈ [0, π] alone
(Nikolayev & Savyolov 1970; Leach et al. 2022; Yim et al.'s FrameDiff, 2023):

    f(ω; σ) = Σ_l (2l + 1) exp(-l(l + 1) σ²/2) sin((l + ½) ω) / sin(ω/2),

normalized so that ``E[tr R] = 3 exp(-σ²)``; for small σ, ``R ≈ Exp(σ ε)`` with ``ε ~ N(0, I₃)``, so the angle
tends to a χ with 3 degrees of freedom of scale σ, and for large σ the density tends to 1 (Haar).

The series needs about 9/σ terms. Below ``SWITCH_SIGMA`` its Poisson-summed (wrapped Gaussian) form is used
instead, exact as well and fast for small σ:

    f(ω; σ) = e^(σ²/8) √(2π) σ⁻³ Σ_k (-1)^k (ω - 2πk) exp(-(ω - 2πk)²/(2σ²)) / sin(ω/2),

whose k = 0 term is the Gaussian-like small-σ limit; the images k ≠ 0 are summed in pairs ±k, which keeps it
smooth at ω = 0 and free of overflow. Both forms are evaluated on their own side of the switch only (the
"double where"), so values and gradients are finite at ω = 0, ω = π, tiny σ and large σ.

Sampling: the angle by inverse CDF, from a table built once per dtype and device over a log-spaced grid of σ;
the uniform level is drawn as ``u = F_χ₃(|ε|)`` for ``ε ~ N(0, I₃)``, so the table is indexed by ``|ε|`` (where the
quantile function is smooth) and the axis is ``ε / |ε|``. The rotation vector is ``ε σ ρ(|ε|; σ)`` with ``ρ → 1``
as ``σ → 0``. The table's rows are exact inverses of the CDF (Gauss-Legendre quadrature and Newton steps); the
cubic interpolation between rows keeps the CDF of the drawn angle within 3e-6 of the exact one (tested against the
closed-form CDF of the series).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.so3 import SO3, sum_of_squares
from liequiv.validation import check_tensor, checking_values

__all__ = [
    "SWITCH_SIGMA",
    "igso3_angle_density",
    "igso3_density",
    "igso3_log_density",
    "igso3_score",
    "sample_igso3",
]

SWITCH_SIGMA = 1.2
"""σ below which the wrapped Gaussian form is used, at and above which the character series."""

_SERIES_TERMS = 10  # l = 0 .. 10: the first neglected term, 23² exp(-132 σ²/2), is below 1e-18 f(π) at σ = 1.2
_WRAPPED_PAIRS = 2  # images ±1, ±2: the first neglected pair is below 1e-18 of the kept sum at σ < 1.2
_ONE_PAIR_BELOW = 0.95  # σ below which the pair ±2 is below 1e-18 of the kept sum (exp(-4π²/σ²) at ω = π)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_Form = Callable[[Tensor, "float | Tensor"], Tensor]


# ------------------------------------------------------------------ arguments


def _check_sigma(sigma: float | Tensor, like: Tensor) -> float | Tensor:
    """σ > 0 and finite, a Python number or a tensor broadcastable with ``like`` (cast to its dtype)."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, Tensor)):
        raise TypeError(f"sigma must be a positive float or a tensor, got {type(sigma).__name__}")
    if not isinstance(sigma, Tensor):
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be positive and finite, got {sigma}")
        return float(sigma)
    sigma = check_tensor(sigma, "sigma", (), finite=False).to(like.dtype)
    if checking_values() and not bool(((sigma > 0) & torch.isfinite(sigma)).all()):
        raise ValueError("sigma must be positive and finite everywhere")
    return sigma


def _rotation_angle(rotvec: Tensor) -> Tensor:
    """|τ| ``[...]`` of rotation vectors ``[..., 3]``, with the gradient 0 (not NaN) at τ = 0 (a double where)."""
    angle_sq = sum_of_squares(rotvec.unbind(-1))
    positive = angle_sq > 0
    return torch.where(positive, torch.where(positive, angle_sq, 1.0).sqrt(), 0.0)


def _check_angle(angle: Tensor | SO3) -> Tensor:
    """Angles ``[...]`` from angles or from an ``SO3``."""
    if isinstance(angle, SO3):
        return _rotation_angle(angle.log())
    return check_tensor(angle, "angle", ())


# ------------------------------------------------------------------ the two forms of f


def _series(angle: Tensor, sigma: float | Tensor, derivative: bool = False) -> Tensor:
    """f (or df/d cos ω) by the character series: χ_(l+1) = 2 cos ω χ_l - χ_(l-1), χ_0 = 1, χ_(-1) = -1."""
    c = torch.cos(angle)
    decay = torch.exp(torch.as_tensor(-sigma * sigma, dtype=angle.dtype, device=angle.device))  # e^(-σ²)
    chi_prev, chi = -torch.ones_like(c), torch.ones_like(c)
    dchi_prev, dchi = torch.zeros_like(c), torch.zeros_like(c)
    power = weight = torch.ones_like(decay)
    total = torch.zeros_like(c) if derivative else torch.ones_like(c)
    for l in range(1, _SERIES_TERMS + 1):
        chi, chi_prev, dchi, dchi_prev = 2 * c * chi - chi_prev, chi, 2 * chi + 2 * c * dchi - dchi_prev, dchi
        power = power * decay
        weight = weight * power  # exp(-l(l+1)σ²/2)
        total = total + (2 * l + 1) * weight * (dchi if derivative else chi)
    return total


def _wrapped_images(angle: Tensor, sigma: float | Tensor, derivative: bool = False) -> Tensor:
    """B(ω) = 1 + Σ_k (-1)^k g_k, or B'(ω)/ω, with the pair of images ±k

    g_k = e^(-c) (2 cosh a - 4 c sinh(a)/a),  a = 2πkω/σ², c = 2π²k²/σ².

    The exponents a - c = -2πk(πk - ω)/σ² ≤ 0 and -a - c are formed directly (no overflow, no cancellation).
    """
    inv_var = 1 / (sigma * sigma)
    total = torch.zeros_like(angle) if derivative else torch.ones_like(angle)
    largest = sigma if not isinstance(sigma, Tensor) else float(sigma.detach().max()) if checking_values() else math.inf
    for k in range(1, (1 if largest < _ONE_PAIR_BELOW else _WRAPPED_PAIRS) + 1):
        slope = 2 * math.pi * k * inv_var  # a/ω
        c, a = math.pi * k * slope, slope * angle
        near, far = -slope * (math.pi * k - angle), -slope * (math.pi * k + angle)
        sinhc_scaled = torch.exp(near + _log_sinhc_minus(a))  # e^(-c) sinh(a)/a
        if derivative:  # (1/ω) dg/dω = e^(-c) (a/ω)² (2 sinh(a)/a - 4 c (cosh a - sinh(a)/a)/a²)
            term = slope * slope * (2 * sinhc_scaled - 4 * c * _cosh_minus_sinhc_scaled(a, near, far))
        else:
            term = torch.exp(near) + torch.exp(far) - 4 * c * sinhc_scaled
        total = total + (-1) ** k * term
    return total


def _log_sinhc_minus(a: Tensor) -> Tensor:
    """log(sinh(a)/a) - a for a ≥ 0: by ``series.log_sinhc`` below a = 1, else log((1 - e^(-2a))/(2a))."""
    a_sq_series, a_sq_closed, closed = series.split(a * a, 1.0)
    a_closed = a_sq_closed.sqrt()
    small = series.log_sinhc(a_sq_series) - a
    return small.lerp(torch.log(-torch.expm1(-2 * a_closed) / (2 * a_closed)), closed)


_COSH_MINUS_SINHC = [(2 * n + 2) / math.factorial(2 * n + 3) for n in range(10)]  # Σ a^2n (2n+2)/(2n+3)!


def _cosh_minus_sinhc_scaled(a: Tensor, near: Tensor, far: Tensor) -> Tensor:
    """e^(-c) (cosh a - sinh(a)/a) / a² with near = a - c, far = -a - c: its series below a = 1 (truncation
    < 1e-19), else (e^near (1 - 1/a) + e^far (1 + 1/a)) / (2a²)."""
    a_series, a_sq_closed, closed = series.split(a * a, 1.0)
    a_closed = a_sq_closed.sqrt()
    closed_form = (torch.exp(near) * (1 - 1 / a_closed) + torch.exp(far) * (1 + 1 / a_closed)) / (2 * a_sq_closed)
    return (series.horner(a_series, _COSH_MINUS_SINHC) * torch.exp((near + far) / 2)).lerp(closed_form, closed)


def _wrapped_log_density(angle: Tensor, sigma: float | Tensor) -> Tensor:
    """log f by the wrapped Gaussian form: log(e^(σ²/8) √(2π) σ⁻³) - ω²/2σ² + log(ω / sin(ω/2)) + log B(ω)."""
    sigma_t = torch.as_tensor(sigma, dtype=angle.dtype, device=angle.device)
    angle_sq = angle * angle
    return (sigma_t * sigma_t / 8 + _LOG_SQRT_2PI - 3 * torch.log(sigma_t) - angle_sq / (2 * sigma_t * sigma_t)
            + math.log(2) - torch.log(series.sinc(angle_sq / 4)) + torch.log(_wrapped_images(angle, sigma)))


def _wrapped_score_factor(angle: Tensor, sigma: float | Tensor) -> Tensor:
    """(1/ω) d log f/dω = -1/σ² + (1 - (ω/2) cot(ω/2))/ω² + B'(ω)/(ω B(ω))."""
    return (-1 / (sigma * sigma) + series.inverse_jacobian_coefficient(angle * angle)
            + _wrapped_images(angle, sigma, derivative=True) / _wrapped_images(angle, sigma))


def _series_score_factor(angle: Tensor, sigma: float | Tensor) -> Tensor:
    """(1/ω) d log f/dω = -(df/d cos ω) / f · sin(ω)/ω."""
    return -_series(angle, sigma, derivative=True) / _series(angle, sigma) * series.sinc(angle * angle)


def _by_branch(wrapped: _Form, character: _Form, angle: Tensor, sigma: float | Tensor) -> Tensor:
    """``wrapped(angle, σ)`` where σ < SWITCH_SIGMA, else ``character(angle, σ)``; each fed only its own σ."""
    if not isinstance(sigma, Tensor):
        return wrapped(angle, sigma) if sigma < SWITCH_SIGMA else character(angle, sigma)
    small = sigma < SWITCH_SIGMA
    if checking_values():  # outside torch.compile: skip the branch that no element takes
        if bool(small.all()):
            return wrapped(angle, sigma)
        if not bool(small.any()):
            return character(angle, sigma)
    sigma_small = torch.where(small, sigma, SWITCH_SIGMA / 2)
    sigma_large = torch.where(small, SWITCH_SIGMA, sigma)
    return torch.where(small, wrapped(angle, sigma_small), character(angle, sigma_large))


# ------------------------------------------------------------------ public functions


def igso3_log_density(angle: Tensor | SO3, sigma: float | Tensor) -> Tensor:
    """log f(ω; σ) ``[...]``, the log-density of IGSO(3)(σ) w.r.t. the normalized Haar measure.

    ``angle``: rotation angles ω ``[...]`` in [0, π], or an ``SO3`` (its angle is taken); ``sigma``: σ > 0, a float
    or a tensor broadcastable with the angles.
    """
    angle = _check_angle(angle)
    sigma = _check_sigma(sigma, angle)
    return _by_branch(_wrapped_log_density, lambda w, s: torch.log(_series(w, s)), angle, sigma)


def igso3_density(angle: Tensor | SO3, sigma: float | Tensor) -> Tensor:
    """f(ω; σ) ``[...]``, the density of IGSO(3)(σ) w.r.t. the normalized Haar measure (arguments as
    ``igso3_log_density``); it integrates to 1 over SO(3)."""
    return torch.exp(igso3_log_density(angle, sigma))


def igso3_angle_density(angle: Tensor, sigma: float | Tensor) -> Tensor:
    """The density of the angle ω of an IGSO(3)(σ) rotation on [0, π], f(ω; σ) (1 - cos ω)/π ``[...]``."""
    angle = check_tensor(angle, "angle", ())
    return igso3_density(angle, sigma) * torch.sin(angle / 2).square() * (2 / math.pi)  # 1 - cos ω = 2 sin²(ω/2)


def igso3_score(rotvec: Tensor, sigma: float | Tensor) -> Tensor:
    """The score ∇ log f at R = Exp(τ), ``[..., 3]`` for rotation vectors τ ``[..., 3]``.

    It is the gradient on the right-plus convention: d/dε log f(R · Exp(ε v)) at ε = 0 is ⟨score, v⟩. Since f
    depends on the angle alone, the score is (d log f/dω) τ/|τ|, along the axis, and points towards the identity;
    Ad_R fixes the axis, so the left (global-frame) gradient is the same vector. For the density of
    ``R₀ · IGSO3(σ)`` at R, pass τ = Log(R₀⁻¹ R). Finite at τ = 0 (where it is 0) and at |τ| = π.
    """
    rotvec = check_tensor(rotvec, "rotvec", (3,))
    sigma = _check_sigma(sigma, rotvec)
    factor = _by_branch(_wrapped_score_factor, _series_score_factor, _rotation_angle(rotvec), sigma)
    return factor[..., None] * rotvec


# ------------------------------------------------------------------ sampling


_TABLE_LOG_SIGMA = (math.log(0.01), math.log(6.0), 257)  # log σ from, to, nodes; below and above: limits
_TABLE_Z = (10.0, 401)  # |ε| from 0 to, nodes; P(|ε| > 10) < 2e-21
_BUILD_CELLS = 128  # angle cells per σ, each integrated by 8-point Gauss-Legendre
_BUILD_NEWTON = 3  # Newton steps inside a cell, integrating by 4-point Gauss-Legendre


def _chi3_cdf_sf(z: Tensor) -> tuple[Tensor, Tensor]:
    """CDF and survival function of χ₃ at z ``[...]`` (each accurate where it is small)."""
    gauss = math.sqrt(2 / math.pi) * z * torch.exp(-z * z / 2)
    return torch.erf(z / math.sqrt(2)) - gauss, torch.erfc(z / math.sqrt(2)) + gauss


def _gauss_legendre(lo: Tensor, hi: Tensor, sigma: Tensor, points: int = 8) -> Tensor:
    """∫ of the angle density from lo to hi ``[..., n]`` (σ ``[..., 1]``) by Gauss-Legendre."""
    nodes, weights = (torch.as_tensor(v, dtype=lo.dtype) for v in np.polynomial.legendre.leggauss(points))
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    angles = mid[..., None] + half[..., None] * nodes
    return half * (igso3_angle_density(angles, sigma[..., None]) * weights).sum(-1)


@functools.cache
def _quantile_table() -> Tensor:
    """ρ(z; σ) = ω / (σ z) ``[n_σ, n_z]`` in float64: the IGSO(3)(σ) angle ω whose CDF equals F_χ₃(z)."""
    log_lo, log_hi, n_sigma = _TABLE_LOG_SIGMA
    z_max, n_z = _TABLE_Z
    sigma = torch.linspace(log_lo, log_hi, n_sigma, dtype=torch.float64).exp()[:, None]  # [S, 1]
    small = sigma[:, 0] < SWITCH_SIGMA  # the rows of each form, built apart
    return torch.cat([_quantile_rows(sigma[small], n_z, z_max), _quantile_rows(sigma[~small], n_z, z_max)])


def _quantile_rows(sigma: Tensor, n_z: int, z_max: float) -> Tensor:
    """Rows of the table for σ ``[S, 1]``."""
    n_sigma = sigma.shape[0]
    top = (12 * sigma).clamp(max=math.pi)  # above 12σ the χ₃-like tail holds < 1e-30
    edges = top * torch.linspace(0, 1, _BUILD_CELLS + 1, dtype=torch.float64)  # [S, M + 1]
    cells = _gauss_legendre(edges[:, :-1], edges[:, 1:], sigma)  # [S, M]
    cells = cells / cells.sum(-1, keepdim=True)
    zeros = torch.zeros_like(sigma)
    cdf = torch.cat([zeros, cells.cumsum(-1)], -1)  # [S, M + 1], F at the edges
    sf = torch.cat([cells.flip(-1).cumsum(-1).flip(-1), zeros], -1)  # survival at the edges, accurate in the tail
    z = torch.linspace(0, z_max, n_z, dtype=torch.float64)[1:].expand(n_sigma, -1)  # [S, Z - 1]
    u, s = _chi3_cdf_sf(z)
    lower = u <= 0.5
    # the cell [edge m, edge m + 1] holding the target, and the mass to accumulate inside it from edge m
    m_lower = torch.searchsorted(cdf, u.contiguous()) - 1
    m_upper = torch.searchsorted(-sf, (-s).contiguous()) - 1
    m = torch.where(lower, m_lower, m_upper).clamp(0, _BUILD_CELLS - 1)
    target = torch.where(lower, u - cdf.gather(-1, m), sf.gather(-1, m) - s)
    lo, hi = edges.gather(-1, m), edges.gather(-1, m + 1)
    fraction = (target / cells.gather(-1, m)).clamp(0, 1)
    angle = lo + (hi - lo) * torch.where(m == 0, fraction ** (1 / 3), fraction)  # F ∝ ω³ in the first cell
    for _ in range(_BUILD_NEWTON):
        residual = _gauss_legendre(lo, angle, sigma, points=4) - target
        angle = (angle - residual / igso3_angle_density(angle, sigma)).clamp(lo, hi)
    rho_zero = (2 * math.sqrt(2 * math.pi) / igso3_density(zeros, sigma)) ** (1 / 3) / sigma  # ω ≈ σ ρ z as z → 0
    return torch.cat([rho_zero, angle / (sigma * z)], -1)


@functools.cache
def _cubic_coefficients(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The table as cubics in z, ``[n_σ, n_z - 1, 4]``: on cell k, ρ = Σ_m c_m t^m with t = z/h - k ∈ [0, 1], the
    Lagrange cubic through the 4 nearest nodes (k - 1 .. k + 2, shifted inwards at the ends)."""
    table = _quantile_table()
    n = table.shape[-1]
    start = (torch.arange(n - 1) - 1).clamp(0, n - 4)  # first stencil node of each cell
    offsets = torch.arange(4, dtype=torch.float64)
    # monomial coefficients from node values: the inverse Vandermonde matrix of the nodes relative to the cell
    nodes = start[:, None] + offsets - torch.arange(n - 1)[:, None]  # [n - 1, 4]
    to_monomials = torch.linalg.inv(nodes[..., None] ** offsets)  # [n - 1, 4, 4]
    values = table[:, start[:, None] + offsets.long()]  # [n_σ, n - 1, 4]
    coefficients = (to_monomials @ values[..., None])[..., 0]
    return coefficients.to(dtype=dtype, device=device)


def _cubic_stencil(position: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Indices and weights ``[..., 4]`` of 4-point Lagrange interpolation at positions ``[...]`` in [0, n - 1]."""
    k = position.floor().clamp(1, n - 3)
    t = position - k
    index = k.long()[..., None] + torch.arange(-1, 3, device=position.device)
    tm1, tm2, tp1 = t - 1, t - 2, t + 1
    weights = torch.stack([-t * tm1 * tm2 / 6, tp1 * tm1 * tm2 / 2, -tp1 * t * tm2 / 2, tp1 * t * tm1 / 6], -1)
    return index, weights


def _rho(z: Tensor, sigma: float | Tensor) -> Tensor:
    """ρ(z; σ) ``[...]``: cubic in z within a cell of the table and cubic (Lagrange) in log σ across its rows;
    outside the σ range, the limits ρ = 1 + O(σ²) (scaled from the first row) and ω = σ ρ z fixed (Haar, from the
    last row)."""
    coefficients = _cubic_coefficients(z.dtype, z.device)
    log_lo, log_hi, n_sigma = _TABLE_LOG_SIGMA
    z_max, n_z = _TABLE_Z
    position = z * ((n_z - 1) / z_max)
    cell = position.floor().clamp_(max=n_z - 2)
    t = position - cell
    cell = cell.long()
    if isinstance(sigma, Tensor):
        clamped = sigma.clamp(math.exp(log_lo), math.exp(log_hi))
        row, row_weights = _cubic_stencil((clamped.log() - log_lo) / (log_hi - log_lo) * (n_sigma - 1), n_sigma)
        flat = row * (n_z - 1) + cell[..., None]
        c = coefficients.flatten(0, 1).index_select(0, flat.flatten()).view(*flat.shape, 4)  # [..., 4 rows, 4]
        rho = (((c[..., 3] * t[..., None] + c[..., 2]) * t[..., None] + c[..., 1]) * t[..., None] + c[..., 0])
        rho = (rho * row_weights).sum(-1)
        small = (sigma / math.exp(log_lo)).square()
        return torch.where(sigma < clamped, 1 + (rho - 1) * small, rho * clamped / sigma)
    clamped = min(max(sigma, math.exp(log_lo)), math.exp(log_hi))
    position = torch.tensor((math.log(clamped) - log_lo) / (log_hi - log_lo) * (n_sigma - 1), dtype=torch.float64)
    row, row_weights = _cubic_stencil(position, n_sigma)  # one row of coefficients, interpolated once
    c = (coefficients[row.to(z.device)] * row_weights.to(z)[:, None, None]).sum(0)[cell]  # [..., 4]
    rho = ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]
    if sigma < clamped:
        return 1 + (rho - 1) * (sigma / clamped) ** 2
    return rho * (clamped / sigma)


def sample_igso3(sigma: float | Tensor, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Rotation vectors ``[*shape, 3]`` of IGSO(3)(σ) rotations (``SO3.exp`` of them is the rotation).

    ``shape`` is ``batch_shape`` broadcast with σ's shape; a tensor σ sets the dtype and device. The vector is
    ε σ ρ(|ε|; σ) for ε ~ N(0, I₃): its axis ε/|ε| is uniform and its angle is the IGSO(3) quantile of the
    uniform level F_χ₃(|ε|), interpolated from a table built once per dtype and device (see the module).
    """
    if isinstance(batch_shape, int) or not all(isinstance(n, int) and n >= 0 for n in batch_shape):
        raise TypeError(f"batch_shape must be a sequence of sizes (ints ≥ 0), got {batch_shape!r}")
    shape = tuple(batch_shape)
    if isinstance(sigma, Tensor):
        dtype, device = sigma.dtype, sigma.device
        try:
            shape = tuple(torch.broadcast_shapes(shape, sigma.shape))
        except RuntimeError:
            shapes = f"{list(sigma.shape)} with batch_shape {list(shape)}"
            raise ValueError(f"sigma does not broadcast: {shapes}") from None
    eps = torch.randn(*shape, 3, generator=generator, dtype=dtype, device=device)
    sigma = _check_sigma(sigma, eps)
    z = torch.linalg.vector_norm(eps, dim=-1)
    return eps * (sigma * _rho(z, sigma))[..., None]
