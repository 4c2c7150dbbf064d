import math

import pytest
import torch

from liequiv.generative.schedules import (
    CosineSchedule,
    LinearSchedule,
    NoiseSchedule,
    PolynomialSchedule,
    get_schedule,
)

ALL = [CosineSchedule(), PolynomialSchedule(), PolynomialSchedule(power=3, precision=1e-3), LinearSchedule(),
       LinearSchedule(0.5, 5.0)]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_beta_is_the_rate_of_log_alpha2(schedule):
    t = torch.linspace(0.01, 0.97, 41, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(schedule.alpha2(t).log().sum(), t)
    torch.testing.assert_close(schedule.beta(t.detach()), -grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_variance_preserving_and_decreasing(schedule):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    a, s = schedule.alpha(t), schedule.sigma(t)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(t), rtol=0, atol=1e-14)
    assert (a[1:] < a[:-1]).all()
    assert a[0] > 0.99 and a[-1] ** 2 < 0.07  # the weakest: LinearSchedule(0.5, 5), α(1)² = exp(-2.75)
    torch.testing.assert_close(schedule.log_snr(t[1:-1]), (a**2 / s**2).log()[1:-1])


def test_closed_forms():
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    cos = CosineSchedule(s=0.008)
    expected = [1.0, (math.cos(math.pi / 2 * 0.258 / 1.008) / math.cos(math.pi / 2 * 0.008 / 1.008)) ** 2, 0.0]
    torch.testing.assert_close(cos.alpha2(t), torch.tensor(expected, dtype=torch.float64), atol=1e-15, rtol=0)
    poly = PolynomialSchedule(power=2, precision=1e-5)
    torch.testing.assert_close(poly.alpha2(t), torch.tensor([1 - 1e-5, (1 - 2e-5) * (15 / 16) ** 2 + 1e-5, 1e-5],
                                                           dtype=torch.float64))
    lin = LinearSchedule(0.1, 20.0)
    # α² = exp(-∫β): the integral of 0.1 + 19.9 s over [0, 0.25] is 0.025 + 19.9 / 32
    torch.testing.assert_close(lin.alpha2(t[1]), torch.tensor(math.exp(-0.025 - 19.9 / 32), dtype=torch.float64))


def test_get_schedule_and_bad_input():
    assert isinstance(get_schedule("cosine"), CosineSchedule)
    assert get_schedule("polynomial", power=3).power == 3
    own = LinearSchedule()
    assert get_schedule(own) is own
    assert isinstance(own, NoiseSchedule)
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_schedule("sigmoid")
    with pytest.raises(ValueError, match="options apply only"):
        get_schedule(own, power=2)
    with pytest.raises(ValueError, match="s must lie"):
        CosineSchedule(s=0)
    with pytest.raises(ValueError, match="precision"):
        PolynomialSchedule(precision=0.7)
    with pytest.raises(ValueError, match="power"):
        PolynomialSchedule(power=-1)
    with pytest.raises(ValueError, match="beta_min"):
        LinearSchedule(5, 1)
