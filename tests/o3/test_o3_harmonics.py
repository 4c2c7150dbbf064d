"""Spherical harmonics against e3nn 0.6 and closed forms, equivariance, gradients and the zero vector."""

import math

import pytest
import torch
from e3nn import o3

from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.wigner import wigner_D

torch.manual_seed(0)
X = torch.randn(64, 3, dtype=torch.float64)


@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_e3nn(normalization, normalize):
    ours = spherical_harmonics(8, X, normalize=normalize, normalization=normalization)
    ref = o3.spherical_harmonics(list(range(9)), X, normalize=normalize, normalization=normalization)
    assert ours.shape == (64, 81)
    # without normalize the values are homogeneous polynomials of |x| up to 8: compare relative to |x|^l
    scale = 1 if normalize else torch.linalg.vector_norm(X, dim=-1, keepdim=True).clamp_min(1) ** 8
    torch.testing.assert_close(ours / scale, ref / scale, atol=1e-10, rtol=0)


def test_closed_forms():
    x, y, z = X.unbind(-1)
    r = torch.linalg.vector_norm(X, dim=-1)
    Y = spherical_harmonics(2, X, normalize=False)
    torch.testing.assert_close(Y[:, 0], torch.ones_like(x), atol=0, rtol=0)
    torch.testing.assert_close(Y[:, 1:4], math.sqrt(3) * X, atol=1e-14, rtol=0)
    s15 = math.sqrt(15)
    expected = torch.stack(
        [s15 * x * z, s15 * x * y, math.sqrt(5) * (y**2 - (x**2 + z**2) / 2), s15 * y * z, s15 / 2 * (z**2 - x**2)], -1
    )
    torch.testing.assert_close(Y[:, 4:], expected, atol=1e-12, rtol=0)
    Yn = spherical_harmonics(2, X)
    torch.testing.assert_close(Yn[:, 4:], expected / r[:, None] ** 2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_sum_rules_lmax16(normalization):
    lmax = 16
    Y = spherical_harmonics(lmax, X, normalization=normalization)
    assert Y.shape == (64, (lmax + 1) ** 2)
    for l in range(lmax + 1):
        block = Y[:, l * l : (l + 1) ** 2]
        target = {"component": 2 * l + 1, "norm": 1, "integral": (2 * l + 1) / (4 * math.pi)}[normalization]
        torch.testing.assert_close(
            (block**2).sum(-1), torch.full((64,), float(target), dtype=torch.float64), atol=1e-10, rtol=1e-10
        )


def test_matches_e3nn_lmax12():
    # e3nn stops at l = 12; degrees 13..16 are checked by the sum rule and equivariance
    ours = spherical_harmonics(12, X[:8])
    ref = o3.spherical_harmonics(list(range(13)), X[:8], normalize=True, normalization="component")
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=0)


def test_equivariance():
    lmax = 16
    R = o3.rand_matrix(64, dtype=torch.float64)
    Y = spherical_harmonics(lmax, X)
    Yr = spherical_harmonics(lmax, torch.einsum("nij,nj->ni", R, X))
    for l in range(lmax + 1):
        s = slice(l * l, (l + 1) ** 2)
        torch.testing.assert_close(Yr[:, s], torch.einsum("nij,nj->ni", wigner_D(l, R), Y[:, s]), atol=1e-9, rtol=0)


def test_parity():
    Y, Ym = spherical_harmonics(6, X), spherical_harmonics(6, -X)
    sign = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=torch.float64) for l in range(7)])
    torch.testing.assert_close(Ym, Y * sign, atol=1e-12, rtol=0)


def test_gradcheck_and_gradgradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    for normalize in (True, False):

        def f(v, normalize=normalize):
            return spherical_harmonics(4, v, normalize=normalize)

        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))


def test_zero_vector():
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    Y = spherical_harmonics(5, x)
    expected = torch.zeros(2, 36, dtype=torch.float64)
    expected[:, 0] = 1
    torch.testing.assert_close(Y, expected, atol=0, rtol=0)
    (g,) = torch.autograd.grad(Y.sum(), x, create_graph=True)
    assert torch.isfinite(g).all()
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(gg).all()
    # mixed batch: the zero row does not poison the others
    v = torch.cat([torch.zeros(1, 3), torch.randn(3, 3)]).double().requires_grad_()
    (g,) = torch.autograd.grad(spherical_harmonics(3, v).pow(2).sum(), v)
    assert torch.isfinite(g).all()


def test_shapes_dtypes_and_float32():
    assert spherical_harmonics(0, X).shape == (64, 1)
    assert spherical_harmonics(3, X.reshape(4, 16, 3)).shape == (4, 16, 16)
    assert spherical_harmonics(3, X[:0]).shape == (0, 16)
    y32 = spherical_harmonics(8, X.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), spherical_harmonics(8, X), atol=1e-4, rtol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="normalization"):
        spherical_harmonics(2, X, normalization="unit")
    with pytest.raises(ValueError, match="lmax"):
        spherical_harmonics(-1, X)
    with pytest.raises(TypeError, match="lmax"):
        spherical_harmonics(2.0, X)
    with pytest.raises(ValueError, match="vectors"):
        spherical_harmonics(2, torch.randn(4, 2))
    with pytest.raises(TypeError, match="vectors"):
        spherical_harmonics(2, [[1.0, 0.0, 0.0]])
