"""Spherical grids: Fibonacci sphere, exact Gauss-Legendre quadrature, SH <-> grid and SH <-> 2D Fourier."""

from __future__ import annotations

import math

import pytest
import torch

from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.s2grid import (
    fibonacci_sphere,
    fourier_eval,
    fourier_to_sh,
    from_grid,
    grid_vectors,
    half_spectrum_to_sh,
    quadrature_size,
    s2_grid,
    sh_to_fourier,
    sh_to_half_spectrum,
    to_grid,
)

NORMALIZATIONS = ["component", "norm", "integral"]


def test_fibonacci_sphere_is_unit_and_quasi_uniform() -> None:
    grid = fibonacci_sphere(500, dtype=torch.float64)
    assert grid.shape == (500, 3)
    torch.testing.assert_close(torch.linalg.vector_norm(grid, dim=-1), torch.ones(500, dtype=torch.float64))
    # equal-area: the mean of a degree-1 or degree-2 polynomial over the grid is close to its spherical mean
    torch.testing.assert_close(grid.mean(0), torch.zeros(3, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(grid.T @ grid / 500, torch.eye(3, dtype=torch.float64) / 3, atol=2e-3, rtol=0)
    # no two points closer than a fraction of the mean spacing sqrt(4π/n)
    dist = torch.cdist(grid, grid) + 10 * torch.eye(500, dtype=torch.float64)
    assert dist.min() > 0.5 * (4 * torch.pi / 500) ** 0.5


def test_fibonacci_sphere_bad_input() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        fibonacci_sphere(0)


def _angles(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    beta = torch.rand(n, dtype=torch.float64, generator=generator) * math.pi
    alpha = torch.rand(n, dtype=torch.float64, generator=generator) * 2 * math.pi
    xyz = torch.stack([beta.sin() * alpha.sin(), beta.cos(), beta.sin() * alpha.cos()], -1)
    return beta, alpha, xyz


def test_grid_points_and_weights() -> None:
    beta, alpha, w = s2_grid(5, 9)
    assert beta.shape == (5,) and alpha.shape == (9,) and w.shape == (5,)
    torch.testing.assert_close((w.sum() * 9).item(), 4 * math.pi, atol=1e-13, rtol=0)
    assert (beta[1:] > beta[:-1]).all() and (beta > 0).all() and (beta < math.pi).all()
    v = grid_vectors(5, 9)
    assert v.shape == (5, 9, 3)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(5, 9, dtype=torch.float64))
    torch.testing.assert_close(v[..., 1], beta.cos()[:, None].expand(5, 9))


@pytest.mark.parametrize("lmax", [0, 3, 8])
def test_quadrature_is_exact_for_degree(lmax: int) -> None:
    """∫ Y_i Y_j = 4π δ_ij on the grid of quadrature_size(2 lmax), i.e. exact for polynomials of degree 2 lmax."""
    n_beta, n_alpha = quadrature_size(2 * lmax)
    assert (n_beta, n_alpha) == (lmax + 1, 2 * lmax + 1)
    _, _, w = s2_grid(n_beta, n_alpha)
    Y = spherical_harmonics(lmax, grid_vectors(n_beta, n_alpha))
    gram = torch.einsum("b,bai,baj->ij", w, Y, Y)
    torch.testing.assert_close(gram, 4 * math.pi * torch.eye((lmax + 1) ** 2, dtype=torch.float64), atol=1e-12, rtol=0)
    # one node fewer is not enough: the degree-2·lmax integrals are no longer exact
    if lmax > 0:
        _, _, w = s2_grid(n_beta - 1, n_alpha)
        Y = spherical_harmonics(lmax, grid_vectors(n_beta - 1, n_alpha))
        gram = torch.einsum("b,bai,baj->ij", w, Y, Y)
        assert (gram - 4 * math.pi * torch.eye((lmax + 1) ** 2, dtype=torch.float64)).abs().max() > 1e-3


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("lmax", [0, 1, 4, 10])
def test_to_grid_and_round_trip(lmax: int, normalization: str) -> None:
    g = torch.Generator().manual_seed(lmax)
    x = torch.randn(2, 3, (lmax + 1) ** 2, dtype=torch.float64, generator=g)
    f = to_grid(x, normalization=normalization)
    n_beta, n_alpha = quadrature_size(2 * lmax)
    assert f.shape == (2, 3, n_beta, n_alpha)
    Y = spherical_harmonics(lmax, grid_vectors(n_beta, n_alpha), normalization=normalization)
    torch.testing.assert_close(f, torch.einsum("...k,bak->...ba", x, Y), atol=1e-12, rtol=0)
    torch.testing.assert_close(from_grid(f, lmax, normalization=normalization), x, atol=1e-10, rtol=0)
    # on a finer grid too, and projecting on fewer degrees drops the others exactly
    f = to_grid(x, 2 * lmax + 3, 4 * lmax + 5, normalization=normalization)
    torch.testing.assert_close(
        from_grid(f, lmax + 2, normalization=normalization)[..., : x.shape[-1]], x, atol=1e-10, rtol=0
    )
    if lmax > 0:
        torch.testing.assert_close(
            from_grid(f, lmax - 1, normalization=normalization), x[..., : lmax * lmax], atol=1e-10, rtol=0
        )


def test_products_are_exact_on_the_product_grid() -> None:
    """f1·f2 projected on degree <= L3 is the same on the minimal exact grid and on a much finer one."""
    g = torch.Generator().manual_seed(1)
    L1, L2, L3 = 3, 4, 5
    x1 = torch.randn(4, (L1 + 1) ** 2, dtype=torch.float64, generator=g)
    x2 = torch.randn(4, (L2 + 1) ** 2, dtype=torch.float64, generator=g)
    n_beta, n_alpha = quadrature_size(L1 + L2 + L3)
    coarse = from_grid(to_grid(x1, n_beta, n_alpha) * to_grid(x2, n_beta, n_alpha), L3)
    fine = from_grid(to_grid(x1, 20, 41) * to_grid(x2, 20, 41), L3)
    torch.testing.assert_close(coarse, fine, atol=1e-11, rtol=0)


def test_grid_float32_and_grad() -> None:
    x = torch.randn(5, 16, dtype=torch.float64)
    f32 = from_grid(to_grid(x.float()), 3)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), x, atol=1e-5, rtol=0)
    xr = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: from_grid(to_grid(v) ** 2, 4), (xr,))


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("lmax", [0, 1, 2, 5, 9])
def test_fourier_series_equals_harmonics(lmax: int, normalization: str) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, (lmax + 1) ** 2, dtype=torch.float64, generator=g)
    F = sh_to_fourier(x, normalization=normalization)
    assert F.shape == (3, 2 * lmax + 1, 2 * lmax + 1) and F.dtype == torch.complex128
    beta, alpha, xyz = _angles(40, g)
    values = x @ spherical_harmonics(lmax, xyz, normalization=normalization).T
    torch.testing.assert_close(fourier_eval(F, beta, alpha), values, atol=1e-12, rtol=0)
    # f is real: F[-u, -v] = conj F[u, v]
    torch.testing.assert_close(F.flip(-1, -2).conj(), F, atol=1e-14, rtol=0)
    # the torus extension: (2π - β, α + π) is the same point of the sphere
    torch.testing.assert_close(fourier_eval(F, 2 * math.pi - beta, alpha + math.pi), values, atol=1e-12, rtol=0)
    # and back, exactly
    torch.testing.assert_close(fourier_to_sh(F, lmax, normalization=normalization), x, atol=1e-12, rtol=0)


def test_fourier_single_harmonics_are_sparse() -> None:
    """Y_lm has u ≡ l (mod 2), |u| <= l, and only v = ±m."""
    lmax = 4
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            x = torch.zeros((lmax + 1) ** 2, dtype=torch.float64)
            x[l * l + l + m] = 1
            F = sh_to_fourier(x)
            support = (F.abs() > 1e-14).nonzero() - lmax
            assert ((support[:, 0] - l) % 2 == 0).all() and (support[:, 0].abs() <= l).all()
            assert (support[:, 1].abs() == abs(m)).all()


def test_fourier_to_sh_projects_products() -> None:
    """The product of two series (2D convolution) projects to the same coefficients as on the exact grid."""
    g = torch.Generator().manual_seed(3)
    L1, L2, L3 = 2, 3, 4
    x1 = torch.randn((L1 + 1) ** 2, dtype=torch.float64, generator=g)
    x2 = torch.randn((L2 + 1) ** 2, dtype=torch.float64, generator=g)
    F1, F2 = sh_to_fourier(x1), sh_to_fourier(x2)
    conv = torch.zeros(2 * (L1 + L2) + 1, 2 * (L1 + L2) + 1, dtype=torch.complex128)
    for i in range(2 * L1 + 1):
        for j in range(2 * L1 + 1):
            conv[i : i + 2 * L2 + 1, j : j + 2 * L2 + 1] += F1[i, j] * F2
    n_beta, n_alpha = quadrature_size(L1 + L2 + L3)
    grid = from_grid(to_grid(x1, n_beta, n_alpha) * to_grid(x2, n_beta, n_alpha), L3)
    torch.testing.assert_close(fourier_to_sh(conv, L3), grid, atol=1e-12, rtol=0)


@pytest.mark.parametrize("lmax", [0, 1, 3, 6])
@pytest.mark.parametrize("extra", [0, 1, 4])
def test_half_spectrum_is_the_real_fft_layout(lmax: int, extra: int) -> None:
    """irfft2 of the half spectrum = the series on the n x n torus grid; rfft2 back and projection = identity."""
    n = 2 * lmax + 1 + extra
    g = torch.Generator().manual_seed(lmax + extra)
    x = torch.randn(2, (lmax + 1) ** 2, dtype=torch.float64, generator=g)
    h = sh_to_half_spectrum(x, n)
    assert h.shape == (2, n, n // 2 + 1)
    f = torch.fft.irfft2(h, s=(n, n), norm="forward")
    t = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    beta, alpha = t[:, None].expand(n, n).reshape(-1), t[None, :].expand(n, n).reshape(-1)
    torch.testing.assert_close(f, fourier_eval(sh_to_fourier(x), beta, alpha).reshape(2, n, n), atol=1e-12, rtol=0)
    torch.testing.assert_close(half_spectrum_to_sh(torch.fft.rfft2(f, norm="forward"), lmax), x, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="n >= 2 lmax"):
        sh_to_half_spectrum(torch.zeros((lmax + 2) ** 2), 2 * lmax + 2)


def test_fourier_float32() -> None:
    x = torch.randn(2, 25)
    F = sh_to_fourier(x)
    assert F.dtype == torch.complex64
    torch.testing.assert_close(fourier_to_sh(F, 4), x, atol=1e-5, rtol=0)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"\(lmax\+1\)\^2"):
        to_grid(torch.randn(3, 5))
    with pytest.raises(ValueError, match="normalization"):
        to_grid(torch.randn(4), normalization="unit")
    with pytest.raises(ValueError, match="n_beta"):
        to_grid(torch.randn(4), 0, 3)
    with pytest.raises(ValueError, match="degree"):
        quadrature_size(-1)
    with pytest.raises(ValueError, match="2U"):
        fourier_to_sh(torch.zeros(4, 4, dtype=torch.complex128), 2)
    with pytest.raises(ValueError, match="n_beta, n_alpha"):
        from_grid(torch.zeros(3), 1)
