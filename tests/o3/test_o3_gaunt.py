"""Gaunt products: grid and Fourier implementations against each other and against an e3nn-built oracle."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from e3nn import o3

import liequiv.o3.gaunt as gaunt_module
from liequiv.o3.gaunt import gaunt_coefficients, gaunt_product_fourier, gaunt_product_grid, gaunt_tensor
from liequiv.o3.s2grid import _by_m

F64 = torch.float64
PRODUCTS = [gaunt_product_grid, gaunt_product_fourier]


def three_j_000(l1: int, l2: int, l3: int) -> float:
    """(l1 l2 l3; 0 0 0), closed form (0 for odd l1 + l2 + l3)."""
    L = l1 + l2 + l3
    if L % 2 or l3 > l1 + l2 or l3 < abs(l1 - l2):
        return 0.0
    g, f = L // 2, math.factorial
    return (
        (-1) ** g
        * math.sqrt(f(L - 2 * l1) * f(L - 2 * l2) * f(L - 2 * l3) / f(L + 1))
        * f(g)
        / (f(g - l1) * f(g - l2) * f(g - l3))
    )


@functools.cache
def oracle_integral(l1: int, l2: int, l3: int) -> torch.Tensor:
    """∫ Y Y Y of orthonormal ("integral") harmonics in e3nn's basis, from e3nn's Wigner-3j.

    The relation Gaunt = sqrt((2l1+1)(2l2+1)(2l3+1)/4π) |(l1 l2 l3; 0 0 0)| · wigner_3j holds in e3nn's real basis
    with e3nn's sign convention of wigner_3j (checked by ``test_oracle_relation``).
    """
    if (l1 + l2 + l3) % 2 or l3 > l1 + l2 or l3 < abs(l1 - l2):
        return torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    factor = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * abs(three_j_000(l1, l2, l3))
    return factor * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)


def e3nn_quadrature(l1: int, l2: int, l3: int) -> torch.Tensor:
    """∫ Y Y Y by numpy's Gauss-Legendre nodes and e3nn's own harmonics (nothing of ours)."""
    n_beta, n_alpha = (l1 + l2 + l3) // 2 + 1, l1 + l2 + l3 + 1
    t, w = np.polynomial.legendre.leggauss(n_beta)
    b, a = np.meshgrid(np.arccos(t), 2 * np.pi * np.arange(n_alpha) / n_alpha, indexing="ij")
    v = torch.tensor(np.stack([np.sin(b) * np.sin(a), np.cos(b), np.sin(b) * np.cos(a)], -1).reshape(-1, 3))
    weights = torch.tensor(np.repeat(w * 2 * np.pi / n_alpha, n_alpha))
    Y = [o3.spherical_harmonics(l, v, True, normalization="integral") for l in (l1, l2, l3)]
    return torch.einsum("p,pi,pj,pk->ijk", weights, *Y)


def oracle_tensor(L1: int, L2: int, L3: int, normalization: str = "component") -> torch.Tensor:
    """Dense G[i, j, k] with out_k = Σ G x1_i x2_j, in the given basis, assembled from the oracle blocks."""
    K1, K2, K3 = (L1 + 1) ** 2, (L2 + 1) ** 2, (L3 + 1) ** 2
    G = torch.zeros(K1, K2, K3, dtype=torch.float64)
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(L3 + 1):
                block = oracle_integral(l1, l2, l3)
                # Y = c_l Y_integral with c_l = sqrt(4π) (component), sqrt(4π/(2l+1)) (norm), 1 (integral)
                c = {
                    "component": lambda l: math.sqrt(4 * math.pi),
                    "norm": lambda l: math.sqrt(4 * math.pi / (2 * l + 1)),
                    "integral": lambda l: 1.0,
                }[normalization]
                block = block * c(l1) * c(l2) * c(l3) / c(l3) ** 2
                G[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2] = block
    return G


@pytest.mark.parametrize(
    "ls", [(0, 0, 0), (1, 1, 0), (1, 1, 2), (1, 2, 1), (2, 2, 2), (1, 2, 3), (2, 3, 3), (3, 3, 4), (4, 4, 4), (3, 4, 5)]
)
def test_oracle_relation(ls) -> None:
    """The e3nn-3j oracle equals an independent quadrature of e3nn's harmonics (both from e3nn only)."""
    torch.testing.assert_close(oracle_integral(*ls), e3nn_quadrature(*ls), atol=1e-13, rtol=0)


@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_gaunt_tensor_matches_oracle(normalization: str) -> None:
    G = gaunt_tensor(4, 3, 5, normalization=normalization)
    assert G.shape == (25, 16, 36)
    torch.testing.assert_close(G, oracle_tensor(4, 3, 5, normalization), atol=1e-12, rtol=0)
    block = gaunt_coefficients(2, 3, 3, normalization=normalization)
    torch.testing.assert_close(block, G[4:9, 9:16, 9:16], atol=1e-14, rtol=0)


@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
@pytest.mark.parametrize("Ls", [(0, 0, 0), (1, 1, 2), (2, 3, 4), (4, 4, 8), (5, 3, 2), (3, 6, 6), (6, 6, 6)])
def test_products_agree_with_each_other_and_the_oracle(Ls, normalization: str) -> None:
    L1, L2, L3 = Ls
    g = torch.Generator().manual_seed(sum(Ls))
    x1 = torch.randn(2, 3, (L1 + 1) ** 2, dtype=torch.float64, generator=g)
    x2 = torch.randn(2, 3, (L2 + 1) ** 2, dtype=torch.float64, generator=g)
    grid = gaunt_product_grid(x1, x2, L3, normalization=normalization)
    fourier = gaunt_product_fourier(x1, x2, L3, normalization=normalization)
    assert grid.shape == fourier.shape == (2, 3, (L3 + 1) ** 2)
    torch.testing.assert_close(grid, fourier, atol=1e-10, rtol=0)
    direct = torch.einsum("...i,...j,ijk->...k", x1, x2, oracle_tensor(L1, L2, L3, normalization))
    torch.testing.assert_close(grid, direct, atol=1e-10, rtol=0)


@pytest.mark.parametrize("product", PRODUCTS)
def test_pointwise_product_on_the_sphere(product) -> None:
    """With lmax_out = L1 + L2 nothing is lost: the output function is f1 · f2 at every point."""
    from liequiv.o3.harmonics import spherical_harmonics

    g = torch.Generator().manual_seed(5)
    x1, x2 = torch.randn(9, dtype=torch.float64, generator=g), torch.randn(16, dtype=torch.float64, generator=g)
    out = product(x1, x2, 5)
    v = torch.randn(30, 3, dtype=torch.float64, generator=g)
    Y = spherical_harmonics(5, v)
    torch.testing.assert_close(Y @ out, (Y[:, :9] @ x1) * (Y[:, :16] @ x2), atol=1e-11, rtol=0)


@pytest.mark.parametrize("product", PRODUCTS)
def test_equivariance_e3nn_wigner(product) -> None:
    L1, L2, L3 = 3, 4, 5
    g = torch.Generator().manual_seed(6)
    x1 = torch.randn(4, (L1 + 1) ** 2, dtype=torch.float64, generator=g)
    x2 = torch.randn(4, (L2 + 1) ** 2, dtype=torch.float64, generator=g)
    torch.manual_seed(6)
    angles = o3.rand_angles(dtype=torch.float64)

    def D(L: int) -> torch.Tensor:
        return torch.block_diag(*[o3.wigner_D(l, *angles) for l in range(L + 1)])

    out = product(x1 @ D(L1).T, x2 @ D(L2).T, L3)
    # e3nn's Wigner-D is built from float32 constants (about 1e-6 relative; outputs reach about 30)
    torch.testing.assert_close(out, product(x1, x2, L3) @ D(L3).T, atol=1e-4, rtol=0)


@pytest.mark.parametrize("product", PRODUCTS)
def test_only_even_paths(product) -> None:
    """A pure degree l1 times a pure degree l2 has no component of degree l3 with l1 + l2 + l3 odd."""
    L = 4
    g = torch.Generator().manual_seed(7)
    for l1 in range(L + 1):
        for l2 in range(L + 1):
            x1 = torch.zeros((L + 1) ** 2, dtype=torch.float64)
            x2 = torch.zeros((L + 1) ** 2, dtype=torch.float64)
            x1[l1 * l1 : (l1 + 1) ** 2] = torch.randn(2 * l1 + 1, dtype=torch.float64, generator=g)
            x2[l2 * l2 : (l2 + 1) ** 2] = torch.randn(2 * l2 + 1, dtype=torch.float64, generator=g)
            out = product(x1, x2, 2 * L)
            for l3 in range(2 * L + 1):
                block = out[l3 * l3 : (l3 + 1) ** 2]
                if (l1 + l2 + l3) % 2 or l3 > l1 + l2 or l3 < abs(l1 - l2):
                    assert block.abs().max() < 1e-12, (l1, l2, l3)
                else:
                    assert block.abs().max() > 1e-6, (l1, l2, l3)
    # so the product of two vectors has no vector part: no cross product
    a = torch.randn(4, dtype=torch.float64, generator=g)
    b = torch.randn(4, dtype=torch.float64, generator=g)
    a[0] = b[0] = 0
    assert product(a, b, 2)[1:4].abs().max() < 1e-12


@pytest.mark.parametrize("product", PRODUCTS)
def test_broadcasting_padding_float32_and_grad(product) -> None:
    g = torch.Generator().manual_seed(8)
    x1 = torch.randn(5, 1, 4, 9, dtype=torch.float64, generator=g)
    x2 = torch.randn(3, 4, 16, dtype=torch.float64, generator=g)
    out = product(x1, x2, 7)
    assert out.shape == (5, 3, 4, 64)
    assert out[..., 36:].abs().max() == 0  # degrees above L1 + L2 = 5 are exactly zero
    torch.testing.assert_close(out[..., :36], gaunt_product_grid(x1, x2, 5), atol=1e-10, rtol=0)
    out32 = product(x1.float(), x2.float(), 5)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out[..., :36], atol=1e-4, rtol=1e-4)
    a = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, q: product(p, q, 3), (a, b))


@pytest.mark.parametrize("product", PRODUCTS)
def test_bad_inputs(product) -> None:
    with pytest.raises(ValueError, match=r"\(lmax\+1\)\^2"):
        product(torch.randn(3, 5), torch.randn(3, 4), 2)
    with pytest.raises(ValueError, match="dtype"):
        product(torch.randn(4), torch.randn(4, dtype=torch.float64), 2)
    with pytest.raises(ValueError, match="lmax"):
        product(torch.randn(4), torch.randn(4), -1)
    with pytest.raises(ValueError, match="normalization"):
        product(torch.randn(4), torch.randn(4), 1, normalization="unit")


# ------------------------------------------------------------------------------------------- compiled grid kernel


def _grid_product_both(a1, a2, L3, monkeypatch):
    """(compiled, torch) results of grid_product_by_m and of its first and second derivatives."""
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("LIEQUIV_NATIVE", flag)
        x1, x2 = a1.clone().requires_grad_(), a2.clone().requires_grad_()
        out = gaunt_module.grid_product_by_m(_by_m(x1, _lmax(x1)), _by_m(x2, _lmax(x2)), L3)
        g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads = torch.autograd.grad(out, (x1, x2), g, create_graph=True)
        second = torch.autograd.grad(sum((t * t).sum() for t in grads), (x1, x2))
        results.append((out, *grads, *second))
    return results


def _lmax(x):
    return round(x.shape[-1] ** 0.5) - 1


@pytest.mark.parametrize("L1, L2, L3", [(2, 2, 2), (6, 6, 6), (3, 1, 4), (0, 2, 2), (4, 4, 0), (3, 3, 6), (1, 5, 3)])
@pytest.mark.parametrize("broadcast", [False, True])
def test_native_grid_product_equals_torch(L1, L2, L3, broadcast, monkeypatch):
    if not gaunt_module.native_grid_product_available():
        pytest.skip("no C++ compiler")
    g = torch.Generator().manual_seed(L1 + 10 * L2 + 100 * L3)
    # 5 x 7 signals: blocks of 16 lanes with a tail; x2 shared by the 7 channels of a row when broadcast
    a1 = torch.randn(5, 7, (L1 + 1) ** 2, generator=g, dtype=F64)
    a2 = torch.randn(5, 1 if broadcast else 7, (L2 + 1) ** 2, generator=g, dtype=F64)
    native, plain = _grid_product_both(a1, a2, L3, monkeypatch)
    for a, b in zip(native, plain):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_native_grid_product_gradcheck_float32_and_empty(monkeypatch):
    if not gaunt_module.native_grid_product_available():
        pytest.skip("no C++ compiler")
    x1 = torch.randn(3, 2, 9, dtype=F64, requires_grad=True)
    x2 = torch.randn(3, 1, 4, dtype=F64, requires_grad=True)

    def f(a, b):
        return gaunt_module.grid_product_by_m(_by_m(a, 2), _by_m(b, 1), 3)

    assert torch.autograd.gradcheck(f, (x1, x2))
    assert torch.autograd.gradgradcheck(f, (x1, x2))
    y32 = f(x1.detach().float(), x2.detach().float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), f(x1, x2), atol=1e-5, rtol=0)
    assert f(x1[:0], x2[:0]).shape == (0, 7, 4)
    # a broadcast the kernel does not take (x1 shared over rows) runs the torch path, with the same values
    y = gaunt_module.grid_product_by_m(_by_m(x1[:1], 2), _by_m(x2.expand(3, 2, 4), 1), 3)
    monkeypatch.setenv("LIEQUIV_NATIVE", "0")
    z = gaunt_module.grid_product_by_m(_by_m(x1[:1], 2), _by_m(x2.expand(3, 2, 4), 1), 3)
    torch.testing.assert_close(y, z, atol=1e-12, rtol=0)


def test_grid_product_operator_passes_opcheck():
    if not gaunt_module.native_grid_product_available():
        pytest.skip("no C++ compiler")
    x = torch.randn(3, 2 * 15, dtype=F64, requires_grad=True)  # 2 channels of degree 2 by m
    y = torch.randn(3, 6, dtype=F64, requires_grad=True)  # one degree-1 signal shared by the channels
    layouts = (gaunt_module.by_m_layout(2, 2, "lam", False), gaunt_module.by_m_layout(1, 2, "lam", True),
               gaunt_module.by_m_layout(3, 2, "back", False))
    grid = gaunt_module.grid_product_shape(2, 1, 3)
    lx, ly, lo = layouts
    args = (x, y, *(t.tensors(F64, grid, "component") for t in layouts), [2, 1, 3], lo.D,
            [lx.covered, ly.covered, lo.covered], [lx.shared, ly.shared, lo.shared], 2, list(grid))
    torch.library.opcheck(torch.ops.liequiv.grid_product.default, args)
