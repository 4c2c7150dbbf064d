"""The Gaunt backends of TensorProduct: equal to each other, to the CG backend with Gaunt path weights, equivariant
under O(3), differentiable, and refusing the paths they cannot compute."""

import itertools
import math

import pytest
import torch
from sympy.physics.wigner import wigner_3j

from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.gaunt import gaunt_path_factor
from liequiv.o3.tensor_product.interface import ChannelwiseTensorProduct, TensorProduct, derive_instructions

F64 = torch.float64
GAUNT = ["gaunt_grid", "gaunt_fourier"]


def _signal(mul: int, lmax: int, parity: int = 1) -> str:
    """``mul x 0e + mul x 1o + ...`` (``parity=-1``: ``0o + 1e + ...``)."""
    return "+".join(f"{mul}x{l}{'e' if parity * (-1) ** l > 0 else 'o'}" for l in range(lmax + 1))


# (irreps_in1, irreps_in2, irreps_out, connection): the full product, unequal degrees, pseudo-parity signals,
# blocks out of order with an unreached output block, the channel-wise message x ⊗ Y(r̂)
CASES = [
    (_signal(3, 3), _signal(3, 3), _signal(3, 3), "uuu"),
    (_signal(2, 2), _signal(2, 3), _signal(2, 4), "uuu"),
    (_signal(2, 2, -1), _signal(2, 2), _signal(2, 3, -1), "uuu"),
    ("2x2e+2x0e+2x1o", "2x1o+2x0e", "2x1o+2x3o+2x2e+2x0o", "uuu"),
    (_signal(4, 2), _signal(1, 2), _signal(4, 2), "uvu"),
]


def _tp(case, backend, dtype=F64, weighted=False):
    i1, i2, io, conn = case
    instr = derive_instructions(Irreps(i1), Irreps(i2), Irreps(io), conn, weighted)
    return TensorProduct(i1, i2, io, instr, weights="shared" if weighted else None, backend=backend).to(dtype)


def _inputs(tp, n=5, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, tp.irreps_in1.dim, generator=g, dtype=dtype),
            torch.randn(n, tp.irreps_in2.dim, generator=g, dtype=dtype))


def _random_o3(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=F64)).Q
    return q * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(F64)[:, None, None]  # half improper


@pytest.mark.parametrize("case", CASES)
def test_grid_equals_fourier_equals_cg_with_gaunt_weights(case):
    x1, x2 = _inputs(_tp(case, "cg"))
    grid, fourier = (_tp(case, b)(x1, x2) for b in GAUNT)
    assert grid.abs().max() > 0.1
    torch.testing.assert_close(grid, fourier, atol=1e-12, rtol=0)
    # the CG backend, each path weighted by γ: G_{l1 l2 l3} = γ C_{l1 l2 l3}
    cg = _tp(case, "cg", weighted=True)
    irreps = (cg.irreps_in1, cg.irreps_in2, cg.irreps_out)
    w = [torch.full(ins.path_shape, gaunt_path_factor(*(ir[i].ir.l for ir, i in zip(irreps, ins[:3]))), dtype=F64)
         for ins in cg.instructions]
    torch.testing.assert_close(grid, cg(x1, x2, torch.cat([t.reshape(-1) for t in w])), atol=1e-12, rtol=0)


def test_gaunt_path_factor_closed_form():
    # component basis: G = sqrt(4π) ∫ Y Y Y of orthonormal harmonics, so
    # |γ| = sqrt((2l1+1)(2l2+1)(2l3+1)) |(l1 l2 l3; 0 0 0)| (sympy), 0 outside the triangle
    for l1, l2, l3 in itertools.product(range(5), repeat=3):
        expect = abs(float(wigner_3j(l1, l2, l3, 0, 0, 0))) * math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1))
        assert abs(gaunt_path_factor(l1, l2, l3)) == pytest.approx(expect, abs=1e-12, rel=1e-12)


def test_constant_signal_scales_the_other():
    # x1 = c Y_00: the product is c f2, so out_l = a_l c x2_l with the path constant a of output block l
    case = (_signal(2, 3), _signal(2, 3), _signal(2, 3), "uuu")
    for backend in GAUNT:
        tp = _tp(case, backend)
        x1, x2 = _inputs(tp)
        x1 = torch.zeros_like(x1)
        x1[:, :2] = torch.tensor([1.5, -0.5], dtype=F64)
        scale = {tp.irreps_out[i.i_out].ir.l: i.path_weight for i in tp.instructions}
        c = torch.tensor([1.5, -0.5], dtype=F64)[:, None]
        blocks = enumerate(tp.irreps_in2.slices())
        expect = [(x2[:, s].reshape(5, 2, -1) * c * scale[l]).reshape(5, -1) for l, s in blocks]
        torch.testing.assert_close(tp(x1, x2), torch.cat(expect, 1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", GAUNT)
def test_equivariance_o3(case, backend):
    tp = _tp(case, backend)
    n = 6
    x1, x2 = _inputs(tp, n)
    R = _random_o3(n)
    d1, d2, d_out = (irreps.D_from_matrix(R) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    for dtype, tol in ((F64, 1e-10), (torch.float32, 1e-5)):
        a, b, D1, D2, Do = (t.to(dtype) for t in (x1, x2, d1, d2, d_out))
        tp_d = tp.to(dtype)
        lhs = tp_d(torch.einsum("nij,nj->ni", D1, a), torch.einsum("nij,nj->ni", D2, b))
        rhs = torch.einsum("nij,nj->ni", Do, tp_d(a, b))
        assert (lhs - rhs).abs().max() <= tol * max(1.0, rhs.abs().max().item())


@pytest.mark.parametrize("backend", GAUNT)
def test_gradcheck_and_double_backward(backend):
    tp = _tp(CASES[1], backend)
    args = tuple(t.requires_grad_() for t in _inputs(tp, 2))
    assert torch.autograd.gradcheck(tp, args)
    assert torch.autograd.gradgradcheck(tp, args)


@pytest.mark.parametrize("backend", GAUNT)
def test_batches_chunks_and_float32(backend):
    tp = _tp(CASES[0], backend)
    x1, x2 = _inputs(tp, 40)
    ref = tp(x1, x2)
    tp.chunk_bytes = 1 << 10  # many chunks
    torch.testing.assert_close(tp(x1, x2), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(tp(x1.reshape(4, 10, -1), x2.reshape(4, 10, -1)).reshape(40, -1), ref)
    assert tp(x1[:0], x2[:0]).shape == (0, tp.irreps_out.dim)
    out32 = tp.float()(x1.float(), x2.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, atol=1e-5 * ref.abs().max().item(), rtol=0)


def test_cross_product_exists_in_cg_and_is_refused_by_gaunt():
    instr = [(0, 0, 0, "uuu", False)]
    a, b = torch.randn(2, 7, 3, dtype=F64)
    out = TensorProduct("1o", "1o", "1e", instr, weights=None).to(F64)(a, b)
    cross = torch.linalg.cross(a, b)
    torch.testing.assert_close(out, cross / 2**0.5, atol=1e-12, rtol=0)
    for backend in GAUNT:
        with pytest.raises(ValueError, match=r"1o x 1o -> 1e.*odd"):
            TensorProduct("1o", "1o", "1e", instr, weights=None, backend=backend)


@pytest.mark.parametrize("backend", GAUNT)
def test_refusals_name_the_problem(backend):
    sig = _signal(2, 2)
    full = derive_instructions(Irreps(sig), Irreps(sig), Irreps(sig), "uuu", False)
    with pytest.raises(ValueError, match="has weights"):
        TensorProduct(sig, sig, sig, connection="uuu", weights="shared", backend=backend)
    with pytest.raises(ValueError, match="mode 'uvw'"):
        TensorProduct(sig, sig, sig, backend=backend)
    with pytest.raises(ValueError, match=r"mode 'uvu' with mul2=2"):
        ChannelwiseTensorProduct(sig, sig, weights=None, backend=backend)
    with pytest.raises(ValueError, match=r"also computes 1o x 1o -> 2e"):
        TensorProduct(sig, sig, sig, [i for i in full if i[:3] != (1, 1, 2)], weights=None, backend=backend)
    with pytest.raises(ValueError, match="two blocks of degree 1"):
        TensorProduct("1x1o+1x1o", "1x0e", "1x1o", connection="uuu", weights=None, backend=backend)
    with pytest.raises(ValueError, match="one number of channels"):
        TensorProduct("1x0e+2x0e", "1x0e+2x0e", "1x0e+2x0e", [(0, 0, 0, "uuu", False), (1, 1, 1, "uuu", False)],
                      weights=None, backend=backend)
    with pytest.raises(ValueError, match="per output block"):
        TensorProduct(sig, sig, sig, [(*i, 1.0 + n) for n, i in enumerate(full)], weights=None, backend=backend)


def test_channelwise_message_with_spherical_harmonics():
    # x ⊗ Y(r̂) with mul2 = 1: each channel of x times the one signal Y; equal for the two backends and to cg with γ
    case = (_signal(3, 2), Irreps.spherical_harmonics(2), _signal(3, 2), "uvu")
    x1, x2 = _inputs(_tp(case, "cg"))
    outs = [_tp(case, b)(x1, x2) for b in GAUNT]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", [*CASES, (_signal(16, 3), _signal(16, 3), _signal(16, 3), "uuu")])
def test_compiled_grid_kernel_equals_torch_path(case, monkeypatch):
    """The CPU grid backend runs csrc/grid_product.cpp straight on e3nn's layout: same values, gradients and second
    derivatives as the plain torch path, with blocks of 16 signals inside one row (16 channels), across rows (fewer
    channels) and a tail."""
    import liequiv.o3.gaunt as gaunt_module

    if not gaunt_module.native_grid_product_available():
        pytest.skip("no C++ compiler")
    tp = _tp(case, "gaunt_grid")
    assert tp.backend.chunk_bytes == 0  # nothing to chunk: the kernel keeps each block's grid in the cache
    x1, x2 = _inputs(tp, n=37, seed=3)
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("LIEQUIV_NATIVE", flag)
        a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        out = tp(a, b)
        cot = torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape)
        grads = torch.autograd.grad(out, (a, b), cot, create_graph=True)
        second = torch.autograd.grad(sum((g * g).sum() for g in grads), (a, b))
        results.append((out, *grads, *second))
    assert results[0][0].abs().max() > 0.1
    for native, plain in zip(*results):
        torch.testing.assert_close(native, plain, atol=1e-10, rtol=1e-12)
    monkeypatch.setenv("LIEQUIV_NATIVE", "1")
    y32 = tp.float()(x1.float(), x2.float())
    torch.testing.assert_close(y32.double(), results[1][0], atol=1e-4, rtol=1e-5)


def test_torch_compile_runs_the_grid_kernel(monkeypatch):
    # inductor keeps liequiv::grid_product in its graph (the kernel runs); values and gradients equal eager and the
    # torch path, with x2 one signal shared by the channels (its gradient: per channel, then summed)
    import liequiv.o3.gaunt as gaunt_module
    from liequiv.o3 import kernels

    if not gaunt_module.native_grid_product_available():
        pytest.skip("no C++ compiler")
    torch._dynamo.reset()
    tp = _tp((_signal(3, 2), Irreps.spherical_harmonics(2), _signal(3, 2), "uvu"), "gaunt_grid")
    x1, x2 = (t.requires_grad_() for t in _inputs(tp, n=6, seed=4))

    def results(fn):
        out = fn(x1, x2)
        return out, *torch.autograd.grad(out, (x1, x2), torch.ones_like(out))

    with monkeypatch.context() as m:
        m.setenv("LIEQUIV_NATIVE", "0")
        reference = results(tp)
    eager = results(tp)
    calls = []
    real = kernels.kernel
    monkeypatch.setattr(kernels, "kernel", lambda source, name, dtype: calls.append(name) or real(source, name, dtype))
    compiled = results(torch.compile(tp, fullgraph=True))
    assert calls == ["grid_product"] * 3  # forward, and the gradients of x1 and x2
    for ours, eager_value, ref in zip(compiled, eager, reference):
        torch.testing.assert_close(ours, eager_value, atol=1e-12, rtol=0)
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    explained = torch._dynamo.explain(tp)(x1.detach(), x2.detach())
    assert explained.graph_break_count == 0 and "liequiv.grid_product" in explained.graphs[0].code
