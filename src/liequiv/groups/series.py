"""Numerically safe scalar functions of a squared angle ``x = θ²``, written once for every group.

Each function has a removable singularity at θ = 0, and most lose digits to cancellation near it
(``(1 - cos θ)/θ²`` is 0 in float32 for θ ≲ 1e-4). Below a dtype-dependent threshold a Taylor
series in ``x`` is used, above it the closed form. The threshold balances the series' truncation
error against the closed form's cancellation error for the dtype's machine epsilon.

Both branches are fed a safe input (the "double where", see ``split``), so neither the
value nor the gradient of the unused branch can produce NaN or inf: gradients are finite and exact
at θ = 0, for tiny angles, and everywhere the closed form is finite.

All functions take ``x = θ²`` ``[...]`` (not θ), so callers never need ``sqrt`` of a squared norm, except
the last two, whose natural arguments are not squared angles: ``log1p_ratio`` (of a relative difference) and
``theta_over_sine_derivative`` (of a cosine).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from math import comb, factorial

import torch
from torch import Tensor

__all__ = [
    "atanc",
    "bernoulli",
    "cos_sqrt",
    "cosc",
    "cosc_tail4",
    "inverse_jacobian_coefficient",
    "log1p_ratio",
    "log_sinhc",
    "sinc",
    "sinc_sq_tail3",
    "sinc_tail5",
    "sinhc",
    "split",
    "theta_over_sine_derivative",
]

_MAX_TERMS = 12  # at most x^0 .. x^11 (θ^0 .. θ^22); each dtype uses the fewest that suffice
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def bernoulli(n: int) -> list[Fraction]:
    """Bernoulli numbers B_0 .. B_n (B_1 = -1/2), from the recurrence Σ_{k≤m} C(m+1, k) B_k = 0."""
    b = [Fraction(1)]
    for m in range(1, n + 1):
        b.append(-sum(comb(m + 1, k) * b[k] for k in range(m)) / (m + 1))
    return b


class _Series:
    """f(x) with f given near 0 by Σ_k c_k x^k and elsewhere by a closed form in θ = sqrt(x).

    ``cancellation``: the order p such that the closed form loses a factor θ^-p of relative accuracy
    (its derivative in x then loses θ^-(p+2)).
    """

    def __init__(self, coefficients: list[Fraction], closed_form: Callable[[Tensor], Tensor], cancellation: int):
        self.coefficients = [float(c) for c in coefficients]
        self.closed_form = closed_form
        self.cancellation = cancellation
        self.plans = {dtype: self._plan(dtype) for dtype in _FLOAT_DTYPES}

    def _plan(self, dtype: torch.dtype) -> tuple[int, float]:
        """(number of Taylor terms K, squared-angle threshold) for this dtype.

        For K terms the threshold θ balances the truncation error c_K θ^2K / c_0 against the cancellation
        of the closed form's derivative, ε θ^-q with q = p + 2. The fewest terms that put θ at 1 + (q - 2)/3
        or beyond (at most 2) are used: there the closed form's cancellation is mild, so values stay within
        a few ulps and gradients within a few dozen (float32 needs 4 to 7 terms, float64 8 to 12).
        """
        eps, q = torch.finfo(dtype).eps, self.cancellation + 2
        c0 = abs(self.coefficients[0])
        for terms in range(2, _MAX_TERMS + 1):
            theta = min((eps * c0 / abs(self.coefficients[terms])) ** (1.0 / (2 * terms + q)), 2.0)
            if theta >= min(1.0 + (q - 2) / 3, 2.0):
                break
        return terms, theta**2

    def __call__(self, x: Tensor) -> Tensor:
        terms, t = self.plans[x.dtype]
        x_series, x_closed, closed = split(x, t)
        return horner(x_series, self.coefficients[:terms]).lerp_(self.closed_form(sqrt_fresh(x_closed)), closed)


def needs_grad(x: Tensor) -> bool:
    """Whether autograd records ops on ``x`` (if not, fresh temporaries can be updated in place freely)."""
    return torch.is_grad_enabled() and x.requires_grad


def horner(x: Tensor, coefficients: list[float]) -> Tensor:
    """Σ c_k x^k, k < len(coefficients) ≥ 2, in a fresh tensor; in place where autograd allows."""
    out = x * coefficients[-1]
    out.add_(coefficients[-2])
    grad = needs_grad(x)
    for c in reversed(coefficients[:-2]):
        out = out * x if grad else out.mul_(x)
        out.add_(c)
    return out


def sqrt_fresh(x: Tensor) -> Tensor:
    """sqrt of a fresh temporary ``x``: in place where autograd allows."""
    return torch.sqrt(x) if needs_grad(x) else x.sqrt_()


def split(x: Tensor, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """The "double where" of a function with one branch below ``threshold`` and one at or above it.

    Returns ``(x_below, x_above, above)``: ``x`` where it is below (a safe value elsewhere), ``x`` where it
    is at or above (``threshold`` elsewhere), and the 0/1 weight of the upper branch, so that
    ``f_below(x_below).lerp(f_above(x_above), above)`` equals ``torch.where(x < threshold, f_below(x),
    f_above(x))`` in value and gradient, bit for bit (lerp is exact at weights 0 and 1, and sign(0) = 0
    keeps ``<`` exact). No torch.where or bool mask: on the CPU they cost several arithmetic passes.
    """
    if needs_grad(x):  # masks by multiplication: cheaper to differentiate
        below = (threshold - x.detach()).sign_().clamp_(min=0)
        return x * below, torch.lerp(x, x.new_tensor(threshold), below), 1 - below
    return x.clamp(max=threshold), x.clamp(min=threshold), (x - threshold).sign_().add_(1).clamp_(max=1)


def _alternating(offset: int) -> list[Fraction]:
    """Coefficients (-1)^k / (2k + offset)!."""
    return [Fraction((-1) ** k, factorial(2 * k + offset)) for k in range(_MAX_TERMS + 1)]


_B = bernoulli(2 * _MAX_TERMS + 4)

cos_sqrt = _Series(_alternating(0), torch.cos, 0)
"""cos θ. (Smooth in x = θ² at 0, unlike ``cos(sqrt(x))``.)"""

sinc = _Series(_alternating(1), lambda a: torch.sin(a) / a, 0)
"""sin θ / θ."""

cosc = _Series(_alternating(2), lambda a: (1 - torch.cos(a)) / a**2, 2)
"""(1 - cos θ) / θ²."""

sinc_sq_tail3 = _Series(_alternating(3), lambda a: (a - torch.sin(a)) / a**3, 2)
"""(θ - sin θ) / θ³."""

cosc_tail4 = _Series(_alternating(4), lambda a: (torch.cos(a) - 1 + a**2 / 2) / a**4, 4)
"""(cos θ - 1 + θ²/2) / θ⁴."""

sinhc = _Series([abs(c) for c in _alternating(1)], lambda a: torch.sinh(a) / a, 0)
"""sinh θ / θ, for exponentials of a real argument: (e^σ - 1)/σ = e^(σ/2) sinhc(σ²/4) (used by Sim(3))."""

sinc_tail5 = _Series([-c for c in _alternating(5)], lambda a: (a - torch.sin(a) - a**3 / 6) / a**5, 4)
"""(θ - sin θ - θ³/6) / θ⁵."""

inverse_jacobian_coefficient = _Series(
    [(-1) ** (n + 1) * _B[2 * n] / factorial(2 * n) for n in range(1, _MAX_TERMS + 2)],
    lambda a: 1 / a**2 - torch.cos(a / 2) / (2 * a * torch.sin(a / 2)),
    2,
)
"""1/θ² - (1 + cos θ) / (2 θ sin θ) = (1 - (θ/2) cot(θ/2)) / θ²: the θ^² coefficient of Jr⁻¹ of SO(3).

Evaluated through cot(θ/2), which keeps full accuracy near θ = π where 1 + cos θ cancels.

Finite on [0, 2π); it has a pole at θ = 2π (where the Jacobian is singular).
"""

atanc = _Series([Fraction((-1) ** k, 2 * k + 1) for k in range(_MAX_TERMS + 1)], lambda a: torch.atan(a) / a, 0)
"""atan θ / θ (the series converges for θ < 1; the closed form is used above the threshold)."""

_log_sinhc_over_sq = _Series(
    [Fraction(4**k) * _B[2 * k] / (2 * k * factorial(2 * k)) for k in range(1, _MAX_TERMS + 2)],
    lambda a: (a + torch.log(-torch.expm1(-2 * a) / (2 * a))) / a**2,
    2,
)


def log_sinhc(x: Tensor) -> Tensor:
    """log(sinh θ / θ) = Σ_k 4^k B_2k θ^2k / (2k (2k)!) (k ≥ 1), x = θ² ≥ 0 ``[...]``.

    The closed form θ + log((1 - e^(-2θ)) / (2θ)) does not overflow for large θ.
    """
    return x * _log_sinhc_over_sq(x)


_LOG1P_TERMS = 6  # truncation r^6 / 7 below eps at |r| < eps^(1/4) for every dtype


def log1p_ratio(r: Tensor) -> Tensor:
    """log(1 + r) / r for r > -1 ``[...]`` (1 at r = 0): Σ (-r)^k / (k + 1) for |r| < eps^(1/4), else the closed form.

    The divided difference (log a - log b) / (a - b) of positive a, b is ``log1p_ratio((a - b) / b) / b``.
    """
    small = r.abs() < torch.finfo(r.dtype).eps ** 0.25
    r_series = torch.where(small, r, torch.zeros_like(r))
    r_closed = torch.where(small, torch.ones_like(r), r)
    series = horner(-r_series, [1 / (k + 1) for k in range(_LOG1P_TERMS)])
    return torch.where(small, series, torch.log1p(r_closed) / r_closed)


_THETA_OVER_SINE_THRESHOLD = 0.1  # on u = 1 - cos θ; the series in u has radius 2
# f(1 - u) = θ / sin θ = Σ_k 2^k (k!)² / (2k + 1)! u^k; its truncation at 14 terms is below float64's eps for u < 0.1
_THETA_OVER_SINE_COEFFICIENTS = [float(Fraction(2**k * factorial(k) ** 2, factorial(2 * k + 1))) for k in range(14)]
_THETA_OVER_SINE_DERIVATIVE = [-(k + 1) * c for k, c in enumerate(_THETA_OVER_SINE_COEFFICIENTS[1:])]


def theta_over_sine_derivative(c: Tensor) -> Tensor:
    """d/dc (θ / sin θ) at c = cos θ ∈ (-1, 1] ``[...]``: (c f(c) - 1) / (1 - c²) with f(c) = arccos(c) / sqrt(1 - c²).

    The closed form cancels near c = 1 (θ = 0); there the derivative of the series of f in u = 1 - c is used.
    """
    u_series, u_closed, closed = split(1 - c, _THETA_OVER_SINE_THRESHOLD)
    c_closed, sine_sq = 1 - u_closed, u_closed * (2 - u_closed)
    value = (c_closed * torch.arccos(c_closed) / torch.sqrt(sine_sq) - 1) / sine_sq
    return horner(u_series, _THETA_OVER_SINE_DERIVATIVE).lerp_(value, closed)
