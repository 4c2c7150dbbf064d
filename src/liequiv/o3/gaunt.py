r"""Gaunt products: the product of two spherical signals, projected back on the spherical harmonics.

For signals ``f1 = Σ x1_i Y_i`` (degrees ``<= L1``) and ``f2 = Σ x2_j Y_j`` (degrees ``<= L2``), the output is the
projection of the pointwise product ``f1 · f2`` on degrees ``<= lmax_out`` **in the same basis**:

.. math::  \mathrm{out}_k = \frac{\int_{S^2} f_1 f_2 Y_k \, dΩ}{\int_{S^2} Y_k^2 \, dΩ}
           = \sum_{ij} G_{ijk}\, x1_i\, x2_j, \qquad G_{ijk} = \frac{\int Y_i Y_j Y_k}{\int Y_k^2}.

With the default ``"component"`` basis (``Σ_m Y_lm² = 2l+1``, ``∫ Y_lm² = 4π``) ``G = sqrt(4π) · Gaunt``, where
``Gaunt = ∫ Y Y Y`` of orthonormal harmonics is ``sqrt((2l1+1)(2l2+1)(2l3+1)/4π) (l1 l2 l3; 0 0 0)`` times the
Wigner-3j symbol of the real basis. Only paths with ``l1 + l2 + l3`` even are non-zero (the product of two
functions is parity-even in the sense ``(-1)^{l1+l2}``): no cross product, no pseudotensors, and weights can at
most be per degree (scale the inputs' degree blocks before, the output's after). Everything is equivariant:
``out(D x1, D x2) = D out(x1, x2)``.

Two implementations of the same operation, both exact (rounding only) and ``O(L^3)`` per channel:

* :func:`gaunt_product_grid`: both signals on the Gauss-Legendre x uniform grid that integrates degree
  ``L1 + L2 + lmax_out`` exactly, pointwise product, projection (separable transforms of
  :mod:`liequiv.o3.s2grid`).
* :func:`gaunt_product_fourier`: both signals in the 2D Fourier basis of the torus
  (:func:`liequiv.o3.s2grid.sh_to_half_spectrum`, the coefficients of :func:`~liequiv.o3.s2grid.sh_to_fourier` in
  the layout of a real FFT), 2D convolution of the coefficients by FFT (inverse real FFT to the ``n x n`` torus
  grid, ``n >= 2(L1+L2)+1`` an even 2-3-5 size, pointwise product, real FFT back), projection back with the exact
  ``sin θ`` integrals (:func:`liequiv.o3.s2grid.half_spectrum_to_sh`). This is the method of Luo et al. (2024),
  "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt Tensor Products".

On the CPU (float32 and float64) :func:`gaunt_product_grid` and the ``"gaunt_grid"`` tensor-product backend run a
compiled kernel, ``csrc/grid_product.cpp`` (built on first use by :mod:`liequiv.native`; the torch code here where
no compiler exists): one SIMD vector of signals (8 with AVX2, 16 with AVX-512), the whole grid of a block in the
cache, the symmetry ``α -> 2π - α`` of the grid halving the azimuthal sums, and reading and writing e3nn's layout
directly. It is trilinear in (input, input, cotangent), so its gradients are the same kernel with the tables
exchanged, to any order. It is the operator ``torch.ops.liequiv.grid_product`` (:mod:`liequiv.o3.kernels`), which
``torch.compile`` keeps in its graphs.

Speed against e3nn: ``python benchmarks/bench_o3.py --section c`` (tables in ``docs/benchmarks/o3.md``). The
Fourier version's batched FFTs on the ``n x n`` torus (``n ≈ 4L``) touch several times the points of the quadrature
grid, so on the CPU it trails the grid version, as the Price of Freedom paper also found.

:func:`gaunt_tensor` gives the dense ``G [K1, K2, K3]`` (for a direct contraction, or to check).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from liequiv.o3 import kernels
from liequiv.o3.harmonics import _check_lmax, _check_normalization, _degree_scale, spherical_harmonics
from liequiv.o3.s2grid import (
    _by_m,
    _flat,
    _from_m,
    _grid_project,
    _grid_tensors,
    _grid_values,
    _half_project,
    _half_tensors,
    _half_values,
    _lmax_of,
    grid_vectors,
    quadrature_size,
    s2_grid,
)

__all__ = ["gaunt_coefficients", "gaunt_product_fourier", "gaunt_product_grid", "gaunt_tensor"]


def _inputs(x1: Tensor, x2: Tensor, lmax_out: int) -> tuple[int, int, int]:
    _check_lmax(lmax_out)
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise TypeError("x1 and x2 must be torch.Tensor")
    if x1.dtype != x2.dtype or x1.device != x2.device:
        raise ValueError(
            f"x1 and x2 must share dtype and device, got {x1.dtype}/{x1.device} and {x2.dtype}/{x2.device}"
        )
    if not x1.is_floating_point():
        raise TypeError(f"x1 and x2 must be floating point, got {x1.dtype}")
    return _lmax_of(x1.shape[-1], "x1"), _lmax_of(x2.shape[-1], "x2"), lmax_out


def _fast_size(n: int) -> int:
    """Smallest even ``m >= n`` whose prime factors are 2, 3 and 5 (measured on CPU: odd sizes run at half speed)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1 and n % 2 == 0:
            return n
        n += 1


def _pad_out(out: Tensor, lmax_eff: int, lmax_out: int) -> Tensor:
    """Degrees above ``L1 + L2`` are exactly zero: append them instead of computing them."""
    if lmax_eff == lmax_out:
        return out
    return torch.cat([out, out.new_zeros(*out.shape[:-1], (lmax_out + 1) ** 2 - (lmax_eff + 1) ** 2)], -1)


def gaunt_product_grid(x1: Tensor, x2: Tensor, lmax_out: int, *, normalization: str = "component") -> Tensor:
    """Gaunt product by exact quadrature: ``x1 [..., (L1+1)^2]``, ``x2 [..., (L2+1)^2] -> [..., (lmax_out+1)^2]``.

    Leading dimensions broadcast (typically ``[..., C, (L+1)^2]`` channel-wise). ``normalization`` names the basis
    of the inputs and of the output (see the module docstring; "component" by default).
    """
    return _product(grid_product_by_m, x1, x2, lmax_out, normalization)


def gaunt_product_fourier(x1: Tensor, x2: Tensor, lmax_out: int, *, normalization: str = "component") -> Tensor:
    """Gaunt product in the 2D Fourier basis: SH -> torus Fourier, 2D convolution by FFT, -> SH.

    Same operation, shapes and normalization as :func:`gaunt_product_grid`.
    """
    return _product(fourier_product_by_m, x1, x2, lmax_out, normalization)


def _product(by_m: Callable[..., Tensor], x1: Tensor, x2: Tensor, lmax_out: int, normalization: str) -> Tensor:
    L1, L2, L3 = _inputs(x1, x2, lmax_out)
    _check_normalization(normalization)
    L3e = min(L3, L1 + L2)
    batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    c = by_m(_by_m(x1, L1), _by_m(x2, L2), L3e, normalization)  # [R, m, l]
    return _pad_out(_from_m(c, L3e).view(*batch, -1), L3e, L3)


def grid_product_shape(L1: int, L2: int, lmax_out: int) -> tuple[int, int]:
    """``(n_beta, n_alpha)`` of the grid of :func:`grid_product_by_m`: exact for degree ``L1 + L2 + lmax_out``."""
    return quadrature_size(L1 + L2 + lmax_out)


def fourier_product_shape(L1: int, L2: int, lmax_out: int) -> tuple[int, int]:
    """``(n, n)`` torus grid of :func:`fourier_product_by_m`: ``n > 2 (L1 + L2)``, no wrap-around of the product."""
    n = _fast_size(2 * (L1 + L2) + 1)
    return n, n


def grid_product_by_m(a1: Tensor, a2: Tensor, lmax_out: int, normalization: str = "component") -> Tensor:
    """The Gaunt product of signals given by ``m``, ``a1 [..., 2L1+1, L1+1]`` and ``a2 [..., 2L2+1, L2+1]`` (layout
    of ``s2grid._by_m``, leading dimensions broadcast), on the exact quadrature grid: ``[R, 2L3+1, L3+1]`` with
    ``R`` the broadcast batch flattened (a transposed view). ``lmax_out <= L1 + L2``."""
    L1, L2 = a1.shape[-1] - 1, a2.shape[-1] - 1
    n_beta, n_alpha = grid_product_shape(L1, L2, lmax_out)
    out = _native_grid_product(a1, a2, lmax_out, (n_beta, n_alpha), normalization)
    if out is not None:
        return out
    f1, f2 = (
        _grid_values(_flat(a), *_grid_tensors(L, n_beta, n_alpha, normalization, a)[:2]).view(
            *a.shape[:-2], n_beta, n_alpha
        )
        for a, L in ((a1, L1), (a2, L2))
    )
    _, phi, lam_back = _grid_tensors(lmax_out, n_beta, n_alpha, normalization, a1)
    return _grid_project((f1 * f2).reshape(-1, n_beta, n_alpha), phi, lam_back)


def native_grid_product_available() -> bool:
    """Whether :func:`grid_product_by_m` runs the compiled kernel on the CPU (see :mod:`liequiv.o3.kernels`)."""
    return kernels.available("grid_product")


@dataclasses.dataclass(eq=False)
class GridLayout:
    """Where one operand of the compiled grid product keeps its signals, in a row-major ``[Z, D]`` tensor.

    Signal ``r = z C + u`` (sample ``z``, channel ``u``) has its coefficient ``k`` (by ``m``: ``k = (L + m)(L + 1) +
    l``) at column ``base[k] + u step[k]`` of row ``z``, times ``scale[k]``, both when read and when written;
    ``base[k] < 0``: zero, not written. ``table``: the operand's grid table, ``"lam"`` (values) for the inputs of the
    forward and ``"back"`` (projection) for its output. ``covered``: writing it sets every column of ``[Z, D]``.
    ``shared``: one signal per sample, read by all its channels (``step = 0``).
    """

    L: int
    table: str
    D: int
    base: Tensor  # int32 [K]
    step: Tensor  # int32 [K]
    scale: Tensor  # float64 [K]
    covered: bool
    shared: bool
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def tensors(self, dtype: torch.dtype, grid: tuple[int, int], normalization: str) -> list[Tensor]:
        """``[base, step, scale, table, phi]`` of the kernel's operand (``scale``, ``table`` and ``phi`` in
        ``dtype``), built once per dtype and grid."""
        key = (dtype, grid, normalization)
        if key not in self._cache:
            lam, phi, back = _grid_tensors(self.L, *grid, normalization, torch.empty(0, dtype=dtype))
            table = lam if self.table == "lam" else back
            self._cache[key] = [self.base, self.step, self.scale.to(dtype), table.contiguous(), phi.contiguous()]
        return self._cache[key]


@functools.cache
def by_m_layout(L: int, C: int, table: str, shared: bool) -> GridLayout:
    """The layout of signals by ``m``, ``[Z, C, 2L+1, L+1]`` (or ``[Z, 1, 2L+1, L+1]`` when ``shared``)."""
    K = (2 * L + 1) * (L + 1)
    k = torch.arange(K, dtype=torch.int32)
    step = torch.zeros(K, dtype=torch.int32) if shared else torch.full((K,), K, dtype=torch.int32)
    return GridLayout(L, table, K if shared else C * K, k, step, torch.ones(K, dtype=torch.float64), True, shared)


def _grid_product_cpu(x: Tensor, y: Tensor, x_layout: list[Tensor], y_layout: list[Tensor], out_layout: list[Tensor],
                      degrees: list[int], out_dim: int, covered: list[bool], shared: list[bool], channels: int,
                      grid: list[int]) -> Tensor:
    """CPU implementation of ``liequiv::grid_product``: ``x [Z, Dx]``, ``y [Z, Dy]`` -> ``[Z, out_dim]``; each
    layout is ``[base, step, scale, table, phi]`` of :meth:`GridLayout.tensors`, ``degrees`` the three ``L``."""
    x, y = x.contiguous(), y.contiguous()
    out = (x.new_empty if covered[2] else x.new_zeros)(x.shape[0], out_dim)
    operands = [
        arg
        for t, layout, L in zip((x, y, out), (x_layout, y_layout, out_layout), degrees)
        for arg in (kernels.ptr(t), t.shape[1], *map(kernels.ptr, layout[:3]), L, *map(kernels.ptr, layout[3:]))
    ]
    fn = kernels.kernel("grid_product", "grid_product", x.dtype)
    fn(*operands, x.shape[0], channels, *grid, kernels.threads())
    return out


def _grid_product_fake(x, y, x_layout, y_layout, out_layout, degrees, out_dim, covered, shared, channels, grid):
    return x.new_empty(x.shape[0], out_dim)


def _save_grid_product(ctx, inputs, output) -> None:
    x, y, x_layout, y_layout, out_layout, *ctx.args = inputs
    ctx.save_for_backward(x, y, *x_layout, *y_layout, *out_layout)


def _grid_product_vjp(ctx, g: Tensor) -> tuple:
    """Trilinear in ``(x, y, cotangent)`` with the tables and layouts as the only asymmetry: the gradient for ``x``
    is the same product of the cotangent (read with the output's table and layout) and ``y``, written with ``x``'s
    layout (per channel, then summed, where one signal of ``x`` is shared by the channels). So every order of
    derivative runs the compiled kernel."""
    x, y, *flat = ctx.saved_tensors
    layouts = [flat[0:5], flat[5:10], flat[10:15]]
    degrees, _, covered, shared, C, grid = ctx.args
    grads = [None, None]
    for i, (me, other) in enumerate(((0, 1), (1, 0))):
        if not ctx.needs_input_grad[i]:
            continue
        D = (x, y)[me].shape[1]
        target = layouts[me]
        spread = shared[me] and C > 1
        if spread:  # [Z, C, D]: channel u of every coefficient at column u D + base
            base = target[0]
            target = [base, torch.where(base >= 0, D, 0).to(torch.int32), *target[2:]]
        gi = _grid_product_op(g, (x, y)[other], layouts[2], layouts[other], target,
                              [degrees[2], degrees[other], degrees[me]], C * D if spread else D,
                              [covered[2], covered[other], covered[me]], [False, shared[other], False], C, grid)
        grads[i] = gi.view(-1, C, D).sum(1) if spread else gi
    return *grads, [None] * 5, [None] * 5, [None] * 5, *[None] * 6


_grid_product_op = kernels.define(
    "grid_product(Tensor x, Tensor y, Tensor[] x_layout, Tensor[] y_layout, Tensor[] out_layout, int[] degrees, "
    "int out_dim, bool[] covered, bool[] shared, int channels, int[] grid) -> Tensor",
    _grid_product_cpu,
    _grid_product_fake,
    _grid_product_vjp,
    _save_grid_product,
)


def native_grid_product(
    x: Tensor, y: Tensor, layouts: tuple[GridLayout, GridLayout, GridLayout], Z: int, C: int, grid: tuple[int, int],
    normalization: str = "component",
) -> Tensor:
    """The Gaunt product on the ``grid`` of ``Z`` samples of ``C`` signals, ``x [Z, Dx]``, ``y [Z, Dy]`` -> ``[Z, Do]``
    in the given layouts, by the compiled kernel, ``liequiv::grid_product`` (check
    :func:`native_grid_product_available` first)."""
    lx, ly, lo = layouts
    args = (
        x, y, *(layout.tensors(x.dtype, grid, normalization) for layout in layouts), [lx.L, ly.L, lo.L], lo.D,
        [lx.covered, ly.covered, lo.covered], [lx.shared, ly.shared, lo.shared], C, list(grid),
    )
    return _grid_product_op(*args)


def _native_grid_product(
    a1: Tensor, a2: Tensor, lmax_out: int, grid: tuple[int, int], normalization: str
) -> Tensor | None:
    """:func:`grid_product_by_m` by the compiled kernel, or ``None`` where it does not apply (not the CPU, no
    compiler, a broadcast other than equal batches or a size-1 last batch dimension)."""
    if a1.device.type != "cpu" or a1.dtype not in (torch.float32, torch.float64) or not native_grid_product_available():
        return None
    batch = torch.broadcast_shapes(a1.shape[:-2], a2.shape[:-2])
    C = batch[-1] if batch else 1
    Z = math.prod(batch[:-1])
    shared = []
    for a in (a1, a2):
        if a.shape[:-2] != batch and (not batch or a.shape[:-2] != (*batch[:-1], 1)):
            return None
        shared.append(a.shape[:-2] != batch)
    L1, L2 = a1.shape[-1] - 1, a2.shape[-1] - 1
    layouts = (
        by_m_layout(L1, C, "lam", shared[0]),
        by_m_layout(L2, C, "lam", shared[1]),
        by_m_layout(lmax_out, C, "back", False),
    )
    x, y = a1.reshape(Z, layouts[0].D), a2.reshape(Z, layouts[1].D)
    out = native_grid_product(x, y, layouts, Z, C, grid, normalization)
    return out.view(Z * C, 2 * lmax_out + 1, lmax_out + 1)


def fourier_product_by_m(a1: Tensor, a2: Tensor, lmax_out: int, normalization: str = "component") -> Tensor:
    """As :func:`grid_product_by_m`, by FFT on the ``n x n`` torus grid (Luo et al. 2024).

    The 2D transforms run as 1D ones, each over the columns that are non-zero: a signal of degree ``L`` has
    ``|v| <= L``, and the projection on degree ``lmax_out`` reads ``|v| <= lmax_out`` only.
    """
    L1, L2 = a1.shape[-1] - 1, a2.shape[-1] - 1
    n, _ = fourier_product_shape(L1, L2, lmax_out)

    def torus_values(a: Tensor, L: int) -> Tensor:
        lam, phase = _half_tensors(L, n, normalization, a)[:2]
        h = _half_values(_flat(a), lam, phase[:, : L + 1])  # [R, n (u), L+1 (v)]
        g = torch.fft.ifft(h, dim=1, norm="forward")
        return torch.fft.irfft(g, n, dim=2, norm="forward").view(*a.shape[:-2], n, n)

    f = (torus_values(a1, L1) * torus_values(a2, L2)).reshape(-1, n, n)
    h = torch.fft.fft(torch.fft.rfft(f, dim=2, norm="forward")[..., : lmax_out + 1], dim=1, norm="forward")
    _, _, w, cols = _half_tensors(lmax_out, n, normalization, a1)
    return _half_project(h, w, cols)


@functools.cache
def _gaunt_tensor_f64(L1: int, L2: int, L3: int, normalization: str) -> Tensor:
    n_beta, n_alpha = quadrature_size(L1 + L2 + L3)
    v = grid_vectors(n_beta, n_alpha).reshape(-1, 3)
    _, _, w = s2_grid(n_beta, n_alpha)
    w = w[:, None].expand(n_beta, n_alpha).reshape(-1)
    Lm = max(L1, L2, L3)
    Y = spherical_harmonics(Lm, v, normalization=normalization)  # [P, K]
    y1, y2, y3 = Y[:, : (L1 + 1) ** 2], Y[:, : (L2 + 1) ** 2], Y[:, : (L3 + 1) ** 2]
    # ∫ Y_lm² = 4π s_l² exactly (the grid is only exact for the triple products)
    scale = torch.tensor(_degree_scale(L3, normalization), dtype=torch.float64)
    norm2 = torch.repeat_interleave(4 * math.pi * scale**2, torch.arange(1, 2 * L3 + 2, 2))
    G = torch.einsum("p,pi,pj,pk->ijk", w, y1, y2, y3) / norm2
    # exact zeros where the rounding of the quadrature leaves noise (odd paths, selection rules)
    return torch.where(G.abs() < 1e-13 * G.abs().max(), torch.zeros_like(G), G)


def gaunt_tensor(
    L1: int,
    L2: int,
    L3: int,
    *,
    normalization: str = "component",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Dense ``G [(L1+1)^2, (L2+1)^2, (L3+1)^2]`` with ``out_k = Σ_ij G_ijk x1_i x2_j`` (all degree triples).

    Built once in float64 by exact quadrature and cached. ``O(L^6)`` to contract: a reference, not the fast path.
    """
    for L in (L1, L2, L3):
        _check_lmax(L)
    _check_normalization(normalization)
    return _gaunt_tensor_f64(L1, L2, L3, normalization).to(dtype=dtype, device=device, copy=True)


def gaunt_coefficients(l1: int, l2: int, l3: int, *, normalization: str = "component") -> Tensor:
    """The block ``[2l1+1, 2l2+1, 2l3+1]`` of :func:`gaunt_tensor` for one degree triple (float64)."""
    G = gaunt_tensor(l1, l2, l3, normalization=normalization)
    return G[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2].clone()
