"""TensorProduct (CG backend) against e3nn 0.6, equivariance under O(3), gradients and edge cases."""

import contextlib
import math

import pytest
import torch
from e3nn import o3

from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import (
    ChannelwiseTensorProduct,
    ElementwiseTensorProduct,
    FullyConnectedTensorProduct,
    TensorProduct,
    available_backends,
    derive_instructions,
)
from liequiv.symmetry.checker import assert_equivariant

F64 = torch.float64

# (irreps_in1, irreps_in2, irreps_out, connection): mixed multiplicities, parities, x2 blocks of mul > 1, outputs no
# path reaches, zero multiplicities
CASES = [
    ("3x0e+2x1o+3x2e+1x1e", "0e+1o+2e+2x1e", "3x0e+2x1o+3x2e+2x1e+3x1o+2x0o", "uvw"),
    ("3x0e+2x1o+3x2e+1x1e", "0e+1o+2e+2x1e", "3x0e+2x1o+3x2e+2x1e+3x1o+2x0o", "uvu"),
    ("2x0e+2x1o+2x2e", "2x0e+2x1o+2x1e", "2x0e+2x1o+2x2e+2x1e+2x0o+2x2o", "uuu"),
    ("4x0e+4x1o+4x2e+4x3o", "0e+1o+2e+3o", "4x0e+4x1o+4x1e+4x2e+4x2o+4x3o+4x3e+4x0o", "uvu"),
    ("5x1o+0x2e+2x0e", "1o+3x2e", "2x0e+5x1e+0x1o+3x2e", "uvw"),
    ("2x2e+3x1e", "2x1o+2x0e", "2x2e+3x1e+2x1o+3x0o+3x2o", "uvu"),
]


@contextlib.contextmanager
def _f64():
    """e3nn builds its CG buffers in the default dtype: build the references in float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _pair(i1, i2, io, instructions, weights, **kwargs):
    ours = TensorProduct(i1, i2, io, instructions, weights=weights, **kwargs).to(F64)
    with _f64():
        ref = o3.TensorProduct(i1, i2, io, instructions, shared_weights=weights != "per_sample",
                               internal_weights=False, **kwargs)
    return ours, ref


def _inputs(tp, batch=(5,), weights="shared", seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(*batch, tp.irreps_in1.dim, generator=g, dtype=dtype)
    x2 = torch.randn(*batch, tp.irreps_in2.dim, generator=g, dtype=dtype)
    shape = batch if weights == "per_sample" else ()
    w = torch.randn(*shape, tp.weight_numel, generator=g, dtype=dtype)
    return x1, x2, w


def _random_o3(n, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=dtype)).Q
    return q * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(dtype)[:, None, None]  # half improper


def _all_weighted(i1, i2, io, conn):
    return derive_instructions(Irreps(i1), Irreps(i2), Irreps(io), conn, True)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("weights", ["shared", "per_sample"])
@pytest.mark.parametrize("path_normalization", ["element", "path"])
def test_equals_e3nn(case, weights, path_normalization):
    i1, i2, io, conn = case
    instr = _all_weighted(i1, i2, io, conn)
    ours, ref = _pair(i1, i2, io, instr, weights, path_normalization=path_normalization)
    assert ours.weight_numel == ref.weight_numel
    x1, x2, w = _inputs(ours, weights=weights)
    torch.testing.assert_close(ours(x1, x2, w), ref(x1, x2, w), atol=1e-10, rtol=0)


@pytest.mark.parametrize("case", [c for c in CASES if c[3] != "uvw"])
def test_equals_e3nn_unweighted_and_mixed(case):
    i1, i2, io, conn = case
    instr = _all_weighted(i1, i2, io, conn)
    mixed = [x if k % 2 else (*x[:4], False) for k, x in enumerate(instr)]
    for instructions in (mixed, [(*x[:4], False) for x in instr]):
        ours, ref = _pair(i1, i2, io, instructions, "per_sample")
        x1, x2, w = _inputs(ours, weights="per_sample")
        w = w if ours.weight_numel else None
        torch.testing.assert_close(ours(x1, x2, w), ref(x1, x2, w), atol=1e-10, rtol=0)


def test_user_path_weights_and_irrep_normalization():
    i1, i2, io, conn = CASES[1]
    instr = [(*x, 0.5 + k) for k, x in enumerate(_all_weighted(i1, i2, io, conn))]
    for norm in ("component", "norm"):
        ours, ref = _pair(i1, i2, io, instr, "shared", irrep_normalization=norm)
        x1, x2, w = _inputs(ours)
        torch.testing.assert_close(ours(x1, x2, w), ref(x1, x2, w), atol=1e-10, rtol=0)
        assert [i.path_weight for i in ours.instructions] == pytest.approx([i.path_weight for i in ref.instructions])


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_channelwise_message_equals_e3nn(L):
    """The NequIP/MACE message (one block-diagonal product at low L, one product per x1 block above)."""
    i1 = Irreps([(8, (l, (-1) ** l)) for l in range(L + 1)])
    i2 = Irreps.spherical_harmonics(L)
    ours = ChannelwiseTensorProduct(i1, i2, lmax_out=L).to(F64)
    instr = [(i.i_in1, i.i_in2, i.i_out, i.connection_mode, i.has_weight) for i in ours.instructions]
    with _f64():
        ref = o3.TensorProduct(i1, i2, ours.irreps_out, instr, shared_weights=False, internal_weights=False)
        ref_s = o3.TensorProduct(i1, i2, ours.irreps_out, instr, internal_weights=False)
    assert ours.irreps_out == ours.irreps_out.sort().irreps
    x1, x2, w = _inputs(ours, batch=(7,), weights="per_sample")
    torch.testing.assert_close(ours(x1, x2, w), ref(x1, x2, w), atol=1e-10, rtol=0)
    # shared weights through the same kernels
    ours_s = ChannelwiseTensorProduct(i1, i2, lmax_out=L, weights="shared").to(F64)
    torch.testing.assert_close(ours_s(x1, x2, w[0]), ref_s(x1, x2, w[0]), atol=1e-10, rtol=0)


def test_convenience_classes_equal_e3nn():
    fc = FullyConnectedTensorProduct("3x0e+2x1o", "0e+1o", "2x0e+3x1o+1x1e").to(F64)
    with _f64():
        ref = o3.FullyConnectedTensorProduct("3x0e+2x1o", "0e+1o", "2x0e+3x1o+1x1e", internal_weights=False)
    x1, x2, _ = _inputs(fc)
    torch.testing.assert_close(fc(x1, x2), ref(x1, x2, fc.weight.detach()), atol=1e-10, rtol=0)

    el = ElementwiseTensorProduct("3x0e+2x1o", "1x1e+4x0e", ["1e", "0e", "1o"]).to(F64)
    with _f64():
        ref = o3.ElementwiseTensorProduct("3x0e+2x1o", "1x1e+4x0e", ["1e", "0e", "1o"])
    assert str(el.irreps_out) == str(ref.irreps_out)
    x1, x2, _ = _inputs(el)
    torch.testing.assert_close(el(x1, x2), ref(x1, x2), atol=1e-10, rtol=0)

    cw = ChannelwiseTensorProduct("4x0e+4x1o", "0e+1o", "4x0e+4x1o+4x1e")
    assert all(i.connection_mode == "uvu" for i in cw.instructions) and len(cw.instructions) == 5


def test_cross_product_path():
    tp = TensorProduct("1o", "1o", "1e", [(0, 0, 0, "uuu", False)], weights=None).to(F64)
    a, b = torch.randn(2, 10, 3, dtype=F64)
    out = tp(a, b)
    cross = torch.linalg.cross(a, b)
    ratio = (out * cross).sum() / (cross * cross).sum()
    torch.testing.assert_close(out, ratio * cross, atol=1e-12, rtol=0)
    assert ratio.item() == pytest.approx(1 / math.sqrt(2))  # component normalization: sqrt(3) C, C = ε / sqrt(6)


@pytest.mark.parametrize("case", [*CASES, ("8x0e+8x1o+8x2e", "0e+1o+2e", None, "channelwise")])
@pytest.mark.parametrize("weights", ["shared", "per_sample"])
def test_equivariance_o3(case, weights):
    i1, i2, io, conn = case
    if conn == "channelwise":
        tp = ChannelwiseTensorProduct(i1, i2, weights=weights).to(F64)
    else:
        tp = TensorProduct(i1, i2, io, connection=conn, weights=weights).to(F64)
    n = 6
    x1, x2, w = _inputs(tp, batch=(n,), weights=weights)
    R = _random_o3(n)
    d1, d2, d_out = (irreps.D_from_matrix(R) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    for dtype, tol in ((F64, 1e-10), (torch.float32, 1e-5)):
        args = [t.to(dtype) for t in (x1, x2, w, d1, d2, d_out)]
        a, b, ww, D1, D2, Do = args
        tp_d = tp.to(dtype)
        lhs = tp_d(torch.einsum("nij,nj->ni", D1, a), torch.einsum("nij,nj->ni", D2, b), ww)
        rhs = torch.einsum("nij,nj->ni", Do, tp_d(a, b, ww))
        scale = rhs.abs().max()
        assert (lhs - rhs).abs().max() <= tol * max(1.0, scale.item())


def test_equivariance_with_the_checker():
    tp = ChannelwiseTensorProduct("4x0e+4x1o+4x2e", "0e+1o+2e", weights="shared").to(F64)
    x1, x2, _ = _inputs(tp, batch=(3,))
    assert_equivariant(tp, (x1, x2), "O(3)", [str(tp.irreps_in1), str(tp.irreps_in2)], str(tp.irreps_out))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ChannelwiseTensorProduct("2x0e+2x1o+2x2e", "0e+1o+2e", lmax_out=2),  # fused single product
        lambda: ChannelwiseTensorProduct("2x0e+2x1o+2x2e+2x3o", "0e+1o+2e+3o", lmax_out=3),  # one per x1 block
        lambda: TensorProduct(*CASES[1][:3], connection="uvu", weights="per_sample"),  # classes
        lambda: TensorProduct("2x0e+1x1o", "0e+1o", "1x0e+2x1o+1x1e", connection="uvw", weights="per_sample"),
        lambda: TensorProduct(*CASES[2][:3], connection="uuu", weights="per_sample"),
        lambda: TensorProduct("2x1o+1x2e", "2x1o", "2x1o+1x2e+2x0e+1x1e", connection="uvu", weights="per_sample"),
    ],
)
def test_gradcheck_and_double_backward(make):
    tp = make().to(F64)
    x1, x2, w = _inputs(tp, batch=(2,), weights="per_sample")
    args = tuple(t.clone().requires_grad_() for t in (x1, x2, w))
    assert torch.autograd.gradcheck(tp, args)
    assert torch.autograd.gradgradcheck(tp, args)


def test_shared_weight_gradcheck():
    tp = TensorProduct(*CASES[0][:3], connection="uvw").to(F64)
    x1, x2, w = _inputs(tp, batch=(2,))
    args = tuple(t.clone().requires_grad_() for t in (x1, x2, w))
    assert torch.autograd.gradcheck(tp, args)


def test_forces_through_the_product():
    """Energy E(r) = Σ f(x1 ⊗ Y(r)): second derivatives (force training) are finite and match finite differences."""
    tp = ChannelwiseTensorProduct("4x0e+4x1o", "0e+1o", lmax_out=1, weights="shared").to(F64)
    x1 = torch.randn(3, tp.irreps_in1.dim, dtype=F64)
    r = torch.randn(3, 3, dtype=F64, requires_grad=True)

    def energy(r):
        y = torch.cat([torch.ones_like(r[:, :1]), math.sqrt(3) * r], -1)  # l <= 1 harmonics (unnormalized r)
        return tp(x1, y).pow(2).sum()

    force = torch.autograd.grad(energy(r), r, create_graph=True)[0]
    loss = force.pow(2).sum()
    (g,) = torch.autograd.grad(loss, tp.weight)
    eps = 1e-6
    with torch.no_grad():
        d = torch.randn_like(tp.weight)
        tp.weight += eps * d
    lp = torch.autograd.grad(energy(r), r, create_graph=True)[0].pow(2).sum()
    with torch.no_grad():
        tp.weight -= 2 * eps * d
    lm = torch.autograd.grad(energy(r), r, create_graph=True)[0].pow(2).sum()
    assert ((lp - lm) / (2 * eps)).item() == pytest.approx((g * d).sum().item(), rel=1e-5)


def test_broadcasting_and_empty_batch():
    tp = ChannelwiseTensorProduct("2x0e+2x1o", "0e+1o").to(F64)
    x1 = torch.randn(4, 1, tp.irreps_in1.dim, dtype=F64)
    x2 = torch.randn(1, 3, tp.irreps_in2.dim, dtype=F64)
    w = torch.randn(tp.weight_numel, dtype=F64)
    out = tp(x1, x2, w.expand(4, 3, -1))
    assert out.shape == (4, 3, tp.irreps_out.dim)
    torch.testing.assert_close(out[2, 1], tp(x1[2, 0], x2[0, 1], w), atol=1e-12, rtol=0)
    assert tp(x1[:0, 0], x2[0, :0], w[None].expand(0, -1)).shape == (0, tp.irreps_out.dim)


def test_weight_layout_and_views():
    i1, i2, io, conn = CASES[0]
    tp = TensorProduct(i1, i2, io, connection=conn)
    ref = o3.TensorProduct(i1, i2, io, _all_weighted(i1, i2, io, conn))
    assert tp.weight_numel == ref.weight_numel == tp.weight.numel()
    w = torch.arange(tp.weight_numel, dtype=torch.float32)
    views = [tp.weight_view(w, i) for i in range(len(tp.instructions))]
    assert [tuple(v.shape) for v in views] == [i.path_shape for i in ref.instructions]
    torch.testing.assert_close(torch.cat([v.reshape(-1) for v in views]), w)


def test_dtype_round_trip_keeps_exact_tables():
    i1, i2, io, conn = CASES[1]
    tp = TensorProduct(i1, i2, io, connection=conn).float().double()
    with _f64():
        ref = o3.TensorProduct(i1, i2, io, _all_weighted(i1, i2, io, conn), internal_weights=False)
    x1, x2, _ = _inputs(tp)
    w = tp.weight.detach()
    torch.testing.assert_close(tp(x1, x2), ref(x1, x2, w), atol=1e-10, rtol=0)
    assert set(tp.state_dict()) == {"weight"}


def test_errors():
    with pytest.raises(ValueError, match="does not contain"):
        TensorProduct("1o", "1o", "1o", [(0, 0, 0, "uvw", True)])
    with pytest.raises(ValueError, match="uvu needs"):
        TensorProduct("2x1o", "1o", "3x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="out of range"):
        TensorProduct("1o", "1o", "0e", [(0, 1, 0, "uvw", True)])
    with pytest.raises(ValueError, match="connection mode"):
        TensorProduct("1o", "1o", "0e", [(0, 0, 0, "uvx", True)])
    with pytest.raises(ValueError, match="backend"):
        TensorProduct("1o", "1o", "0e", backend="nope")
    assert "cg" in available_backends()
    tp = TensorProduct("1o", "1o", "0e", weights="per_sample")
    with pytest.raises(ValueError, match="per-sample"):
        tp(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\]"):
        tp(torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 1))
    with pytest.raises(ValueError, match="weight must have shape"):
        tp(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 2))


@pytest.mark.parametrize("case", CASES)
def test_empty_batch_every_kernel(case):
    i1, i2, io, conn = case
    tp = TensorProduct(i1, i2, io, connection=conn, weights="per_sample")
    out = tp(torch.randn(0, tp.irreps_in1.dim), torch.randn(0, tp.irreps_in2.dim), torch.randn(0, tp.weight_numel))
    assert out.shape == (0, tp.irreps_out.dim)


@pytest.mark.parametrize("case", CASES[:3])
def test_chunked_batches_equal_unchunked(case):
    i1, i2, io, conn = case
    tp = TensorProduct(i1, i2, io, connection=conn, weights="per_sample").to(F64)
    x1, x2, w = (t.requires_grad_() for t in _inputs(tp, batch=(3, 7), weights="per_sample"))
    tp.chunk_bytes = 0
    ref = tp(x1, x2, w)
    g_ref = torch.autograd.grad(ref.pow(2).sum(), (x1, x2, w))
    tp.chunk_bytes = 1  # one row per chunk
    out = tp(x1, x2, w)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    for a, b in zip(torch.autograd.grad(out.pow(2).sum(), (x1, x2, w)), g_ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
