"""The safe small-angle functions against 50-digit references (mpmath), value and derivative, both dtypes."""

from __future__ import annotations

import mpmath as mp
import pytest
import torch

from liequiv.groups import series

mp.mp.dps = 50
REFERENCES = {
    "sinc": lambda a: mp.sin(a) / a,
    "cos_sqrt": mp.cos,
    "cosc": lambda a: (1 - mp.cos(a)) / a**2,
    "sinc_sq_tail3": lambda a: (a - mp.sin(a)) / a**3,
    "cosc_tail4": lambda a: (mp.cos(a) - 1 + a**2 / 2) / a**4,
    "sinc_tail5": lambda a: (a - mp.sin(a) - a**3 / 6) / a**5,
    "inverse_jacobian_coefficient": lambda a: 1 / a**2 - (1 + mp.cos(a)) / (2 * a * mp.sin(a)),
    "atanc": lambda a: mp.atan(a) / a,
}
ANGLES = [1e-8, 1e-4, 1e-2, 0.3, 0.7, 0.99, 1.0, 1.01, 1.3, 1.7, 1.99, 2.0, 2.01, 2.5, 3.1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_value_and_derivative_within_a_few_ulps(name: str, dtype: torch.dtype) -> None:
    fn, ref = getattr(series, name), REFERENCES[name]
    eps = torch.finfo(dtype).eps
    for a in ANGLES:
        x = torch.tensor(a * a, dtype=dtype, requires_grad=True)
        value = fn(x)
        (grad,) = torch.autograd.grad(value, x)
        a_mp = mp.mpf(a)
        exact = float(ref(a_mp))
        exact_grad = float(mp.diff(lambda y: ref(mp.sqrt(y)), a_mp**2))
        # sin θ near π is only known to the absolute accuracy of θ itself
        value_tol = 20 * eps * abs(exact) + (eps * abs(float(mp.cos(a_mp))) if name == "sinc" else 0.0)
        assert abs(value.item() - exact) <= value_tol + 1e-300, (a, value.item(), exact)
        assert abs(grad.item() - exact_grad) <= 300 * eps * abs(exact_grad) + 20 * eps, (a, grad.item(), exact_grad)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_exact_limits_at_zero(name: str) -> None:
    """At θ = 0 the value and the derivative are the first two Taylor coefficients, not 0 or NaN."""
    fn = getattr(series, name)
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    assert value.item() == fn.coefficients[0] and grad.item() == fn.coefficients[1]


def test_bernoulli_numbers() -> None:
    """B_0 .. B_8 = 1, -1/2, 1/6, 0, -1/30, 0, 1/42, 0, -1/30 (and B_12 = -691/2730)."""
    from fractions import Fraction

    b = series.bernoulli(12)
    assert b[:9] == [1, Fraction(-1, 2), Fraction(1, 6), 0, Fraction(-1, 30), 0, Fraction(1, 42), 0, Fraction(-1, 30)]
    assert b[12] == Fraction(-691, 2730)


def _value_and_grad(fn, x0: float, dtype: torch.dtype) -> tuple[float, float]:
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.item(), grad.item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_sinhc_against_mpmath(dtype: torch.dtype) -> None:
    """log(sinh θ / θ) of x = θ², value and d/dx, from tiny θ (series) to large θ (no overflow)."""
    eps = torch.finfo(dtype).eps
    for a in [1e-8, 1e-4, 1e-2, 0.3, 0.7, 1.0, 1.5, 1.7, 2.0, 3.0, 10.0, 40.0]:
        a_mp = mp.sqrt(mp.mpf(torch.tensor(a * a, dtype=dtype).item()))  # at θ² as rounded to dtype

        def ref(y):
            t = mp.sqrt(y)
            return mp.log(mp.sinh(t) / t)

        exact, exact_grad = float(ref(a_mp**2)), float(mp.diff(ref, a_mp**2))
        value, grad = _value_and_grad(series.log_sinhc, float(a_mp**2), dtype)
        assert abs(value - exact) <= 20 * eps * abs(exact) + 1e-300, (a, value, exact)
        assert abs(grad - exact_grad) <= 300 * eps * abs(exact_grad), (a, grad, exact_grad)


def test_log_sinhc_limit_at_zero() -> None:
    value, grad = _value_and_grad(series.log_sinhc, 0.0, torch.float64)
    assert value == 0.0 and grad == pytest.approx(1 / 6, rel=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log1p_ratio_against_closed_form(dtype: torch.dtype) -> None:
    """log(1 + r) / r and its derivative (r/(1+r) - log(1+r))/r², on both sides of 0 and at 0 (1 and -1/2)."""
    eps = torch.finfo(dtype).eps
    for r in [-0.9, -0.3, -1e-2, -1e-3, -1e-6, 1e-9, 1e-6, 1e-3, 1e-2, 0.3, 5.0, 1e3]:
        r = torch.tensor(r, dtype=dtype).item()  # the reference at the input as rounded to dtype
        r_mp = mp.mpf(r)
        exact = float(mp.log1p(r_mp) / r_mp)
        exact_grad = float((r_mp / (1 + r_mp) - mp.log1p(r_mp)) / r_mp**2)
        value, grad = _value_and_grad(series.log1p_ratio, r, dtype)
        assert abs(value - exact) <= 8 * eps * abs(exact), (r, value, exact)
        assert abs(grad - exact_grad) <= 2000 * eps * abs(exact_grad), (r, grad, exact_grad)
    value, grad = _value_and_grad(series.log1p_ratio, 0.0, dtype)
    assert value == 1.0 and grad == -0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_theta_over_sine_derivative_against_mpmath(dtype: torch.dtype) -> None:
    """d/dc (θ / sin θ) at c = cos θ, against (c f(c) - 1) / (1 - c²) at 50 digits; -1/3 at c = 1."""
    eps = torch.finfo(dtype).eps
    for c in [1 - 1e-7, 1 - 1e-4, 1 - 1e-2, 0.91, 0.9, 0.89, 0.5, 0.0, -0.5, -0.9, -0.99]:
        c = torch.tensor(c, dtype=dtype).item()  # the reference at the input as rounded to dtype
        c_mp = mp.mpf(c)
        f = mp.acos(c_mp) / mp.sqrt(1 - c_mp**2)
        exact = float((c_mp * f - 1) / (1 - c_mp**2))
        value = series.theta_over_sine_derivative(torch.tensor(c, dtype=dtype)).item()
        # arccos near -1 is known only to the relative accuracy eps / (1 + c)
        assert abs(value - exact) <= 20 * eps * abs(exact) / (1 + c), (c, value, exact)
    assert series.theta_over_sine_derivative(torch.tensor(1.0, dtype=dtype)).item() == pytest.approx(-1 / 3, rel=eps)
