"""Clebsch-Gordan backend of :class:`~liequiv.o3.tensor_product.interface.TensorProduct`: exact for every path.

Paths are fused: no Python loop over paths runs in ``forward``, and the product ``x1 ⊗ x2`` (``[Z, u, v, d1, d2]``
in e3nn, one per pair of blocks) is never formed. ``x2`` is contracted with the CG tables first, for all paths at
once and without the channel index ``u``: one matrix product ``M = x2 @ B`` where ``B`` stacks every normalized table
``a_p C_p[i, j, k]`` (``M[z, (p, i, k)] = Σ_j a_p C_p[i, j, k] x2[z, j]``, a few times smaller than the output). Then:

* channel-wise (``uvu``) products with ``mul2 = 1``, one ``u`` and disjoint outputs (the NequIP/MACE message): per
  sample, one product ``Y[z] = x1_b[z] (u × d1) @ M_b[z] (d1 × K_b)`` per ``x1`` block ``b``, whose columns ``K_b``
  are the outputs of all its paths (a few products per sample instead of one tiny product per path), or, while that
  costs at most ``_DENSE_WASTE`` times the useful multiply-adds (low degrees), a single one with ``M`` block-diagonal
  over the ``x1`` blocks. Then one gather into e3nn's layout and one multiplication by the weights gathered into the
  same layout.
* otherwise ``uvu`` paths are batched by *class* (``x1`` block, output degree, ``mul2``), whose paths have equal
  shapes: one batched product ``out[z, p] = (W[z, p] ⊙ x1[z]) (u × d1) @ M[z, p] (d1 × d3)``, written directly in
  e3nn's layout ``[Z, P, u, d3]``, or, where those products are too small for BLAS, ``x1[z] @ M[z]`` over all paths of
  the class followed by the weights. When paths write disjoint output blocks, the output is one ``cat``.
* ``uvw`` paths: the weights are contracted with the smaller-cost input first, ``A = Σ_u W x1`` (one matrix product
  per ``x1`` block for all its paths), the other input with the CG tables (``B = C x2``, the product above), and
  every path into output block ``o`` is one term of a single batched product ``out_o[z] = A[z] (w × K) @ B[z] (K × d3)``
  whose contraction ``K`` runs over the paths and ``(v, i)`` (or the mirror image, ``Σ_v W x2`` and ``C x1``).
  ``uuu`` paths: per pair of input blocks, ``x1 ⊗ x2`` per channel times all the pair's tables, one matrix product.

Results are placed with one gather (whose backward is also a gather) or, where paths sum into the same output block,
one ``index_add``. Large batches run in chunks (``TensorProduct.chunk_bytes``; this backend prefers 4 MiB for the
channel-wise products and 16 MiB otherwise, measured on CPU). Everything is plain differentiable torch ops (double
backward, ``torch.compile(fullgraph=True)``). The CG tables are built once in float64 and registered as buffers (they
stay in float64 when the module is cast and are cast to the input's dtype per call, so a float64 product is exact to
round-off).

On the CPU in float32 and float64, when every path is ``uvu`` with ``mul2 = 1``, a compiled kernel
(``csrc/channelwise.cpp``, unchunked) computes the forward and the backward instead, from the sparse CG entries, in
one pass over blocks of samples: the operators ``torch.ops.liequiv.channelwise``, ``liequiv.channelwise_backward`` and
``liequiv.channelwise_double_backward`` (:mod:`liequiv.o3.kernels`), which ``torch.compile`` and ``torch.export``
keep in their graphs. The product is linear in each input, so its derivatives of every order (forces in training
need the second) are again these kernels with an input replaced by an incoming gradient. Other devices and
``LIEQUIV_NATIVE=0`` use the torch path above, which gives the same values to round-off.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from liequiv.o3 import kernels
from liequiv.o3.constants import Float64Constants
from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import TensorProductSpec, register_backend
from liequiv.o3.wigner import clebsch_gordan

__all__ = ["CGTensorProduct"]

# the x1 blocks share one block-diagonal channel-wise product while it costs at most this many times the useful
# multiply-adds
_DENSE_WASTE = 3.0
# below this many multiply-adds per product, PyTorch's batched matrix products run a slow loop
_BMM_MIN_MACS = 400


# ---- planning: from a TensorProductSpec to the strategy, its metadata and its constant tables ----


class _Tables:
    """The tensors a plan asks the module to register, by name: index buffers, and float64 constant tables (kept in
    float64 by dtype casts, cast to the input's dtype per call)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Tensor | None, bool]] = {}

    def index(self, name: str, value: Tensor | None) -> None:
        self.entries[name] = (value, False)

    def constant(self, name: str, value: Tensor) -> None:
        self.entries[name] = (value, True)


def _cg_table(spec: TensorProductSpec, n: int) -> Tensor:
    """Normalized table ``a_n C[i, j, k]`` of instruction ``n``, float64 ``[d1, d2, d3]``."""
    ins = spec.instructions[n]
    ls = spec.irreps_in1[ins.i_in1].ir.l, spec.irreps_in2[ins.i_in2].ir.l, spec.irreps_out[ins.i_out].ir.l
    return clebsch_gordan(*ls) * ins.path_weight


def _is_channelwise(spec: TensorProductSpec, paths: list[int]) -> bool:
    """Every path ``uvu`` with an ``x2`` block of multiplicity 1 (and at least one path)."""
    ins_all = spec.instructions
    return bool(paths) and all(
        ins_all[n].connection_mode == "uvu" and spec.irreps_in2[ins_all[n].i_in2].mul == 1 for n in paths)


class _Stage(NamedTuple):
    """The blocks of multiplicity ``mul`` of one input that a stacked CG table reads, gathered into ``[mul, width]``:
    block ``b`` is columns ``row[b] : row[b] + dim`` (and rows of the table)."""

    mul: int
    width: int
    row: dict[int, int]
    identity: bool  # the gather reads the input as it is


def _plan_stage(irreps: Irreps, blocks: list[int], mul: int) -> tuple[_Stage, Tensor]:
    """The stage of ``blocks`` (all of multiplicity ``mul``) and its gather: input columns ``[mul · width]``."""
    slices = irreps.slices()
    row, width = {}, 0
    for b in blocks:
        row[b] = width
        width += irreps[b].ir.dim
    idx = torch.empty(mul, width, dtype=torch.long)
    for b in blocks:
        d = irreps[b].ir.dim
        idx[:, row[b] : row[b] + d] = slices[b].start + torch.arange(mul)[:, None] * d + torch.arange(d)[None]
    flat = idx.reshape(-1)
    identity = flat.numel() == irreps.dim and torch.equal(flat, torch.arange(flat.numel()))
    return _Stage(mul, width, row, bool(identity)), flat


class _ColumnStack:
    """The columns of one stacked CG table ``[rows, Σ cols]``, added a block at a time; the product of an input with
    it is split back into the blocks by :meth:`split`."""

    def __init__(self) -> None:
        self.blocks: list[Tensor] = []

    def add(self, block: Tensor) -> int:
        """Append ``block [rows, ...]`` (flattened to columns); its position in the split."""
        self.blocks.append(block.reshape(block.shape[0], -1))
        return len(self.blocks) - 1

    def table(self) -> Tensor:
        return torch.cat(self.blocks, 1)

    def split(self) -> list[int]:
        return [t.shape[1] for t in self.blocks]


def _plan_native(spec: TensorProductSpec, paths: list[int], tables: _Tables) -> bool:
    """Tables of the compiled channel-wise kernel (``csrc/channelwise.cpp``), when every path is uvu with
    ``mul2 = 1``: per path a row ``(x1 offset, u, d1, x2 offset, output offset, d3, weight offset or -1, first
    entry, end entry)`` [P, 9], and the nonzero normalized CG entries ``(i, j, k)`` [E, 3] with their values [E]."""
    if not _is_channelwise(spec, paths):
        return False
    s1, s2, so = spec.irreps_in1.slices(), spec.irreps_in2.slices(), spec.irreps_out.slices()
    rows, ijk, vals, e0 = [], [], [], 0
    for n in paths:
        ins = spec.instructions[n]
        table = _cg_table(spec, n)
        nz = table.nonzero()
        (u, ir1), ir3 = spec.irreps_in1[ins.i_in1], spec.irreps_out[ins.i_out].ir
        w0 = spec.weight_offsets[n] if ins.has_weight else -1
        rows.append([s1[ins.i_in1].start, u, ir1.dim, s2[ins.i_in2].start, so[ins.i_out].start, ir3.dim, w0, e0,
                     e0 + len(nz)])
        ijk.append(nz)
        vals.append(table[tuple(nz.T)])
        e0 += len(nz)
    tables.index("native_paths", torch.tensor(rows, dtype=torch.long))
    # the weighted paths alone, where some are unweighted: the part of the product linear in w (for derivatives)
    weighted = [r for r in rows if r[6] >= 0]
    tables.index("native_paths_w", torch.tensor(weighted, dtype=torch.long) if 0 < len(weighted) < len(rows) else None)
    tables.index("native_ijk", torch.cat(ijk).contiguous())
    tables.constant("native_c", torch.cat(vals))
    return True


class _DensePlan(NamedTuple):
    """Channel-wise products: per sample, one product ``[u, Σd1] @ [Σd1, ΣK]`` per group of ``x1`` blocks.

    Tables: ``dense_B [Σd2, Σ_g Σd1·ΣK]`` (the groups' CG tables side by side), the gathers ``dense_x1idx``,
    ``dense_x2idx``, the output permutation ``dense_perm [d_out]`` (output <- result column) and its inverse
    ``dense_inv``, the weight of every output ``dense_widx [d_out]`` and ``dense_mask [d_out]`` (0 where no path
    writes)."""

    u: int
    groups: list[tuple[int, int]]  # per group of x1 blocks: (Σ d1, Σ d3 of its paths)
    x1_identity: bool
    x2_identity: bool
    extended_weights: bool  # the weight gather reads "1" (unweighted paths) or "0" (outputs no path writes)
    gaps: bool  # some outputs receive no path


def _dense_layout(spec: TensorProductSpec, paths: list[int]) -> tuple[dict[int, list[int]], list[list[int]]] | None:
    """Where the dense strategy applies (channel-wise, one ``u``, disjoint outputs): the paths of every ``x1`` block
    (by output block) and the groups of ``x1`` blocks, one block-diagonal group while it wastes at most
    ``_DENSE_WASTE`` times the useful multiply-adds, else one group a block."""
    ins_all, irreps1 = spec.instructions, spec.irreps_in1
    outs = [ins_all[n].i_out for n in paths]
    blocks = sorted({ins_all[n].i_in1 for n in paths})
    if not _is_channelwise(spec, paths) or len({irreps1[b].mul for b in blocks}) != 1 or len(set(outs)) != len(outs):
        return None
    by_block = {b: sorted((n for n in paths if ins_all[n].i_in1 == b), key=lambda n: ins_all[n].i_out)
                for b in blocks}
    d1 = {b: irreps1[b].ir.dim for b in blocks}
    k_b = {b: sum(spec.irreps_out[ins_all[n].i_out].ir.dim for n in ns) for b, ns in by_block.items()}
    fused = sum(d1.values()) * sum(k_b.values()) <= _DENSE_WASTE * sum(d1[b] * k_b[b] for b in blocks)
    return by_block, [blocks] if fused else [[b] for b in blocks]


def _plan_dense(spec: TensorProductSpec, paths: list[int], tables: _Tables) -> _DensePlan | None:
    """The dense strategy (see :class:`_DensePlan`), or None where it does not apply."""
    layout = _dense_layout(spec, paths)
    if layout is None:
        return None
    by_block, groups = layout
    ins_all, irreps1, irreps_out = spec.instructions, spec.irreps_in1, spec.irreps_out
    u, so, n_w = irreps1[groups[0][0]].mul, irreps_out.slices(), spec.weight_numel
    stage2, x2idx = _plan_stage(spec.irreps_in2, sorted({ins_all[n].i_in2 for n in paths}), 1)
    perm = torch.zeros(irreps_out.dim, dtype=torch.long)  # output <- Y[(group, u, k)]
    widx = torch.full((irreps_out.dim,), n_w + 1, dtype=torch.long)  # output <- weight ("0" where no path writes)
    x1idx, cg_tables, shapes, y0 = [], [], [], 0  # y0: offset of the group in Y
    for grp in groups:
        stage1, idx = _plan_stage(irreps1, grp, u)
        kg = sum(irreps_out[ins_all[n].i_out].ir.dim for b in grp for n in by_block[b])
        table = torch.zeros(stage2.width, stage1.width, kg, dtype=torch.float64)
        c0 = 0
        for n in (n for b in grp for n in by_block[b]):
            ins = ins_all[n]
            d1, d2, d3 = irreps1[ins.i_in1].ir.dim, spec.irreps_in2[ins.i_in2].ir.dim, irreps_out[ins.i_out].ir.dim
            r1, r2 = stage1.row[ins.i_in1], stage2.row[ins.i_in2]
            table[r2 : r2 + d2, r1 : r1 + d1, c0 : c0 + d3] = _cg_table(spec, n).permute(1, 0, 2)
            o = so[ins.i_out].start + torch.arange(u * d3).reshape(u, d3)
            perm[o] = y0 + torch.arange(u)[:, None] * kg + c0 + torch.arange(d3)[None, :]
            widx[o] = (spec.weight_offsets[n] + torch.arange(u))[:, None] if ins.has_weight else n_w
            c0 += d3
        x1idx.append(idx)
        cg_tables.append(table.reshape(stage2.width, stage1.width * kg))
        shapes.append((stage1.width, kg))
        y0 += u * kg
    x1idx = torch.cat(x1idx)
    inv = torch.empty(y0, dtype=torch.long)
    written = widx != n_w + 1
    inv[perm[written]] = torch.nonzero(written).reshape(-1)
    for name, value in (("x1idx", x1idx), ("x2idx", x2idx), ("perm", perm), ("inv", inv), ("widx", widx)):
        tables.index(f"dense_{name}", value)
    tables.constant("dense_B", torch.cat(cg_tables, 1))
    tables.constant("dense_mask", written.to(torch.float64))
    return _DensePlan(u, shapes, bool(torch.equal(x1idx, torch.arange(irreps1.dim))), stage2.identity,
                      bool((widx >= n_w).any()), not bool(written.all()))


class _UvuClass(NamedTuple):
    """uvu paths of one x1 block, one output degree and one x2 multiplicity: results ``[Z, n_paths, u, d3]``."""

    block1: int
    u: int
    d1: int
    d3: int
    v: int
    n_paths: int
    stage: int  # index of the x2 stage whose product holds its CG tables
    cols: int  # position of its columns in that product's split
    weighted: bool  # some of its paths have weights
    # "first": weights on x1, then one batched product per path [u, d1] @ [d1, d3], already in e3nn's layout;
    # "outer": the same for d1 = 1 (an outer product); "after": products below _BMM_MIN_MACS, one product
    # [u, d1] @ [d1, P·d3] per sample, then the weights, written in e3nn's layout
    kernel: str


class _UuuGroup(NamedTuple):
    """uuu paths of one pair of blocks: per channel, ``x1 ⊗ x2 [d1·d2]`` times their tables ``[d1·d2, k]``."""

    block1: int
    u: int
    d1: int
    k: int  # Σ d3 over the paths
    x2_start: int  # first column of the x2 block
    d2: int


class _UvwTerm(NamedTuple):
    """uvw paths of one output block, one weighted input block and one multiplicity of the other input: one term
    ``A (w × K) @ B (K × d3)`` of the output block, ``K = (n_paths, mul_other, d_in)``."""

    side: str  # "x1": A = Σ_u W x1, B = C x2; "x2": A = Σ_v W x2, B = C x1
    block: int  # the input block contracted with the weights
    a_col: int  # position in the split of that block's weight product
    n_paths: int
    mul_other: int
    d_in: int  # dimension of the weighted block's irrep
    stage: int  # the stage (of the other input) whose product holds the CG tables
    b_col: int  # position of the CG columns in that product's split


class _UvwOutput(NamedTuple):
    """The uvw terms summed into output block ``i_out`` (``[w, d3]``)."""

    i_out: int
    w: int
    d3: int
    terms: list[_UvwTerm]


class _Assembly(NamedTuple):
    """How the results (classes, then uuu groups, then uvw outputs, concatenated) become the output: ``segments``
    tiling ``[0, d_out)`` in order (``(class, j)``: the ``j``-th run of the class's paths, of ``class_split[class][j]``
    paths; ``(-1, width)``: outputs no path writes) where only disjoint classes write, else a permutation
    (``out_fwd``/``out_bwd``, with one appended zero column if ``pad``) or, where paths sum, ``index_add``
    (``out_index``)."""

    segments: list[tuple[int, int]] | None
    class_split: list[list[int]]
    permute: bool
    pad: bool


class _OutputLayout:
    """The output index of every result entry, in the order the results are concatenated: classes ``[P, u, d3]``
    first, then the uuu groups and uvw outputs."""

    def __init__(self, d_out: int) -> None:
        self.d_out = d_out
        self.classes: list[Tensor] = []
        self.groups: list[Tensor] = []

    def add_class(self, out_index: Tensor) -> None:
        self.classes.append(out_index)

    def add_group(self, out_index: Tensor) -> None:
        self.groups.append(out_index)

    def plan(self, tables: _Tables) -> _Assembly:
        """The cheapest assembly (see :class:`_Assembly`), registering its index tables."""
        if not self.groups:
            segments, class_split = self._segments()
            if segments is not None:
                return _Assembly(segments, class_split, False, False)
        idx = torch.cat([t.reshape(-1) for t in self.classes + self.groups])
        counts = torch.bincount(idx, minlength=self.d_out)
        if not bool((counts <= 1).all()):
            tables.index("out_index", idx)
            return _Assembly(None, [], False, False)
        pad = bool((counts == 0).any())  # outputs that receive no path read an appended zero
        fwd = torch.full((self.d_out,), idx.numel(), dtype=torch.long)
        fwd[idx] = torch.arange(idx.numel())
        bwd = torch.zeros(idx.numel() + pad, dtype=torch.long)  # the zero column gets an arbitrary (unused) gradient
        bwd[: idx.numel()] = idx
        tables.index("out_fwd", fwd)
        tables.index("out_bwd", bwd)
        return _Assembly(None, [], True, pad)

    def _segments(self) -> tuple[list[tuple[int, int]] | None, list[list[int]]]:
        """Segments and class splits of :class:`_Assembly`; None if classes share output blocks."""
        segs, class_split = [], []
        for c, oidx in enumerate(self.classes):
            starts, size = oidx[:, 0, 0].tolist(), oidx[0].numel()
            sizes, p0 = [], 0
            for p in range(1, len(starts) + 1):
                if p == len(starts) or starts[p] != starts[p - 1] + size:
                    segs.append((starts[p0], starts[p - 1] + size, c, len(sizes)))
                    sizes.append(p - p0)
                    p0 = p
            class_split.append(sizes)
        out, pos = [], 0
        for a, e, c, j in sorted(segs):
            if a < pos:
                return None, class_split  # overlapping outputs (summed paths)
            if a > pos:
                out.append((-1, a - pos))
            out.append((c, j))
            pos = e
        if pos < self.d_out:
            out.append((-1, self.d_out - pos))
        return out, class_split


class _PathGroups(NamedTuple):
    """The paths sorted by how they are computed (instruction indices)."""

    classes: dict[tuple[int, int, int], list[int]]  # uvu, by (x1 block, output degree, x2 multiplicity)
    uvw_x1: dict[tuple[int, int, int], list[int]]  # uvw, weights meet x1 first: by (output, x1 block, x2 mul)
    uvw_x2: dict[tuple[int, int, int], list[int]]  # uvw, weights meet x2 first: by (output, x2 block, x1 mul)
    uuu: dict[tuple[int, int], list[int]]  # uuu, by (x1 block, x2 block)


def _group_paths(spec: TensorProductSpec, paths: list[int]) -> _PathGroups:
    """uvw paths go to the side with the smaller intermediate: ``W x1 [w, v, d1]`` and ``C x2 [v, d1, d3]``, or
    ``W x2 [w, u, d2]`` and ``C x1 [u, d2, d3]``."""
    groups = _PathGroups({}, {}, {}, {})
    for n in paths:
        ins = spec.instructions[n]
        (u, ir1), (v, ir2) = spec.irreps_in1[ins.i_in1], spec.irreps_in2[ins.i_in2]
        w, ir3 = spec.irreps_out[ins.i_out]
        if ins.connection_mode == "uvu":
            groups.classes.setdefault((ins.i_in1, ir3.l, v), []).append(n)
        elif ins.connection_mode == "uvw":
            if w * v * ir1.dim + v * ir1.dim * ir3.dim <= w * u * ir2.dim + u * ir2.dim * ir3.dim:
                groups.uvw_x1.setdefault((ins.i_out, ins.i_in1, v), []).append(n)
            else:
                groups.uvw_x2.setdefault((ins.i_out, ins.i_in2, u), []).append(n)
        else:
            groups.uuu.setdefault((ins.i_in1, ins.i_in2), []).append(n)
    return groups


def _plan_stages(spec: TensorProductSpec, side: str, by_mul: dict[int, list[int]], tables: _Tables) -> list[_Stage]:
    """One stage per multiplicity of the input ``side`` ("x1" or "x2") that the CG tables contract, reading the
    blocks of the paths in ``by_mul[mul]``; gathers registered as ``{side}idx_{stage}``."""
    irreps = spec.irreps_in1 if side == "x1" else spec.irreps_in2
    stages = []
    for s, mul in enumerate(sorted(by_mul)):
        paths = [spec.instructions[n] for n in by_mul[mul]]
        blocks = sorted({ins.i_in1 if side == "x1" else ins.i_in2 for ins in paths})
        stage, idx = _plan_stage(irreps, blocks, mul)
        tables.index(f"{side}idx_{s}", idx)
        stages.append(stage)
    return stages


def _uvu_class_tables(spec: TensorProductSpec, ns: list[int], stage: _Stage, d3: int) -> tuple[Tensor, ...]:
    """Of the uvu paths ``ns`` of one class: CG table ``[Jv, P, d1, d3]``, weight index ``[P, u, v]`` ("1":
    ``weight_numel``, unweighted) and output index ``[P, u, d3]``."""
    ins0 = spec.instructions[ns[0]]
    (u, ir1), v, so = spec.irreps_in1[ins0.i_in1], stage.mul, spec.irreps_out.slices()
    table = torch.zeros(stage.width, len(ns), ir1.dim, d3, dtype=torch.float64)
    widx = torch.full((len(ns), u, v), spec.weight_numel, dtype=torch.long)
    oidx = torch.empty(len(ns), u, d3, dtype=torch.long)
    for p, n in enumerate(ns):
        ins = spec.instructions[n]
        r = stage.row[ins.i_in2]
        table[r : r + spec.irreps_in2[ins.i_in2].ir.dim, p] = _cg_table(spec, n).permute(1, 0, 2)
        if ins.has_weight:
            widx[p] = spec.weight_offsets[n] + torch.arange(u * v).reshape(u, v)
        oidx[p] = so[ins.i_out].start + torch.arange(u * d3).reshape(u, d3)
    return table, widx, oidx


def _plan_uvu_classes(spec: TensorProductSpec, classes: dict[tuple[int, int, int], list[int]], stages: list[_Stage],
                      stacks: list[_ColumnStack], layout: _OutputLayout) -> tuple[list[_UvuClass], list[Tensor]]:
    """The classes (CG columns added to the x2 stages' stacks, outputs to ``layout``) and their flat weight indices
    ``[P·u·v]`` each."""
    stage_of_v = {st.mul: s for s, st in enumerate(stages)}
    out, weight_index = [], []
    for (b, l3, v), ns in classes.items():
        ns = sorted(ns, key=lambda n: spec.instructions[n].i_out)  # consecutive output blocks -> contiguous slices
        u, d1, d3, s = spec.irreps_in1[b].mul, spec.irreps_in1[b].ir.dim, 2 * l3 + 1, stage_of_v[v]
        kernel = "first" if v > 1 or u * d1 * d3 >= _BMM_MIN_MACS else "outer" if d1 == 1 else "after"
        table, widx, oidx = _uvu_class_tables(spec, ns, stages[s], d3)
        cols = stacks[s].add(table.transpose(1, 2) if kernel == "after" else table)  # (i, p, k) or (p, i, k)
        weighted = any(spec.instructions[n].has_weight for n in ns)
        out.append(_UvuClass(b, u, d1, d3, v, len(ns), s, cols, weighted, kernel))
        layout.add_class(oidx)
        weight_index.append(widx.reshape(-1))
    return out, weight_index


def _plan_uuu(spec: TensorProductSpec, uuu: dict[tuple[int, int], list[int]], layout: _OutputLayout,
              tables: _Tables) -> list[_UuuGroup]:
    """The uuu groups; tables ``B_uuu_{g} [d1·d2, k]`` and weight indices ``widx_{g} [u, k]`` (None: unweighted)."""
    irreps1, irreps2, irreps_out, so = spec.irreps_in1, spec.irreps_in2, spec.irreps_out, spec.irreps_out.slices()
    groups = []
    for g, ((b, c), ns) in enumerate(uuu.items()):
        (u, ir1), d2 = irreps1[b], irreps2[c].ir.dim
        k_tot = sum(irreps_out[spec.instructions[n].i_out].ir.dim for n in ns)
        table = torch.zeros(ir1.dim, d2, k_tot, dtype=torch.float64)  # rows (i, j): x1 ⊗ x2 per channel
        widx = torch.empty(u, k_tot, dtype=torch.long)
        oidx = torch.empty(u, k_tot, dtype=torch.long)
        k0 = 0
        for n in ns:
            ins = spec.instructions[n]
            d3 = irreps_out[ins.i_out].ir.dim
            table[:, :, k0 : k0 + d3] = _cg_table(spec, n)
            weight = (spec.weight_offsets[n] + torch.arange(u))[:, None] if ins.has_weight else spec.weight_numel
            widx[:, k0 : k0 + d3] = weight
            oidx[:, k0 : k0 + d3] = so[ins.i_out].start + torch.arange(u * d3).reshape(u, d3)
            k0 += d3
        groups.append(_UuuGroup(b, u, ir1.dim, k_tot, irreps2.slices()[c].start, d2))
        tables.constant(f"B_uuu_{g}", table.reshape(ir1.dim * d2, k_tot))
        tables.index(f"widx_{g}", widx if any(spec.instructions[n].has_weight for n in ns) else None)
        layout.add_group(oidx)
    return groups


def _uvw_term_tables(spec: TensorProductSpec, side: str, ns: list[int], stage: _Stage) -> tuple[Tensor, Tensor]:
    """Of one uvw term (see :class:`_UvwTerm`): CG table ``[J, P, d_in, d3]`` (rows: the other input's stage) and
    weight index ``[mul_in, P·w·mul_other]`` (``W_p[u1, v2, w]`` is at ``offset + (u1·mul2 + v2)·w_out + w``)."""
    ins_all, irreps1, irreps2 = spec.instructions, spec.irreps_in1, spec.irreps_in2
    ins0 = ins_all[ns[0]]
    w_out, ir3 = spec.irreps_out[ins0.i_out]
    d_in = (irreps1[ins0.i_in1] if side == "x1" else irreps2[ins0.i_in2]).ir.dim
    table = torch.zeros(stage.width, len(ns), d_in, ir3.dim, dtype=torch.float64)
    cols = []
    for p, n in enumerate(ns):
        ins = ins_all[n]
        mul1, mul2 = irreps1[ins.i_in1].mul, irreps2[ins.i_in2].mul
        widx = spec.weight_offsets[n] + (torch.arange(mul1)[:, None, None] * mul2
                                         + torch.arange(mul2)[None, :, None]) * w_out + torch.arange(w_out)
        if side == "x1":  # weight rows u1, columns (w, v2); table rows: x2 block
            cols.append(widx.permute(0, 2, 1).reshape(mul1, w_out * mul2))
            r = stage.row[ins.i_in2]
            table[r : r + irreps2[ins.i_in2].ir.dim, p] = _cg_table(spec, n).permute(1, 0, 2)
        else:  # weight rows v2, columns (w, u1); table rows: x1 block
            cols.append(widx.permute(1, 2, 0).reshape(mul2, w_out * mul1))
            r = stage.row[ins.i_in1]
            table[r : r + irreps1[ins.i_in1].ir.dim, p] = _cg_table(spec, n)
    return table, torch.cat(cols, 1)


class _UvwPlan(NamedTuple):
    """uvw paths: per output block ``o``, ``out_o[z] = Σ_terms A[z] (w × K) @ B[z] (K × d3)``, the contraction ``K``
    running over the term's paths and ``(mul_other, d_in)``. ``A`` comes from one product per weighted input block
    with the weights of all its terms (``uvw_w_{side}_{block} [mul, Σ cols]``, split by ``weight_split``), ``B`` from
    the stage products of the other input (x2: shared with the uvu classes; x1: ``B1_{stage}``, split by
    ``x1_split``)."""

    outputs: list[_UvwOutput]
    weight_keys: list[tuple[str, int]]  # (side, block) of every weight product
    weight_split: dict[tuple[str, int], list[int]]
    x1_stages: list[_Stage]
    x1_split: list[list[int]]


def _plan_uvw(spec: TensorProductSpec, groups: _PathGroups, x2_stages: list[_Stage], x2_stacks: list[_ColumnStack],
              layout: _OutputLayout, tables: _Tables) -> _UvwPlan:
    """The uvw plan (see :class:`_UvwPlan`); CG columns of the "x1" side terms added to the x2 stages' stacks."""
    by_u: dict[int, list[int]] = {}
    for (_, _, u), ns in groups.uvw_x2.items():
        by_u.setdefault(u, []).extend(ns)
    x1_stages = _plan_stages(spec, "x1", by_u, tables)
    x1_stacks = [_ColumnStack() for _ in x1_stages]
    stage_of = {side: {st.mul: s for s, st in enumerate(stages)} for side, stages in (("x1", x2_stages),
                                                                                       ("x2", x1_stages))}
    weight_cols: dict[tuple[str, int], list[Tensor]] = {}
    by_out: dict[int, list[_UvwTerm]] = {}
    for side, paths_by_key in (("x1", groups.uvw_x1), ("x2", groups.uvw_x2)):
        stages, stacks = (x2_stages, x2_stacks) if side == "x1" else (x1_stages, x1_stacks)
        for (o, blk, mul_other), ns in paths_by_key.items():
            s = stage_of[side][mul_other]
            table, widx = _uvw_term_tables(spec, side, ns, stages[s])
            cols = weight_cols.setdefault((side, blk), [])
            cols.append(widx)
            term = _UvwTerm(side, blk, len(cols) - 1, len(ns), mul_other, table.shape[2], s, stacks[s].add(table))
            by_out.setdefault(o, []).append(term)
    for (side, blk), cols in weight_cols.items():
        tables.index(f"uvw_w_{side}_{blk}", torch.cat(cols, 1))
    for t, stack in enumerate(x1_stacks):
        tables.constant(f"B1_{t}", stack.table())
    outputs = []
    for o in sorted(by_out):
        layout.add_group(torch.arange(spec.irreps_out.slices()[o].start, spec.irreps_out.slices()[o].stop))
        outputs.append(_UvwOutput(o, spec.irreps_out[o].mul, spec.irreps_out[o].ir.dim, by_out[o]))
    weight_split = {key: [t.shape[1] for t in cols] for key, cols in weight_cols.items()}
    return _UvwPlan(outputs, list(weight_cols), weight_split, x1_stages, [st.split() for st in x1_stacks])


class _PathsPlan(NamedTuple):
    """The general strategy: ``x2`` contracted with the stacked CG tables once per multiplicity ``v`` (stage
    ``s``: gather ``x2idx_{s}``, table ``B_{s} [Jv, Σ cols]``, split by ``x2_split[s]``), then the uvu classes, the uuu
    groups and the uvw outputs, assembled into the output."""

    x2_stages: list[_Stage]
    x2_split: list[list[int]]
    classes: list[_UvuClass]
    class_weight_split: list[int]  # the classes' weights, gathered by ``class_worder``, split per class
    class_weights_extended: bool  # the gather reads "1" (unweighted paths)
    class_weights_view: bool  # the gather is the leading weights as they are
    uuu: list[_UuuGroup]
    uvw: _UvwPlan
    assembly: _Assembly


def _plan_paths(spec: TensorProductSpec, paths: list[int], tables: _Tables) -> _PathsPlan:
    """The general strategy (see :class:`_PathsPlan`) for any paths."""
    groups = _group_paths(spec, paths)
    by_v: dict[int, list[int]] = {}
    for key, ns in [*groups.classes.items(), *groups.uvw_x1.items()]:
        by_v.setdefault(key[2], []).extend(ns)
    x2_stages = _plan_stages(spec, "x2", by_v, tables)
    stacks = [_ColumnStack() for _ in x2_stages]
    layout = _OutputLayout(spec.irreps_out.dim)
    classes, weight_index = _plan_uvu_classes(spec, groups.classes, x2_stages, stacks, layout)
    order = torch.cat(weight_index) if weight_index else torch.zeros(0, dtype=torch.long)
    extended = bool((order >= spec.weight_numel).any())
    view = not extended and bool(torch.equal(order, torch.arange(order.numel())))
    tables.index("class_worder", order)
    uuu = _plan_uuu(spec, groups.uuu, layout, tables)
    uvw = _plan_uvw(spec, groups, x2_stages, stacks, layout, tables)
    for s, stack in enumerate(stacks):
        tables.constant(f"B_{s}", stack.table())
    return _PathsPlan(x2_stages, [st.split() for st in stacks], classes, [t.numel() for t in weight_index], extended,
                      view, uuu, uvw, layout.plan(tables))


# ---- execution ----


class _Permute(torch.autograd.Function):
    """``y[:, fwd]`` whose backward is again a gather (``grad[:, bwd]``) instead of a scatter-add.

    Valid when every column of ``y`` is read at most once. Columns read by no output get the gradient of an arbitrary
    output: the caller guarantees that they influence nothing (they are exact zeros times constants).
    """

    @staticmethod
    def forward(ctx, y: Tensor, fwd: Tensor, bwd: Tensor) -> Tensor:  # type: ignore[override]
        ctx.idx = (fwd, bwd)
        return y.index_select(1, fwd)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        fwd, bwd = ctx.idx
        return _Permute.apply(grad, bwd, fwd), None, None


def _extend(w: Tensor) -> Tensor:
    """``w [..., nw]`` -> ``[..., nw + 2]``: the weights, then "1" (unweighted paths) and "0" (nothing)."""
    return torch.cat([w, torch.ones_like(w[..., :1]), torch.zeros_like(w[..., :1])], -1)


class CGTensorProduct(Float64Constants):
    """Fused sparse-CG tensor product; see the module docstring. Built by ``TensorProduct(..., backend="cg")``.

    The strategies are planned once: the compiled kernel where it applies (:func:`_plan_native`), else the dense
    channel-wise products (:class:`_DensePlan`) or the general one (:class:`_PathsPlan`)."""

    def __init__(self, spec: TensorProductSpec) -> None:
        super().__init__()
        self.spec = spec
        self.d_out = spec.irreps_out.dim
        self._split1 = [mul_ir.dim for mul_ir in spec.irreps_in1]
        paths = [n for n, ins in enumerate(spec.instructions) if 0 not in ins.path_shape]
        tables = _Tables()
        self._native = _plan_native(spec, paths, tables)
        self._dense = _plan_dense(spec, paths, tables)
        self._paths = None if self._dense is not None else _plan_paths(spec, paths, tables)
        for name, (value, const) in tables.entries.items():
            if const:
                self.register_constant(name, value)
            else:
                self.register_buffer(name, value, persistent=False)
        # preferred batch chunk (see TensorProduct.chunk_bytes), measured: the channel-wise products (few large ops)
        # like small chunks, the per-class kernels (more ops per chunk) larger ones
        self._chunk_bytes = 4 << 20 if self._dense is not None else 16 << 20

    @property
    def chunk_bytes(self) -> int:
        """Preferred batch chunk (see ``TensorProduct.chunk_bytes``); none (0) where the compiled kernel runs: it
        keeps its temporaries in the cache by itself."""
        return 0 if self._native_ready() else self._chunk_bytes

    def _native_ready(self) -> bool:
        """Channel-wise, kernels enabled and built (see :mod:`liequiv.o3.kernels`)."""
        return self._native and kernels.available("channelwise")

    def _use_native(self, x1: Tensor) -> bool:
        """Whether the compiled kernel computes this call (also: float32 or float64 on the CPU)."""
        return kernels.supports(x1) and self._native_ready()

    def _native_call(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        """``liequiv::channelwise`` of the inputs and this product's tables."""
        weighted = self.native_paths if self.native_paths_w is None else self.native_paths_w
        args = (x1.contiguous(), x2.contiguous(), None if w is None else w.contiguous(), self.native_paths, weighted,
                self.native_ijk, self.native_c, self.d_out, self.spec.weight_numel)
        return _channelwise_op(*args)

    def forward(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        if w is None and self.spec.weight_numel > 0:
            raise ValueError("weights are required")
        if self._use_native(x1):
            return self._native_call(x1, x2, w)
        if self._dense is not None:
            return self._forward_dense(x1, x2, w)
        return self._forward_paths(x1, x2, w)

    def _forward_dense(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        plan = self._dense
        z, u, shapes = x1.shape[0], plan.u, plan.groups
        xv = x2 if plan.x2_identity else x2.index_select(1, self.dense_x2idx)
        m = xv @ self.dense_B.to(x1.dtype)
        xu = x1 if plan.x1_identity else x1.index_select(1, self.dense_x1idx)
        # (a split into one piece would copy the gradient in backward)
        ms = m.split([sg * kg for sg, kg in shapes], 1) if len(shapes) > 1 else (m,)
        xs = xu.split([u * sg for sg, _ in shapes], 1) if len(shapes) > 1 else (xu,)
        ys = [torch.bmm(xg.reshape(z, u, sg), mg.reshape(z, sg, kg)).reshape(z, u * kg)
              for xg, mg, (sg, kg) in zip(xs, ms, shapes)]
        out = _Permute.apply(ys[0] if len(ys) == 1 else torch.cat(ys, 1), self.dense_perm, self.dense_inv)
        if w is not None:
            return out * (_extend(w) if plan.extended_weights else w).index_select(-1, self.dense_widx)
        return out * self.dense_mask.to(out.dtype) if plan.gaps else out

    def _forward_paths(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        plan = self._paths
        z, dtype = x1.shape[0], x1.dtype
        wb = () if w is None or w.ndim == 1 else (z,)  # batch shape of the weights
        x1_blocks = x1.split(self._split1, 1)
        stage1: list[tuple[Tensor, ...]] = []
        for s, st in enumerate(plan.x2_stages):
            xv = x2 if st.identity else x2.index_select(1, getattr(self, f"x2idx_{s}"))
            m = xv.reshape(z * st.mul, st.width) @ getattr(self, f"B_{s}").to(dtype)  # [Z·v, ncols]
            stage1.append(m.reshape(z, st.mul, m.shape[1]).split(plan.x2_split[s], 2))

        # ---- uvu classes -> [Z, P, u, d3] ----
        outs: list[Tensor] = []
        if plan.classes:
            if w is None:
                ws: tuple[Tensor | None, ...] = (None,) * len(plan.classes)
            else:
                n = self.class_worder.numel()
                src = _extend(w) if plan.class_weights_extended else w
                wc = src[..., :n] if plan.class_weights_view else src.index_select(-1, self.class_worder)
                ws = wc.split(plan.class_weight_split, -1)
        for c, cl in enumerate(plan.classes):
            x1b = x1_blocks[cl.block1].reshape(z, cl.u, cl.d1)
            p, u, v, d1, d3 = cl.n_paths, cl.u, cl.v, cl.d1, cl.d3
            m = stage1[cl.stage][cl.cols]  # [Z, v, P·d1·d3]
            wt = ws[c]
            if cl.kernel == "after":  # [Z, u, d1] @ [Z, d1, P·d3], then the weights
                y = torch.bmm(x1b, m.reshape(z, d1, p * d3)).reshape(z, u, p, d3).transpose(1, 2)
                y = y.contiguous() if wt is None or not cl.weighted else wt.reshape(*wb, p, u, 1) * y
            else:  # weights on x1 first
                wc = x1b.new_ones(p, u, v, 1) if wt is None else wt.reshape(*wb, p, u, v, 1)
                if v == 1:
                    x1w = wc[..., 0, :] * x1b[:, None]  # [Z, P, u, d1]
                    mc = m.reshape(z, p, d1, d3)
                else:
                    x1w = (wc * x1b[:, None, :, None, :]).reshape(z, p, u, v * d1)
                    mc = m.reshape(z, v, p, d1, d3).transpose(1, 2).reshape(z, p, v * d1, d3)
                y = x1w * mc if cl.kernel == "outer" else torch.matmul(x1w, mc)  # [Z, P, u, d3]
            outs.append(y)

        assembly = plan.assembly
        if assembly.segments is not None:
            parts = [(y,) if len(sizes) == 1 else y.split(sizes, 1) for y, sizes in zip(outs, assembly.class_split)]
            pieces = [x1.new_zeros(z, a) if c < 0 else parts[c][a].flatten(1) for c, a in assembly.segments]
            if not pieces:
                return x1.new_zeros(z, self.d_out)
            return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)

        ys = [y.flatten(1) for y in outs]
        for g, gr in enumerate(plan.uuu):
            x1b = x1_blocks[gr.block1].reshape(z, gr.u, gr.d1)
            # per channel, the product x1 ⊗ x2 [Z·u, d1·d2] against all tables of the pair: one matrix product
            x2c = x2[:, gr.x2_start : gr.x2_start + gr.u * gr.d2].reshape(z, gr.u, 1, gr.d2)
            xx = (x1b.unsqueeze(-1) * x2c).reshape(z * gr.u, gr.d1 * gr.d2)
            y = (xx @ getattr(self, f"B_uuu_{g}").to(dtype)).reshape(z, gr.u, gr.k)
            widx = getattr(self, f"widx_{g}")
            if widx is not None and w is not None:
                y = y * _extend(w).index_select(-1, widx.reshape(-1)).reshape(*wb, *widx.shape)
            ys.append(y.flatten(1))
        if plan.uvw.outputs:
            x2_blocks = x2.split([mul_ir.dim for mul_ir in self.spec.irreps_in2], 1)
            ys += self._forward_uvw(x1, w, x1_blocks, x2_blocks, stage1)
        y = ys[0] if len(ys) == 1 else torch.cat(ys, 1)
        if assembly.permute:
            if assembly.pad:
                y = torch.cat([y, y.new_zeros(z, 1)], 1)
            return _Permute.apply(y, self.out_fwd, self.out_bwd)
        return y.new_zeros(z, self.d_out).index_add_(1, self.out_index, y)

    def _forward_uvw(self, x1: Tensor, w: Tensor, x1_blocks: tuple[Tensor, ...], x2_blocks: tuple[Tensor, ...],
                     stage1: list[tuple[Tensor, ...]]) -> list[Tensor]:
        """The uvw outputs ``[Z, w·d3]`` each (see :class:`_UvwPlan`)."""
        plan = self._paths.uvw
        z, dtype = x1.shape[0], x1.dtype
        wb = w.shape[:-1]
        # A-side products: W contracted with each input block, all its paths at once -> [Z, d, R]
        a_prod = {}
        for side, blk in plan.weight_keys:
            idx = getattr(self, f"uvw_w_{side}_{blk}")  # [mul, R]
            wm = w.index_select(-1, idx.reshape(-1)).reshape(*wb, *idx.shape)
            xb = x1_blocks[blk] if side == "x1" else x2_blocks[blk]
            mul, ir = (self.spec.irreps_in1 if side == "x1" else self.spec.irreps_in2)[blk]
            xt = xb.reshape(z, mul, ir.dim).transpose(1, 2)  # [Z, d, mul]
            if wb:
                prod = torch.bmm(xt, wm)
            else:
                prod = (xt.reshape(z * ir.dim, mul) @ wm).reshape(z, ir.dim, idx.shape[1])
            a_prod[(side, blk)] = prod.split(plan.weight_split[(side, blk)], 2)
        # B-side products of the "x2" terms: C contracted with x1
        stage_x1 = []
        for t, st in enumerate(plan.x1_stages):
            xu = x1.index_select(1, getattr(self, f"x1idx_{t}"))
            m = xu.reshape(z * st.mul, st.width) @ getattr(self, f"B1_{t}").to(dtype)
            stage_x1.append(m.reshape(z, st.mul, m.shape[1]).split(plan.x1_split[t], 2))
        outs = []
        for output in plan.outputs:
            w_, d3, out = output.w, output.d3, None
            for side, blk, a_col, n_p, mul_o, d_in, stage, b_col in output.terms:
                k = n_p * mul_o * d_in
                a = a_prod[(side, blk)][a_col]  # [Z, d_in, (P, w, mul_o)]
                a = a.reshape(z, d_in, n_p, w_, mul_o).permute(0, 3, 2, 4, 1).reshape(z, w_, k)
                b = (stage1[stage] if side == "x1" else stage_x1[stage])[b_col]  # [Z, mul_o, P·d_in·d3]
                b = b.reshape(z, mul_o, n_p, d_in, d3).transpose(1, 2).reshape(z, k, d3)
                out = torch.bmm(a, b) if out is None else torch.baddbmm(out, a, b)
            outs.append(out.reshape(z, w_ * d3))
        return outs


# ---- the compiled channel-wise kernel as operators: liequiv::channelwise, its backward and double backward ----
# Tables: ``paths`` [P, 9] (x1 offset, u, d1, x2 offset, output offset, d3, weight offset or -1, first entry, end
# entry), ``weighted`` (the rows of the weighted paths alone: the part of the product linear in w), the nonzero
# normalized CG entries ``ijk`` [E, 3] and their values ``c`` (float64 [E]). Gradients that are not asked for come
# back as empty tensors.


def _kernel_args(x1: Tensor, x2: Tensor, w: Tensor | None, paths: Tensor, ijk: Tensor, c: Tensor, d_out: int,
                 n_weights: int) -> list:
    """The kernels' leading arguments: tables, sizes, inputs and the weights' row stride (0: shared)."""
    weights = [None, 0] if w is None else [kernels.ptr(w), 0 if w.ndim == 1 else n_weights]
    return [kernels.ptr(paths), paths.shape[0], kernels.ptr(ijk), kernels.ptr(c), x1.shape[1], x2.shape[1], d_out,
            n_weights, kernels.ptr(x1), kernels.ptr(x2), *weights]


def _grad_buffers(x1: Tensor, x2: Tensor, w: Tensor | None, needs: list[bool]) -> list[Tensor]:
    """Uninitialized ``[gx1, gx2, gw]`` (``gw`` per sample, summed later for shared weights), empty where not
    needed."""
    gw = x1.new_empty(x1.shape[0], w.shape[-1]) if needs[2] and w is not None else x1.new_empty(0)
    return [torch.empty_like(t) if need else x1.new_empty(0) for t, need in ((x1, needs[0]), (x2, needs[1]))] + [gw]


def _sum_shared(gw: Tensor, w: Tensor | None) -> Tensor:
    return gw.sum(0) if gw.numel() and w is not None and w.ndim == 1 else gw


def _channelwise_cpu(x1: Tensor, x2: Tensor, w: Tensor | None, paths: Tensor, weighted: Tensor, ijk: Tensor,
                     c: Tensor, d_out: int, n_weights: int) -> Tensor:
    """``x1 [Z, d1]``, ``x2 [Z, d2]``, ``w`` (None, ``[nw]`` or ``[Z, nw]``) -> ``[Z, d_out]`` over ``paths``."""
    out = x1.new_empty(x1.shape[0], d_out)
    if x1.shape[0]:
        fn = kernels.kernel("channelwise", "channelwise_forward", x1.dtype)
        fn(*_kernel_args(x1, x2, w, paths, ijk, c, d_out, n_weights), kernels.ptr(out), x1.shape[0], kernels.threads())
    return out


def _channelwise_backward_cpu(x1: Tensor, x2: Tensor, w: Tensor | None, g: Tensor, paths: Tensor, weighted: Tensor,
                              ijk: Tensor, c: Tensor, n_weights: int, needs: list[bool]) -> tuple[Tensor, ...]:
    """``(gx1, gx2, gw)`` of ``Σ g ⊙ out`` (``g [Z, d_out]``), those that ``needs`` asks for."""
    grads = _grad_buffers(x1, x2, w, needs)
    if x1.shape[0]:
        fn = kernels.kernel("channelwise", "channelwise_backward", x1.dtype)
        pointers = [kernels.ptr(t) if t.numel() else None for t in grads]
        fn(*_kernel_args(x1, x2, w, paths, ijk, c, g.shape[1], n_weights), kernels.ptr(g), *pointers, x1.shape[0],
           kernels.threads())
    return grads[0], grads[1], _sum_shared(grads[2], w)


def _channelwise_double_backward_cpu(
    x1: Tensor, x2: Tensor, w: Tensor | None, g: Tensor, a1: Tensor | None, a2: Tensor | None, aw: Tensor | None,
    paths: Tensor, weighted: Tensor, ijk: Tensor, c: Tensor, n_weights: int, needs: list[bool],
) -> tuple[Tensor, ...]:
    """``(gx1, gx2, gw, gg)`` of ``Σ a1 ⊙ gx1 + a2 ⊙ gx2 + aw ⊙ gw`` (the backward's outputs against the incoming
    gradients, None: zero), in one compiled pass."""
    grads = [*_grad_buffers(x1, x2, w, needs), torch.empty_like(g) if needs[3] else g.new_empty(0)]
    if x1.shape[0]:
        fn = kernels.kernel("channelwise", "channelwise_double_backward", x1.dtype)
        given = [None if t is None else kernels.ptr(t) for t in (a1, a2, aw)]
        gx1, gx2, gw, gg = (kernels.ptr(t) if t.numel() else None for t in grads)
        fn(*_kernel_args(x1, x2, w, paths, ijk, c, g.shape[1], n_weights), kernels.ptr(g), *given, gg, gx1, gx2, gw,
           x1.shape[0], kernels.threads())
    return grads[0], grads[1], _sum_shared(grads[2], w), grads[3]


def _channelwise_fake(x1, x2, w, paths, weighted, ijk, c, d_out, n_weights):
    return x1.new_empty(x1.shape[0], d_out)


def _backward_fake(x1, x2, w, g, paths, weighted, ijk, c, n_weights, needs):
    gx1, gx2, gw = _grad_buffers(x1, x2, w, needs)
    return gx1, gx2, _sum_shared(gw, w)


def _double_backward_fake(x1, x2, w, g, a1, a2, aw, paths, weighted, ijk, c, n_weights, needs):
    return *_backward_fake(x1, x2, w, g, paths, weighted, ijk, c, n_weights, needs[:3]), (
        torch.empty_like(g) if needs[3] else g.new_empty(0))


def _save(ctx, inputs, output) -> None:
    tensors = [t if isinstance(t, Tensor) else None for t in inputs]
    ctx.save_for_backward(*tensors)
    ctx.constants = [None if isinstance(t, Tensor) else t for t in inputs]


def _saved(ctx) -> list:
    return [t if t is not None else k for t, k in zip(ctx.saved_tensors, ctx.constants)]


def _grads(x1, x2, w, g, paths, weighted, ijk, c, n_weights, needs) -> list[Tensor | None]:
    """``[gx1, gx2, gw]`` of ``Σ g ⊙ F(x1, x2, w)`` by the backward operator (None where not needed)."""
    needs = [needs[0], needs[1], needs[2] and w is not None]
    if not any(needs):
        return [None, None, None]
    grads = _channelwise_backward_op(x1, x2, w, g.contiguous(), paths, weighted, ijk, c, n_weights, needs)
    return [t if need else None for t, need in zip(grads, needs)]


def _channelwise_vjp(ctx, g: Tensor) -> tuple:
    x1, x2, w, paths, weighted, ijk, c, _, n_weights = _saved(ctx)
    return *_grads(x1, x2, w, g, paths, weighted, ijk, c, n_weights, ctx.needs_input_grad[:3]), *[None] * 6


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a + b


def _channelwise_backward_vjp(ctx, *incoming: Tensor) -> tuple:
    """The derivatives of ``(gx1, gx2, gw)``, the gradients of ``Σ g ⊙ F(x1, x2, w)``. F is linear in x1 and x2, and
    its weighted part ``F_w`` in w, so every derivative of these is again F, F_w or their backward with one argument
    replaced by an incoming gradient ``(a1, a2, aw)``: ``∂/∂g = F(a1, x2, w) + F(x1, a2, w) + F_w(x1, x2, aw)``,
    ``∂/∂x1 = gx1(x2 → a2) + gx1_w(w → aw)``, ``∂/∂x2 = gx2(x1 → a1) + gx2_w(w → aw)``, ``∂/∂w = gw(x1 → a1) + gw(x2 →
    a2)``. Without a graph to record (no third derivatives) all of it is one compiled pass."""
    x1, x2, w, g, paths, weighted, ijk, c, n_weights, needs = _saved(ctx)
    a1, a2, aw = (a.contiguous() if need and a is not None else None for a, need in zip(incoming, needs))
    n1, n2, nw, ng = ctx.needs_input_grad[:4]
    tail = [None] * 6
    if not torch.is_grad_enabled():
        asked = [n1, n2, nw and w is not None, ng]
        outs = _channelwise_double_backward_op(x1, x2, w, g, a1, a2, aw, paths, weighted, ijk, c, n_weights, asked)
        return *(t if need else None for t, need in zip(outs, asked)), *tail
    d_out = g.shape[1]
    grad_g = None
    if ng:
        if a1 is not None:
            grad_g = _add(grad_g, _channelwise_op(a1, x2, w, paths, weighted, ijk, c, d_out, n_weights))
        if a2 is not None:
            grad_g = _add(grad_g, _channelwise_op(x1, a2, w, paths, weighted, ijk, c, d_out, n_weights))
        if aw is not None:
            grad_g = _add(grad_g, _channelwise_op(x1, x2, aw, weighted, weighted, ijk, c, d_out, n_weights))
    # gx1 and gx2 do not depend on x1 and x2 themselves, gw not on w
    none = [None] * 3
    tables = (ijk, c, n_weights)
    g1 = _grads(x1 if a1 is None else a1, x2 if a2 is None else a2, w, g, paths, weighted, *tables,
                (n1 and a2 is not None, n2 and a1 is not None, False))
    g2 = _grads(x1, x2, aw, g, weighted, weighted, *tables, (n1, n2, False)) if aw is not None else none
    g3 = _grads(a1, x2, w, g, paths, weighted, *tables, (False, False, nw)) if a1 is not None else none
    g4 = _grads(x1, a2, w, g, paths, weighted, *tables, (False, False, nw)) if a2 is not None else none
    return _add(g1[0], g2[0]), _add(g1[1], g2[1]), _add(g3[2], g4[2]), grad_g, *tail


_channelwise_double_backward_op = kernels.define(
    "channelwise_double_backward(Tensor x1, Tensor x2, Tensor? w, Tensor g, Tensor? a1, Tensor? a2, Tensor? aw, "
    "Tensor paths, Tensor weighted, Tensor ijk, Tensor c, int n_weights, bool[] needs) -> (Tensor, Tensor, Tensor, "
    "Tensor)",
    _channelwise_double_backward_cpu,
    _double_backward_fake,
)
_channelwise_backward_op = kernels.define(
    "channelwise_backward(Tensor x1, Tensor x2, Tensor? w, Tensor g, Tensor paths, Tensor weighted, Tensor ijk, "
    "Tensor c, int n_weights, bool[] needs) -> (Tensor, Tensor, Tensor)",
    _channelwise_backward_cpu,
    _backward_fake,
    _channelwise_backward_vjp,
    _save,
)
_channelwise_op = kernels.define(
    "channelwise(Tensor x1, Tensor x2, Tensor? w, Tensor paths, Tensor weighted, Tensor ijk, Tensor c, int d_out, "
    "int n_weights) -> Tensor",
    _channelwise_cpu,
    _channelwise_fake,
    _channelwise_vjp,
    _save,
)


def _factory(spec: TensorProductSpec) -> nn.Module:
    return CGTensorProduct(spec)


register_backend("cg", _factory)
