"""GL+(n), SL(n) and their affine groups: polar decomposition, global coordinates, stable gradients,
Haar measure (its Jacobian exactly, and the sampler's weights statistically), affine group axioms."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from liequiv.groups.linear import (
    AffineGLPlus,
    AffineSL,
    from_coordinates,
    group_dim,
    haar_log_density,
    polar_compose,
    polar_decompose,
    rotation_exp,
    rotation_log,
    sample_affine,
    sample_glplus,
    sample_rotation,
    sample_sl,
    so_hat,
    so_vee,
    sym_expm,
    sym_hat,
    sym_logm,
    sym_vee,
    to_coordinates,
)
from liequiv.groups.so3 import skew

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _glplus(n: int, *shape: int, seed: int = 0) -> torch.Tensor:
    """Gaussian matrices with the first row's sign flipped where det < 0."""
    a = torch.randn(*shape, n, n, generator=_gen(seed), dtype=DT)
    sign = torch.linalg.det(a).sign()
    return torch.cat([a[..., :1, :] * sign[..., None, None], a[..., 1:, :]], dim=-2)


def _rotation_with_spectrum(values: list[float], seed: int = 0) -> torch.Tensor:
    """Q diag(values) Q'ᵀ with Q, Q' random rotations (repeated singular values when values repeat)."""
    n = len(values)
    q1, q2 = sample_rotation(n, (), generator=_gen(seed), dtype=DT), sample_rotation(n, (), generator=_gen(seed + 1),
                                                                                       dtype=DT)
    return q1 @ torch.diag(torch.tensor(values, dtype=DT)) @ q2.mT


def _coords(n: int, count: int, special: bool = False, seed: int = 0) -> torch.Tensor:
    """Coordinates with the rotation part inside the fundamental domain (angles ≤ 0.9 π)."""
    x = torch.randn(count, group_dim(n, special), generator=_gen(seed), dtype=DT)
    d = n * (n - 1) // 2
    if d:
        norm = torch.linalg.matrix_norm(so_hat(x[:, :d], n), ord=2)
        x[:, :d] *= (0.9 * math.pi * torch.rand(count, generator=_gen(seed + 1), dtype=DT) / norm)[:, None]
    return x


# ------------------------------------------------------------------ polar decomposition


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_polar_round_trip_and_factors(n: int) -> None:
    A = _glplus(n, 200)
    R, S = polar_decompose(A)
    assert (polar_compose(R, S) - A).abs().max() < 1e-12 * A.abs().max()
    eye = torch.eye(n, dtype=DT)
    torch.testing.assert_close(R.mT @ R, eye.expand_as(R), atol=1e-13, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=DT), atol=1e-13, rtol=0)
    torch.testing.assert_close(S, S.mT, atol=0, rtol=0)
    P = sym_expm(S)
    assert (torch.linalg.eigvalsh(P) > 0).all()
    torch.testing.assert_close(P, torch.linalg.matrix_exp(S), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(P @ P, A.mT @ A, atol=1e-10, rtol=1e-10)  # P = sqrt(AᵀA)
    # float32 keeps 1e-5 relative accuracy
    R32, S32 = polar_decompose(A.float())
    assert ((polar_compose(R32, S32) - A.float()).abs().max() / A.abs().max()) < 1e-5


def test_polar_known_cases() -> None:
    eye = torch.eye(3, dtype=DT)
    R, S = polar_decompose(eye)
    torch.testing.assert_close(R, eye, atol=1e-15, rtol=0)
    torch.testing.assert_close(S, torch.zeros(3, 3, dtype=DT), atol=1e-15, rtol=0)
    rot = sample_rotation(3, (5,), generator=_gen(), dtype=DT)
    R, S = polar_decompose(2.0 * rot)  # repeated singular values
    torch.testing.assert_close(R, rot, atol=1e-14, rtol=0)
    torch.testing.assert_close(S, math.log(2.0) * eye.expand(5, 3, 3), atol=1e-14, rtol=0)
    S0 = sym_hat(torch.randn(5, 6, generator=_gen(1), dtype=DT), 3)
    R, S = polar_decompose(sym_expm(S0))  # A positive definite: R = I
    torch.testing.assert_close(R, eye.expand(5, 3, 3), atol=1e-13, rtol=0)
    torch.testing.assert_close(S, S0, atol=1e-12, rtol=0)


def test_sl_elements_have_unit_det_and_traceless_logs() -> None:
    for n in (2, 3, 4):
        A = from_coordinates(_coords(n, 64, special=True), n, special=True)
        torch.testing.assert_close(torch.linalg.det(A), torch.ones(64, dtype=DT), atol=1e-12, rtol=0)
        _, S = polar_decompose(A)
        assert S.diagonal(dim1=-2, dim2=-1).sum(-1).abs().max() < 1e-12
        sample = sample_sl(n, (64,), generator=_gen(), dtype=DT)
        torch.testing.assert_close(torch.linalg.det(sample.matrix), torch.ones(64, dtype=DT), atol=1e-12, rtol=0)


def test_empty_batch() -> None:
    R, S = polar_decompose(torch.zeros(0, 2, 2, dtype=DT))
    assert R.shape == S.shape == (0, 2, 2)
    assert to_coordinates(torch.zeros(0, 3, 3, dtype=DT)).shape == (0, 9)
    assert sample_glplus(2, (0,), dtype=DT).log_weight.shape == (0,)


# ------------------------------------------------------------------ bases and global coordinates


def test_dimensions() -> None:
    assert [group_dim(n) for n in (1, 2, 3, 4)] == [1, 4, 9, 16]
    assert [group_dim(n, special=True) for n in (1, 2, 3, 4)] == [0, 3, 8, 15]
    assert [AffineGLPlus.dim(2), AffineSL.dim(2), AffineGLPlus.dim(3), AffineSL.dim(3)] == [6, 5, 12, 11]


def test_bases() -> None:
    w = torch.randn(10, 3, generator=_gen(), dtype=DT)
    torch.testing.assert_close(so_hat(w, 3), skew(w), atol=0, rtol=0)  # n = 3: the rotation vector of SO3
    theta = torch.tensor([0.3], dtype=DT)
    torch.testing.assert_close(rotation_exp(theta, 2), torch.tensor([[math.cos(0.3), -math.sin(0.3)],
                                                                     [math.sin(0.3), math.cos(0.3)]], dtype=DT))
    for n in (2, 3, 4, 5):
        w = torch.randn(7, n * (n - 1) // 2, generator=_gen(n), dtype=DT)
        W = so_hat(w, n)
        torch.testing.assert_close(W, -W.mT, atol=0, rtol=0)
        torch.testing.assert_close(so_vee(W), w, atol=1e-15, rtol=0)
        for traceless in (False, True):
            s = torch.randn(7, n * (n + 1) // 2 - traceless, generator=_gen(n), dtype=DT)
            S = sym_hat(s, n, traceless=traceless)
            torch.testing.assert_close(S, S.mT, atol=0, rtol=0)
            torch.testing.assert_close(sym_vee(S, traceless=traceless), s, atol=1e-14, rtol=0)
            torch.testing.assert_close(torch.linalg.matrix_norm(S), torch.linalg.vector_norm(s, dim=-1))  # isometry
            if traceless:
                assert S.diagonal(dim1=-2, dim2=-1).sum(-1).abs().max() < 1e-14


@pytest.mark.parametrize("special", [False, True], ids=["glplus", "sl"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_coordinates_round_trip(n: int, special: bool) -> None:
    x = _coords(n, 100, special)
    A = from_coordinates(x, n, special=special)
    assert A.shape == (100, n, n) and (torch.linalg.det(A) > 0).all()
    torch.testing.assert_close(to_coordinates(A, special=special), x, atol=1e-10, rtol=0)
    # G -> R^d -> G for any element (rotation angles anywhere in [0, π])
    B = (sample_sl if special else sample_glplus)(n, (100,), generator=_gen(1), dtype=DT).matrix
    torch.testing.assert_close(from_coordinates(to_coordinates(B, special=special), n, special=special), B,
                               atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_rotation_log_is_the_principal_logarithm(n: int) -> None:
    R = sample_rotation(n, (500,), generator=_gen(n), dtype=DT)
    w = rotation_log(R)
    torch.testing.assert_close(rotation_exp(w, n), R, atol=1e-13, rtol=0)
    assert torch.linalg.matrix_norm(so_hat(w, n), ord=2).max() <= math.pi + 1e-12
    w32 = rotation_log(R.float())
    assert (rotation_exp(w32, n) - R.float()).abs().max() < 1e-5
    # angle π and near it, also with an eigenvalue -1 of multiplicity 4
    specials = [torch.diag(torch.tensor([-1.0, -1.0] + [1.0] * (n - 2), dtype=DT))]
    if n >= 4:
        specials.append(torch.diag(torch.tensor([-1.0] * 4 + [1.0] * (n - 4), dtype=DT)))
    omega = torch.zeros(n * (n - 1) // 2, dtype=DT)
    omega[0] = math.pi - 1e-9
    specials.append(rotation_exp(omega, n))
    for Rs in specials:
        torch.testing.assert_close(rotation_exp(rotation_log(Rs), n), Rs, atol=1e-13, rtol=0)


def test_sym_expm_logm() -> None:
    S = sym_hat(torch.randn(50, 10, generator=_gen(), dtype=DT), 4)
    P = sym_expm(S)
    lam, V = torch.linalg.eigh(S)
    torch.testing.assert_close(P, (V * lam.exp()[..., None, :]) @ V.mT, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(sym_logm(P), S, atol=1e-12, rtol=0)
    torch.testing.assert_close(sym_logm(torch.eye(4, dtype=DT)), torch.zeros(4, 4, dtype=DT), atol=0, rtol=0)


# ------------------------------------------------------------------ gradients


def _sym(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + x.mT)


GRAD_POINTS = {
    "identity": lambda: torch.eye(3, dtype=DT),
    "scalar": lambda: 2.0 * torch.eye(3, dtype=DT),
    "repeated": lambda: _rotation_with_spectrum([2.0, 2.0, 0.5]),
    "near_repeated": lambda: _rotation_with_spectrum([1.0, 1.0 + 1e-9, 0.7]),
    "random": lambda: _glplus(3, seed=3) + 2 * torch.eye(3, dtype=DT),
}


def _check_gradient(fn, x: torch.Tensor) -> None:
    """Autograd Jacobian is finite and equals central finite differences (float64)."""
    x = x.clone().requires_grad_()
    auto = torch.autograd.functional.jacobian(fn, x)
    assert torch.isfinite(auto).all()
    step, flat = 1e-6, x.detach().reshape(-1)
    columns = []
    for k in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[k] = step
        columns.append((fn((flat + e).reshape(x.shape)) - fn((flat - e).reshape(x.shape))) / (2 * step))
    finite = torch.stack(columns, dim=-1).reshape(auto.shape)
    torch.testing.assert_close(auto, finite, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("point", list(GRAD_POINTS))
def test_gradients_match_finite_differences(point: str) -> None:
    A = GRAD_POINTS[point]()
    _check_gradient(lambda a: polar_decompose(a)[0], A)
    _check_gradient(lambda a: polar_decompose(a)[1], A)
    _check_gradient(lambda a: to_coordinates(a), A)
    P = A.mT @ A  # SPD with the squared spectrum: I, 4I, repeated pairs
    _check_gradient(lambda p: sym_logm(_sym(p)), P)
    _check_gradient(lambda p: sym_expm(_sym(p)), _sym(A))
    _check_gradient(lambda p: haar_log_density(_sym(p)), _sym(A))


def test_gradients_at_identity_are_the_exact_projections() -> None:
    """At A = I: dR = skew(dA), dS = sym(dA) (finite and non-zero, not merely finite)."""
    eye = torch.eye(3, dtype=DT)
    jac_r = torch.autograd.functional.jacobian(lambda a: polar_decompose(a)[0], eye)
    jac_s = torch.autograd.functional.jacobian(lambda a: polar_decompose(a)[1], eye)
    basis = torch.eye(9, dtype=DT).reshape(9, 3, 3)
    torch.testing.assert_close(jac_r.reshape(3, 3, 9).permute(2, 0, 1), 0.5 * (basis - basis.mT), atol=1e-15, rtol=0)
    torch.testing.assert_close(jac_s.reshape(3, 3, 9).permute(2, 0, 1), 0.5 * (basis + basis.mT), atol=1e-15, rtol=0)
    jac_log = torch.autograd.functional.jacobian(lambda p: sym_logm(_sym(p)), eye)
    torch.testing.assert_close(jac_log.reshape(3, 3, 9).permute(2, 0, 1), 0.5 * (basis + basis.mT), atol=1e-15,
                               rtol=0)
    # float32: finite gradients at the identity and at repeated eigenvalues
    for A in (torch.eye(3), 3.0 * torch.eye(3)):
        A = A.requires_grad_()
        R, S = polar_decompose(A)
        (R.sum() + S.sum() + sym_logm(_sym(A)).sum()).backward()
        assert torch.isfinite(A.grad).all()


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_rotation_coordinates_gradients(n: int) -> None:
    """d Log(Exp(ω)) / dω = I at ω = 0, tiny ω, random ω and isoclinic rotations (repeated angles)."""
    d = n * (n - 1) // 2
    cases = [torch.zeros(d, dtype=DT), 1e-8 * torch.ones(d, dtype=DT),
             0.4 * torch.randn(d, generator=_gen(n), dtype=DT)]
    if n == 4:
        cases.append(torch.tensor([0.7, 0, 0, 0, 0, 0.7], dtype=DT))  # planes (0,1), (2,3), equal angles
    for w in cases:
        jac = torch.autograd.functional.jacobian(lambda v: rotation_log(rotation_exp(v, n)), w)
        torch.testing.assert_close(jac, torch.eye(d, dtype=DT), atol=1e-10, rtol=0)


# ------------------------------------------------------------------ Haar measure


@pytest.mark.parametrize("n", [2, 3])
def test_haar_density_is_the_jacobian_of_the_chart(n: int) -> None:
    """dA / det(A)^n = 2^(n(n-1)/4) · dΩ · h(S) ds, computed from the Jacobian of the chart (ω, s) -> A."""
    d = n * (n - 1) // 2
    logs, wrong = [], []
    for x in _coords(n, 12, seed=5):
        jac = torch.autograd.functional.jacobian(lambda v: from_coordinates(v, n).reshape(-1), x)
        A = from_coordinates(x, n)
        w = x[:d]
        R = rotation_exp(w, n)
        jac_r = torch.autograd.functional.jacobian(lambda v: rotation_exp(v, n), w)  # [n, n, d]
        haar_so = torch.linalg.det(so_vee(torch.einsum("ji,jkd->dik", R, jac_r))).abs()  # vee(Rᵀ ∂R/∂ω_k)
        log_density = torch.linalg.det(jac).abs().log() - n * torch.linalg.det(A).log() - haar_so.log()
        S = sym_hat(x[d:], n)
        logs.append(log_density - haar_log_density(S))
        lam = torch.linalg.eigvalsh(S)
        gaps = (lam[:, None] - lam[None, :]).triu(1)
        wrong.append(log_density - torch.log(torch.cosh(gaps / 2)).sum())  # the invariant measure of Pos(n) at P
    torch.testing.assert_close(torch.stack(logs), torch.full((12,), n * (n - 1) / 4 * math.log(2), dtype=DT),
                               atol=1e-9, rtol=0)
    assert torch.stack(wrong).std() > 1e-2  # a wrong density is not constant


def test_haar_log_density_values() -> None:
    lam = torch.tensor([0.0, 1e-9, 0.3, 0.5, 2.0, 30.0, 800.0], dtype=DT)
    S = torch.diag_embed(torch.stack([lam, torch.zeros_like(lam)], -1))
    d = lam.clamp_min(1e-300)
    expected = torch.where(lam < 20, torch.log(torch.sinh(d) / d), d - math.log(2) - torch.log(d))
    torch.testing.assert_close(haar_log_density(S), torch.where(lam == 0, 0.0, expected), atol=1e-15, rtol=1e-14)
    # invariant under conjugation and under adding a multiple of the identity
    S = sym_hat(torch.randn(20, 6, generator=_gen(), dtype=DT), 3)
    Q = sample_rotation(3, (20,), generator=_gen(1), dtype=DT)
    torch.testing.assert_close(haar_log_density(Q @ S @ Q.mT + 0.7 * torch.eye(3, dtype=DT)), haar_log_density(S))


def test_rotation_sampler_is_haar() -> None:
    R = sample_rotation(3, (20000,), generator=_gen(), dtype=DT)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(20000, dtype=DT), atol=1e-13, rtol=0)
    # the first column is uniform on S², so each coordinate is uniform on [-1, 1] (Archimedes)
    for entry in (R[:, 0, 0], R[:, 2, 0], R[:, 1, 2]):
        assert stats.kstest(entry.numpy(), "uniform", args=(-1, 2)).pvalue > 1e-3
    angle = rotation_log(sample_rotation(2, (20000,), generator=_gen(1), dtype=DT))[:, 0]
    assert stats.kstest(angle.numpy(), "uniform", args=(-math.pi, 2 * math.pi)).pvalue > 1e-3


def _weighted_ks(x: torch.Tensor, log_w: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Two-sample KS of a weighted sample x against an unweighted y; p-value with Kish's effective size."""
    w = torch.softmax(log_w, 0)
    values = torch.cat([x, y])
    steps = torch.cat([w, -torch.full_like(y, 1 / len(y))])
    distance = steps[values.argsort()].cumsum(0).abs().max().item()
    n_x, n_y = 1 / (w * w).sum().item(), len(y)
    return distance, float(stats.kstwobign.sf(distance * math.sqrt(n_x * n_y / (n_x + n_y))))


def _log_singular_value_spread(A: torch.Tensor) -> torch.Tensor:
    log_sv = torch.log(torch.linalg.svdvals(A))
    return log_sv[..., 0] - log_sv[..., -1]


@pytest.mark.parametrize(("n", "special", "scale", "tau"), [(2, False, 1.0, 0.8), (2, True, 1.5, 1.2),
                                                            (3, True, 1.0, 0.8)])
def test_haar_weights_give_a_known_distribution(n: int, special: bool, scale: float, tau: float) -> None:
    """Reweighted draws of the sampler match exact draws of a distribution built without the Haar theory.

    Haar is dA / det(A)^n, so the density exp(-‖A‖²/2) det(A)^n ψ with respect to Haar is a Gaussian
    matrix conditioned on det > 0 and accepted with probability ψ = exp(-‖log σ(A)‖² / 2τ²). On SL(n),
    A / det(A)^(1/n) of such a Gaussian has density ‖A‖^(-n²) (integrate the scale out) times ψ. ψ keeps
    the importance weights bounded. A KS test on the spread of the log singular values (what h
    depends on) accepts the weights, and rejects them without the density correction h.
    """
    gen = _gen(7 * n + special)
    exact = []
    while sum(len(e) for e in exact) < 20000:
        Z = torch.randn(20000, n, n, generator=gen, dtype=DT)
        Z[:, 0] *= torch.linalg.det(Z).sign()[:, None]
        if special:
            Z = Z / torch.linalg.det(Z).pow(1 / n)[:, None, None]
        psi = torch.exp(-(torch.log(torch.linalg.svdvals(Z)) ** 2).sum(-1) / (2 * tau**2))
        exact.append(Z[torch.rand(20000, generator=gen, dtype=DT) < psi])
    exact = torch.cat(exact)[:20000]

    draw = (sample_sl if special else sample_glplus)(n, (20000,), scale=scale, generator=gen, dtype=DT)
    A = draw.matrix
    norm_sq = (A * A).sum((-2, -1))
    log_target = -(n * n / 2) * norm_sq.log() if special else -norm_sq / 2 + n * torch.logdet(A)
    log_target = log_target - (draw.log_spd**2).sum((-2, -1)) / (2 * tau**2)
    spread, reference = _log_singular_value_spread(A), _log_singular_value_spread(exact)

    distance, p = _weighted_ks(spread, draw.log_weight + log_target, reference)
    assert p > 1e-2, (distance, p)
    uncorrected = draw.log_weight - haar_log_density(draw.log_spd)
    distance_wrong, p_wrong = _weighted_ks(spread, uncorrected + log_target, reference)
    assert p_wrong < 1e-6 and distance_wrong > 3 * distance, (distance_wrong, p_wrong)


def test_affine_left_haar_weights() -> None:
    """Left Haar of R^n ⋊ GL+(n) is db dμ(A) / det A: reweighted to exp(-‖A‖²/2 - ‖b‖²/2) ψ(A) db dA it
    matches exact Gaussian draws in log det A, and a weight without 1/det A fails."""
    gen, n, tau = _gen(11), 2, 0.8
    exact = []
    while sum(len(e) for e in exact) < 20000:
        Z = torch.randn(20000, n, n, generator=gen, dtype=DT)
        Z[:, 0] *= torch.linalg.det(Z).sign()[:, None]
        psi = torch.exp(-(torch.log(torch.linalg.svdvals(Z)) ** 2).sum(-1) / (2 * tau**2))
        exact.append(Z[torch.rand(20000, generator=gen, dtype=DT) < psi])
    exact = torch.logdet(torch.cat(exact)[:20000])
    X, log_w = sample_affine(n, (20000,), translation_scale=1.5, generator=gen, dtype=DT)
    A, b = X.linear, X.translation
    _, S = X.polar()
    log_target = (-(A * A).sum((-2, -1)) / 2 - (b * b).sum(-1) / 2 + (n + 1) * torch.logdet(A)
                  - (S**2).sum((-2, -1)) / (2 * tau**2))
    assert _weighted_ks(torch.logdet(A), log_w + log_target, exact)[1] > 1e-2
    assert _weighted_ks(torch.logdet(A), log_w + torch.logdet(A) + log_target, exact)[1] < 1e-6


# ------------------------------------------------------------------ affine groups


@pytest.mark.parametrize("G", [AffineGLPlus, AffineSL], ids=lambda G: G.__name__)
@pytest.mark.parametrize("n", [2, 3])
class TestAffine:
    def test_axioms(self, G: type, n: int) -> None:
        X, Y, Z = (G.random(n, (16,), generator=_gen(s), dtype=DT) for s in range(3))
        close = lambda a, b: torch.testing.assert_close(a.as_matrix(), b.as_matrix(), atol=1e-10, rtol=1e-10)  # noqa: E731
        close((X @ Y) @ Z, X @ (Y @ Z))
        E = G.identity(n, (16,), dtype=DT)
        close(X @ E, X)
        close(E @ X, X)
        close(X @ X.inverse(), E)
        close(X.inverse() @ X, E)
        torch.testing.assert_close((X @ Y).as_matrix(), X.as_matrix() @ Y.as_matrix(), atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(X.inverse().as_matrix(), torch.linalg.inv(X.as_matrix()), atol=1e-10,
                                   rtol=1e-10)
        close(G.from_matrix(X.as_matrix()), X)
        if G is AffineSL:
            torch.testing.assert_close(torch.linalg.det((X @ Y @ Z.inverse()).linear), torch.ones(16, dtype=DT))

    def test_act_is_the_matrix_action(self, G: type, n: int) -> None:
        X, Y = G.random(n, (16,), generator=_gen(0), dtype=DT), G.random(n, (16,), generator=_gen(1), dtype=DT)
        p = torch.randn(16, n, generator=_gen(2), dtype=DT)
        homogeneous = torch.cat([p, torch.ones(16, 1, dtype=DT)], -1)
        torch.testing.assert_close(X.act(p), (X.as_matrix() @ homogeneous[..., None])[..., :n, 0])
        torch.testing.assert_close(X.act(p), (X.linear @ p[..., None])[..., 0] + X.translation)
        torch.testing.assert_close((X @ Y).act(p), X.act(Y.act(p)))
        torch.testing.assert_close(X.inverse().act(X.act(p)), p)

    def test_coordinates_and_plumbing(self, G: type, n: int) -> None:
        X = G.random(n, (5, 1), generator=_gen(0), dtype=DT)
        Y = G.random(n, (1, 3), generator=_gen(1), dtype=DT)
        assert (X @ Y).shape == (5, 3) and X.n == n and X[2, 0].shape == ()
        assert X.act(torch.randn(7, 1, 1, n, dtype=DT)).shape == (7, 5, 1, n)
        assert (X @ Y).as_matrix().shape == (5, 3, n + 1, n + 1)
        coords = X.coordinates()
        assert coords.shape == (5, 1, G.dim(n))
        torch.testing.assert_close(G.from_coordinates(coords, n).as_matrix(), X.as_matrix(), atol=1e-10,
                                   rtol=1e-10)
        R, S = X.polar()
        torch.testing.assert_close(polar_compose(R, S), X.linear)
        assert X.to(torch.float32).dtype == torch.float32 and not X.detach().linear.requires_grad
        built = G(X.linear, X.translation[0])  # batch shapes (5, 1) and (1,) broadcast
        assert built.shape == (5, 1)


def test_affine_sl_projection_and_normalize() -> None:
    M = AffineGLPlus.random(3, (4,), generator=_gen(), dtype=DT).as_matrix()
    X = AffineSL.from_matrix(M, project=True)
    torch.testing.assert_close(torch.linalg.det(X.linear), torch.ones(4, dtype=DT))
    drifted = AffineSL._wrap(X.linear * (1 + 1e-6), X.translation)
    torch.testing.assert_close(torch.linalg.det(drifted.normalize().linear), torch.ones(4, dtype=DT), atol=1e-14,
                               rtol=0)


# ------------------------------------------------------------------ bad input


def test_bad_input_raises_naming_the_argument() -> None:
    flip = torch.diag(torch.tensor([1.0, -1.0], dtype=DT))
    with pytest.raises(ValueError, match="A must have det > 0"):
        polar_decompose(flip)
    with pytest.raises(ValueError, match="A must have det > 0"):
        polar_decompose(torch.zeros(2, 2, dtype=DT))
    with pytest.raises(ValueError, match="A must have det > 0"):
        to_coordinates(torch.stack([torch.eye(2, dtype=DT), flip]))
    with pytest.raises(ValueError, match=r"A must have shape \[\.\.\., n, n\]"):
        polar_decompose(torch.zeros(2, 3, dtype=DT))
    with pytest.raises(ValueError, match=r"A must have shape"):
        polar_decompose(torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match="A must be finite"):
        polar_decompose(torch.full((2, 2), float("nan"), dtype=DT))
    with pytest.raises(ValueError, match="A must be finite"):
        to_coordinates(torch.tensor([[1.0, float("inf")], [0.0, 1.0]], dtype=DT))
    with pytest.raises(TypeError, match="floating"):
        polar_decompose(torch.eye(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="A must have det = 1"):
        to_coordinates(2 * torch.eye(2, dtype=DT), special=True)
    with pytest.raises(ValueError, match="S must be symmetric"):
        sym_expm(torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=DT))
    with pytest.raises(ValueError, match="P must be positive definite"):
        sym_logm(torch.diag(torch.tensor([1.0, -1.0], dtype=DT)))
    with pytest.raises(ValueError, match="R must be a rotation"):
        polar_compose(2 * torch.eye(2, dtype=DT), torch.zeros(2, 2, dtype=DT))
    with pytest.raises(ValueError, match=r"S must have shape \[\.\.\., 2, 2\]"):
        polar_compose(torch.eye(2, dtype=DT), torch.zeros(3, 3, dtype=DT))
    with pytest.raises(ValueError, match="R must be a rotation"):
        rotation_log(flip)
    with pytest.raises(ValueError, match=r"coords must have shape \[\.\.\., 4\]"):
        from_coordinates(torch.zeros(3, dtype=DT), 2)
    with pytest.raises(ValueError, match=r"coords must have shape \[\.\.\., 3\]"):
        from_coordinates(torch.zeros(4, dtype=DT), 2, special=True)
    with pytest.raises(ValueError, match="coords must be finite"):
        from_coordinates(torch.full((4,), float("nan"), dtype=DT), 2)
    with pytest.raises(ValueError, match="n must be an integer"):
        sample_glplus(0)
    with pytest.raises(ValueError, match="scale must be"):
        sample_sl(2, scale=-1.0)
    with pytest.raises(ValueError, match="translation_scale must be"):
        sample_affine(2, translation_scale=float("nan"))


def test_affine_bad_input() -> None:
    eye, zero = torch.eye(2, dtype=DT), torch.zeros(2, dtype=DT)
    with pytest.raises(ValueError, match="linear must have det > 0"):
        AffineGLPlus(torch.diag(torch.tensor([1.0, -1.0], dtype=DT)), zero)
    with pytest.raises(ValueError, match="linear must have det = 1"):
        AffineSL(2 * eye, zero)
    with pytest.raises(ValueError, match=r"translation must have shape \[\.\.\., 2\]"):
        AffineGLPlus(eye, torch.zeros(3, dtype=DT))
    with pytest.raises(ValueError, match="translation must be finite"):
        AffineGLPlus(eye, torch.tensor([0.0, float("nan")], dtype=DT))
    with pytest.raises(ValueError, match=r"translation must be torch\.float64"):
        AffineGLPlus(eye, torch.zeros(2))
    with pytest.raises(ValueError, match="do not broadcast"):
        AffineGLPlus(eye.expand(3, 2, 2), torch.zeros(4, 2, dtype=DT))
    with pytest.raises(ValueError, match="last row"):
        AffineGLPlus.from_matrix(torch.ones(3, 3, dtype=DT))
    X = AffineGLPlus.identity(2, dtype=DT)
    with pytest.raises(ValueError, match="points must have shape"):
        X.act(torch.zeros(3, dtype=DT))
    with pytest.raises(TypeError, match="other must be a AffineGLPlus"):
        X @ AffineSL.identity(2, dtype=DT)
    with pytest.raises(ValueError, match="acts on R"):
        X @ AffineGLPlus.identity(3, dtype=DT)
