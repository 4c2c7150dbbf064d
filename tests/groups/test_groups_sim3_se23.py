"""Sim(3) and SE_2(3) against closed forms and independent references, at their special points, and in float32.

Sim(3)'s translation coupling W(θ, σ) is checked against 80-digit references (mpmath) in value and gradient,
and against the exponential of a block matrix; Exp against the matrix exponential of the algebra at σ = 0,
θ = 0, both, tiny, θ near π and large |σ|. SE_2(3)'s closed-form Jacobians are checked against
∫₀¹ exp(-u ad) du. The generic suite (test_groups_axioms.py) covers the axioms and every Jacobian at random points.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath as mp
import pytest
import torch

from liequiv.groups import SE3, SE23, SO3, Sim3, series
from liequiv.groups.base import jr_from_ad
from liequiv.groups.sim3 import coupling_coefficients
from liequiv.groups.so3 import skew

DT = torch.float64
AXIS = torch.tensor([0.48, -0.6, 0.64], dtype=DT)  # a unit vector
SPECIAL_THETA = [0.0, 1e-8, 1e-3, 1.0, math.pi - 1e-7]
SPECIAL_SIGMA = [0.0, 1e-8, -1e-8, 0.5, -3.0]


def _fd_gradient(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    eye = torch.eye(x.shape[-1], dtype=x.dtype)
    return torch.stack([(fn(x + h * e) - fn(x - h * e)) / (2 * h) for e in eye])


def _step(theta: float) -> float:
    """A finite-difference step that keeps |θ| below π (where Log wraps)."""
    return min(1e-6, (math.pi - theta) / 4)


def _sim3_tangent(theta: float, sigma: float) -> torch.Tensor:
    return torch.cat([torch.tensor([0.3, -0.2, 0.5], dtype=DT), theta * AXIS, torch.tensor([sigma], dtype=DT)])


# ----------------------------------------------------------------- the coupling W(θ, σ), against mpmath

mp.mp.dps = 80


def _phi(z: mp.mpc) -> mp.mpc:
    return mp.expm1(z) / z if z != 0 else mp.mpf(1)


def _abc(sigma: mp.mpf, theta_sq: mp.mpf) -> list[mp.mpf]:
    """A = φ(σ), B = Im φ(σ + iθ)/θ, C = (φ(σ) - Re φ(σ + iθ))/θ², φ(z) = (e^z - 1)/z (limits at θ = 0)."""
    if theta_sq == 0:
        return [_phi(sigma), mp.diff(_phi, sigma), mp.diff(_phi, sigma, 2) / 2]
    theta = mp.sqrt(theta_sq)
    p = _phi(mp.mpc(sigma, theta))
    return [_phi(sigma), mp.im(p) / theta, (_phi(sigma) - mp.re(p)) / theta_sq]


def _reference(sigma: float, theta: float) -> tuple[list[float], list[float], list[float]]:
    """(A, B, C), their σ-derivatives and their θ²-derivatives, to 80 digits."""
    s, x, h = mp.mpf(sigma), mp.mpf(theta) ** 2 if theta > 1e-10 else mp.mpf(0), mp.mpf(10) ** -30
    value = _abc(s, x)
    d_sigma = [(p - m) / (2 * h) for p, m in zip(_abc(s + h, x), _abc(s - h, x))]
    if x > h:
        d_x = [(p - m) / (2 * h) for p, m in zip(_abc(s, x + h), _abc(s, x - h))]
    else:  # one-sided at θ = 0 (B and C are smooth in θ², to second order here)
        d_x = [(-3 * v + 4 * p - m) / (2 * h) for v, p, m in zip(value, _abc(s, x + h), _abc(s, x + 2 * h))]
    return tuple([float(v) for v in vs] for vs in (value, d_sigma, d_x))


COUPLING_POINTS = [(r * math.cos(a), abs(r * math.sin(a)))
                   for r in [0.0, 1e-8, 1e-3, 0.5, 1.0, 1.41, 1.42, 2.0, 3.0, 10.0, 30.0]
                   for a in [0.0, 0.7, math.pi / 2, 2.6, math.pi]
                   if abs(r * math.sin(a)) <= math.pi]
COUPLING_POINTS += [(s, t) for s in [0.0, 1e-8, -1e-8, 0.3, -2.0, 5.0] for t in [1e-8, math.pi - 1e-7, math.pi]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coupling_coefficients_against_mpmath(dtype: torch.dtype) -> None:
    """Values within a few ulps, derivatives within a few hundred (relative to the coefficient's own scale)."""
    eps = torch.finfo(dtype).eps
    for sigma, theta in COUPLING_POINTS:
        value, d_sigma, d_x = _reference(sigma, theta)
        s = torch.tensor(sigma, dtype=dtype, requires_grad=True)
        x = torch.tensor(theta * theta, dtype=dtype, requires_grad=True)
        out = coupling_coefficients(x, s)
        for i, coefficient in enumerate(out):
            got_s, got_x = torch.autograd.grad(coefficient, [s, x], retain_graph=True, allow_unused=True)
            got_x = 0.0 if got_x is None else got_x.item()
            scale = abs(value[i])
            assert abs(coefficient.item() - value[i]) <= 10 * eps * scale, ("value", "ABC"[i], sigma, theta)
            assert abs(got_s.item() - d_sigma[i]) <= 300 * eps * max(abs(d_sigma[i]), scale), ("d/dσ", "ABC"[i],
                                                                                                sigma, theta)
            assert abs(got_x - d_x[i]) <= 300 * eps * max(abs(d_x[i]), scale), ("d/dθ²", "ABC"[i], sigma, theta)


def test_sinhc_against_mpmath() -> None:
    for dtype in (torch.float32, torch.float64):
        eps = torch.finfo(dtype).eps
        for a in [0.0, 1e-8, 1e-3, 0.5, 1.0, 1.1, 1.2, 2.0, 5.0, 20.0]:
            x = torch.tensor(a * a, dtype=dtype, requires_grad=True)
            value = series.sinhc(x)
            (grad,) = torch.autograd.grad(value, x)
            ref = (lambda y: mp.sinh(mp.sqrt(y)) / mp.sqrt(y)) if a else None
            exact = float(ref(mp.mpf(a) ** 2)) if a else 1.0
            exact_grad = float(mp.diff(ref, mp.mpf(a) ** 2)) if a else 1 / 6
            assert abs(value.item() - exact) <= 4 * eps * exact
            assert abs(grad.item() - exact_grad) <= 100 * eps * exact_grad


def _coupling_by_matrix_exponential(theta: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """W(θ, σ): the top-right block of expm([[σ I + θ^, I], [0, 0]])."""
    eye = torch.eye(3, dtype=theta.dtype).expand(*theta.shape[:-1], 3, 3)
    top = torch.cat([skew(theta) + sigma[..., None, None] * eye, eye], -1)
    return torch.linalg.matrix_exp(torch.cat([top, torch.zeros_like(top)], -2))[..., :3, 3:]


def test_coupling_matches_block_matrix_exponential() -> None:
    g = torch.Generator().manual_seed(0)
    theta, sigma = torch.randn(256, 3, generator=g, dtype=DT), 2 * torch.randn(256, generator=g, dtype=DT)
    specials = torch.tensor([[t, s] for t in [*SPECIAL_THETA, math.pi] for s in [*SPECIAL_SIGMA, 20.0, -20.0]],
                            dtype=DT)
    theta = torch.cat([theta, specials[:, :1] * AXIS])
    sigma = torch.cat([sigma, specials[:, 1]])
    a, b, c = (k[..., None, None] for k in coupling_coefficients((theta * theta).sum(-1), sigma))
    w = skew(theta)
    mine = a * torch.eye(3, dtype=DT) + b * w + c * (w @ w)
    reference = _coupling_by_matrix_exponential(theta, sigma)
    scale = reference.abs().amax((-2, -1), keepdim=True)
    torch.testing.assert_close(mine / scale, reference / scale, atol=1e-14, rtol=0)


# ----------------------------------------------------------------- Sim(3)


def test_sim3_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    X = Sim3.random((16,), generator=g, dtype=DT)
    p = torch.randn(16, 3, generator=g, dtype=DT)
    expected = X.scale()[:, None] * X.rotation().act(p) + X.translation()
    torch.testing.assert_close(X.act(p), expected, atol=1e-12, rtol=0)
    # with σ = 0 the exponential is SE(3)'s, and so is the (ρ, θ) block of Jr
    tau = torch.randn(16, 6, generator=g, dtype=DT)
    tau0 = torch.cat([tau, torch.zeros(16, 1, dtype=DT)], -1)
    torch.testing.assert_close(Sim3.exp(tau0).as_matrix(), SE3.exp(tau).as_matrix(), atol=1e-12, rtol=0)
    torch.testing.assert_close(Sim3.jr(tau0)[:, :6, :6], SE3.jr(tau), atol=1e-12, rtol=0)
    torch.testing.assert_close(Sim3.jr_inv(tau0)[:, :6, :6], SE3.jr_inv(tau), atol=1e-12, rtol=0)
    # with θ = 0 the translation is (e^σ - 1)/σ ρ
    rho, sigma = torch.randn(16, 3, generator=g, dtype=DT), torch.randn(16, 1, generator=g, dtype=DT)
    S = Sim3.exp(torch.cat([rho, torch.zeros(16, 3, dtype=DT), sigma], -1))
    torch.testing.assert_close(S.translation(), torch.expm1(sigma) / sigma * rho, atol=1e-12, rtol=0)
    torch.testing.assert_close(S.scale(), sigma[:, 0].exp(), atol=1e-14, rtol=0)


@pytest.mark.parametrize("sigma", [*SPECIAL_SIGMA, 20.0, -20.0])
@pytest.mark.parametrize("theta", [*SPECIAL_THETA, math.pi])
def test_sim3_exp_is_matrix_exponential_at_special_points(theta: float, sigma: float) -> None:
    tau = _sim3_tangent(theta, sigma)
    expected = torch.linalg.matrix_exp(Sim3.hat(tau))
    scale = expected.abs().max()
    torch.testing.assert_close(Sim3.exp(tau).as_matrix() / scale, expected / scale, atol=1e-14, rtol=0)
    X = Sim3.exp(tau)
    torch.testing.assert_close((Sim3.exp(X.log()).as_matrix()) / scale, X.as_matrix() / scale, atol=1e-14, rtol=0)
    if theta < math.pi:  # at θ = π, Log may return the opposite rotation vector (the same rotation)
        torch.testing.assert_close(X.log(), tau, atol=1e-12, rtol=1e-13)


@pytest.mark.parametrize("sigma", SPECIAL_SIGMA)
@pytest.mark.parametrize("theta", SPECIAL_THETA)
def test_sim3_gradients_at_special_points(theta: float, sigma: float) -> None:
    """Exp, Log, Jr and Jr⁻¹ have finite gradients that match central differences at σ = 0, θ = 0, both, tiny."""
    tau = _sim3_tangent(theta, sigma)

    def chain(t: torch.Tensor) -> torch.Tensor:
        return (Sim3.exp(t).params * torch.arange(1, 9, dtype=DT)).sum() + Sim3.exp(t).log().sum() \
            + Sim3.jr(t).sum() + Sim3.jr_inv(t).sum()

    x = tau.clone().requires_grad_()
    (grad,) = torch.autograd.grad(chain(x), x)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, _fd_gradient(chain, tau, _step(theta)), atol=1e-6, rtol=1e-6)


def test_sim3_log_gradient_is_jr_inverse_at_the_identity() -> None:
    """d Log(Exp(τ))/dτ = I exactly, at τ = 0 and along each axis of tiny steps."""
    for scale in (0.0, 1e-8, 1e-4):
        tau = (scale * torch.ones(7, dtype=DT)).requires_grad_()
        jac = torch.autograd.functional.jacobian(lambda t: Sim3.exp(t).log(), tau)
        torch.testing.assert_close(jac, torch.eye(7, dtype=DT), atol=1e-7, rtol=0)


def test_sim3_jr_at_zero_rotation() -> None:
    """With θ = 0 the ρ-ρ block of Jr is ∫₀¹ e^{-σu} du I = (1 - e^-σ)/σ I and the σ column is
    ∫₀¹ (1 - u) e^{-σu} du ρ = (e^-σ - 1 + σ)/σ² ρ."""
    g = torch.Generator().manual_seed(0)
    rho, sigma = torch.randn(8, 3, generator=g, dtype=DT), torch.randn(8, generator=g, dtype=DT)
    jr = Sim3.jr(torch.cat([rho, torch.zeros(8, 3, dtype=DT), sigma[:, None]], -1))
    eye = torch.eye(3, dtype=DT)
    torch.testing.assert_close(jr[:, :3, :3], (-torch.expm1(-sigma) / sigma)[:, None, None] * eye, atol=1e-14,
                               rtol=0)
    expected = rho * ((torch.expm1(-sigma) + sigma) / sigma**2)[:, None]
    torch.testing.assert_close(jr[:, :3, 6], expected, atol=1e-13, rtol=0)


def test_sim3_ad_is_the_derivative_of_the_adjoint() -> None:
    """Ad_{Exp τ} = expm(ad_τ): the ad behind Jr is the group's."""
    tau = torch.randn(16, 7, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(Sim3.exp(tau).adjoint(), torch.linalg.matrix_exp(Sim3.ad(tau)), atol=1e-11, rtol=0)


def test_sim3_float32_matches_float64() -> None:
    g = torch.Generator().manual_seed(0)
    tau = torch.randn(256, 7, generator=g, dtype=DT)
    tau[:, 3:6] *= 0.9  # |θ| < π with margin, where Log inverts Exp in both dtypes
    tau[:, 3:6] = tau[:, 3:6] / torch.linalg.vector_norm(tau[:, 3:6], dim=-1, keepdim=True).clamp_min(3.0) * 3.0
    specials = [(t, s) for t in [0.0, 1e-8, 1e-3, 1.0, 3.0] for s in [0.0, 1e-8, -1e-8, 0.5, -3.0]]
    for i, (t, s) in enumerate(specials):
        tau[i, 3:6], tau[i, 6] = t * AXIS, s
    single = tau.float()
    X64, X32 = Sim3.exp(tau), Sim3.exp(single)
    scale = X64.as_matrix().abs().amax((-2, -1))[:, None].clamp_min(1)
    torch.testing.assert_close(X32.params.double() / scale, X64.params / scale, atol=2e-6, rtol=0)
    torch.testing.assert_close(X32.log().double(), X64.log(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(Sim3.jr(single).double(), Sim3.jr(tau), atol=1e-5, rtol=1e-5)
    x = single.clone().requires_grad_()
    (Sim3.exp(x).log().sum() + Sim3.jr_inv(x).sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_sim3_from_matrix_rejects_negative_determinant() -> None:
    m = Sim3.random((2,), generator=torch.Generator().manual_seed(0), dtype=DT).as_matrix()
    m[..., :3, :3] *= -1
    with pytest.raises(ValueError, match="positive determinant"):
        Sim3.from_matrix(m)


def test_rotation_parts_agree_across_groups() -> None:
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(Sim3.exp(torch.cat([torch.zeros(8, 3, dtype=DT), w, torch.zeros(8, 1, dtype=DT)], -1))
                               .rotation().as_matrix(), SO3.exp(w).as_matrix(), atol=1e-14, rtol=0)


# ----------------------------------------------------------------- SE_2(3)


def _se23_ad(tau: torch.Tensor) -> torch.Tensor:
    """ad of se_2(3) in the order (ρ_v, ρ_p, θ): [[θ^, 0, ρ_v^], [0, θ^, ρ_p^], [0, 0, θ^]]."""
    rho_v, rho_p, w = skew(tau[..., :3]), skew(tau[..., 3:6]), skew(tau[..., 6:])
    zero = torch.zeros_like(w)
    return torch.cat([torch.cat(row, -1) for row in [[w, zero, rho_v], [zero, w, rho_p], [zero, zero, w]]], -2)


def _se23_tangent(theta: float) -> torch.Tensor:
    return torch.cat([torch.tensor([0.3, -0.2, 0.5, -0.4, 0.1, 0.7], dtype=DT), theta * AXIS])


def test_se23_ad_is_the_derivative_of_the_adjoint() -> None:
    tau = torch.randn(16, 9, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(SE23.exp(tau).adjoint(), torch.linalg.matrix_exp(_se23_ad(tau)), atol=1e-11, rtol=0)


@pytest.mark.parametrize("theta", [*SPECIAL_THETA, math.pi, None])
def test_se23_closed_form_jacobians_match_the_integral(theta: float | None) -> None:
    """Jr, Jl (closed forms with Barfoot's Q per translation-like part) = ∫₀¹ exp(∓u ad) du, and their inverses."""
    if theta is None:
        tau = torch.randn(32, 9, generator=torch.Generator().manual_seed(0), dtype=DT)
    else:
        tau = _se23_tangent(theta)
    ad = _se23_ad(tau)
    jr, jl = jr_from_ad(ad), jr_from_ad(-ad)
    torch.testing.assert_close(SE23.jr(tau), jr, atol=1e-13, rtol=0)
    torch.testing.assert_close(SE23.jl(tau), jl, atol=1e-13, rtol=0)
    torch.testing.assert_close(SE23.jr_inv(tau), torch.linalg.inv(jr), atol=1e-9, rtol=0)
    torch.testing.assert_close(SE23.jl_inv(tau), torch.linalg.inv(jl), atol=1e-9, rtol=0)


def test_se23_restricted_to_zero_velocity_is_se3() -> None:
    """With v = 0 (ρ_v = 0) every map of SE_2(3) reduces to SE(3)'s on the (ρ_p, θ) components."""
    g = torch.Generator().manual_seed(0)
    tau = torch.randn(16, 6, generator=g, dtype=DT)
    ext = torch.cat([torch.zeros(16, 3, dtype=DT), tau], -1)
    X, E = SE3.exp(tau), SE23.exp(ext)
    torch.testing.assert_close(E.velocity(), torch.zeros(16, 3, dtype=DT), atol=0, rtol=0)
    torch.testing.assert_close(E.log(), ext, atol=1e-12, rtol=0)
    torch.testing.assert_close(E.log()[:, 3:], X.log(), atol=1e-14, rtol=0)
    for name in ("jr", "jl", "jr_inv", "jl_inv"):
        torch.testing.assert_close(getattr(SE23, name)(ext)[:, 3:, 3:], getattr(SE3, name)(tau), atol=1e-14, rtol=0)
    torch.testing.assert_close(E.adjoint()[:, 3:, 3:], X.adjoint(), atol=1e-14, rtol=0)
    p = torch.randn(16, 3, generator=g, dtype=DT)
    torch.testing.assert_close(E.act(p), X.act(p), atol=1e-14, rtol=0)
    torch.testing.assert_close(E.jac_act(p)[0][:, :, 3:], X.jac_act(p)[0], atol=1e-14, rtol=0)
    m = E.as_matrix()  # [[R, v, p], [0, 1, 0], [0, 0, 1]]
    torch.testing.assert_close(m[:, :3, :3], X.as_matrix()[:, :3, :3], atol=0, rtol=0)
    torch.testing.assert_close(m[:, :3, 4], X.translation(), atol=1e-14, rtol=0)
    bottom = torch.tensor([[0.0, 0, 0, 1, 0], [0, 0, 0, 0, 1]], dtype=DT)
    torch.testing.assert_close(m[:, 3:, :], bottom.expand(16, 2, 5), atol=0, rtol=0)


@pytest.mark.parametrize("theta", SPECIAL_THETA)
def test_se23_gradients_at_special_angles(theta: float) -> None:
    tau = _se23_tangent(theta)

    def chain(t: torch.Tensor) -> torch.Tensor:
        X = SE23.exp(t)
        return (X.params * torch.arange(1, 11, dtype=DT)).sum() + X.log().sum() + SE23.jr(t).sum() \
            + SE23.jr_inv(t).sum() + SE23.jl_inv(t).sum()

    x = tau.clone().requires_grad_()
    (grad,) = torch.autograd.grad(chain(x), x)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, _fd_gradient(chain, tau, _step(theta)), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(SE23.exp(tau).log(), tau, atol=1e-12, rtol=0)


def test_se23_float32_matches_float64() -> None:
    tau = torch.randn(256, 9, generator=torch.Generator().manual_seed(0), dtype=DT)
    tau[:, 6:] = tau[:, 6:] / torch.linalg.vector_norm(tau[:, 6:], dim=-1, keepdim=True).clamp_min(3.0) * 3.0
    for i, t in enumerate([0.0, 1e-8, 1e-3, 1.0, 3.0]):
        tau[i, 6:] = t * AXIS
    single = tau.float()
    torch.testing.assert_close(SE23.exp(single).params.double(), SE23.exp(tau).params, atol=4e-6, rtol=0)
    torch.testing.assert_close(SE23.exp(single).log().double(), SE23.exp(tau).log(), atol=2e-5, rtol=2e-5)
    for name in ("jr", "jl", "jr_inv", "jl_inv"):
        torch.testing.assert_close(getattr(SE23, name)(single).double(), getattr(SE23, name)(tau), atol=1e-5,
                                   rtol=1e-5)


def test_sim3_compiles_without_graph_breaks() -> None:
    def chain(tau: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        X = Sim3.exp(tau)
        Y = X.compose(X.inverse().plus(tau))  # (the `@` operator is not traced by dynamo: use compose)
        return Y.act(p) + Y.log()[..., :3]

    g = torch.Generator().manual_seed(0)
    tau, p = torch.randn(16, 7, generator=g), torch.randn(16, 3, generator=g)
    compiled = torch.compile(chain, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(tau, p), chain(tau, p))
