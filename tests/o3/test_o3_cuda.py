"""The o3 kernels on a CUDA device equal the CPU ones (skipped without a GPU)."""

import pytest
import torch

from liequiv.o3 import ChannelwiseTensorProduct, Gate, Irreps, Linear, Norm, TensorProduct, spherical_harmonics
from liequiv.o3.tensor_product.interface import derive_instructions

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")
F64 = torch.float64


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_harmonics_and_gradients(dtype, tol):
    v = torch.randn(1000, 3, dtype=dtype)
    v[0] = 0
    cpu = v.clone().requires_grad_()
    gpu = v.to(CUDA).requires_grad_()
    y_cpu, y_gpu = spherical_harmonics(8, cpu), spherical_harmonics(8, gpu)
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=tol * 10, rtol=tol)
    cotangent = torch.randn(y_cpu.shape, dtype=dtype)  # (Σ_m Y_lm² is constant: its gradient would be noise)
    (g_cpu,) = torch.autograd.grad(y_cpu, cpu, cotangent)
    (g_gpu,) = torch.autograd.grad(y_gpu, gpu, cotangent.to(CUDA))
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, atol=tol * 100, rtol=tol * 10)


@pytest.mark.parametrize("backend", ["cg", "gaunt_grid", "gaunt_fourier"])
def test_tensor_products(backend):
    irreps = Irreps("4x0e+4x1o+4x2e+4x3o")
    if backend == "cg":
        tp = ChannelwiseTensorProduct(irreps, Irreps.spherical_harmonics(3), lmax_out=3)
    else:
        instr = derive_instructions(irreps, irreps, irreps, "uuu", False)
        tp = TensorProduct(irreps, irreps, irreps, instr, weights=None, backend=backend)
    tp = tp.to(F64)
    x1 = torch.randn(50, tp.irreps_in1.dim, dtype=F64, requires_grad=True)
    x2 = torch.randn(50, tp.irreps_in2.dim, dtype=F64, requires_grad=True)
    w = torch.randn(50, tp.weight_numel, dtype=F64) if tp.weight_numel else None
    ref = tp(x1, x2, w)
    cotangent = torch.randn(ref.shape, dtype=F64)
    (g_ref,) = torch.autograd.grad(ref, x1, cotangent)
    tp_gpu = tp.to(CUDA)
    a, b = x1.detach().to(CUDA).requires_grad_(), x2.detach().to(CUDA)
    out = tp_gpu(a, b, None if w is None else w.to(CUDA))
    (g,) = torch.autograd.grad(out, a, cotangent.to(CUDA))
    torch.testing.assert_close(out.cpu(), ref.detach(), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(g.cpu(), g_ref, atol=1e-9, rtol=1e-9)


def test_layers():
    x = torch.randn(20, Irreps("8x0e+4x1o").dim, dtype=F64)
    for module in (Linear("8x0e+4x1o", "4x0e+2x1o"), Norm("8x0e+4x1o"),
                   Gate("4x0e", [torch.tanh], "4x0e", [torch.sigmoid], "4x1o")):
        module = module.to(F64)
        ref = module(x)
        torch.testing.assert_close(module.to(CUDA)(x.to(CUDA)).cpu(), ref, atol=1e-12, rtol=1e-12)
