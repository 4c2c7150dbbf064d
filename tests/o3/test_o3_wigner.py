"""Wigner-D, so(3) generators and Clebsch-Gordan coefficients against e3nn 0.6 and identities."""

import pytest
import torch
from e3nn import o3

from liequiv.o3.wigner import change_basis_real_to_complex, clebsch_gordan, so3_generators, wigner_D

torch.manual_seed(0)
ROT = o3.rand_matrix(20, dtype=torch.float64)


def _rot(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return o3.axis_angle_to_matrix(axis.double(), angle.double())


@pytest.mark.parametrize("l", range(8))
def test_generators_match_e3nn_and_commute(l):
    J = so3_generators(l)
    assert J.dtype == torch.float64 and J.shape == (3, 2 * l + 1, 2 * l + 1)
    # e3nn builds its generators from float32 constants
    torch.testing.assert_close(J, o3.so3_generators(l).double(), atol=1e-6, rtol=0)
    # [J_x, J_y] = J_z and cyclic; antisymmetric
    for a, b, c in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        torch.testing.assert_close(J[a] @ J[b] - J[b] @ J[a], J[c], atol=1e-12, rtol=0)
    torch.testing.assert_close(J, -J.transpose(-1, -2), atol=0, rtol=0)


def test_generators_degree1_cross_product():
    v = torch.randn(3, dtype=torch.float64)
    for a in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[a] = 1
        torch.testing.assert_close(so3_generators(1)[a] @ v, torch.linalg.cross(e, v), atol=1e-15, rtol=0)


def test_change_basis_unitary():
    for l in range(5):
        q = change_basis_real_to_complex(l)
        torch.testing.assert_close(q.conj().T @ q, torch.eye(2 * l + 1, dtype=torch.complex128), atol=1e-14, rtol=0)


def test_degree1_is_rotation_matrix():
    torch.testing.assert_close(wigner_D(1, ROT), ROT, atol=1e-12, rtol=0)
    assert wigner_D(0, ROT).shape == (20, 1, 1)


@pytest.mark.parametrize("l", [2, 3, 6, 10])
def test_homomorphism_and_orthogonality(l):
    R1, R2 = ROT[:10], ROT[10:]
    torch.testing.assert_close(wigner_D(l, R1 @ R2), wigner_D(l, R1) @ wigner_D(l, R2), atol=1e-10, rtol=0)
    D = wigner_D(l, R1)
    torch.testing.assert_close(
        D @ D.transpose(-1, -2), torch.eye(2 * l + 1, dtype=torch.float64).expand_as(D), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(wigner_D(l, R1.transpose(-1, -2)), D.transpose(-1, -2), atol=1e-10, rtol=0)


@pytest.mark.parametrize("l", range(7))
def test_matches_e3nn_angles(l):
    a, b, c = o3.matrix_to_angles(ROT)
    D = wigner_D(l, ROT)
    # e3nn's own wigner_D uses float32 generators: compare at 1e-5
    torch.testing.assert_close(D, o3.wigner_D(l, a, b, c).double(), atol=1e-5, rtol=0)
    # e3nn's formula (Y-X-Y Euler angles) with exact float64 generators: 1e-10
    J = so3_generators(l)

    def e(t, k):
        return torch.linalg.matrix_exp(t[:, None, None] * J[k])

    torch.testing.assert_close(D, e(a, 1) @ e(b, 0) @ e(c, 1), atol=1e-10, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, 1.0, torch.pi - 1e-7, torch.pi])
def test_special_angles(angle):
    axes = torch.nn.functional.normalize(torch.randn(6, 3, dtype=torch.float64), dim=-1)
    axes[0] = torch.tensor([1.0, 0, 0])
    axes[1] = torch.tensor([0, 0, -1.0])
    R = _rot(axes, torch.full((6,), angle, dtype=torch.float64))
    J = so3_generators(4)
    expected = torch.linalg.matrix_exp(angle * torch.einsum("na,aij->nij", axes, J))
    torch.testing.assert_close(wigner_D(4, R), expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(wigner_D(1, R), R, atol=1e-12, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, 1.0, torch.pi - 1e-6, torch.pi])
def test_gradient_along_rotations(angle):
    """Autograd of D along the tangent direction a^ R0 of the rotations equals the Lie derivative (a·J) D(R0),
    also at the identity and at angle π (where the rotation vector of R0 is not unique)."""
    g = torch.Generator().manual_seed(1)
    axes = torch.nn.functional.normalize(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=-1)
    R0 = _rot(axes, torch.full((4,), angle, dtype=torch.float64)).requires_grad_(True)
    a = torch.randn(4, 3, generator=g, dtype=torch.float64)
    x, y, z = a.unbind(-1)
    o = torch.zeros_like(x)
    a_hat = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).unflatten(-1, (3, 3))
    for l in (1, 2, 3):
        J = so3_generators(l)
        weights = torch.randn(4, 2 * l + 1, 2 * l + 1, generator=g, dtype=torch.float64)
        D = wigner_D(l, R0)
        (grad,) = torch.autograd.grad((weights * D).sum(), R0)
        directional = (grad * (a_hat @ R0.detach())).sum((-2, -1))
        expected = (weights * (torch.einsum("na,aij->nij", a, J) @ D.detach())).sum((-2, -1))
        torch.testing.assert_close(directional, expected, atol=1e-8, rtol=0)


def test_batch_shapes_and_dtype():
    R = ROT.reshape(4, 5, 3, 3)
    assert wigner_D(3, R).shape == (4, 5, 7, 7)
    assert wigner_D(3, R.float()).dtype == torch.float32
    torch.testing.assert_close(wigner_D(3, R.float()).double(), wigner_D(3, R), atol=1e-5, rtol=0)
    assert wigner_D(2, ROT[:0]).shape == (0, 5, 5)


def test_bad_input():
    with pytest.raises(ValueError, match="R"):
        wigner_D(1, torch.eye(2))
    with pytest.raises(ValueError, match="l"):
        wigner_D(-1, torch.eye(3))
    with pytest.raises(TypeError, match="l"):
        so3_generators(1.0)
    with pytest.raises(ValueError, match="triangle"):
        clebsch_gordan(1, 1, 3)


def _triples(lmax):
    ls = range(lmax + 1)
    return [(a, b, c) for a in ls for b in ls for c in range(abs(a - b), min(a + b, lmax) + 1)]


def test_cg_matches_e3nn():
    for l1, l2, l3 in _triples(5):
        C = clebsch_gordan(l1, l2, l3)
        assert C.dtype == torch.float64 and C.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
        torch.testing.assert_close(C, o3.wigner_3j(l1, l2, l3, dtype=torch.float64), atol=1e-10, rtol=0)


def test_cg_orthogonality_and_equivariance():
    R = ROT[:3]
    for l1, l2, l3 in _triples(4):
        C = clebsch_gordan(l1, l2, l3)
        d3 = 2 * l3 + 1
        # sum_{ij} C_ijk C_ijk' = delta_kk' / (2 l3 + 1)
        torch.testing.assert_close(
            torch.einsum("ijk,ijn->kn", C, C), torch.eye(d3, dtype=torch.float64) / d3, atol=1e-12, rtol=0
        )
        rotated = torch.einsum("zia,zjb,zkc,abc->zijk", wigner_D(l1, R), wigner_D(l2, R), wigner_D(l3, R), C)
        torch.testing.assert_close(rotated, C.expand_as(rotated), atol=1e-10, rtol=0)
    # different l3 are orthogonal
    C1, C2 = clebsch_gordan(2, 2, 2), clebsch_gordan(2, 2, 4)
    assert torch.einsum("ijk,ijn->kn", C1, C2[..., :5]).abs().max() < 1e-12


def test_cg_cached_but_fresh():
    a = clebsch_gordan(1, 1, 2)
    a.zero_()
    assert clebsch_gordan(1, 1, 2).abs().sum() > 0
    assert clebsch_gordan(1, 1, 0, dtype=torch.float32).dtype == torch.float32
