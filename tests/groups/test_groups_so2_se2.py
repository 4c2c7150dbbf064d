"""SO(2) and SE(2) against closed forms, at their special angles, and in float32 against float64.

The generic suite (test_groups_axioms.py) covers the axioms and every Jacobian at random points.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from liequiv.groups import SE2, SO2
from liequiv.groups.base import jr_from_ad

DT = torch.float64
SPECIAL_ANGLES = [0.0, 1e-8, 1e-3, 2.0, math.pi - 1e-7, -(math.pi - 1e-7)]


def _fd_gradient(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    eye = torch.eye(x.shape[-1], dtype=DT)
    return torch.stack([(fn(x + h * e) - fn(x - h * e)) / (2 * h) for e in eye])


def _step(theta: float) -> float:
    """A finite-difference step that keeps θ on one side of ±π (where Log wraps)."""
    return min(1e-6, (math.pi - abs(theta)) / 4)


# ----------------------------------------------------------------- SO(2)


def test_so2_closed_forms() -> None:
    theta = torch.linspace(-3, 3, 13, dtype=DT)
    R = SO2.exp(theta[:, None])
    torch.testing.assert_close(R.params, torch.stack([theta.cos(), theta.sin()], -1), atol=0, rtol=0)
    torch.testing.assert_close(R.angle(), theta, atol=1e-15, rtol=0)
    torch.testing.assert_close(SO2.from_angle(theta).params, R.params, atol=0, rtol=0)
    torch.testing.assert_close((R @ R).angle(), torch.remainder(2 * theta + math.pi, 2 * math.pi) - math.pi)
    c, s = theta.cos(), theta.sin()
    torch.testing.assert_close(R.as_matrix(), torch.stack([c, -s, s, c], -1).reshape(13, 2, 2), atol=0, rtol=0)
    p = torch.randn(13, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(R.act(p), torch.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]], -1))
    assert SO2.from_angle(torch.tensor(math.pi, dtype=DT)).log().item() == pytest.approx(math.pi)


def test_so2_random_is_uniform_in_angle() -> None:
    angles = SO2.random((20000,), generator=torch.Generator().manual_seed(0), dtype=DT).angle()
    assert angles.min() >= -math.pi and angles.max() <= math.pi
    counts = torch.histc(angles, bins=8, min=-math.pi, max=math.pi)
    assert (counts - 2500).abs().max() < 200  # about 4 standard deviations


@pytest.mark.parametrize("theta", SPECIAL_ANGLES)
def test_so2_special_angles(theta: float) -> None:
    x = torch.tensor([theta], dtype=DT, requires_grad=True)
    y = SO2.exp(x).log()
    torch.testing.assert_close(y.detach(), x.detach(), atol=1e-15, rtol=0)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.ones_like(grad), atol=1e-9, rtol=0)


def test_so2_from_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    R = SO2.random((8,), generator=g, dtype=DT)
    torch.testing.assert_close(SO2.from_matrix(R.as_matrix()).params, R.params, atol=1e-15, rtol=0)
    noisy = 2.0 * R.as_matrix() + 1e-3 * torch.randn(8, 2, 2, generator=g, dtype=DT)
    with pytest.raises(ValueError, match="rotation"):
        SO2.from_matrix(noisy)
    torch.testing.assert_close(SO2.from_matrix(noisy, project=True).params, R.params, atol=1e-3, rtol=0)


# ----------------------------------------------------------------- SE(2)


def _tangents(n: int, seed: int = 0) -> torch.Tensor:
    """Random (ρ, θ) with 0.1 ≤ |θ| ≤ 3: inside (-π, π), where Log inverts Exp, and away from 0, where the
    hand-written formulas lose digits."""
    g = torch.Generator().manual_seed(seed)
    tau = torch.randn(n, 3, generator=g, dtype=DT)
    tau[:, 2] = (0.1 + 2.9 * torch.rand(n, generator=g, dtype=DT)) * tau[:, 2].sign()
    return tau


def test_se2_closed_forms() -> None:
    """Exp of (ρ, θ) moves along a circular arc: t = (sin θ ρ_x - (1 - cos θ) ρ_y, (1 - cos θ) ρ_x + sin θ ρ_y)/θ."""
    tau = _tangents(32)
    rx, ry, th = tau.unbind(-1)
    expected = torch.stack([(th.sin() * rx - (1 - th.cos()) * ry) / th, ((1 - th.cos()) * rx + th.sin() * ry) / th], -1)
    X = SE2.exp(tau)
    torch.testing.assert_close(X.translation(), expected, atol=1e-13, rtol=0)
    torch.testing.assert_close(X.rotation().params, torch.stack([th.cos(), th.sin()], -1), atol=0, rtol=0)
    torch.testing.assert_close(SE2.from_xy_theta(torch.cat([expected, th[:, None]], -1)).log(), tau, atol=1e-12,
                               rtol=0)
    torch.testing.assert_close(X.as_matrix(), torch.linalg.matrix_exp(SE2.hat(tau)), atol=1e-13, rtol=0)
    p = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(X.act(p), X.rotation().act(p) + X.translation())


def _jr_by_hand(tau: torch.Tensor) -> torch.Tensor:
    """Solà et al., appendix: Jr of SE(2), written out (θ ≠ 0)."""
    r1, r2, th = tau.unbind(-1)
    s, c = th.sin(), th.cos()
    zero, one = torch.zeros_like(th), torch.ones_like(th)
    rows = [s / th, (1 - c) / th, (th * r1 - r2 + r2 * c - r1 * s) / th**2,
            (c - 1) / th, s / th, (r1 + th * r2 - r1 * c - r2 * s) / th**2,
            zero, zero, one]
    return torch.stack(rows, -1).unflatten(-1, (3, 3))


def _ad(tau: torch.Tensor) -> torch.Tensor:
    """ad of se(2): [[θ [1]^, -[1]^ ρ], [0, 0]] with [1]^ = [[0, -1], [1, 0]]."""
    r1, r2, th = tau.unbind(-1)
    zero = torch.zeros_like(th)
    return torch.stack([zero, -th, r2, th, zero, -r1, zero, zero, zero], -1).unflatten(-1, (3, 3))


def test_se2_jacobians_by_hand_and_from_ad() -> None:
    tau = _tangents(64)
    torch.testing.assert_close(SE2.jr(tau), _jr_by_hand(tau), atol=1e-12, rtol=0)
    torch.testing.assert_close(SE2.jr(tau), jr_from_ad(_ad(tau)), atol=1e-12, rtol=0)
    torch.testing.assert_close(SE2.jl(tau), jr_from_ad(-_ad(tau)), atol=1e-12, rtol=0)
    torch.testing.assert_close(SE2.jr_inv(tau), torch.linalg.inv(_jr_by_hand(tau)), atol=1e-11, rtol=0)
    # the ad used above is the one of the group: Ad_{Exp τ} = expm(ad_τ)
    torch.testing.assert_close(SE2.exp(tau).adjoint(), torch.linalg.matrix_exp(_ad(tau)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("theta", SPECIAL_ANGLES)
def test_se2_special_angles(theta: float) -> None:
    tau = torch.tensor([0.4, -0.7, theta], dtype=DT)

    def chain(t: torch.Tensor) -> torch.Tensor:
        return SE2.exp(t).log().sum() + SE2.jr(t).sum() + SE2.jr_inv(t).sum() + SE2.jl_inv(t).sum()

    x = tau.clone().requires_grad_()
    (grad,) = torch.autograd.grad(chain(x), x)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, _fd_gradient(chain, tau, _step(theta)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(SE2.exp(tau).log(), tau, atol=1e-12, rtol=0)
    # the Jacobians are exactly the closed form's limit (and against the autograd of exp at θ = 0)
    reference = jr_from_ad(_ad(tau))
    torch.testing.assert_close(SE2.jr(tau), reference, atol=1e-13, rtol=0)
    torch.testing.assert_close(SE2.jr_inv(tau), torch.linalg.inv(reference), atol=1e-8, rtol=0)


def test_se2_at_pi() -> None:
    """θ = π: Exp, Log (θ ∈ (-π, π]) and the Jacobians are finite; Jr, Jr⁻¹ are smooth through π."""
    tau = torch.tensor([0.4, -0.7, math.pi], dtype=DT)
    X = SE2.exp(tau)
    torch.testing.assert_close(X.log(), tau, atol=1e-12, rtol=0)

    def jacobians(t: torch.Tensor) -> torch.Tensor:
        return SE2.jr(t).sum() + SE2.jr_inv(t).sum()

    x = tau.clone().requires_grad_()
    (grad,) = torch.autograd.grad(jacobians(x), x)
    torch.testing.assert_close(grad, _fd_gradient(jacobians, tau), atol=1e-7, rtol=1e-7)


def test_se2_from_matrix() -> None:
    X = SE2.random((8,), generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(SE2.from_matrix(X.as_matrix()).params, X.params, atol=1e-15, rtol=0)
    m = X.as_matrix()
    m[..., 2, 0] = 0.5
    with pytest.raises(ValueError, match="bottom row"):
        SE2.from_matrix(m)
    torch.testing.assert_close(SE2.from_matrix(m, project=True).params, X.params, atol=1e-15, rtol=0)


# ----------------------------------------------------------------- float32 against float64


@pytest.mark.parametrize("G", [SO2, SE2], ids=lambda G: G.__name__)
def test_float32_matches_float64(G: type[SO2] | type[SE2]) -> None:
    tau = torch.randn(256, G.tangent_dim, generator=torch.Generator().manual_seed(0), dtype=DT)
    tau[:, -1].clamp_(-3, 3)
    tau[:6, -1] = torch.tensor(SPECIAL_ANGLES, dtype=DT)
    tau[6:8, -1] = torch.tensor([1e-4, math.pi - 1e-3], dtype=DT)  # float32 π rounds above π, where Log wraps
    single = tau.float()
    X64, X32 = G.exp(tau), G.exp(single)
    torch.testing.assert_close(X32.params.double(), X64.params, atol=1e-6, rtol=0)
    torch.testing.assert_close(X32.log().double(), X64.log(), atol=4e-6, rtol=0)
    for name in ("jr", "jl", "jr_inv", "jl_inv"):
        jac64, jac32 = getattr(G, name)(tau), getattr(G, name)(single)
        torch.testing.assert_close(jac32.double(), jac64, atol=4e-6, rtol=1e-6)
    x = single.clone().requires_grad_()
    G.exp(x).log().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_se2_compiles_without_graph_breaks() -> None:
    def chain(tau: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        X = SE2.exp(tau)
        Y = X.compose(X.inverse().plus(tau))  # (the `@` operator is not traced by dynamo: use compose)
        return Y.act(p) + Y.log()[..., :2] + SE2.jr(tau)[..., 0, :2] + Y.rotation().log()

    g = torch.Generator().manual_seed(0)
    tau, p = torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)
    compiled = torch.compile(chain, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(tau, p), chain(tau, p))
