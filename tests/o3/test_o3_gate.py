"""Gate against e3nn 0.6's nn.Gate, normalization constants, equivariance, gradients and errors."""

import math

import pytest
import torch
from e3nn import nn as e3nn_nn
from scipy.integrate import quad

from liequiv.o3.gate import Gate
from liequiv.o3.irreps import Irreps

F64 = torch.float64
silu, sigmoid, tanh, relu = torch.nn.functional.silu, torch.sigmoid, torch.tanh, torch.relu

CASES = {
    "mixed": ("8x0e + 4x0o + 2x0o", [silu, tanh, torch.abs], "6x0e", [sigmoid], "4x1o + 2x2e"),
    "odd_gates": ("3x0e", [silu], "4x0e + 2x0o", [sigmoid, tanh], "4x1o + 2x2e"),  # a tanh 0o gate flips 2e -> 2o
    "split_blocks": ("2x0o", [tanh], "1x0e + 3x0o + 2x0e", [sigmoid, tanh, relu], "2x1e + 3x2o + 1x1o"),
    "identity_acts": ("2x0e + 0x0o + 3x0o", [None, torch.abs, None], "2x0o", [None], "2x1o"),
    "no_gated": ("5x0e + 1x0o", [relu, tanh], "", [], ""),
    "no_scalars": ("", [], "3x0e", [sigmoid], "3x3o"),
}


def _rand_o3(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=F64)).Q
    return q * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(F64)[:, None, None]


def _gaussian_second_moment(f):
    def integrand(z):
        return float(f(torch.tensor(z, dtype=F64))) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    return quad(integrand, -40, 40, points=[0], epsabs=1e-13, epsrel=1e-13, limit=200)[0]


@pytest.mark.parametrize("name", CASES)
def test_irreps_match_e3nn(name):
    ours, ref = Gate(*CASES[name]), e3nn_nn.Gate(*CASES[name])
    assert str(ours.irreps_in) == str(ref.irreps_in)
    assert str(ours.irreps_out) == str(ref.irreps_out)


def test_layout_and_parities():
    gate = Gate(*CASES["mixed"])
    assert gate.irreps_in == Irreps("6x0o + 14x0e + 4x1o + 2x2e")
    assert gate.irreps_out == Irreps("8x0e + 4x0o + 2x0e + 4x1o + 2x2e")  # tanh keeps 0o, abs makes 0e
    assert Gate(*CASES["odd_gates"]).irreps_out == Irreps("3x0e + 4x1o + 2x2o")


@pytest.mark.parametrize("name", CASES)
def test_equals_e3nn_with_same_constants(name):
    """Exact agreement once e3nn's Monte Carlo constants are replaced by ours."""
    ours, ref = Gate(*CASES[name]), e3nn_nn.Gate(*CASES[name])
    for mine, theirs in zip([*ours.act_scalars, *ours.act_gates], [*ref.act_scalars.acts, *ref.act_gates.acts]):
        if theirs is not None:
            theirs.cst, theirs._is_id = mine.cst, False
    x = torch.randn(4, 3, ours.irreps_in.dim, dtype=F64)
    out = ours(x)
    assert out.shape == (4, 3, ours.irreps_out.dim)
    torch.testing.assert_close(out, ref(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_close_to_e3nn(name):
    ours, ref = Gate(*CASES[name]), e3nn_nn.Gate(*CASES[name])
    x = torch.randn(50, ours.irreps_in.dim, dtype=F64)
    torch.testing.assert_close(ours(x), ref(x), rtol=5e-3, atol=1e-6)


@pytest.mark.parametrize("act", [silu, tanh, sigmoid, relu, torch.abs, torch.nn.functional.softplus])
def test_normalization_constant(act):
    gate = Gate("1x0e", [act], "", [], "")
    assert abs(gate.act_scalars[0].cst - _gaussian_second_moment(act) ** -0.5) < 1e-10
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert abs(gate(z[:, None]).pow(2).mean() - 1) < 2e-2


def test_exact_constants():
    """E[relu(z)^2] = 1/2 and E[z^2] = 1."""
    gate = Gate("1x0e + 1x0o", [relu, torch.abs], "", [], "")
    assert abs(gate.act_scalars[0].cst - math.sqrt(2)) < 1e-13
    assert abs(gate.act_scalars[1].cst - 1) < 1e-13


def test_values_by_hand():
    gate = Gate("1x0e", [None], "1x0e", [sigmoid], "1x1o")
    x = torch.tensor([0.5, 0.3, 1.0, -2.0, 3.0], dtype=F64)
    c = gate.act_gates[0].cst
    expected = torch.cat([x[:1], c * torch.sigmoid(x[1]) * x[2:]])
    torch.testing.assert_close(gate(x), expected, atol=1e-15, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_equivariance(name):
    gate = Gate(*CASES[name])
    R = _rand_o3(6, seed=2)
    D_in, D_out = gate.irreps_in.D_from_matrix(R), gate.irreps_out.D_from_matrix(R)
    x = torch.randn(6, gate.irreps_in.dim, dtype=F64)
    rotated_in = torch.einsum("nij,nj->ni", D_in, x)
    expected = torch.einsum("nij,nj->ni", D_out, gate(x))
    torch.testing.assert_close(gate(rotated_in), expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(gate(rotated_in.float()), expected.float(), atol=1e-5, rtol=1e-5)


def test_gradcheck():
    gate = Gate(*CASES["odd_gates"])
    x = torch.randn(3, gate.irreps_in.dim, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(gate, (x,))


def test_empty():
    gate = Gate("", [], "", [], "")
    assert gate.irreps_out == Irreps("")
    assert gate(torch.zeros(7, 0)).shape == (7, 0)


def test_refuses_activation_without_parity_on_odd_scalars():
    with pytest.raises(ValueError, match=r"act_scalars\[1\].*0o.*neither even nor odd"):
        Gate("2x0e + 2x0o", [relu, relu], "", [], "")
    with pytest.raises(ValueError, match=r"act_gates\[0\].*neither even nor odd"):
        Gate("", [], "2x0o", [silu], "2x1o")
    Gate("2x0e", [relu], "2x0e", [relu], "2x1o")  # any activation is fine on even scalars


def test_errors():
    with pytest.raises(ValueError, match="one gate per copy of irreps_gated"):
        Gate("", [], "3x0e", [sigmoid], "2x1o")
    with pytest.raises(ValueError, match=r"irreps_scalars must contain only scalars \(l = 0\)"):
        Gate("2x0e + 1x1o", [silu, None], "", [], "")
    with pytest.raises(ValueError, match="irreps_gates must contain only scalars"):
        Gate("", [], "1x1e", [None], "1x1o")
    with pytest.raises(ValueError, match="act_scalars needs one activation"):
        Gate("2x0e + 1x0e", [silu], "", [], "")
    with pytest.raises(TypeError, match="act_gates must be a list"):
        Gate("", [], "1x0e", sigmoid, "1x1o")
    with pytest.raises(TypeError, match=r"act_scalars\[0\] must be callable or None"):
        Gate("1x0e", ["silu"], "", [], "")
    with pytest.raises(ValueError, match="second moment"):
        Gate("1x0e", [torch.zeros_like], "", [], "")
    gate = Gate(*CASES["mixed"])
    with pytest.raises(ValueError, match=rf"x must have shape \[\.\.\., {gate.irreps_in.dim}\]"):
        gate(torch.zeros(2, gate.irreps_in.dim + 1))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        gate(None)
