"""Group axioms, Exp/Log, matrices, actions and every analytic Jacobian, for every registered group."""

from __future__ import annotations

import pytest
import torch

from lie_testing import homogeneous_action, reference_jacobians, registered_groups
from liequiv.groups.base import LieGroup

GROUPS = registered_groups()
DT = torch.float64


def _tangent(G: type[LieGroup], *shape: int, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, G.tangent_dim, generator=g, dtype=DT)


def _random(G: type[LieGroup], *shape: int, seed: int = 0) -> LieGroup:
    return G.random(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _points(G: type[LieGroup], *shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, G.point_dim, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _close(a: LieGroup, b: LieGroup, tol: float = 1e-12) -> None:
    torch.testing.assert_close(a.as_matrix(), b.as_matrix(), atol=tol, rtol=0)


def test_registry_is_not_empty() -> None:
    assert {"SO3", "SE3"} <= {G.__name__ for G in GROUPS}


@pytest.mark.parametrize("G", GROUPS, ids=lambda G: G.__name__)
class TestAxioms:
    def test_associativity_identity_inverse(self, G: type[LieGroup]) -> None:
        X, Y, Z = (_random(G, 16, seed=s) for s in range(3))
        _close((X @ Y) @ Z, X @ (Y @ Z))
        E = G.identity((16,), dtype=DT)
        _close(X @ E, X)
        _close(E @ X, X)
        _close(X @ X.inverse(), E)
        _close(X.inverse() @ X, E)

    def test_matrix_homomorphism_and_round_trip(self, G: type[LieGroup]) -> None:
        X, Y = _random(G, 8, seed=0), _random(G, 8, seed=1)
        torch.testing.assert_close((X @ Y).as_matrix(), X.as_matrix() @ Y.as_matrix(), atol=1e-12, rtol=0)
        torch.testing.assert_close(X.inverse().as_matrix(), torch.linalg.inv(X.as_matrix()), atol=1e-12, rtol=0)
        _close(G.from_matrix(X.as_matrix()), X)

    def test_exp_is_matrix_exponential_of_hat(self, G: type[LieGroup]) -> None:
        tau = _tangent(G, 32)
        expected = torch.linalg.matrix_exp(G.hat(tau))
        torch.testing.assert_close(G.exp(tau).as_matrix(), expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(G.vee(G.hat(tau)), tau, atol=1e-15, rtol=0)

    def test_exp_log_round_trips(self, G: type[LieGroup]) -> None:
        X = _random(G, 64)
        _close(G.exp(X.log()), X)
        tau = _tangent(G, 64, scale=0.5)  # inside the injectivity radius of every group
        torch.testing.assert_close(G.exp(tau).log(), tau, atol=1e-12, rtol=0)

    def test_float32_round_trip(self, G: type[LieGroup]) -> None:
        X = G.random((1000,), generator=torch.Generator().manual_seed(3), dtype=torch.float32)
        m = X.as_matrix()
        err = ((G.exp(X.log()).as_matrix() - m).abs() / m.abs().amax((-2, -1), keepdim=True).clamp_min(1)).max()
        assert err < 1e-6  # relative to the largest entry (Sim3's scale and translations reach ~30)

    def test_adjoint(self, G: type[LieGroup]) -> None:
        X, tau = _random(G, 16), _tangent(G, 16)
        lhs = G.hat((X.adjoint() @ tau[..., None])[..., 0])
        rhs = X.as_matrix() @ G.hat(tau) @ X.inverse().as_matrix()
        torch.testing.assert_close(lhs, rhs, atol=1e-12, rtol=0)
        # and the exponential identity X Exp(τ) X⁻¹ = Exp(Ad_X τ)
        _close(X @ G.exp(tau) @ X.inverse(), G.exp((X.adjoint() @ tau[..., None])[..., 0]))

    def test_act_matches_matrix_action(self, G: type[LieGroup]) -> None:
        X, p = _random(G, 16), _points(G, 16)
        torch.testing.assert_close(X.act(p), homogeneous_action(X.as_matrix(), p), atol=1e-12, rtol=0)
        torch.testing.assert_close((X @ X).act(p), X.act(X.act(p)), atol=1e-12, rtol=0)

    def test_plus_minus_between_interpolate(self, G: type[LieGroup]) -> None:
        X, Y = _random(G, 16, seed=0), _random(G, 16, seed=1)
        _close(X.plus(Y.minus(X)), Y)
        _close(X.lplus(Y.lminus(X)), Y)
        _close(X @ X.between(Y), Y)
        _close(X.interpolate(Y, 0.0), X)
        _close(X.interpolate(Y, 1.0), Y)
        half = X.interpolate(Y, 0.5)
        torch.testing.assert_close(half.minus(X), Y.minus(half), atol=1e-10, rtol=0)

    def test_broadcasting(self, G: type[LieGroup]) -> None:
        X, Y = _random(G, 5, 1, seed=0), _random(G, 1, 3, seed=1)
        assert (X @ Y).shape == (5, 3)
        assert X.act(_points(G, 7, 1, 3)).shape == (7, 5, 3, G.point_dim)
        assert X.jac_compose(Y)[0].shape == (5, 3, G.tangent_dim, G.tangent_dim)
        assert X[2, 0].shape == ()
        single = _random(G, seed=2)  # batch shapes of different rank
        assert (single @ Y).shape == (1, 3) and (X @ single).shape == (5, 1)
        _close((single @ X)[:, 0], single @ X[:, 0])

    def test_empty_batch(self, G: type[LieGroup]) -> None:
        X = G.random((0,), dtype=DT)
        assert X.log().shape == (0, G.tangent_dim)
        assert (X @ X).shape == (0,)

    def test_identity_and_tiny_angles_are_finite_with_exact_gradients(self, G: type[LieGroup]) -> None:
        for scale in (0.0, 1e-8):
            tau = _tangent(G, 4, scale=scale).requires_grad_()
            X = G.exp(tau)
            X.log().sum().backward()
            assert torch.isfinite(tau.grad).all()
            # d Log(Exp(τ)) / dτ = I at τ ≈ 0: the gradient of the sum is the ones vector
            torch.testing.assert_close(tau.grad, torch.ones_like(tau), atol=1e-7, rtol=0)
        for name in ("jr", "jl", "jr_inv", "jl_inv"):
            tau = torch.zeros(3, G.tangent_dim, dtype=DT, requires_grad=True)
            jac = getattr(G, name)(tau)
            torch.testing.assert_close(jac, torch.eye(G.tangent_dim, dtype=DT).expand_as(jac), atol=0, rtol=0)
            if jac.requires_grad:  # constant for commutative groups
                (grad,) = torch.autograd.grad(jac.sum(), tau)
                assert torch.isfinite(grad).all()

    def test_bad_input(self, G: type[LieGroup]) -> None:
        with pytest.raises(ValueError, match="shape"):
            G(torch.zeros(3, G.param_dim + 1))
        with pytest.raises(TypeError, match="floating"):
            G(torch.zeros(3, G.param_dim, dtype=torch.int64))
        with pytest.raises(ValueError, match="finite"):
            G(torch.full((G.param_dim,), float("nan")))
        with pytest.raises(ValueError, match="shape"):
            G.exp(torch.zeros(G.tangent_dim + 1))
        with pytest.raises(TypeError, match="must be a"):
            _random(G, 2) @ torch.zeros(2, G.param_dim)
        with pytest.raises(ValueError, match="frame"):
            _random(G, 2).jac_inverse(frame="global")
        with pytest.raises(ValueError, match="points"):
            _random(G, 2).act(torch.zeros(2, G.point_dim + 1, dtype=DT))
        elsewhere = G._wrap(torch.zeros(2, G.param_dim, dtype=DT, device="meta"))  # another device, no GPU needed
        with pytest.raises(ValueError, match="is on meta"):
            _random(G, 2) @ elsewhere
        with pytest.raises(TypeError, match="dtype"):
            _random(G, 2) @ G.random((2,), dtype=torch.float32)


# name -> (inputs from (G, X, Y, τ, p), the function, its analytic Jacobians given the frame)
JACOBIAN_CASES = {
    "inverse": (lambda G, X, Y, t, p: [X], lambda X: X.inverse(), lambda X, f: (X.jac_inverse(frame=f),)),
    "compose": (lambda G, X, Y, t, p: [X, Y], lambda X, Y: X @ Y, lambda X, Y, f: X.jac_compose(Y, frame=f)),
    "exp": (lambda G, X, Y, t, p: [t], None, None),
    "log": (lambda G, X, Y, t, p: [X], lambda X: X.log(), lambda X, f: (X.jac_log(frame=f),)),
    "act": (lambda G, X, Y, t, p: [X, p], lambda X, p: X.act(p), lambda X, p, f: X.jac_act(p, frame=f)),
    "plus": (lambda G, X, Y, t, p: [X, t], lambda X, t: X.plus(t), lambda X, t, f: X.jac_plus(t, frame=f)),
    "minus": (lambda G, X, Y, t, p: [Y, X], lambda Y, X: Y.minus(X), lambda Y, X, f: Y.jac_minus(X, frame=f)),
    "between": (lambda G, X, Y, t, p: [X, Y], lambda X, Y: X.between(Y), lambda X, Y, f: X.jac_between(Y, frame=f)),
}


@pytest.mark.parametrize("frame", ["right", "left"])
@pytest.mark.parametrize("case", list(JACOBIAN_CASES))
@pytest.mark.parametrize("G", GROUPS, ids=lambda G: G.__name__)
def test_analytic_jacobians(G: type[LieGroup], case: str, frame: str) -> None:
    """Every analytic Jacobian equals autograd and central finite differences (float64, < 1e-8)."""
    X, Y, tau, p = _random(G, 6, seed=0), _random(G, 6, seed=1), _tangent(G, 6), _points(G, 6)
    pick, fn, analytic = JACOBIAN_CASES[case]
    inputs = pick(G, X, Y, tau, p)
    if case == "exp":
        fn, analytic = G.exp, lambda t, f: (G.jac_exp(t, frame=f),)
    for jac, (auto, finite) in zip(analytic(*inputs, frame), reference_jacobians(fn, inputs, frame), strict=True):
        torch.testing.assert_close(jac, auto, atol=1e-8, rtol=0)
        torch.testing.assert_close(jac, finite, atol=1e-8, rtol=0)


@pytest.mark.parametrize("G", GROUPS, ids=lambda G: G.__name__)
def test_jacobian_inverses_and_left_right_relation(G: type[LieGroup]) -> None:
    tau = _tangent(G, 16)
    eye = torch.eye(G.tangent_dim, dtype=DT).expand(16, -1, -1)
    torch.testing.assert_close(G.jr(tau) @ G.jr_inv(tau), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(G.jl(tau) @ G.jl_inv(tau), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(G.jl(tau), G.exp(tau).adjoint() @ G.jr(tau), atol=1e-12, rtol=0)
