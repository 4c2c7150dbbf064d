"""SO(3) and SE(3) against independent oracles (scipy, pypose, closed forms) and at their singular points."""

from __future__ import annotations

import math

import numpy as np
import pypose as pp
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from liequiv.groups import SE3, SE23, SO3, convert_quaternion

DT = torch.float64
EULER = [a + b + c for a in "xyz" for b in "xyz" for c in "xyz" if a != b and b != c]


def _rotations(n: int, seed: int = 0) -> Rotation:
    return Rotation.random(n, random_state=seed)


def test_conversions_match_scipy() -> None:
    r = _rotations(64)
    R = SO3(torch.tensor(r.as_quat(), dtype=DT))  # scipy is scalar-last, as we are
    torch.testing.assert_close(R.as_matrix(), torch.tensor(r.as_matrix()), atol=1e-12, rtol=0)
    torch.testing.assert_close(R.log(), torch.tensor(r.as_rotvec()), atol=1e-12, rtol=0)
    torch.testing.assert_close(SO3.exp(torch.tensor(r.as_rotvec())).as_matrix(), torch.tensor(r.as_matrix()),
                               atol=1e-12, rtol=0)
    from_m = SO3.from_matrix(torch.tensor(r.as_matrix()))
    torch.testing.assert_close(from_m.as_matrix(), torch.tensor(r.as_matrix()), atol=1e-12, rtol=0)
    assert (from_m.params[..., 3] >= 0).all()
    p = torch.randn(64, 3, dtype=DT)
    torch.testing.assert_close(R.act(p), torch.tensor(r.apply(p.numpy())), atol=1e-12, rtol=0)
    wxyz = R.as_quaternion("wxyz")
    torch.testing.assert_close(wxyz, torch.tensor(r.as_quat(scalar_first=True)), atol=0, rtol=0)
    torch.testing.assert_close(SO3.from_quaternion(wxyz, "wxyz").params, R.params, atol=1e-15, rtol=0)
    torch.testing.assert_close(convert_quaternion(wxyz, "wxyz", "xyzw"), R.params, atol=0, rtol=0)


@pytest.mark.parametrize("convention", EULER + [c.upper() for c in EULER])
def test_euler_matches_scipy(convention: str) -> None:
    r = _rotations(32, seed=1)
    angles = torch.tensor(r.as_euler(convention), dtype=DT)
    torch.testing.assert_close(SO3(torch.tensor(r.as_quat(), dtype=DT)).as_euler(convention), angles,
                               atol=1e-10, rtol=0)
    torch.testing.assert_close(SO3.from_euler(angles, convention).as_matrix(), torch.tensor(r.as_matrix()),
                               atol=1e-12, rtol=0)


def test_euler_gimbal_lock_round_trips() -> None:
    angles = torch.tensor([[0.3, math.pi / 2, 0.0], [0.3, -math.pi / 2, 0.0]], dtype=DT)
    R = SO3.from_euler(angles, "XYZ")
    torch.testing.assert_close(SO3.from_euler(R.as_euler("XYZ"), "XYZ").as_matrix(), R.as_matrix(),
                               atol=1e-7, rtol=0)


def test_six_d_and_axis_angle() -> None:
    R = SO3.random((32,), dtype=DT)
    torch.testing.assert_close(SO3.from_6d(R.as_6d()).as_matrix(), R.as_matrix(), atol=1e-12, rtol=0)
    axis, angle = R.as_axis_angle()
    torch.testing.assert_close(SO3.from_axis_angle(axis, angle).as_matrix(), R.as_matrix(), atol=1e-12, rtol=0)
    axis, angle = SO3.identity((2,), dtype=DT).as_axis_angle()
    assert torch.isfinite(axis).all() and (angle == 0).all()


def test_double_cover_and_log_range() -> None:
    R = SO3.random((256,), dtype=DT)
    torch.testing.assert_close(SO3(-R.params).log(), R.log(), atol=1e-12, rtol=0)
    assert (torch.linalg.vector_norm(R.log(), dim=-1) <= math.pi + 1e-12).all()


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, 1.0, math.pi - 1e-7, math.pi])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_special_angles_values_and_gradients(angle: float, dtype: torch.dtype) -> None:
    """exp/log/Jacobians at 0, tiny, π − 1e-7 and π: finite, accurate, and gradients that match finite differences."""
    axis = torch.tensor([0.48, -0.6, 0.64], dtype=DT)  # unit
    rotvec = axis * angle
    expected = Rotation.from_rotvec(rotvec.numpy())
    R = SO3.exp(rotvec.to(dtype))
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(R.as_matrix().double(), torch.tensor(expected.as_matrix()), atol=tol, rtol=0)
    log = R.log().double()
    if angle < math.pi - 1e-6:
        torch.testing.assert_close(log, rotvec, atol=tol * 10, rtol=0)
    else:  # at π the rotation vector is ±axis·π
        assert min((log - rotvec).abs().max(), (log + rotvec).abs().max()) < (1e-6 if dtype == torch.float32 else 1e-7)
    for fn in (SO3.jr, SO3.jl, SO3.jr_inv, SO3.jl_inv, SE3.jr, SE3.jr_inv):
        tau = rotvec if fn.__self__ is SO3 else torch.cat([torch.tensor([0.3, -0.2, 0.1], dtype=DT), rotvec])
        assert torch.isfinite(fn(tau.to(dtype))).all()
    if dtype == torch.float64:
        # gradients of Exp then Log, and of the Jacobians, match central finite differences
        def chain(v: torch.Tensor) -> torch.Tensor:
            se3 = SE3.exp(torch.cat([v, v])).log().sum()
            return SO3.exp(v).log().sum() + SO3.jr(v).sum() + SO3.jr_inv(v).sum() + se3

        v = rotvec.clone().requires_grad_()
        (grad,) = torch.autograd.grad(chain(v), v)
        h = 1e-6
        fd = torch.stack([(chain(rotvec + h * e) - chain(rotvec - h * e)) / (2 * h) for e in torch.eye(3, dtype=DT)])
        assert torch.isfinite(grad).all()
        if angle < math.pi - 1e-6:  # at π, Log jumps between ±π·axis, so only finiteness is asked there
            torch.testing.assert_close(grad, fd, atol=1e-6, rtol=1e-6)


def test_log_of_exact_pi_rotations_is_finite_with_gradient() -> None:
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0]], dtype=DT, requires_grad=True)
    log = SO3(q).log()
    torch.testing.assert_close(torch.linalg.vector_norm(log, dim=-1), torch.full((2,), math.pi, dtype=DT))
    (grad,) = torch.autograd.grad(log.sum(), q)
    assert torch.isfinite(grad).all()


def test_float32_jacobians_match_float64() -> None:
    """The pypose failure mode: (1 − cos θ)/θ² cancels in float32 for θ ≲ 1e-4."""
    for scale in (1e-6, 1e-4, 1e-2, 1.0, 3.0):
        tau = torch.randn(100, 6, dtype=DT, generator=torch.Generator().manual_seed(0))
        tau = scale * tau / torch.linalg.vector_norm(tau[..., 3:], dim=-1, keepdim=True)
        for fn in (SE3.jr, SE3.jl_inv):
            torch.testing.assert_close(fn(tau.float()).double(), fn(tau), atol=2e-6 * max(1.0, scale), rtol=1e-5)


def test_se3_matches_pypose() -> None:
    tau = torch.randn(32, 6, dtype=DT)
    X = SE3.exp(tau)
    P = pp.se3(tau).Exp()
    torch.testing.assert_close(X.params, P.tensor(), atol=1e-12, rtol=0)
    torch.testing.assert_close(X.log(), P.Log().tensor(), atol=1e-10, rtol=0)
    Y = SE3.random((32,), dtype=DT)
    torch.testing.assert_close((X @ Y).as_matrix(), (P @ pp.SE3(Y.params)).matrix(), atol=1e-12, rtol=0)
    a = torch.randn(32, 6, dtype=DT)
    torch.testing.assert_close((X.adjoint() @ a[..., None])[..., 0], P.Adj(pp.se3(a)).tensor(), atol=1e-12, rtol=0)
    w = tau[..., 3:]
    torch.testing.assert_close(SO3.jr(w), pp.so3(w).Jr(), atol=1e-10, rtol=0)


def test_se3_closed_forms() -> None:
    """Pure translations and pure rotations."""
    t = torch.randn(8, 3, dtype=DT)
    X = SE3.exp(torch.cat([t, torch.zeros_like(t)], -1))
    torch.testing.assert_close(X.translation(), t, atol=0, rtol=0)
    w = torch.randn(8, 3, dtype=DT)
    Y = SE3.exp(torch.cat([torch.zeros_like(w), w], -1))
    torch.testing.assert_close(Y.rotation().as_matrix(), SO3.exp(w).as_matrix(), atol=1e-14, rtol=0)
    p = torch.randn(8, 3, dtype=DT)
    torch.testing.assert_close(SE3.from_rotation_translation(SO3.exp(w), t).act(p), SO3.exp(w).act(p) + t)


def test_from_matrix_rejects_and_projects() -> None:
    m = SO3.random((4,), dtype=DT).as_matrix()
    bad = m + 1e-3 * torch.randn(4, 3, 3, dtype=DT)
    with pytest.raises(ValueError, match="rotation matrix"):
        SO3.from_matrix(bad)
    with pytest.raises(ValueError, match="rotation matrix"):
        SO3.from_matrix(-m)  # det -1
    projected = SO3.from_matrix(bad, project=True).as_matrix()
    torch.testing.assert_close(projected.mT @ projected, torch.eye(3, dtype=DT).expand(4, 3, 3), atol=1e-12, rtol=0)
    assert (projected - m).abs().max() < 1e-2
    with pytest.raises(ValueError, match="bottom rows"):
        SE3.from_matrix(torch.ones(4, 4, dtype=DT))
    with pytest.raises(ValueError, match="Euler convention"):
        SO3.from_euler(torch.zeros(3), "xxy")
    with pytest.raises(ValueError, match="order"):
        SO3.from_quaternion(torch.ones(4), "wzyx")
    with pytest.raises(ValueError, match="unit norm"):
        SO3.from_quaternion(torch.ones(4), normalize=False)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=3),
    log_angle=st.floats(-12, math.log(math.pi)),
    seed=st.integers(0, 2**16),
)
def test_fuzz_shapes_and_angles(shape: list[int], log_angle: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(*shape, 3, generator=g, dtype=DT)
    axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True).clamp_min(1e-12)
    tau = torch.cat([torch.randn(*shape, 3, generator=g, dtype=DT), axis * math.exp(log_angle)], -1)
    X = SE3.exp(tau)
    assert X.shape == tuple(shape)
    assert np.isfinite(X.log().numpy()).all()
    torch.testing.assert_close(SE3.exp(X.log()).as_matrix(), X.as_matrix(), atol=1e-10, rtol=0)
    torch.testing.assert_close(SE3.jr(tau) @ SE3.jr_inv(tau), torch.eye(6, dtype=DT).expand(*shape, 6, 6),
                               atol=1e-8, rtol=0)


def test_compiles_without_graph_breaks() -> None:
    """Plain tensors and torch.where only: the whole chain compiles with fullgraph=True."""

    def chain(tau: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        X = SE3.exp(tau)
        Y = X.compose(X.inverse().plus(tau))  # (the `@` operator is not traced by dynamo: use compose)
        return Y.act(p) + Y.log()[..., :3] + (SE3.jr(tau) @ tau[..., None])[..., :3, 0]

    tau, p = torch.randn(16, 6), torch.randn(16, 3)
    compiled = torch.compile(chain, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(tau, p), chain(tau, p))


def test_se23_restricted_to_zero_velocity_is_se3() -> None:
    tau = torch.randn(16, 6, dtype=DT)
    ext = torch.cat([torch.zeros(16, 3, dtype=DT), tau], -1)  # (ρ_v = 0, ρ_p, θ)
    X, E = SE3.exp(tau), SE23.exp(ext)
    torch.testing.assert_close(E.velocity(), torch.zeros(16, 3, dtype=DT), atol=0, rtol=0)
    torch.testing.assert_close(E.position(), X.translation(), atol=1e-14, rtol=0)
    torch.testing.assert_close(SE23.jr(ext)[..., 3:, 3:], SE3.jr(tau), atol=1e-14, rtol=0)
    p = torch.randn(16, 3, dtype=DT)
    torch.testing.assert_close(E.act(p), X.act(p), atol=1e-14, rtol=0)
    m = E.as_matrix()
    torch.testing.assert_close(m[..., :3, 4], E.position(), atol=0, rtol=0)  # [[R, v, p], [0, 1, 0], [0, 0, 1]]


def test_se23_group_law() -> None:
    """(R1, v1, p1)(R2, v2, p2) = (R1 R2, v1 + R1 v2, p1 + R1 p2)."""
    a, b = SE23.random((8,), dtype=DT), SE23.random((8,), dtype=DT)
    c = a @ b
    rot = a.rotation().as_matrix()
    torch.testing.assert_close(c.velocity(), a.velocity() + (rot @ b.velocity()[..., None])[..., 0])
    torch.testing.assert_close(c.position(), a.position() + (rot @ b.position()[..., None])[..., 0])
