"""Norm against e3nn 0.6's o3.Norm, O(3) invariance, the gradient at zero and errors."""

import pytest
import torch
from e3nn import o3

from liequiv.o3.irreps import Irreps
from liequiv.o3.norm import Norm

F64 = torch.float64
IRREPS = ["2x0e + 3x1o + 1x2e + 2x1o", "1x0o + 0x1e + 4x3o + 1x1o + 1x1o", "5x1e"]


def _rand_o3(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=F64)).Q
    return q * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(F64)[:, None, None]


@pytest.mark.parametrize("irreps", IRREPS)
@pytest.mark.parametrize("squared", [False, True])
def test_equals_e3nn(irreps, squared):
    ours, ref = Norm(irreps, squared=squared), o3.Norm(irreps, squared=squared)
    assert str(ours.irreps_in) == str(ref.irreps_in)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    x = torch.randn(3, 4, ours.irreps_in.dim, dtype=F64)
    out = ours(x)
    assert out.shape == (3, 4, Irreps(irreps).num_irreps)
    torch.testing.assert_close(out, ref(x), atol=1e-12, rtol=0)


def test_values_by_hand():
    x = torch.tensor([3.0, 1.0, 2.0, 2.0, -4.0, 0.0, 0.0], dtype=F64)  # 1x0e + 2x1o
    torch.testing.assert_close(Norm("0e + 2x1o")(x), torch.tensor([3.0, 3.0, 4.0], dtype=F64), atol=1e-15, rtol=0)
    torch.testing.assert_close(Norm("0e + 2x1o", squared=True)(x), torch.tensor([9.0, 9.0, 16.0], dtype=F64),
                               atol=1e-15, rtol=0)


@pytest.mark.parametrize("irreps", IRREPS)
@pytest.mark.parametrize("squared", [False, True])
def test_invariance(irreps, squared):
    norm = Norm(irreps, squared=squared)
    R = _rand_o3(6, seed=1)
    assert (torch.linalg.det(R) < 0).any()
    D = norm.irreps_in.D_from_matrix(R)
    x = torch.randn(6, norm.irreps_in.dim, dtype=F64)
    rotated = torch.einsum("nij,nj->ni", D, x)
    assert not torch.allclose(rotated, x)
    torch.testing.assert_close(norm(rotated), norm(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(norm(rotated.float()), norm(x.float()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("squared", [False, True])
def test_zero_input_has_zero_gradient(squared):
    norm = Norm("2x0e + 1x1o + 1x2e", squared=squared)
    x = torch.zeros(2, norm.irreps_in.dim, dtype=F64, requires_grad=True)
    out = norm(x)
    assert torch.equal(out, torch.zeros(2, 4, dtype=F64))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, torch.zeros_like(x))


def test_partly_zero_input():
    norm = Norm("1x1o + 1x1o")
    x = torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0, 4.0], dtype=F64, requires_grad=True)
    out = norm(x)
    torch.testing.assert_close(out, torch.tensor([0.0, 5.0], dtype=F64), atol=1e-15, rtol=0)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.0, 0.0, 0.0, 0.6, 0.8], dtype=F64), atol=1e-15, rtol=0)


@pytest.mark.parametrize("squared", [False, True])
def test_gradcheck(squared):
    norm = Norm("2x0e + 1x1o + 1x2e + 1x0o", squared=squared)
    x = torch.randn(3, norm.irreps_in.dim, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))
    assert torch.autograd.gradgradcheck(norm, (x,))


def test_empty_irreps():
    norm = Norm("")
    assert norm.irreps_out == Irreps("")
    assert norm(torch.zeros(5, 0)).shape == (5, 0)


def test_errors():
    norm = Norm("2x1o")
    with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., 6\]"):
        norm(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="x must have shape"):
        norm(torch.tensor(1.0))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        norm([0.0] * 6)
    with pytest.raises(TypeError, match="squared must be a bool"):
        Norm("2x1o", squared="yes")
