"""SO(2), SE(2), Sim(3) and Rⁿ against closed forms, and at their singular points."""

from __future__ import annotations

import math

import pytest
import torch

from liequiv.groups import SE2, SE3, SO2, SO3, Rn, Sim3

DT = torch.float64


def test_so2_closed_forms() -> None:
    theta = torch.linspace(-3, 3, 13, dtype=DT)
    R = SO2.exp(theta[:, None])
    torch.testing.assert_close(R.params, torch.stack([theta.cos(), theta.sin()], -1), atol=0, rtol=0)
    torch.testing.assert_close(R.angle(), theta, atol=1e-15, rtol=0)
    torch.testing.assert_close((R @ R).angle(), torch.remainder(2 * theta + math.pi, 2 * math.pi) - math.pi)
    assert SO2.from_angle(torch.tensor(math.pi, dtype=DT)).log().item() == pytest.approx(math.pi)


def test_se2_closed_forms() -> None:
    """Exp of (ρ, θ) moves along a circular arc: t = (sin θ ρ_x - (1 - cos θ) ρ_y, (1 - cos θ) ρ_x + sin θ ρ_y)/θ."""
    tau = torch.randn(32, 3, dtype=DT)
    rx, ry, th = tau.unbind(-1)
    expected = torch.stack([(th.sin() * rx - (1 - th.cos()) * ry) / th, ((1 - th.cos()) * rx + th.sin() * ry) / th], -1)
    X = SE2.exp(tau)
    torch.testing.assert_close(X.translation(), expected, atol=1e-13, rtol=0)
    torch.testing.assert_close(SE2.from_xy_theta(torch.cat([expected, th[:, None]], -1)).log(), tau, atol=1e-12,
                               rtol=0)
    p = torch.randn(32, 2, dtype=DT)
    torch.testing.assert_close(X.act(p), X.rotation().act(p) + X.translation())


def _fd_gradient(fn, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    eye = torch.eye(x.shape[-1], dtype=DT)
    return torch.stack([(fn(x + h * e) - fn(x - h * e)) / (2 * h) for e in eye])


@pytest.mark.parametrize("theta", [0.0, 1e-8, 1e-3, 2.0, math.pi - 1e-7])
def test_se2_special_angles(theta: float) -> None:
    tau = torch.tensor([0.4, -0.7, theta], dtype=DT)

    def chain(t: torch.Tensor) -> torch.Tensor:
        return SE2.exp(t).log().sum() + SE2.jr(t).sum() + SE2.jr_inv(t).sum()

    x = tau.clone().requires_grad_()
    (grad,) = torch.autograd.grad(chain(x), x)
    assert torch.isfinite(grad).all()
    h = min(1e-6, (math.pi - theta) / 4)  # Log wraps at π: stay on one side
    torch.testing.assert_close(grad, _fd_gradient(chain, tau, h), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(SE2.exp(tau).log(), tau, atol=1e-12, rtol=0)


def test_sim3_closed_forms() -> None:
    X = Sim3.random((16,), dtype=DT)
    p = torch.randn(16, 3, dtype=DT)
    expected = X.scale()[:, None] * X.rotation().act(p) + X.translation()
    torch.testing.assert_close(X.act(p), expected, atol=1e-12, rtol=0)
    # with σ = 0 the exponential is SE(3)'s
    tau = torch.randn(16, 6, dtype=DT)
    S = Sim3.exp(torch.cat([tau, torch.zeros(16, 1, dtype=DT)], -1))
    torch.testing.assert_close(S.as_matrix(), SE3.exp(tau).as_matrix(), atol=1e-12, rtol=0)
    # with θ = 0 the translation is (e^σ - 1)/σ ρ
    rho, sigma = torch.randn(16, 3, dtype=DT), torch.randn(16, 1, dtype=DT)
    S = Sim3.exp(torch.cat([rho, torch.zeros(16, 3, dtype=DT), sigma], -1))
    torch.testing.assert_close(S.translation(), (sigma.exp() - 1) / sigma * rho, atol=1e-12, rtol=0)
    torch.testing.assert_close(S.scale(), sigma[:, 0].exp(), atol=1e-14, rtol=0)


@pytest.mark.parametrize("theta_sigma", [(0.0, 0.0), (1e-8, 0.0), (0.0, 1e-8), (1.0, -2.0), (math.pi - 1e-7, 0.5)])
def test_sim3_special_points(theta_sigma: tuple[float, float]) -> None:
    theta, sigma = theta_sigma
    tau = torch.tensor([0.3, -0.2, 0.5, 0.0, 0.0, 0.0, sigma], dtype=DT)
    tau[3:6] = theta * torch.tensor([0.48, -0.6, 0.64], dtype=DT)

    def chain(t: torch.Tensor) -> torch.Tensor:
        return Sim3.exp(t).log().sum() + Sim3.jr(t).sum() + Sim3.jr_inv(t).sum()

    x = tau.clone().requires_grad_()
    (grad,) = torch.autograd.grad(chain(x), x)
    h = min(1e-6, (math.pi - theta) / 4)  # Log wraps at π: stay on one side
    torch.testing.assert_close(grad, _fd_gradient(chain, tau, h), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(Sim3.exp(tau).log(), tau, atol=1e-12, rtol=0)


def test_sim3_from_matrix_rejects_negative_determinant() -> None:
    m = Sim3.random((2,), dtype=DT).as_matrix()
    m[..., :3, :3] *= -1
    with pytest.raises(ValueError, match="positive determinant"):
        Sim3.from_matrix(m)


def test_rn() -> None:
    R3 = Rn.of(3)
    assert R3 is Rn.of(3) and R3.__name__ == "R3"
    a, b = torch.randn(5, 3, dtype=DT), torch.randn(5, 3, dtype=DT)
    torch.testing.assert_close((R3(a) @ R3(b)).params, a + b)
    torch.testing.assert_close(R3(a).act(b), a + b)
    torch.testing.assert_close(R3(a).minus(R3(b)), a - b)
    with pytest.raises(ValueError, match="positive integer"):
        Rn.of(0)


def test_rotation_parts_agree_across_groups() -> None:
    w = torch.randn(8, 3, dtype=DT)
    torch.testing.assert_close(Sim3.exp(torch.cat([torch.zeros(8, 3, dtype=DT), w, torch.zeros(8, 1, dtype=DT)], -1))
                               .rotation().as_matrix(), SO3.exp(w).as_matrix(), atol=1e-14, rtol=0)
