r"""Many-body product blocks: per channel, a polynomial of degree ``ν ≤ correlation`` in one node's features.

MACE (Batatia et al., NeurIPS 2022) lifts the two-body messages ``A_i`` (per channel ``c`` an O(3) signal
``A_{i,c} = ⊕_l A_{i,c,l}``) to many-body features with element-dependent weights::

    B_{i,c,LM} = Σ_{ν ≤ correlation} Σ_p W^{(ν)}_{z_i,p,c} Σ_{a_1..a_ν} U^{(ν)}_{a_1..a_ν,LM,p} A_{i,c,a_1}⋯A_{i,c,a_ν}

where ``a`` runs over the ``(l, m)`` components of one channel and ``U^{(ν)}`` is a basis of the symmetric
equivariant ``ν``-linear maps onto ``L`` ("generalized Clebsch-Gordan coefficients").

* :class:`SymmetricContraction` builds ``U^{(ν)}`` from the library's Clebsch-Gordan tables: every coupling tree
  ``((l_1 ⊗ l_2) → k_1) ⊗ l_3 → … → L``, symmetrized over the ``ν`` slots, reduced to an orthonormal basis by an
  SVD (float64, once, cached). Since ``U`` is symmetric, the sum over index tuples is a sum over sorted tuples
  (monomials ``A_{a_1} ⋯ A_{a_ν}``, ``a_1 ≤ … ≤ a_ν``) weighted by their number of orderings; the weights are folded
  into ``U`` per element once per call, so each node costs one product of its monomials with a
  ``[monomials, Σ(2L+1)]`` matrix per channel.
* :class:`GauntContraction` is the same block through Gaunt products, as in the many-body experiment of Luo et al.
  (ICLR 2024): ``A_{i,c}`` is read as a function on the sphere, its degree blocks scaled by element weights
  ``w^{(ν)}_{z_i,c,l}``, raised pointwise to the power ``ν`` on an exact quadrature grid and projected back::

    B_{i,c,LM} = Σ_ν v^{(ν)}_{z_i, c, L} ∫ Y_LM (Σ_l w^{(ν)}_{z_i,c,l} A_{i,c,l}·Y_l / sqrt(dim A))^ν dΩ / ∫ Y_LM²

  Cost per channel: ``O(L^2 · grid)`` instead of ``O(dim(A)^ν)``; the paths it reaches are the products of
  functions: features of natural parity ``(-1)^l`` only (``0e, 1o, 2e, …``), no pseudotensors.

Both map ``x [N, irreps_in.dim]`` and ``species [N]`` (element indices in ``[0, num_elements)``) to
``[N, irreps_out.dim]``, with ``irreps_in`` and ``irreps_out`` of the form ``C x (ir_1 + ir_2 + …)`` in e3nn's
layout (every block ``C`` channels).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from typing import Any

import torch
from torch import Tensor, nn

from liequiv.o3.constants import Float64Constants
from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.irreps import Irrep, Irreps, check_features
from liequiv.o3.s2grid import grid_vectors, quadrature_size, s2_grid
from liequiv.o3.wigner import clebsch_gordan
from liequiv.validation import check_positive_int

__all__ = ["GauntContraction", "SymmetricContraction", "symmetric_coupling_basis"]


def _channel_irreps(irreps: Any, name: str) -> tuple[int, Irreps]:
    """``C x (ir_1 + ir_2 + ...)`` -> ``(C, ir_1 + ir_2 + ...)``; ValueError otherwise."""
    irreps = Irreps(irreps)
    muls = {mul for mul, _ in irreps}
    irs = [ir for _, ir in irreps]
    if len(irreps) == 0 or len(muls) != 1 or len(set(irs)) != len(irs) or 0 in muls:
        raise ValueError(f"{name} must be C x (ir_1 + ir_2 + ...) with every block C > 0 channels and each irrep "
                         f"once, e.g. '16x0e + 16x1o', got {irreps}")
    return muls.pop(), Irreps([(1, ir) for ir in irs])


def _channel_index(irreps: Irreps, channels: int) -> Tensor:
    """``[C, d]``: the column of e3nn's layout ``C x irreps`` holding channel ``c``, component ``a`` of one channel."""
    index = torch.empty(channels, irreps.dim, dtype=torch.long)
    start = 0
    for (_, ir), sl in zip(irreps, irreps.slices()):
        block = torch.arange(channels * ir.dim).reshape(channels, ir.dim)
        index[:, sl] = start + block
        start += channels * ir.dim
    return index


@functools.cache
def _coupling_trees(irreps_key: str, nu: int, target: Irrep | None = None) -> dict[Irrep, Tensor]:
    """Every coupling tree of ``nu`` copies of ``irreps`` (mul 1 blocks), onto ``target`` only if given:
    ``{K: [d^nu, 2K+1, trees]}``, float64."""
    irreps = Irreps(irreps_key)
    d = irreps.dim
    out: dict[Irrep, list[Tensor]] = {}
    if nu == 1:
        for (_, ir), sl in zip(irreps, irreps.slices()):
            t = torch.zeros(d, ir.dim, 1, dtype=torch.float64)
            t[sl, :, 0] = torch.eye(ir.dim, dtype=torch.float64)
            out.setdefault(ir, []).append(t)
    else:
        for K, t in _coupling_trees(irreps_key, nu - 1).items():  # t [d^(nu-1), 2K+1, P]
            for (_, ir), sl in zip(irreps, irreps.slices()):
                for L in K * ir:
                    if target is not None and L != target:
                        continue
                    cg = clebsch_gordan(K.l, ir.l, L.l, dtype=torch.float64)  # [2K+1, 2l+1, 2L+1]
                    new = torch.zeros(t.shape[0], d, L.dim, t.shape[-1], dtype=torch.float64)
                    new[:, sl] = torch.einsum("akp,kmM->amMp", t, cg)
                    out.setdefault(L, []).append(new.reshape(-1, L.dim, t.shape[-1]))
    return {k: torch.cat(v, -1) for k, v in out.items() if target is None or k == target}


@functools.cache
def symmetric_coupling_basis(irreps: Any, ir_out: Any, nu: int) -> Tensor:
    """Orthonormal basis ``[d]*nu + [2L+1, P]`` (float64) of the symmetric O(3)-equivariant ``nu``-linear maps from
    ``irreps`` (multiplicity-1 blocks, dimension ``d``) to ``ir_out``: ``out_M = Σ_a U[a_1..a_nu, M, p] x_{a_1} ⋯
    x_{a_nu}``, with ``U`` symmetric in ``a_1..a_nu`` and ``Σ_{a,M} U_p U_q = δ_pq``. ``P`` may be 0."""
    irreps, ir_out = Irreps(irreps), Irrep(ir_out)
    check_positive_int(nu, "nu")
    d = irreps.dim
    trees = _coupling_trees(str(irreps), nu, ir_out).get(ir_out)
    if trees is None:
        return torch.zeros(*([d] * nu), ir_out.dim, 0, dtype=torch.float64)
    t = trees.reshape(*([d] * nu), ir_out.dim, -1)
    perms = list(itertools.permutations(range(nu)))
    sym = sum(t.permute(*p, nu, nu + 1) for p in perms) / len(perms)
    flat = sym.reshape(-1, sym.shape[-1]).T  # [trees, d^nu (2L+1)]
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    rank = int((s > 1e-9).sum())  # trees have norms of order 1; what symmetrization cancels is round-off
    return vh[:rank].T.reshape(*([d] * nu), ir_out.dim, rank).contiguous()


# per-node temporaries are computed in chunks of nodes of about this many bytes (on the CPU)
NODE_CHUNK_BYTES = 8 << 20


class _ManyBodyProduct(Float64Constants):
    """Shared bookkeeping: the per-channel layout of ``C x irreps`` in and out, and the element indices."""

    def __init__(self, irreps_in: Any, irreps_out: Any, correlation: int, num_elements: int) -> None:
        super().__init__()
        check_positive_int(correlation, "correlation")
        check_positive_int(num_elements, "num_elements")
        self.channels, self.ir_in = _channel_irreps(irreps_in, "irreps_in")
        channels_out, self.ir_out = _channel_irreps(irreps_out, "irreps_out")
        if channels_out != self.channels:
            raise ValueError(f"irreps_out needs the {self.channels} channels of irreps_in, got {channels_out}")
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        self.correlation, self.num_elements = correlation, num_elements
        self.register_buffer("in_index", _channel_index(self.ir_in, self.channels).reshape(-1), persistent=False)
        out_index = _channel_index(self.ir_out, self.channels).reshape(-1)
        self.register_buffer("out_index", torch.argsort(out_index), persistent=False)

    def extra_repr(self) -> str:
        return (f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, "
                f"num_elements={self.num_elements}")

    def forward(self, x: Tensor, species: Tensor) -> Tensor:
        """``x [N, irreps_in.dim]``, ``species [N]`` (long, in ``[0, num_elements)``) -> ``[N, irreps_out.dim]``."""
        check_features(x, self.irreps_in)
        if x.ndim != 2:
            raise ValueError(f"x must have shape [N, {self.irreps_in.dim}], got {tuple(x.shape)}")
        if species.dtype != torch.long or species.shape != x.shape[:1]:
            raise ValueError(f"species must be a long tensor [{x.shape[0]}], got {species.dtype} "
                             f"{tuple(species.shape)}")
        a = x.index_select(1, self.in_index).view(x.shape[0], self.channels, self.ir_in.dim)
        shared = self._shared(a.dtype)
        # nodes in chunks on the CPU: the per-node temporaries (monomials, grid values) stay cache-sized
        rows = max(1, NODE_CHUNK_BYTES // (self._row_elements() * a.element_size())) if a.device.type == "cpu" else 0
        if not rows or a.shape[0] <= rows:
            y = self._contract(a, species, shared)  # [N, C, d_out]
        else:
            y = torch.cat([self._contract(part, s, shared) for part, s in zip(a.split(rows), species.split(rows))])
        return y.reshape(x.shape[0], -1).index_select(1, self.out_index)

    def _row_elements(self) -> int:
        """Entries of the largest temporary per node."""
        raise NotImplementedError

    def _shared(self, dtype: torch.dtype) -> Any:
        """What every chunk of nodes uses, computed once per call."""
        return None

    def _contract(self, a: Tensor, species: Tensor, shared: Any) -> Tensor:
        raise NotImplementedError


class SymmetricContraction(_ManyBodyProduct):
    """MACE's symmetric contraction on Clebsch-Gordan coupling bases (see the module docstring).

    ``x [N, C x irreps_in]``, ``species [N]`` -> ``[N, C x irreps_out]``; weights ``W^{(ν)}`` per element, path and
    channel, N(0, 1/P_L) where ``P_L`` counts the paths into ``L`` over all orders.
    """

    def __init__(self, irreps_in: Any, irreps_out: Any, correlation: int, num_elements: int) -> None:
        super().__init__(irreps_in, irreps_out, correlation, num_elements)
        d = self.ir_in.dim
        # monomials: sorted index tuples of each order, with their number of orderings
        tuples = [q for nu in range(1, correlation + 1) for q in itertools.combinations_with_replacement(range(d), nu)]
        blocks, paths = [], []
        for _, ir in self.ir_out:
            rows = []
            for nu in range(1, correlation + 1):
                basis = symmetric_coupling_basis(self.ir_in, ir, nu)  # [d]*nu + [2L+1, P]
                u = torch.zeros(len(tuples), ir.dim, basis.shape[-1], dtype=torch.float64)
                for row, q in enumerate(tuples):
                    if len(q) == nu:
                        orderings = math.factorial(nu) / math.prod(math.factorial(k) for k in Counter(q).values())
                        u[row] = orderings * basis[q]
                rows.append(u)
            blocks.append(torch.cat(rows, -1))  # [Q, 2L+1, P_L]
            if blocks[-1].shape[-1] == 0:
                raise ValueError(f"no symmetric product of at most {correlation} copies of {self.ir_in} contains {ir}: "
                                 "drop it from irreps_out or raise the correlation")
            paths.append(blocks[-1].shape[-1])
        # keep the monomials some U row uses, and every prefix they are computed from
        used = set(itertools.compress(tuples, torch.stack([b.abs().amax((1, 2)) > 0 for b in blocks]).any(0).tolist()))
        for q in sorted(used, key=len, reverse=True):
            used.update(q[:k] for k in range(1, len(q)))
        keep = [q in used for q in tuples]
        tuples = list(itertools.compress(tuples, keep))
        self.paths = tuple(paths)
        self.num_monomials = len(tuples)
        for i, b in enumerate(blocks):
            self.register_constant(f"U_{i}", b[torch.tensor(keep)])
        # a monomial of order nu is the monomial of its first nu - 1 indices times a[last index]; order 1: a itself
        position = {q: i for i, q in enumerate(tuples)}
        self.register_buffer("first", torch.tensor([q[0] for q in tuples if len(q) == 1], dtype=torch.long),
                             persistent=False)
        for nu in range(2, correlation + 1):
            order = [q for q in tuples if len(q) == nu]
            self.register_buffer(f"prefix_{nu}", torch.tensor([position[q[:-1]] for q in order], dtype=torch.long),
                                 persistent=False)
            self.register_buffer(f"last_{nu}", torch.tensor([q[-1] for q in order], dtype=torch.long),
                                 persistent=False)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(num_elements, p, self.channels) / math.sqrt(max(p, 1))) for p in paths
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, paths={list(self.paths)}, monomials={self.num_monomials}"

    def _monomials(self, a: Tensor) -> Tensor:
        """``a [N, C, d] -> [N, C, Q]``: the used monomials of orders 1..correlation, in the row order of ``U``."""
        by_order = [a.index_select(2, self.first)]
        for nu in range(2, self.correlation + 1):
            previous = torch.cat(by_order, 2)
            by_order.append(previous.index_select(2, getattr(self, f"prefix_{nu}"))
                            * a.index_select(2, getattr(self, f"last_{nu}")))
        return torch.cat(by_order, 2)

    def _row_elements(self) -> int:
        return self.channels * self.num_monomials

    def _shared(self, dtype: torch.dtype) -> Tensor:
        """Element-wise matrices ``[E, C, Q, Σ(2L+1)]``: the weights folded into the coupling bases."""
        return torch.cat([torch.einsum("qmp,epc->ecqm", getattr(self, f"U_{i}").to(dtype), w)
                          for i, w in enumerate(self.weights)], -1)

    def _contract(self, a: Tensor, species: Tensor, v: Tensor) -> Tensor:
        mono = self._monomials(a).transpose(0, 1)  # [C, N, Q]
        out = a.new_zeros(self.channels, a.shape[0], v.shape[-1])
        for e in range(self.num_elements):
            nodes = (species == e).nonzero().squeeze(1)
            if nodes.numel():
                out = out.index_copy(1, nodes, torch.bmm(mono.index_select(1, nodes), v[e]))
        return out.transpose(0, 1)


class GauntContraction(_ManyBodyProduct):
    """The many-body product through pointwise powers of spherical signals (see the module docstring).

    ``irreps_in`` and ``irreps_out`` must have natural parity (``0e, 1o, 2e, ...``). The grid integrates
    polynomials of degree ``correlation · lmax_in + lmax_out`` exactly, so the projection is exact.
    """

    def __init__(self, irreps_in: Any, irreps_out: Any, correlation: int, num_elements: int) -> None:
        super().__init__(irreps_in, irreps_out, correlation, num_elements)
        for name, irreps in (("irreps_in", self.ir_in), ("irreps_out", self.ir_out)):
            odd = [str(ir) for _, ir in irreps if ir.p != (-1) ** ir.l]
            if odd:
                raise ValueError(f"{name} must have natural parity (0e, 1o, 2e, ...) for Gaunt products of spherical "
                                 f"signals; {', '.join(odd)} are not; use SymmetricContraction")
        lmax_in, lmax_out = self.ir_in.lmax, self.ir_out.lmax
        n_beta, n_alpha = quadrature_size(correlation * lmax_in + lmax_out)
        _, _, weights = s2_grid(n_beta, n_alpha)
        points = grid_vectors(n_beta, n_alpha).reshape(-1, 3)
        area = weights[:, None].expand(n_beta, n_alpha).reshape(-1)  # quadrature weight of each point
        y_in = spherical_harmonics(lmax_in, points)[:, self._columns(self.ir_in)]  # [G, d]
        y_out = spherical_harmonics(lmax_out, points)[:, self._columns(self.ir_out)]  # [G, d_out]
        self.register_constant("to_grid", y_in.T / math.sqrt(self.ir_in.dim))
        # component normalization: ∫ Y_lm² dΩ = 4π
        self.register_constant("project", area[:, None] * y_out / (4 * math.pi))
        self.register_buffer("in_degree", self._degrees(self.ir_in), persistent=False)
        self.register_buffer("out_block", self._blocks(self.ir_out), persistent=False)
        self.register_constant("powers", torch.arange(1, correlation + 1, dtype=torch.float64)[:, None, None])
        self.grid_size = len(points)
        self.weight_in = nn.Parameter(torch.ones(num_elements, correlation, self.channels, lmax_in + 1))
        self.weight_out = nn.Parameter(torch.randn(num_elements, correlation, self.channels, len(self.ir_out))
                                       / math.sqrt(correlation))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, grid={self.grid_size} points"

    @staticmethod
    def _columns(irreps: Irreps) -> list[int]:
        """Columns of ``spherical_harmonics(lmax)`` (all degrees ``0..lmax``) holding the blocks of ``irreps``."""
        return [ir.l**2 + m for _, ir in irreps for m in range(ir.dim)]

    @staticmethod
    def _degrees(irreps: Irreps) -> Tensor:
        return torch.tensor([ir.l for _, ir in irreps for _ in range(ir.dim)], dtype=torch.long)

    @staticmethod
    def _blocks(irreps: Irreps) -> Tensor:
        return torch.tensor([b for b, (_, ir) in enumerate(irreps) for _ in range(ir.dim)], dtype=torch.long)

    def _row_elements(self) -> int:
        return self.correlation * self.channels * self.grid_size

    def _contract(self, a: Tensor, species: Tensor, shared: None) -> Tensor:
        w_in = self.weight_in.index_select(0, species).index_select(3, self.in_degree)  # [N, ν, C, d]
        f = (a[:, None] * w_in) @ self.to_grid.to(a.dtype)  # [N, ν, C, G]
        b = (f ** self.powers.to(a.dtype)) @ self.project.to(a.dtype)  # [N, ν, C, d_out]
        w_out = self.weight_out.index_select(0, species).index_select(3, self.out_block)
        return (b * w_out).sum(1)
