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
