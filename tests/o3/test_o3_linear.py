"""Equivariant Linear against e3nn 0.6's o3.Linear, equivariance, gradients and errors."""

import pytest
import torch
from e3nn import o3

from liequiv.o3.irreps import Irreps
from liequiv.o3.linear import Linear

F64 = torch.float64

CASES = [
    ("8x0e + 4x1o", "16x0e + 2x1o"),
    ("3x0e+2x1o+3x2e+1x1e+2x0e", "2x1o+4x0e+1x2e+3x1e+2x0o"),  # repeated irreps, an output no input reaches
    ("4x1o", "2x1o+3x1o"),
    ("0x0e+2x2e", "0x1o+3x2e+1x0e"),
]


def _rand_o3(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=F64)).Q
    return q * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(F64)[:, None, None]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("path_normalization", ["element", "path"])
def test_equals_e3nn(case, biases, path_normalization):
    i, o = case
    if biases and case is CASES[3]:
        pytest.skip("e3nn 0.6 fails on a bias whose output block no path reaches")
    ours = Linear(i, o, biases=biases, path_normalization=path_normalization).to(F64)
    ref = o3.Linear(i, o, biases=biases, path_normalization=path_normalization).to(F64)
    assert (ours.weight_numel, ours.bias_numel) == (ref.weight_numel, ref.bias_numel)
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
        if ours.bias_numel:
            ours.bias.normal_()
            ref.bias.copy_(ours.bias)
    x = torch.randn(2, 5, ours.irreps_in.dim, dtype=F64)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)


def test_custom_instructions_and_per_sample_weights():
    i, o = CASES[1]
    instr = [(0, 1), (4, 1), (1, 0), (2, 2)]
    ours = Linear(i, o, biases=False, instructions=instr, weights="per_sample").to(F64)
    ref = o3.Linear(i, o, instructions=instr, shared_weights=False, internal_weights=False).to(F64)
    x = torch.randn(6, ours.irreps_in.dim, dtype=F64)
    w = torch.randn(6, ours.weight_numel, dtype=F64)
    torch.testing.assert_close(ours(x, w), ref(x, w), atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_equivariance(case):
    lin = Linear(*case).to(F64)
    with torch.no_grad():
        lin.bias.normal_()
    x = torch.randn(8, lin.irreps_in.dim, dtype=F64)
    R = _rand_o3(8)
    d_in, d_out = lin.irreps_in.D_from_matrix(R), lin.irreps_out.D_from_matrix(R)
    lhs = lin(torch.einsum("nij,nj->ni", d_in, x))
    rhs = torch.einsum("nij,nj->ni", d_out, lin(x))
    torch.testing.assert_close(lhs, rhs, atol=1e-12, rtol=0)


def test_gradcheck_and_shapes():
    lin = Linear("2x0e+1x1o+2x1o", "1x0e+2x1o").to(F64)
    x = torch.randn(3, lin.irreps_in.dim, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: lin(x, w, b), (x, lin.weight, lin.bias))
    assert lin(torch.randn(0, lin.irreps_in.dim, dtype=F64)).shape == (0, 7)
    assert lin(torch.randn(2, 3, lin.irreps_in.dim, dtype=F64)).shape == (2, 3, 7)
    empty = Linear("2x1o", "3x0e")
    assert torch.equal(empty(torch.randn(4, 6)), empty.bias.detach().expand(4, 3))
    assert set(lin.state_dict()) == {"weight", "bias"}


def test_errors():
    with pytest.raises(ValueError, match="only allowed on 0e"):
        Linear("1o", "1o", biases=[True])
    with pytest.raises(ValueError, match="connects"):
        Linear("1o", "1e", instructions=[(0, 0)])
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\]"):
        Linear("1o", "1o")(torch.randn(2, 4))
    lin = Linear("1o", "1o", weights="per_sample", biases=False)
    with pytest.raises(ValueError, match="per-sample"):
        lin(torch.randn(2, 3))
    assert Irreps(str(lin.irreps_out)) == lin.irreps_out
