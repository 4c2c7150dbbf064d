r"""Gaunt backends of :class:`~liequiv.o3.tensor_product.interface.TensorProduct`: ``"gaunt_grid"`` and
``"gaunt_fourier"``.

Per channel, both inputs are read as spherical signals ``f = Σ_lm x_lm Y_lm`` (one block per degree) and the
output is the projection of their pointwise product on the harmonics of the output's degrees: every path
``l1 ⊗ l2 -> l3`` at once, with the Gaunt coefficients ``G = ∫ Y Y Y / ∫ Y²`` of
:func:`liequiv.o3.gaunt.gaunt_tensor` in place of the Clebsch-Gordan table. By Wigner-Eckart ``G_{l1 l2 l3} =
γ_{l1 l2 l3} C_{l1 l2 l3}`` with one scalar ``γ`` per degree triple, so path ``p`` of this backend equals path ``p``
of ``backend="cg"`` given the weight ``γ_p`` (:func:`gaunt_path_factor`). The cost is ``O(L^3)`` per channel instead
of ``O(L^6)`` (``O(L^5)`` with sparse CG tables) for all paths.

What it buys in speed it pays in expressivity (the "Price of Freedom" of Xie et al.). Every path the CG product
reaches from ``ir1 ⊗ ir2`` is one of:

======================================  ========  ======================================================
path                                     ``cg``    Gaunt backends
======================================  ========  ======================================================
``l1 + l2 + l3`` even                     yes       yes, with the fixed factor ``γ_{l1 l2 l3}``
``l1 + l2 + l3`` odd (``1o ⊗ 1o -> 1e``:  yes       no: ``∫ Y Y Y = 0``; asking for one raises ``ValueError``
the cross product, pseudotensors)
own weight per path                       yes       no: the weights factorize per degree (scale the degree
                                                    blocks of the inputs before and of the output after)
======================================  ========  ======================================================

So the instructions a Gaunt backend accepts are exactly *all* the even paths between the degrees involved:

* mode ``"uuu"`` (channel ``u`` of ``x1`` with channel ``u`` of ``x2``) or ``"uvu"`` with ``mul2 = 1`` (each channel
  of ``x1`` with the one signal ``x2``, e.g. ``Y(r̂)``), the same number of channels in every path, no weights;
* at most one block per degree in each of ``x1``, ``x2`` and the output among those the paths use;
* the path set is closed: every triple ``(l1, l2, l3)`` of used degrees with ``|l1 - l2| <= l3 <= l1 + l2`` and
  ``l1 + l2 + l3`` even is an instruction (and its parities match), since the product computes them all;
* the normalization constant of a path depends on its output block only (true for the derived instructions with the
  default path weights).

Anything else raises ``ValueError`` naming the path. The normalization constants ``a`` are e3nn's, as in ``cg``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from liequiv.o3.gaunt import (
    GridLayout,
    fourier_product_by_m,
    fourier_product_shape,
    gaunt_coefficients,
    grid_product_by_m,
    grid_product_shape,
    native_grid_product,
    native_grid_product_available,
)
from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import TensorProductSpec, register_backend
from liequiv.o3.wigner import clebsch_gordan

__all__ = ["GauntTensorProduct", "gaunt_path_factor"]

# batch chunks are sized so that one grid-valued temporary takes about this many bytes (cache-sized)
GRID_BYTES = 1 << 20


@functools.cache
def gaunt_path_factor(l1: int, l2: int, l3: int) -> float:
    """``γ`` with ``gaunt_coefficients(l1, l2, l3) = γ · clebsch_gordan(l1, l2, l3)`` (0 for odd ``l1 + l2 + l3``).

    Equal to ``± sqrt((2l1+1)(2l2+1)(2l3+1)) (l1 l2 l3; 0 0 0)``; 0 outside the triangle ``|l1 - l2| <= l3 <= l1 + l2``.
    """
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        return 0.0
    G, C = gaunt_coefficients(l1, l2, l3), clebsch_gordan(l1, l2, l3)
    return float((G * C).sum() / (C * C).sum())


def _path_name(spec: TensorProductSpec, n: int) -> str:
    ins = spec.instructions[n]
    ir1, ir2 = spec.irreps_in1[ins.i_in1].ir, spec.irreps_in2[ins.i_in2].ir
    return f"instruction {n} ({ir1} x {ir2} -> {spec.irreps_out[ins.i_out].ir})"


def _degree_blocks(irreps: Irreps, used: set[int], name: str) -> dict[int, int]:
    """``{degree: block index}`` of the used blocks; two used blocks of one degree cannot form one signal."""
    blocks: dict[int, int] = {}
    for i in sorted(used):
        l = irreps[i].ir.l
        if l in blocks:
            raise ValueError(
                f"the Gaunt backends read {name} as one signal per channel, but the paths use two blocks of degree {l}"
                f" ({irreps[blocks[l]]} and {irreps[i]} of {irreps}): use backend='cg'"
            )
        blocks[l] = i
    return blocks


class GauntTensorProduct(nn.Module):
    """Gaunt product of the channels of ``x1`` and ``x2`` in e3nn's layout; see the module docstring.

    ``product`` is :func:`liequiv.o3.gaunt.grid_product_by_m` or :func:`~liequiv.o3.gaunt.fourier_product_by_m`,
    ``grid_shape(L1, L2, L3)`` the size of its grid (to size the batch chunks).
    """

    def __init__(
        self, spec: TensorProductSpec, product: Callable[..., Tensor], grid_shape: Callable[..., tuple[int, int]]
    ) -> None:
        super().__init__()
        self.product = product
        irreps1, irreps2, irreps_out = spec.irreps_in1, spec.irreps_in2, spec.irreps_out
        paths = [n for n, ins in enumerate(spec.instructions) if irreps_out[ins.i_out].mul > 0]
        channels = {irreps1[spec.instructions[n].i_in1].mul for n in paths}
        for n in paths:
            ins = spec.instructions[n]
            (_, ir1), (mul2, ir2), (_, ir3) = irreps1[ins.i_in1], irreps2[ins.i_in2], irreps_out[ins.i_out]
            if not (ins.connection_mode == "uuu" or (ins.connection_mode == "uvu" and mul2 == 1)):
                raise ValueError(
                    f"{_path_name(spec, n)} has mode {ins.connection_mode!r} with mul2={mul2}: the Gaunt backends"
                    " compute 'uuu' paths, or 'uvu' paths with mul2 = 1"
                )
            if ins.has_weight:
                raise ValueError(
                    f"{_path_name(spec, n)} has weights: the Gaunt backends have no per-path weights (they factorize"
                    " per degree: scale the degree blocks of the inputs and the output); use weights=None or 'cg'"
                )
            if (ir1.l + ir2.l + ir3.l) % 2:
                raise ValueError(
                    f"{_path_name(spec, n)} has l1 + l2 + l3 odd: the product of two spherical signals has no such"
                    " component (no cross product, no pseudotensor output); use backend='cg'"
                )
        if len(channels) > 1:
            raise ValueError(f"the Gaunt backends need one number of channels in every path, got {sorted(channels)}")
        self.channels = channels.pop() if channels else 0
        muls2 = {irreps2[spec.instructions[n].i_in2].mul for n in paths}
        if len(muls2) > 1:
            raise ValueError(f"the Gaunt backends need x2 blocks of one multiplicity (1 or mul1), got {sorted(muls2)}")
        channels2 = muls2.pop() if muls2 else 1

        deg1 = _degree_blocks(irreps1, {spec.instructions[n].i_in1 for n in paths}, "x1")
        deg2 = _degree_blocks(irreps2, {spec.instructions[n].i_in2 for n in paths}, "x2")
        deg3 = _degree_blocks(irreps_out, {spec.instructions[n].i_out for n in paths}, "the output")
        given = {
            (irreps1[i.i_in1].ir.l, irreps2[i.i_in2].ir.l, irreps_out[i.i_out].ir.l): n
            for n, i in ((n, spec.instructions[n]) for n in paths)
        }
        for l1, i1 in deg1.items():
            for l2, i2 in deg2.items():
                for l3, i3 in deg3.items():
                    if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0 and (l1, l2, l3) not in given:
                        raise ValueError(
                            f"the Gaunt product of these blocks also computes {irreps1[i1].ir} x {irreps2[i2].ir} ->"
                            f" {irreps_out[i3].ir}, which is not an instruction (or its parity does not match):"
                            " the Gaunt backends need the closed set of even paths; use backend='cg'"
                        )
        scale = {}
        for n in paths:
            ins = spec.instructions[n]
            a = scale.setdefault(ins.i_out, ins.path_weight)
            if abs(a - ins.path_weight) > 1e-12 * abs(a):
                raise ValueError(
                    f"{_path_name(spec, n)} has the normalization constant {ins.path_weight:.6g} but another path into"
                    f" the same output block has {a:.6g}: the Gaunt backends scale per output block"
                )

        L1, L2, L3 = (max(d, default=0) for d in (deg1, deg2, deg3))
        self.lmax_out = min(L3, L1 + L2)  # degrees above L1 + L2 are zero
        c = max(self.channels, 1)
        self.register_buffer("index1", self._gather(irreps1, deg1, L1, c), persistent=False)
        self.register_buffer("index2", self._gather(irreps2, deg2, L2, channels2), persistent=False)
        # output column -> flat position in the product [C, 2L+1 (m), L+1 (l)] (or the zero pad), and its constant a
        L = self.lmax_out
        k3 = (2 * L + 1) * (L + 1)
        out_index = torch.full((irreps_out.dim,), c * k3, dtype=torch.long)
        out_scale = torch.zeros(irreps_out.dim, dtype=torch.float64)
        for l, i in deg3.items():
            if l > L:
                continue
            start = irreps_out.slices()[i].start
            u, m = torch.meshgrid(torch.arange(c), torch.arange(-l, l + 1), indexing="ij")
            out_index[start : start + c * (2 * l + 1)] = (u * k3 + (L + m) * (L + 1) + l).reshape(-1)
            out_scale[start : start + c * (2 * l + 1)] = scale[i]
        self.register_buffer("out_index", out_index, persistent=False)
        # batch chunks (TensorProduct.chunk_bytes, counted in output-sized rows) whose grid values take ~GRID_BYTES
        points = math.prod(grid_shape(L1, L2, self.lmax_out))
        row = max(irreps1.dim, irreps2.dim, irreps_out.dim, 1)
        self._grid_chunk_bytes = max(1, GRID_BYTES * row // (c * points))
        self.register_buffer("out_scale", out_scale, persistent=False)
        self.d_out = irreps_out.dim
        # the same maps as layouts of the compiled grid product (channel u=0 and the stride between channels)
        self.grid = grid_shape(L1, L2, self.lmax_out)
        out_degrees = {l: i for l, i in deg3.items() if l <= L}
        self.layouts = (
            self._layout(irreps1, deg1, L1, "lam", c, True, {}),
            self._layout(irreps2, deg2, L2, "lam", c, channels2 > 1, {}),
            self._layout(irreps_out, out_degrees, L, "back", c, True, {l: scale[i] for l, i in out_degrees.items()}),
        )

    @property
    def chunk_bytes(self) -> int:
        """Batch chunks sized for the grid values in memory; none (0) where the compiled grid kernel runs, which
        keeps each block's grid in the cache."""
        return 0 if self._native() else self._grid_chunk_bytes

    def _native(self, x: Tensor | None = None) -> bool:
        """Whether the compiled grid kernel runs (for ``x``: on the CPU, in float32 or float64)."""
        if x is not None and (x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64)):
            return False
        return self.product is grid_product_by_m and native_grid_product_available()

    @classmethod
    def _layout(
        cls, irreps: Irreps, degrees: dict[int, int], lmax: int, table: str, C: int, strided: bool, scale: dict
    ) -> GridLayout:
        """The layout of ``x [Z, irreps.dim]`` for the compiled grid product: the columns of channel 0 by ``m``, the
        stride ``2l + 1`` between channels (0: one signal shared by the channels), ``scale`` per degree (else 1)."""
        index = cls._gather(irreps, degrees, lmax, 1)[0].reshape(-1)  # [(2L+1)(L+1)]
        base = torch.where(index < irreps.dim, index, -1)
        l = torch.arange(lmax + 1).repeat(2 * lmax + 1)
        step = torch.where(base >= 0, 2 * l + 1, 0) if strided else torch.zeros_like(base)
        s = torch.tensor([scale.get(int(d), 1.0) for d in l], dtype=torch.float64)
        valid = base >= 0
        cols = base[valid][None] + torch.arange(C)[:, None] * step[valid][None]
        covered = cols.unique().numel() == irreps.dim
        shared = not bool(step.any())
        return GridLayout(lmax, table, irreps.dim, base.to(torch.int32), step.to(torch.int32), s, covered, shared)

    @staticmethod
    def _gather(irreps: Irreps, degrees: dict[int, int], lmax: int, channels: int) -> Tensor:
        """``[channels, 2L+1 (m), L+1 (l)]``: the column of ``x`` holding (channel, l, m) (``irreps.dim``: zero)."""
        index = torch.full((channels, 2 * lmax + 1, lmax + 1), irreps.dim, dtype=torch.long)
        for l, i in degrees.items():
            start = irreps.slices()[i].start
            cols = torch.arange(start, start + channels * (2 * l + 1)).reshape(channels, 2 * l + 1)
            index[:, lmax - l : lmax + l + 1, l] = cols
        return index

    @staticmethod
    def _signals(x: Tensor, index: Tensor) -> Tensor:
        """``x [Z, d] -> [Z, C, 2L+1, L+1]``, the signals by ``m`` (zeros for the degrees no path uses)."""
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], 1)
        return padded.index_select(1, index.reshape(-1)).view(x.shape[0], *index.shape)

    def forward(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        z = x1.shape[0]
        if self.channels == 0 or z == 0:
            return x1.new_zeros(z, self.d_out)
        if self._native(x1):  # straight from e3nn's layout to e3nn's layout
            return native_grid_product(x1, x2, self.layouts, z, self.channels, self.grid)
        y = self.product(self._signals(x1, self.index1), self._signals(x2, self.index2), self.lmax_out)
        y = torch.cat([y.reshape(z, -1), y.new_zeros(z, 1)], 1)
        return y.index_select(1, self.out_index) * self.out_scale.to(y.dtype)


register_backend("gaunt_grid", lambda spec: GauntTensorProduct(spec, grid_product_by_m, grid_product_shape))
register_backend("gaunt_fourier", lambda spec: GauntTensorProduct(spec, fourier_product_by_m, fourier_product_shape))
