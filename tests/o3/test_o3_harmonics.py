"""Spherical harmonics against e3nn 0.6 and closed forms, equivariance, gradients and the zero vector."""

import math

import numpy as np
import pytest
import torch
from e3nn import o3

import liequiv.o3.harmonics as harmonics_module
from liequiv import native
from liequiv.o3 import kernels
from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.wigner import wigner_D

torch.manual_seed(0)
X = torch.randn(64, 3, dtype=torch.float64)


def e3nn_D(l: int, R: torch.Tensor) -> torch.Tensor:
    return o3.wigner_D(l, *o3.matrix_to_angles(R))


@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_e3nn(normalization, normalize):
    ours = spherical_harmonics(8, X, normalize=normalize, normalization=normalization)
    ref = o3.spherical_harmonics(list(range(9)), X, normalize=normalize, normalization=normalization)
    assert ours.shape == (64, 81)
    # without normalize the values are homogeneous polynomials of |x| up to 8: compare relative to |x|^l
    scale = 1 if normalize else torch.linalg.vector_norm(X, dim=-1, keepdim=True).clamp_min(1) ** 8
    torch.testing.assert_close(ours / scale, ref / scale, atol=1e-10, rtol=0)


@pytest.fixture(params=["native", "torch"])
def kernel(request, monkeypatch):
    """Run a test with the compiled forward (the default on the CPU) and with the plain torch forward."""
    if request.param == "torch":
        monkeypatch.setenv("LIEQUIV_NATIVE", "0")
    elif not kernels.available("harmonics"):
        pytest.skip("no C++ compiler")
    return request.param


@pytest.mark.parametrize("lmax", [0, 1, 2, 3, 5, 7, 10, 12])
@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_matches_e3nn_every_lmax(lmax, normalization, kernel):
    # e3nn stops at l = 12; degrees 13..16 are checked by the sum rule, equivariance and the addition theorem
    ours = spherical_harmonics(lmax, X, normalization=normalization)
    ref = o3.spherical_harmonics(list(range(lmax + 1)), X, normalize=True, normalization=normalization)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)


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


@pytest.mark.parametrize("lmax", [8, 16, 24])
def test_addition_theorem(lmax):
    """Σ_m Y_lm(x) Y_lm(y) = (2l+1) P_l(x·y) in "component" normalization."""
    a, b = X[:32], X[32:]
    Ya, Yb = spherical_harmonics(lmax, a), spherical_harmonics(lmax, b)
    cos = (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1)
    for l in range(lmax + 1):
        s = slice(l * l, (l + 1) ** 2)
        legendre = np.polynomial.legendre.legval(cos.numpy(), [0] * l + [1])
        torch.testing.assert_close(
            (Ya[:, s] * Yb[:, s]).sum(-1), (2 * l + 1) * torch.from_numpy(legendre), atol=1e-11 * (2 * l + 1), rtol=0
        )


def test_normalize_paths_agree_lmax16():
    """The unit-sphere path (Chebyshev tables) and the solid-harmonic recurrence are independent implementations."""
    u = torch.nn.functional.normalize(X, dim=-1)
    torch.testing.assert_close(
        spherical_harmonics(16, u), spherical_harmonics(16, u, normalize=False), atol=1e-11, rtol=0
    )


@pytest.mark.parametrize("lmax", [4, 16])
def test_equivariance_e3nn_wigner(lmax):
    torch.manual_seed(lmax)
    R = o3.rand_matrix(64, dtype=torch.float64)
    Y = spherical_harmonics(lmax, X)
    Yr = spherical_harmonics(lmax, torch.einsum("nij,nj->ni", R, X))
    for l in range(lmax + 1):
        s = slice(l * l, (l + 1) ** 2)
        # e3nn builds its Wigner-D from float32 constants (entries off by up to 1e-5); ours is exact in float64
        torch.testing.assert_close(Yr[:, s], torch.einsum("nij,nj->ni", e3nn_D(l, R), Y[:, s]), atol=2e-4, rtol=0)
        torch.testing.assert_close(Yr[:, s], torch.einsum("nij,nj->ni", wigner_D(l, R), Y[:, s]), atol=1e-9, rtol=0)


def test_parity():
    Y, Ym = spherical_harmonics(6, X), spherical_harmonics(6, -X)
    sign = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=torch.float64) for l in range(7)])
    torch.testing.assert_close(Ym, Y * sign, atol=1e-12, rtol=0)


def test_gradcheck_and_gradgradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    for normalize in (True, False):
        for lmax in (0, 1, 2, 4, 9):

            def f(v, normalize=normalize, lmax=lmax):
                return spherical_harmonics(lmax, v, normalize=normalize)

            assert torch.autograd.gradcheck(f, (x,))
            assert torch.autograd.gradgradcheck(f, (x,))


def test_hand_backward_equals_autograd(monkeypatch):
    x = torch.randn(50, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(50, 13**2, dtype=torch.float64)
    monkeypatch.setattr(harmonics_module, "_USE_HAND_BACKWARD", True)
    (hand,) = torch.autograd.grad(spherical_harmonics(12, x), x, g)
    monkeypatch.setattr(harmonics_module, "_USE_HAND_BACKWARD", False)
    (auto,) = torch.autograd.grad(spherical_harmonics(12, x), x, g)
    xe = x.detach().requires_grad_()
    (ref,) = torch.autograd.grad(o3.spherical_harmonics(list(range(13)), xe, True, normalization="component"), xe, g)
    torch.testing.assert_close(hand, auto, atol=1e-10, rtol=0)
    torch.testing.assert_close(hand, ref, atol=1e-10, rtol=0)


def test_second_derivative_matches_e3nn():
    """Forces-style training: grad of a loss on the gradient (create_graph) agrees with e3nn."""
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(36, dtype=torch.float64)

    def double(fn):
        (g,) = torch.autograd.grad((fn(x) * w).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad((g**2).sum(), x)
        return g, gg

    g1, gg1 = double(lambda v: spherical_harmonics(5, v))
    g2, gg2 = double(lambda v: o3.spherical_harmonics(list(range(6)), v, True, normalization="component"))
    torch.testing.assert_close(g1, g2, atol=1e-10, rtol=0)
    torch.testing.assert_close(gg1, gg2, atol=1e-9, rtol=0)


def test_zero_vector():
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    Y = spherical_harmonics(5, x)
    expected = torch.zeros(2, 36, dtype=torch.float64)
    expected[:, 0] = 1
    torch.testing.assert_close(Y, expected, atol=0, rtol=0)
    (g,) = torch.autograd.grad(Y.sum(), x, create_graph=True)
    assert torch.isfinite(g).all()
    assert (g == 0).all()  # the convention: zero gradient at the origin
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(gg).all()
    # mixed batch: the zero row does not poison the others
    v = torch.cat([torch.zeros(1, 3), torch.randn(3, 3)]).double().requires_grad_()
    (g,) = torch.autograd.grad(spherical_harmonics(3, v).pow(2).sum(), v)
    assert torch.isfinite(g).all()
    # without normalize the solid harmonics are polynomials: exact gradient sqrt(3) I of degree 1 at 0
    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda v: spherical_harmonics(2, v, normalize=False), z)
    torch.testing.assert_close(jac[0, 1:4, 0], math.sqrt(3) * torch.eye(3, dtype=torch.float64), atol=1e-15, rtol=0)
    assert (jac[0, 4:] == 0).all() and (jac[0, 0] == 0).all()


def _count_kernel_calls(monkeypatch) -> list[str]:
    """The names of the compiled harmonics kernels called from now on."""
    calls = []
    real = kernels.kernel
    monkeypatch.setattr(kernels, "kernel", lambda source, name, dtype: calls.append(name) or real(source, name, dtype))
    return calls


def test_native_kernel_is_built_and_used(monkeypatch):
    # where a compiler exists (CI has one) the compiled kernels must build, and they run with and without autograd
    if native._compiler() is None:
        pytest.skip("no C++ compiler")
    assert kernels.available("harmonics")
    calls = _count_kernel_calls(monkeypatch)
    spherical_harmonics(3, X)
    spherical_harmonics(3, X.clone().requires_grad_())
    with torch.no_grad():
        spherical_harmonics(3, X.clone().requires_grad_())
    monkeypatch.setenv("LIEQUIV_NATIVE", "0")
    spherical_harmonics(3, X)
    assert calls == ["harmonics_forward"] * 3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_backward_equals_torch_backward(dtype, monkeypatch):
    if not kernels.available("harmonics"):
        pytest.skip("no C++ compiler")
    # the origin, a tiny vector (gradient ~ 1/|v|), the poles, a non-contiguous batch and block tails
    v = torch.cat([torch.zeros(1, 3), torch.tensor([[0, 1e-20, 0], [0, 1.0, 0], [0, -2.0, 0]]), torch.randn(99, 3)])
    v = v.to(dtype)[:, [2, 0, 1]]
    for lmax in (1, 2, 3, 4, 5, 8, 12, 16):
        for n in (1, 33, 103):
            grads = []
            for flag in ("1", "0"):
                monkeypatch.setenv("LIEQUIV_NATIVE", flag)
                x = v[:n].detach().requires_grad_()
                y = spherical_harmonics(lmax, x, normalization="norm")
                g = torch.linspace(-1, 1, y.numel(), dtype=dtype).reshape(y.shape)
                grads.append(torch.autograd.grad(y, x, g)[0])
            scale = 1 + v[:n].norm(dim=-1, keepdim=True).reciprocal().nan_to_num(posinf=0)
            tol = 1e-12 if dtype == torch.float64 else 1e-4
            torch.testing.assert_close(grads[0] / scale, grads[1] / scale, atol=tol * (lmax + 1) ** 2, rtol=0)
            assert (grads[0][0] == 0).all()  # zero gradient at the origin, by convention


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_native_equals_torch_forward(dtype, normalization, monkeypatch):
    if not kernels.available("harmonics"):
        pytest.skip("no C++ compiler")
    # 0 and tiny vectors, poles, a non-contiguous input and every block tail (sizes around the block of 32 points)
    v = torch.cat([torch.zeros(1, 3), torch.tensor([[0, 1e-30, 0], [0, 1.0, 0], [0, -2.0, 0]]), torch.randn(99, 3)])
    v = v.to(dtype)[:, [2, 0, 1]]
    atol = 1e-13 if dtype == torch.float64 else 2e-5
    for lmax in range(17):
        for n in (0, 1, 31, 33, 103):
            ours = spherical_harmonics(lmax, v[:n], normalization=normalization)
            monkeypatch.setenv("LIEQUIV_NATIVE", "0")
            ref = spherical_harmonics(lmax, v[:n], normalization=normalization)  # (1e-30 is 0 in float32)
            monkeypatch.delenv("LIEQUIV_NATIVE")
            assert ours.dtype == dtype and ours.shape == (n, (lmax + 1) ** 2)
            torch.testing.assert_close(ours, ref, atol=atol * (lmax + 1), rtol=0)
    # the zero vector: Y_0 and zeros, exactly
    assert (spherical_harmonics(4, v[:1])[0, 1:] == 0).all()


def test_tiny_vectors_float32():
    v = torch.tensor([[1e-18, 0.0, 0.0], [0.0, 3e-10, 4e-10], [0.0, 0.0, 0.0]], requires_grad=True)
    Y = spherical_harmonics(4, v)
    assert torch.isfinite(Y).all()
    torch.testing.assert_close(Y[1], spherical_harmonics(4, torch.tensor([0.0, 0.6, 0.8])), atol=1e-6, rtol=0)
    (g,) = torch.autograd.grad(Y.sum(), v)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("lmax", [2, 8, 16])
def test_float32_vs_float64(lmax):
    y32 = spherical_harmonics(lmax, X.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), spherical_harmonics(lmax, X), atol=2e-5 * (lmax + 1), rtol=0)
    x32 = X.float().requires_grad_()
    x64 = X.clone().requires_grad_()
    (g32,) = torch.autograd.grad(spherical_harmonics(lmax, x32).sum(), x32)
    (g64,) = torch.autograd.grad(spherical_harmonics(lmax, x64).sum(), x64)
    scale = g64.abs().max()
    torch.testing.assert_close(g32.double() / scale, g64 / scale, atol=1e-6 * (lmax + 1) ** 2, rtol=0)


def test_shapes_dtypes():
    assert spherical_harmonics(0, X).shape == (64, 1)
    assert spherical_harmonics(3, X.reshape(4, 16, 3)).shape == (4, 16, 16)
    assert spherical_harmonics(3, X[:0]).shape == (0, 16)
    assert spherical_harmonics(3, X[:0], normalize=False).shape == (0, 16)
    assert spherical_harmonics(3, X.half()).dtype == torch.float16


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


def test_matches_sphericart_if_installed():
    """sphericart (C++) computes the standard real harmonics; e3nn's basis is them on (z, x, y), times sqrt(4π)."""
    sphericart_torch = pytest.importorskip("sphericart.torch")
    lmax = 16
    ref = sphericart_torch.SphericalHarmonics(lmax)(X[:, [2, 0, 1]])
    torch.testing.assert_close(spherical_harmonics(lmax, X, normalization="integral"), ref, atol=1e-11, rtol=0)


needs_kernels = pytest.mark.skipif(not kernels.available("harmonics"), reason="no C++ compiler (or LIEQUIV_NATIVE=0)")


@needs_kernels
def test_operators_pass_opcheck():
    # schemas, fake implementations (shapes, dtypes) and autograd registrations, as torch.library checks them
    v = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 16, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.liequiv.harmonics.default, (v, 3, "norm"))
    torch.library.opcheck(torch.ops.liequiv.harmonics_backward.default, (v, g, 3, "norm"))


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_and_eager_kernels_equal_the_torch_path(dtype, monkeypatch):
    # under torch.compile (inductor) the operators are in the graph and run the compiled kernels; values, gradients
    # and the derivative of the gradient (forces in training), compiled and eager, equal the plain torch path
    torch._dynamo.reset()
    v = torch.randn(40, 3, dtype=dtype, generator=torch.Generator().manual_seed(1)).requires_grad_()
    g = torch.randn(40, 36, dtype=dtype, generator=torch.Generator().manual_seed(2)).requires_grad_()
    a = torch.randn(40, 3, dtype=dtype, generator=torch.Generator().manual_seed(3))

    def results(sh, grad_of):  # value, gradient, and the gradient's derivatives for v and g
        gv = grad_of(v, g)
        return sh(v), gv, *torch.autograd.grad(gv, (v, g), a)

    def eager_grad(v, g):
        return torch.autograd.grad(spherical_harmonics(5, v), v, g, create_graph=True)[0]

    with monkeypatch.context() as m:
        m.setenv("LIEQUIV_NATIVE", "0")
        reference = results(lambda v: spherical_harmonics(5, v), eager_grad)
    eager = results(lambda v: spherical_harmonics(5, v), eager_grad)
    calls = _count_kernel_calls(monkeypatch)
    compiled = results(
        torch.compile(lambda v: spherical_harmonics(5, v), fullgraph=True),
        # the gradient as the operator, so that its own derivative is taken through the compiled graph
        torch.compile(lambda v, g: torch.ops.liequiv.harmonics_backward(v, g, 5, "component"), fullgraph=True),
    )
    assert calls == ["harmonics_backward", "harmonics_forward"]
    tol = {"atol": 1e-11, "rtol": 1e-11} if dtype == torch.float64 else {"atol": 2e-3, "rtol": 1e-4}
    for ours, eager_value, ref in zip(compiled, eager, reference):
        torch.testing.assert_close(ours, eager_value, **tol)
        torch.testing.assert_close(ours, ref, **tol)


@needs_kernels
def test_operator_in_the_compiled_and_exported_graphs():
    v = torch.randn(5, 3)
    explained = torch._dynamo.explain(lambda v: spherical_harmonics(4, v))(v)
    assert explained.graph_break_count == 0 and "liequiv.harmonics" in explained.graphs[0].code

    class Sh(torch.nn.Module):
        def forward(self, v):
            return spherical_harmonics(4, v)

    exported = torch.export.export(Sh(), (v,))
    targets = [str(node.target) for node in exported.graph.nodes]
    assert "liequiv.harmonics.default" in targets
    torch.testing.assert_close(exported.module()(v), spherical_harmonics(4, v), atol=0, rtol=0)



@needs_kernels
def test_traced_with_real_tensors_records_the_operators():
    # make_fx on real tensors: a dispatch mode, not a compiler, sees the call; the forward and the backward must be
    # the operators (eager calls skip the dispatcher, so that the check for a mode is what puts them in the graph)
    from torch.fx.experimental.proxy_tensor import make_fx

    v = torch.randn(6, 3, dtype=torch.float64)

    def value_and_gradient(v):
        v = v.detach().requires_grad_()
        y = spherical_harmonics(3, v)
        return y, torch.autograd.grad(y, v, torch.ones_like(y))[0]

    graph = make_fx(value_and_gradient, tracing_mode="real")(v)
    targets = [str(node.target) for node in graph.graph.nodes]
    assert "liequiv.harmonics.default" in targets and "liequiv.harmonics_backward.default" in targets
    for ours, eager in zip(graph(v), value_and_gradient(v)):
        torch.testing.assert_close(ours, eager, atol=0, rtol=0)

def _scipy_oracle(lmax: int, v: torch.Tensor) -> torch.Tensor:
    """``[N, (lmax+1)^2]`` in our basis from scipy's complex harmonics (independent of this library and of e3nn).

    The polar axis is ``y`` and the azimuth runs from ``z`` towards ``x``; scipy's ``Y_l^k`` carry the
    Condon-Shortley phase ``(-1)^k``, which the real basis drops: ``Y_l0 = sqrt(4π) Y_l^0``, and for ``k > 0``
    ``Y_{l,±k} = sqrt(8π) (-1)^k (Re, Im) Y_l^k``.
    """
    from scipy.special import sph_harm_y

    x, y, z = (c.numpy() for c in (v / v.norm(dim=-1, keepdim=True)).unbind(-1))
    beta, alpha = np.arccos(np.clip(y, -1, 1)), np.arctan2(x, z)
    cols = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            k = abs(m)
            c = sph_harm_y(l, k, beta, alpha)
            if m == 0:
                cols.append(math.sqrt(4 * math.pi) * c.real)
            else:
                cols.append(math.sqrt(8 * math.pi) * (-1) ** k * (c.real if m > 0 else c.imag))
    return torch.tensor(np.stack(cols, -1))


def test_scipy_oracle_agrees_with_e3nn_at_low_degree():
    # the conversion of the oracle, checked against e3nn where e3nn exists (l <= 12)
    ref = o3.spherical_harmonics(list(range(7)), X, normalize=True, normalization="component")
    torch.testing.assert_close(_scipy_oracle(6, X), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("lmax", [13, 20, 24])
def test_high_degrees_match_scipy(lmax, kernel):
    # above e3nn's l = 12: every degree against scipy, on random points, the poles and the equator
    special = [[0, 1.0, 0], [0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0], [1e-3, 1.0, -2e-3]]
    v = torch.cat([X, torch.tensor(special, dtype=torch.float64)])
    ref = _scipy_oracle(lmax, v)
    ours = spherical_harmonics(lmax, v)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    # solid harmonics: r^l Y_l(v / r)
    r = torch.linspace(0.5, 2.0, v.shape[0], dtype=torch.float64)[:, None]
    degree = torch.cat([torch.full((2 * l + 1,), l, dtype=torch.float64) for l in range(lmax + 1)])
    solid = spherical_harmonics(lmax, v / v.norm(dim=-1, keepdim=True) * r, normalize=False)
    torch.testing.assert_close(solid / r**degree, ref, atol=1e-10, rtol=0)
    ours32 = spherical_harmonics(lmax, v.float())
    # float32: the error grows near the poles with the degree (the docstring's accuracy)
    torch.testing.assert_close(ours32.double(), ref, atol=5e-6 * (lmax + 1) ** 2, rtol=0)
