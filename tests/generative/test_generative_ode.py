import math

import pytest
import torch

from liequiv.generative.ode import integrate_ode


def _error(method: str, steps: int, correct_last: bool = True) -> float:
    """dx/dt = cos(t) x from x(0) = 1 to t = 2: x(2) = exp(sin 2)."""
    times = torch.linspace(0, 2, steps + 1, dtype=torch.float64)
    x = integrate_ode(lambda x, t: torch.cos(t) * x, torch.ones(1, dtype=torch.float64), times, method=method,
                      correct_last=correct_last)
    return abs(float(x) - math.exp(math.sin(2)))


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("heun", 2)])
def test_convergence_order(method, order):
    ratio = _error(method, 100) / _error(method, 200)
    assert abs(math.log2(ratio) - order) < 0.1, ratio


def test_backwards_grid_and_euler_last_step():
    """A decreasing grid integrates backwards; correct_last=False never evaluates the field at the final time."""
    times = torch.linspace(1, 0, 11, dtype=torch.float64)

    def velocity(x, t):
        assert t > 0, "evaluated at the final time"
        return -x / (1 + t)

    x = integrate_ode(velocity, torch.ones(1, dtype=torch.float64), times, method="heun", correct_last=False)
    heun = integrate_ode(lambda x, t: -x / (1 + t), torch.ones(1, dtype=torch.float64), times, method="heun")
    assert abs(float(heun) - 2) < 1e-3  # x(t) = 1 / (1 + t) · 2 from x(1) = 1
    assert 1e-3 < abs(float(x) - 2) < 0.1
    with pytest.raises(AssertionError, match="final time"):
        integrate_ode(velocity, torch.ones(1, dtype=torch.float64), times, method="heun")


def test_bad_input():
    with pytest.raises(ValueError, match="method"):
        integrate_ode(lambda x, t: x, torch.ones(1), torch.linspace(0, 1, 3), method="rk4")
    with pytest.raises(ValueError, match="times"):
        integrate_ode(lambda x, t: x, torch.ones(1), torch.zeros(1))
