"""The compiled channel-wise kernel of the CG backend (``csrc/channelwise.cpp``) against its plain torch path."""

import pytest
import torch

from liequiv.o3 import kernels
from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import ChannelwiseTensorProduct, TensorProduct

F64 = torch.float64

pytestmark = pytest.mark.skipif(not kernels.available("channelwise"), reason="no C++ compiler (or LIEQUIV_NATIVE=0)")


def _message(L: int, mul: int, **kwargs) -> TensorProduct:
    """The NequIP/MACE message ``mul x (0e + 1o + ... + L) ⊗ Y(0..L) -> l_out <= L``."""
    irreps1 = Irreps([(mul, (l, (-1) ** l)) for l in range(L + 1)])
    return ChannelwiseTensorProduct(irreps1, Irreps.spherical_harmonics(L), lmax_out=L, **kwargs)


# channel-wise products: degrees 0..4, multiplicities 1..16, both parities, paths summed into one output block,
# unweighted and partly weighted paths
MAKERS = {
    "message_L1": lambda w: _message(1, 16, weights=w),
    "message_L4": lambda w: _message(4, 3, weights=w),
    "mixed_muls": lambda w: ChannelwiseTensorProduct("1x0e+3x1o+5x2e+2x3o+4x4e", "0e+1o+2e", weights=w),
    "odd": lambda w: ChannelwiseTensorProduct("7x0o+16x1e+2x3e", "1o+2o+0o", lmax_out=3, weights=w),
    "summed": lambda w: ChannelwiseTensorProduct("2x0e+2x1o+3x2e", "0e+1o+2e", "2x0e+2x1o+2x1e+3x2e+3x1o", weights=w),
    "unweighted": lambda w: ChannelwiseTensorProduct("4x0e+4x1o+4x2e", "0e+1o+2e", lmax_out=2, weights=None),
    "part_weighted": lambda w: TensorProduct(
        "3x0e+3x1o",
        "0e+1o",
        "3x0e+3x1o+3x1e",
        [
            (0, 0, 0, "uvu", True),
            (0, 1, 1, "uvu", False),
            (1, 0, 1, "uvu", True),
            (1, 1, 0, "uvu", False),
            (1, 1, 2, "uvu", True),
        ],
        weights=w,
    ),
}


def _make(name: str, weights: str, dtype=F64) -> TensorProduct:
    tp = MAKERS[name](weights).to(dtype)
    assert tp.backend._native
    return tp


def _inputs(tp, batch: int, weights: str, dtype=F64, seed: int = 0, requires_grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(batch, tp.irreps_in1.dim, generator=g, dtype=dtype)
    x2 = torch.randn(batch, tp.irreps_in2.dim, generator=g, dtype=dtype)
    w = None
    if tp.weight_numel:
        w = torch.randn(*((batch,) if weights == "per_sample" else ()), tp.weight_numel, generator=g, dtype=dtype)
    inputs = [t for t in (x1, x2, w) if t is not None]
    return [t.requires_grad_() for t in inputs] if requires_grad else inputs


def _torch_path(monkeypatch, fn):
    """``fn()`` with the compiled kernels switched off (the plain torch path)."""
    with monkeypatch.context() as m:
        m.setenv("LIEQUIV_NATIVE", "0")
        return fn()


def _value_and_grads(tp, inputs, cotangent):
    out = tp(*inputs)
    return (out, *torch.autograd.grad(out, inputs, cotangent)) if out.numel() else (out,)


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("weights", ["per_sample", "shared"])
@pytest.mark.parametrize("batch", [0, 1, 37])
def test_native_equals_torch_path(monkeypatch, name, weights, batch):
    tp = _make(name, weights)
    inputs = _inputs(tp, batch, weights)
    assert tp.backend._use_native(inputs[0])
    with torch.no_grad():
        ours = tp(*inputs)
        ref = _torch_path(monkeypatch, lambda: tp(*inputs))
    assert ours.shape == ref.shape == (batch, tp.irreps_out.dim)
    assert (ours - ref).abs().max().item() < 1e-12 if batch else ours.numel() == 0

    leaves = _inputs(tp, batch, weights, requires_grad=True)
    cotangent = torch.randn(batch, tp.irreps_out.dim, generator=torch.Generator().manual_seed(1), dtype=F64)
    got = _value_and_grads(tp, leaves, cotangent)
    want = _torch_path(monkeypatch, lambda: _value_and_grads(tp, leaves, cotangent))
    for a, b in zip(got, want):
        assert a.shape == b.shape
        if a.numel():
            assert (a - b).abs().max().item() < 1e-10


def test_empty_batch_backward():
    tp = _make("message_L1", "per_sample")
    inputs = _inputs(tp, 0, "per_sample", requires_grad=True)
    grads = torch.autograd.grad(tp(*inputs).sum(), inputs)
    assert [g.shape for g in grads] == [t.shape for t in inputs]


@pytest.mark.parametrize("weights", ["per_sample", "shared"])
def test_gradcheck_and_gradgradcheck(weights):
    tp = ChannelwiseTensorProduct("2x0e+2x1o+2x2e", "0e+1o+2e", lmax_out=2, weights=weights).to(F64)
    inputs = _inputs(tp, 3, weights, requires_grad=True)
    assert torch.autograd.gradcheck(tp, inputs)
    assert torch.autograd.gradgradcheck(tp, inputs)


@pytest.mark.parametrize("name", ["message_L1", "message_L4", "summed"])
def test_float32_agrees(monkeypatch, name):
    tp = _make(name, "per_sample")
    inputs = _inputs(tp, 37, "per_sample")
    ref = _torch_path(monkeypatch, lambda: tp(*inputs))
    tp32 = tp.float()
    inputs32 = [t.float().requires_grad_() for t in inputs]
    out = tp32(*inputs32)
    assert out.dtype == torch.float32 and tp32.backend._use_native(inputs32[0])
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out, inputs32, torch.ones_like(out))
    leaves = [t.detach().requires_grad_() for t in inputs]
    want = _torch_path(monkeypatch, lambda: torch.autograd.grad(tp.double()(*leaves).sum(), leaves))
    for a, b in zip(grads, want):
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)


def test_threads_chunks_and_strided_inputs():
    tp = _make("message_L4", "per_sample")
    x1, x2, w = _inputs(tp, 101, "per_sample")
    with torch.no_grad():
        ref = tp(x1, x2, w)
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            assert torch.equal(tp(x1, x2, w), ref)
        finally:
            torch.set_num_threads(threads)
        wide = torch.randn(101, 2 * x1.shape[1], dtype=F64)
        wide[:, ::2] = x1
        assert torch.equal(tp(wide[:, ::2], x2, w), ref)  # non-contiguous input
        tp.chunk_bytes = 1  # one row per chunk
        assert torch.equal(tp(x1, x2, w), ref)


def test_batch_chunks_and_fallbacks(monkeypatch):
    tp = _make("message_L1", "per_sample")
    assert tp.backend.chunk_bytes == 0  # the kernel blocks the batch itself
    monkeypatch.setenv("LIEQUIV_NATIVE", "0")
    assert tp.backend.chunk_bytes > 0
    assert not tp.backend._use_native(torch.zeros(1, tp.irreps_in1.dim))
    monkeypatch.delenv("LIEQUIV_NATIVE")
    assert not tp.backend._use_native(torch.zeros(1, tp.irreps_in1.dim, dtype=torch.bfloat16))
    uvw = TensorProduct("2x0e+2x1o", "0e+1o", "2x0e+2x1o", connection="uvw")
    assert not uvw.backend._native  # not channel-wise: torch path
    mul2 = ChannelwiseTensorProduct("2x0e+2x1o", "2x0e+1o")
    assert not mul2.backend._native  # x2 block of multiplicity 2: torch path


def _count_kernel_calls(monkeypatch) -> list[str]:
    calls = []
    real = kernels.kernel
    monkeypatch.setattr(kernels, "kernel", lambda source, name, dtype: calls.append(name) or real(source, name, dtype))
    return calls


@pytest.mark.parametrize("weights", ["per_sample", "shared"])
def test_torch_compile_runs_the_kernels(monkeypatch, weights):
    # inductor puts liequiv::channelwise and liequiv::channelwise_backward in its graphs; values, gradients and the
    # derivatives of the gradients (forces in training) equal eager and the torch path
    torch._dynamo.reset()
    tp = _make("part_weighted", weights)
    leaves = _inputs(tp, 9, weights, requires_grad=True)
    g = torch.Generator().manual_seed(3)
    cotangent = torch.randn(9, tp.irreps_out.dim, generator=g, dtype=F64, requires_grad=True)
    probes = [torch.randn(t.shape, generator=g, dtype=F64) for t in leaves]

    def results(product, gradients):
        grads = gradients(*leaves, cotangent)
        loss = sum((gr * p).sum() for gr, p in zip(grads, probes))
        return product(*leaves), *grads, *torch.autograd.grad(loss, [*leaves, cotangent])

    def eager_gradients(*args):
        return torch.autograd.grad(tp(*args[:-1]), args[:-1], args[-1], create_graph=True)

    b = tp.backend
    weighted = b.native_paths_w if b.native_paths_w is not None else b.native_paths

    def op_gradients(x1, x2, w, cot):  # the backward operator itself, so that its derivative is compiled
        return torch.ops.liequiv.channelwise_backward(x1, x2, w, cot, b.native_paths, weighted, b.native_ijk,
                                                      b.native_c, tp.weight_numel, [True, True, True])

    reference = _torch_path(monkeypatch, lambda: results(tp, eager_gradients))
    eager = results(tp, eager_gradients)
    calls = _count_kernel_calls(monkeypatch)
    compiled = results(torch.compile(tp, fullgraph=True), torch.compile(op_gradients, fullgraph=True))
    assert calls[:2] == ["channelwise_backward", "channelwise_forward"]
    for ours, eager_value, ref in zip(compiled, eager, reference):
        torch.testing.assert_close(ours, eager_value, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)
    explained = torch._dynamo.explain(tp)(*[t.detach() for t in leaves])
    assert explained.graph_break_count == 0 and "liequiv.channelwise" in explained.graphs[0].code


@pytest.mark.parametrize("weights", ["per_sample", "shared"])
def test_operators_pass_opcheck(weights):
    tp = _make("part_weighted", weights)
    x1, x2, w = _inputs(tp, 4, weights, requires_grad=True)
    b = tp.backend
    tables = (b.native_paths, b.native_paths_w, b.native_ijk, b.native_c)
    g = torch.randn(4, tp.irreps_out.dim, dtype=F64, requires_grad=True)
    ops = torch.ops.liequiv
    torch.library.opcheck(ops.channelwise.default, (x1, x2, w, *tables, tp.irreps_out.dim, tp.weight_numel))
    for needs in ([True, True, True], [False, True, False]):
        torch.library.opcheck(ops.channelwise_backward.default, (x1, x2, w, g, *tables, tp.weight_numel, needs))
    a = [torch.randn_like(t) for t in (x1, x2, w)]
    args = (x1.detach(), x2.detach(), w.detach(), g.detach(), *a, *tables, tp.weight_numel, [True, False, True, True])
    torch.library.opcheck(ops.channelwise_double_backward.default, args, test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("weights", ["per_sample", "shared"])
def test_second_derivatives_equal_torch_path(monkeypatch, name, weights):
    """Forces-style training: the gradient of a loss on the input gradients (``create_graph``), taken through the
    compiled backward, equals the torch path's for every input."""
    tp = _make(name, weights)
    leaves = _inputs(tp, 23, weights, requires_grad=True)
    g = torch.Generator().manual_seed(2)
    cotangent = torch.randn(23, tp.irreps_out.dim, generator=g, dtype=F64, requires_grad=True)
    probes = [torch.randn(t.shape, generator=g, dtype=F64) for t in leaves]

    def second():
        grads = torch.autograd.grad(tp(*leaves), leaves, cotangent, create_graph=True)
        loss = sum((gr * p).sum() + gr.square().sum() for gr, p in zip(grads, probes))
        return torch.autograd.grad(loss, [*leaves, cotangent])

    got = second()
    want = _torch_path(monkeypatch, second)
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-10 * (1 + b.abs().max().item())


def test_third_derivatives():
    tp = _make("mixed_muls", "per_sample")
    inputs = _inputs(tp, 2, "per_sample", requires_grad=True)

    def grads(*xs):  # the first derivatives, differentiated twice more by gradgradcheck
        out = tp(*xs)
        return torch.autograd.grad(out, xs, torch.ones_like(out), create_graph=True)

    assert torch.autograd.gradgradcheck(grads, inputs)
