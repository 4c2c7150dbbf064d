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
from liequiv.o3.tensor_product.interface import TensorProductSpec, register_backend
from liequiv.o3.wigner import clebsch_gordan

__all__ = ["CGTensorProduct"]

# the x1 blocks share one block-diagonal channel-wise product while it costs at most this many times the useful
# multiply-adds
_DENSE_WASTE = 3.0


class _UvuClass(NamedTuple):
    """uvu paths of one x1 block, one output degree and one x2 multiplicity."""

    block1: int
    u: int
    d1: int
    d3: int
    v: int
    n_paths: int
    stage: int  # index of the stage-1 product
    cols: int  # position of its columns in the stage-1 product's split
    weighted: str  # "all", "none" or "mixed"
    kernel: str  # "first", "outer" or "after"


class _UuuGroup(NamedTuple):
    """uuu paths of one pair of blocks."""

    block1: int
    u: int
    d1: int
    k: int  # Σ d3 over the paths
    x2_start: int  # first column of the x2 block
    d2: int


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


def _weighted(flags: set[bool]) -> str:
    return "all" if flags == {True} else "none" if flags == {False} else "mixed"


class CGTensorProduct(Float64Constants):
    """Fused sparse-CG tensor product; see the module docstring. Built by ``TensorProduct(..., backend="cg")``."""

    def __init__(self, spec: TensorProductSpec) -> None:
        super().__init__()
        self.spec = spec
        ins_all = spec.instructions
        irreps1, irreps2, irreps_out = spec.irreps_in1, spec.irreps_in2, spec.irreps_out
        s2, so = irreps2.slices(), irreps_out.slices()
        self.d_out = irreps_out.dim
        self._split1 = [mul_ir.dim for mul_ir in irreps1]
        n_w = spec.weight_numel
        one = n_w  # "weight 1" (unweighted path) in the extended weights (see _extend)
        paths = [n for n, ins in enumerate(ins_all) if 0 not in ins.path_shape]

        def cg(n: int) -> Tensor:  # normalized table [d1, d2, d3]
            ins = ins_all[n]
            l1, l2, l3 = irreps1[ins.i_in1].ir.l, irreps2[ins.i_in2].ir.l, irreps_out[ins.i_out].ir.l
            return clebsch_gordan(l1, l2, l3) * ins.path_weight

        self._native = self._build_native(spec, paths, cg)
        self._dense = self._build_dense(spec, paths, cg)
        # preferred batch chunk (see TensorProduct.chunk_bytes), measured: the channel-wise products (few large ops)
        # like small chunks, the per-class kernels (more ops per chunk) larger ones
        self._chunk_bytes = 4 << 20 if self._dense else 16 << 20
        if self._dense:
            return

        # ---- consumers of the stage-1 products, keyed by the x2 multiplicity v ----
        classes: dict[tuple[int, int, int], list[int]] = {}
        uvw_x1: dict[tuple[int, int, int], list[int]] = {}  # (i_out, x1 block, v): weights meet x1 first
        uvw_x2: dict[tuple[int, int, int], list[int]] = {}  # (i_out, x2 block, u): weights meet x2 first
        for n in paths:
            ins = ins_all[n]
            (u, ir1), (v, ir2), (w_, ir3) = irreps1[ins.i_in1], irreps2[ins.i_in2], irreps_out[ins.i_out]
            if ins.connection_mode == "uvu":
                classes.setdefault((ins.i_in1, ir3.l, v), []).append(n)
            elif ins.connection_mode == "uvw":
                # the smaller intermediate: W x1 [w, v, d1] and C x2 [v, d1, d3], or W x2 [w, u, d2] and C x1
                if w_ * v * ir1.dim + v * ir1.dim * ir3.dim <= w_ * u * ir2.dim + u * ir2.dim * ir3.dim:
                    uvw_x1.setdefault((ins.i_out, ins.i_in1, v), []).append(n)
                else:
                    uvw_x2.setdefault((ins.i_out, ins.i_in2, u), []).append(n)
        vs = sorted({k[2] for k in classes} | {k[2] for k in uvw_x1})
        stage_of_v = {v: s for s, v in enumerate(vs)}
        # rows of each stage-1 product: the x2 blocks of multiplicity v that are read
        rows: list[dict[int, int]] = []
        self._stage1: list[tuple[int, int]] = []  # (v, Jv)
        self._x2_identity: list[bool] = []
        for s, v in enumerate(vs):
            blocks2 = sorted({ins_all[n].i_in2 for key, ns in classes.items() if key[2] == v for n in ns}
                             | {ins_all[n].i_in2 for key, ns in uvw_x1.items() if key[2] == v for n in ns})
            row0, jv = {}, 0
            for c in blocks2:
                row0[c] = jv
                jv += irreps2[c].ir.dim
            idx = torch.empty(v, jv, dtype=torch.long)  # x2 columns in layout [v, Jv]
            for c in blocks2:
                d2 = irreps2[c].ir.dim
                idx[:, row0[c] : row0[c] + d2] = s2[c].start + torch.arange(v)[:, None] * d2 + torch.arange(d2)[None]
            flat = idx.reshape(-1)
            identity = flat.numel() == irreps2.dim and torch.equal(flat, torch.arange(flat.numel()))
            self._x2_identity.append(bool(identity))
            self._buffer(f"x2idx_{s}", flat)
            rows.append(row0)
            self._stage1.append((v, jv))
        b_cols: list[list[Tensor]] = [[] for _ in vs]

        def add_columns(s: int, block: Tensor) -> int:  # block [Jv, ...] -> its position in the split
            b_cols[s].append(block.reshape(block.shape[0], -1))
            return len(b_cols[s]) - 1

        # ---- uvu classes ----
        self._classes: list[_UvuClass] = []
        class_out: list[Tensor] = []  # output index of every entry, layout [P, u, d3]
        w_order: list[Tensor] = []  # flat weight index per class, layout [P, u, v]
        for (b, l3, v), ns in classes.items():
            ns = sorted(ns, key=lambda n: ins_all[n].i_out)  # consecutive output blocks -> contiguous slices
            u, ir1 = irreps1[b]
            d1, d3, s = ir1.dim, 2 * l3 + 1, stage_of_v[v]
            weighted = _weighted({ins_all[n].has_weight for n in ns})
            # "first": weights on x1, then one batched product per path [u, d1] @ [d1, d3], already in e3nn's layout;
            # "outer": the same for d1 = 1 (an outer product); "after": below PyTorch's BLAS threshold for batched
            # products (u·d1·d3 < 400 multiply-adds, a slow loop), one product [u, d1] @ [d1, P·d3] per sample,
            # then the weights, written in e3nn's layout
            kernel = "first" if v > 1 or u * d1 * d3 >= 400 else "outer" if d1 == 1 else "after"
            jv = self._stage1[s][1]
            table = torch.zeros(jv, len(ns), d1, d3, dtype=torch.float64)  # columns (p, i, k)
            widx = torch.full((len(ns), u, v), one, dtype=torch.long)
            oidx = torch.empty(len(ns), u, d3, dtype=torch.long)
            for p, n in enumerate(ns):
                ins = ins_all[n]
                r = rows[s][ins.i_in2]
                table[r : r + irreps2[ins.i_in2].ir.dim, p, :d1] = cg(n).permute(1, 0, 2)
                if ins.has_weight:
                    widx[p] = spec.weight_offsets[n] + torch.arange(u * v).reshape(u, v)
                oidx[p] = so[ins.i_out].start + torch.arange(u * d3).reshape(u, d3)
            if kernel == "after":
                table = table.transpose(1, 2)  # columns (i, p, k)
            pos = add_columns(s, table)
            self._classes.append(_UvuClass(b, u, d1, d3, v, len(ns), s, pos, weighted, kernel))
            class_out.append(oidx)
            w_order.append(widx.reshape(-1))
        order = torch.cat(w_order) if w_order else torch.zeros(0, dtype=torch.long)
        self._w_split = [t.numel() for t in w_order]
        self._w_ext = bool((order >= n_w).any())
        self._w_view = not self._w_ext and bool(torch.equal(order, torch.arange(order.numel())))
        self._buffer("class_worder", order)

        # ---- uvw: one batched product per output block, the contraction running over its paths ----
        self._uuu_groups: list[_UuuGroup] = []
        group_out: list[Tensor] = []
        self._uvw = self._build_uvw(spec, uvw_x1, uvw_x2, rows, stage_of_v, add_columns, cg)

        # ---- uuu groups ----
        uuu_groups: dict[tuple[int, int], list[int]] = {}
        for n in paths:
            if ins_all[n].connection_mode == "uuu":
                uuu_groups.setdefault((ins_all[n].i_in1, ins_all[n].i_in2), []).append(n)
        for (b, c), ns in uuu_groups.items():
            u, ir1 = irreps1[b]
            d2 = irreps2[c].ir.dim
            k_tot = sum(irreps_out[ins_all[n].i_out].ir.dim for n in ns)
            table = torch.zeros(ir1.dim, d2, k_tot, dtype=torch.float64)  # rows (i, j): x1 ⊗ x2 per channel
            widx = torch.empty(u, k_tot, dtype=torch.long)
            oidx = torch.empty(u, k_tot, dtype=torch.long)
            k0 = 0
            for n in ns:
                ins = ins_all[n]
                d3 = irreps_out[ins.i_out].ir.dim
                table[:, :, k0 : k0 + d3] = cg(n)
                widx[:, k0 : k0 + d3] = (spec.weight_offsets[n] + torch.arange(u))[:, None] if ins.has_weight else one
                oidx[:, k0 : k0 + d3] = so[ins.i_out].start + torch.arange(u * d3).reshape(u, d3)
                k0 += d3
            g = len(self._uuu_groups)
            self._uuu_groups.append(_UuuGroup(b, u, ir1.dim, k_tot, s2[c].start, d2))
            self._buffer(f"B_uuu_{g}", table.reshape(ir1.dim * d2, k_tot), const=True)
            self._buffer(f"widx_{g}", widx if _weighted({ins_all[n].has_weight for n in ns}) != "none" else None)
            group_out.append(oidx)

        for s, blocks in enumerate(b_cols):
            self._buffer(f"B_{s}", torch.cat(blocks, 1), const=True)
        self._stage1_split = [[t.shape[1] for t in blocks] for blocks in b_cols]

        # ---- assembly of the output ----
        self._segments: list[tuple[int, int, int]] | None = None
        group_out += [torch.arange(so[o].start, so[o].stop) for o in self._uvw_outputs]
        if not group_out:
            self._segments = self._contiguous_segments(class_out)
        idx = torch.cat([t.reshape(-1) for t in class_out + group_out]) if paths else torch.zeros(0, dtype=torch.long)
        n_y = idx.numel()
        written = idx[idx >= 0]
        counts = torch.bincount(written, minlength=self.d_out)
        self._permute = bool((counts <= 1).all())
        self._pad = bool((counts == 0).any())  # outputs that receive no path
        if self._permute:
            fwd = torch.full((self.d_out,), n_y, dtype=torch.long)  # n_y: an appended zero
            fwd[written] = torch.nonzero(idx >= 0).reshape(-1)
            bwd = torch.zeros(n_y + self._pad, dtype=torch.long)  # unread results get an arbitrary (unused) gradient
            bwd[:n_y][idx >= 0] = written
            self._buffer("out_fwd", fwd)
            self._buffer("out_bwd", bwd)
        else:
            self._buffer("out_index", torch.where(idx >= 0, idx, self.d_out))

    def _build_native(self, spec: TensorProductSpec, paths: list[int], cg) -> bool:
        """Tables of the compiled channel-wise kernel (``csrc/channelwise.cpp``), when every path is uvu with
        ``mul2 = 1``: per path a row ``(x1 offset, u, d1, x2 offset, output offset, d3, weight offset or -1, first
        entry, end entry)`` [P, 9], and the nonzero normalized CG entries ``(i, j, k)`` [E, 3] with their values [E]."""
        ins_all, irreps1, irreps2, irreps_out = spec.instructions, spec.irreps_in1, spec.irreps_in2, spec.irreps_out
        if not paths or any(ins_all[n].connection_mode != "uvu" or irreps2[ins_all[n].i_in2].mul != 1 for n in paths):
            return False
        s1, s2, so = irreps1.slices(), irreps2.slices(), irreps_out.slices()
        rows, ijk, vals, e0 = [], [], [], 0
        for n in paths:
            ins = ins_all[n]
            table = cg(n)
            nz = table.nonzero()
            (u, ir1), ir3 = irreps1[ins.i_in1], irreps_out[ins.i_out].ir
            w0 = spec.weight_offsets[n] if ins.has_weight else -1
            x1_at, x2_at, out_at = s1[ins.i_in1].start, s2[ins.i_in2].start, so[ins.i_out].start
            rows.append([x1_at, u, ir1.dim, x2_at, out_at, ir3.dim, w0, e0, e0 + len(nz)])
            ijk.append(nz)
            vals.append(table[tuple(nz.T)])
            e0 += len(nz)
        self._buffer("native_paths", torch.tensor(rows, dtype=torch.long))
        # the weighted paths alone, where some are unweighted: the part of the product linear in w (for derivatives)
        weighted = [r for r in rows if r[6] >= 0]
        some = 0 < len(weighted) < len(rows)
        self._buffer("native_paths_w", torch.tensor(weighted, dtype=torch.long) if some else None)
        self._buffer("native_ijk", torch.cat(ijk).contiguous())
        self._buffer("native_c", torch.cat(vals), const=True)
        return True

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


    def _build_dense(self, spec: TensorProductSpec, paths: list[int], cg) -> bool:
        """Channel-wise products: per sample, one product ``[u, Σd1] @ [Σd1, ΣK]`` per group of ``x1`` blocks.

        Used when all paths are uvu with ``mul2 = 1``, share ``u`` and write disjoint outputs. The ``x1`` blocks form
        one group (a block-diagonal product) while that wastes at most ``_DENSE_WASTE`` times the useful multiply-adds
        (low degrees), else one group each. The results (rows ``u``, columns: the outputs of the group's paths) are
        placed with one gather and multiplied by the weights, gathered once into the output layout.
        """
        ins_all, irreps1, irreps2, irreps_out = spec.instructions, spec.irreps_in1, spec.irreps_in2, spec.irreps_out
        if not paths or any(ins_all[n].connection_mode != "uvu" or irreps2[ins_all[n].i_in2].mul != 1 for n in paths):
            return False
        blocks = sorted({ins_all[n].i_in1 for n in paths})
        us = {irreps1[b].mul for b in blocks}
        if len(us) != 1:
            return False
        u = us.pop()
        outs = [ins_all[n].i_out for n in paths]
        if len(set(outs)) != len(outs):
            return False  # summed paths
        by_block = {b: sorted((n for n in paths if ins_all[n].i_in1 == b), key=lambda n: ins_all[n].i_out)
                    for b in blocks}
        d1 = {b: irreps1[b].ir.dim for b in blocks}
        k_b = {b: sum(irreps_out[ins_all[n].i_out].ir.dim for n in ns) for b, ns in by_block.items()}
        s_tot, k_tot = sum(d1.values()), sum(k_b.values())
        groups = [blocks] if s_tot * k_tot <= _DENSE_WASTE * sum(d1[b] * k_b[b] for b in blocks) else [
            [b] for b in blocks]
        s1, s2, so = irreps1.slices(), irreps2.slices(), irreps_out.slices()
        blocks2 = sorted({ins_all[n].i_in2 for n in paths})
        row0, jv = {}, 0
        for c in blocks2:
            row0[c] = jv
            jv += irreps2[c].ir.dim
        x2idx = torch.cat([torch.arange(s2[c].start, s2[c].stop) for c in blocks2])
        n_w = spec.weight_numel
        one, zero = n_w, n_w + 1
        perm = torch.zeros(self.d_out, dtype=torch.long)  # output <- Y[(group, u, k)]
        widx = torch.full((self.d_out,), zero, dtype=torch.long)  # output <- weight (0 where no path writes)
        x1idx, tables, shapes = [], [], []
        y0 = 0  # offset of the group in Y
        for grp in groups:
            sg, kg = sum(d1[b] for b in grp), sum(k_b[b] for b in grp)
            x1idx.append(torch.cat([s1[b].start + torch.arange(u * d1[b]).reshape(u, d1[b]) for b in grp], 1))
            table = torch.zeros(jv, sg, kg, dtype=torch.float64)
            r1 = c0 = 0
            for b in grp:
                for n in by_block[b]:
                    ins = ins_all[n]
                    d2, d3 = irreps2[ins.i_in2].ir.dim, irreps_out[ins.i_out].ir.dim
                    r2 = row0[ins.i_in2]
                    table[r2 : r2 + d2, r1 : r1 + d1[b], c0 : c0 + d3] = cg(n).permute(1, 0, 2)
                    o = so[ins.i_out].start + torch.arange(u * d3).reshape(u, d3)
                    perm[o] = y0 + torch.arange(u)[:, None] * kg + c0 + torch.arange(d3)[None, :]
                    widx[o] = (spec.weight_offsets[n] + torch.arange(u))[:, None] if ins.has_weight else one
                    c0 += d3
                r1 += d1[b]
            tables.append(table.reshape(jv, sg * kg))
            shapes.append((sg, kg))
            y0 += u * kg
        x1idx = torch.cat([t.reshape(-1) for t in x1idx])
        inv = torch.empty(y0, dtype=torch.long)
        written = widx != zero
        inv[perm[written]] = torch.nonzero(written).reshape(-1)
        self._dense_u = u
        self._dense_groups = shapes
        self._dense_x1_identity = bool(torch.equal(x1idx, torch.arange(irreps1.dim)))
        self._dense_x2_identity = bool(torch.equal(x2idx, torch.arange(irreps2.dim)))
        self._dense_ext = bool((widx >= n_w).any())
        self._dense_gaps = not bool(written.all())
        self._buffer("dense_B", torch.cat(tables, 1), const=True)
        self._buffer("dense_x1idx", x1idx)
        self._buffer("dense_x2idx", x2idx)
        self._buffer("dense_perm", perm)
        self._buffer("dense_inv", inv)
        self._buffer("dense_widx", widx)
        self._buffer("dense_mask", written.to(torch.float64), const=True)
        return True

    def _forward_dense(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        z, u, shapes = x1.shape[0], self._dense_u, self._dense_groups
        xv = x2 if self._dense_x2_identity else x2.index_select(1, self.dense_x2idx)
        m = xv @ self.dense_B.to(x1.dtype)
        xu = x1 if self._dense_x1_identity else x1.index_select(1, self.dense_x1idx)
        # (a split into one piece would copy the gradient in backward)
        ms = m.split([sg * kg for sg, kg in shapes], 1) if len(shapes) > 1 else (m,)
        xs = xu.split([u * sg for sg, _ in shapes], 1) if len(shapes) > 1 else (xu,)
        ys = [torch.bmm(xg.reshape(z, u, sg), mg.reshape(z, sg, kg)).reshape(z, u * kg)
              for xg, mg, (sg, kg) in zip(xs, ms, shapes)]
        out = _Permute.apply(ys[0] if len(ys) == 1 else torch.cat(ys, 1), self.dense_perm, self.dense_inv)
        if w is not None:
            return out * (self._extend(w) if self._dense_ext else w).index_select(-1, self.dense_widx)
        return out * self.dense_mask.to(out.dtype) if self._dense_gaps else out

    def _build_uvw(self, spec, uvw_x1, uvw_x2, rows, stage_of_v, add_columns, cg) -> list:
        """Plan of the uvw paths: per output block ``o``, ``out_o[z] = A[z] (w × K) @ B[z] (K × d3)`` where the
        contraction ``K`` runs over its paths and, per path, over ``(v, i)`` (``A = Σ_u W x1``, ``B = C x2``: "x1"
        groups) or ``(u, j)`` (``A = Σ_v W x2``, ``B = C x1``: "x2" groups), whichever intermediate is smaller.

        ``A`` comes from one matrix product per input block with all its paths' weights, ``B`` from one product per
        multiplicity with all the CG tables; each group of paths (same output block, same input block, same other
        multiplicity) is one slice of each."""
        ins_all, irreps1, irreps2, irreps_out = spec.instructions, spec.irreps_in1, spec.irreps_in2, spec.irreps_out
        s1 = irreps1.slices()
        # "x2" groups need the CG tables contracted with x1: products keyed by the x1 multiplicity u
        us = sorted({key[2] for key in uvw_x2})
        self._x1stage: list[tuple[int, int]] = []  # (u, I_u)
        x1rows: list[dict[int, int]] = []
        x1_cols: list[list[Tensor]] = [[] for _ in us]
        for t, u in enumerate(us):
            blocks1 = sorted({ins_all[n].i_in1 for key, ns in uvw_x2.items() if key[2] == u for n in ns})
            row0, iu = {}, 0
            for b in blocks1:
                row0[b] = iu
                iu += irreps1[b].ir.dim
            idx = torch.empty(u, iu, dtype=torch.long)
            for b in blocks1:
                d1 = irreps1[b].ir.dim
                idx[:, row0[b] : row0[b] + d1] = s1[b].start + torch.arange(u)[:, None] * d1 + torch.arange(d1)[None]
            self._buffer(f"x1idx_{t}", idx.reshape(-1))
            x1rows.append(row0)
            self._x1stage.append((u, iu))
        # weight contractions: per x1 block (x1 groups) and per x2 block (x2 groups), columns (path, w, other mul)
        wcols: dict[tuple[str, int], list[Tensor]] = {}
        self._uvw_wsplit: dict[tuple[str, int], list[int]] = {}
        plan = []  # (i_out, w, d3, [(kind, block, a_col, n_paths, mul_other, d_in, stage, b_pos)])
        by_out: dict[int, list] = {}
        for kind, groups in (("x1", uvw_x1), ("x2", uvw_x2)):
            for (o, blk, mul_other), ns in groups.items():
                w_, ir3 = irreps_out[o]
                d3 = ir3.dim
                key = (kind, blk)
                cols = wcols.setdefault(key, [])
                a_col = len(self._uvw_wsplit.setdefault(key, []))  # position in the split of the A-side product
                self._uvw_wsplit[key].append(len(ns) * w_ * mul_other)
                if kind == "x1":
                    u, d_in = irreps1[blk].mul, irreps1[blk].ir.dim
                    stage = stage_of_v[mul_other]
                    table = torch.zeros(self._stage1[stage][1], len(ns), d_in, d3, dtype=torch.float64)  # (p, i, k)
                else:
                    u, d_in = irreps2[blk].mul, irreps2[blk].ir.dim  # here u is the multiplicity of x2
                    stage = us.index(mul_other)
                    table = torch.zeros(self._x1stage[stage][1], len(ns), d_in, d3, dtype=torch.float64)  # (p, j, k)
                for p, n in enumerate(ns):
                    ins = ins_all[n]
                    mul1, mul2 = irreps1[ins.i_in1].mul, irreps2[ins.i_in2].mul
                    # W_p[u1, v2, w] at off + (u1·mul2 + v2)·w_ + w
                    widx = spec.weight_offsets[n] + (torch.arange(mul1)[:, None, None] * mul2
                                                     + torch.arange(mul2)[None, :, None]) * w_ + torch.arange(w_)
                    if kind == "x1":  # rows u1, columns (w, v2)
                        cols.append(widx.permute(0, 2, 1).reshape(mul1, w_ * mul2))
                        r = rows[stage][ins.i_in2]
                        table[r : r + irreps2[ins.i_in2].ir.dim, p] = cg(n).permute(1, 0, 2)
                    else:  # rows v2, columns (w, u1)
                        cols.append(widx.permute(1, 2, 0).reshape(mul2, w_ * mul1))
                        r = x1rows[stage][ins.i_in1]
                        table[r : r + irreps1[ins.i_in1].ir.dim, p] = cg(n)
                if kind == "x1":
                    pos = add_columns(stage, table)
                else:
                    x1_cols[stage].append(table.reshape(table.shape[0], -1))
                    pos = len(x1_cols[stage]) - 1
                by_out.setdefault(o, []).append((kind, blk, a_col, len(ns), mul_other, d_in, stage, pos))
        for (kind, blk), cols in wcols.items():
            self._buffer(f"uvw_w_{kind}_{blk}", torch.cat(cols, 1))
        self._uvw_wkeys = list(wcols)
        for t, cols in enumerate(x1_cols):
            self._buffer(f"B1_{t}", torch.cat(cols, 1), const=True)
        self._x1stage_split = [[c.shape[1] for c in cols] for cols in x1_cols]
        for o in sorted(by_out):
            w_, ir3 = irreps_out[o]
            plan.append((o, w_, ir3.dim, by_out[o]))
        self._uvw_outputs = [o for o, *_ in plan]
        return plan

    def _forward_uvw(self, x1: Tensor, x2: Tensor, w: Tensor, x1_blocks, x2_blocks, stage1) -> list[Tensor]:
        z, dtype = x1.shape[0], x1.dtype
        spec = self.spec
        wb = w.shape[:-1]
        # A-side products: W contracted with each input block, all its paths at once -> [Z, d, R]
        a_prod = {}
        for kind, blk in self._uvw_wkeys:
            idx = getattr(self, f"uvw_w_{kind}_{blk}")  # [mul, R]
            wm = w.index_select(-1, idx.reshape(-1)).reshape(*wb, *idx.shape)
            xb = x1_blocks[blk] if kind == "x1" else x2_blocks[blk]
            mul, d = (spec.irreps_in1 if kind == "x1" else spec.irreps_in2)[blk]
            xt = xb.reshape(z, mul, d.dim).transpose(1, 2)  # [Z, d, mul]
            if wb:
                prod = torch.bmm(xt, wm)
            else:
                prod = (xt.reshape(z * d.dim, mul) @ wm).reshape(z, d.dim, idx.shape[1])
            a_prod[(kind, blk)] = prod.split(self._uvw_wsplit[(kind, blk)], 2)
        # B-side products of the "x2" groups: C contracted with x1
        stage_x1 = []
        for t, (u, iu) in enumerate(self._x1stage):
            xu = x1.index_select(1, getattr(self, f"x1idx_{t}"))
            m = xu.reshape(z * u, iu) @ getattr(self, f"B1_{t}").to(dtype)
            stage_x1.append(m.reshape(z, u, m.shape[1]).split(self._x1stage_split[t], 2))
        outs = []
        for _, w_, d3, groups in self._uvw:
            out = None
            for kind, blk, a_col, n_p, mul_o, d_in, stage, pos in groups:
                k = n_p * mul_o * d_in
                a = a_prod[(kind, blk)][a_col]  # [Z, d_in, (P, w, mul_o)]
                a = a.reshape(z, d_in, n_p, w_, mul_o).permute(0, 3, 2, 4, 1).reshape(z, w_, k)
                b = (stage1[stage] if kind == "x1" else stage_x1[stage])[pos]  # [Z, mul_o, P·d_in·d3]
                b = b.reshape(z, mul_o, n_p, d_in, d3).transpose(1, 2).reshape(z, k, d3)
                out = torch.bmm(a, b) if out is None else torch.baddbmm(out, a, b)
            outs.append(out.reshape(z, w_ * d3))
        return outs

    def _contiguous_segments(self, class_out: list[Tensor]) -> list[tuple[int, int]] | None:
        """Pieces tiling ``[0, d_out)`` in order: ``(class, j)`` (the j-th run of paths of the class, see
        ``_class_split``) or ``(-1, width)`` (outputs no path writes). None if paths share output blocks."""
        segs = []
        self._class_split: list[list[int]] = []
        for c, oidx in enumerate(class_out):
            starts = oidx[:, 0, 0].tolist()
            size = oidx[0].numel()
            sizes, p0 = [], 0
            for p in range(1, len(starts) + 1):
                if p == len(starts) or starts[p] != starts[p - 1] + size:
                    segs.append((starts[p0], starts[p - 1] + size, c, len(sizes)))
                    sizes.append(p - p0)
                    p0 = p
            self._class_split.append(sizes)
        segs.sort()
        out, pos = [], 0
        for a, e, c, j in segs:
            if a < pos:
                return None  # overlapping outputs (summed paths)
            if a > pos:
                out.append((-1, a - pos))
            out.append((c, j))
            pos = e
        if pos < self.d_out:
            out.append((-1, self.d_out - pos))
        return out

    def _buffer(self, name: str, value: Tensor | None, const: bool = False) -> None:
        if const:  # float64 tables, cast to the input's dtype per call (module.float().double() stays exact)
            self.register_constant(name, value)
        else:
            self.register_buffer(name, value, persistent=False)

    @staticmethod
    def _extend(w: Tensor) -> Tensor:
        return torch.cat([w, torch.ones_like(w[..., :1]), torch.zeros_like(w[..., :1])], -1)

    def forward(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        if w is None and self.spec.weight_numel > 0:
            raise ValueError("weights are required")
        if self._use_native(x1):
            return self._native_call(x1, x2, w)
        return self._forward_torch(x1, x2, w)

    def _forward_torch(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        z, dtype = x1.shape[0], x1.dtype
        if self._dense:
            return self._forward_dense(x1, x2, w)
        wb = () if w is None or w.ndim == 1 else (z,)  # batch shape of the weights
        x1_blocks = x1.split(self._split1, 1)
        stage1: list[tuple[Tensor, ...]] = []
        for s, (v, jv) in enumerate(self._stage1):
            xv = x2 if self._x2_identity[s] else x2.index_select(1, getattr(self, f"x2idx_{s}"))
            m = xv.reshape(z * v, jv) @ getattr(self, f"B_{s}").to(dtype)  # [Z·v, ncols]
            stage1.append(m.reshape(z, v, m.shape[1]).split(self._stage1_split[s], 2))

        # ---- uvu classes -> [Z, P, u, d3] ----
        outs: list[Tensor] = []
        if self._classes:
            if w is None:
                ws: tuple[Tensor | None, ...] = (None,) * len(self._classes)
            else:
                n = self.class_worder.numel()
                src = self._extend(w) if self._w_ext else w
                wc = src[..., :n] if self._w_view else src.index_select(-1, self.class_worder)
                ws = wc.split(self._w_split, -1)
        for c, cl in enumerate(self._classes):
            x1b = x1_blocks[cl.block1].reshape(z, cl.u, cl.d1)
            p, u, v, d1, d3 = cl.n_paths, cl.u, cl.v, cl.d1, cl.d3
            m = stage1[cl.stage][cl.cols]  # [Z, v, P·d1·d3]
            wt = ws[c]
            if cl.kernel == "after":  # [Z, u, d1] @ [Z, d1, P·d3], then the weights
                y = torch.bmm(x1b, m.reshape(z, d1, p * d3)).reshape(z, u, p, d3).transpose(1, 2)
                y = y.contiguous() if wt is None or cl.weighted == "none" else wt.reshape(*wb, p, u, 1) * y
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

        if self._segments is not None:
            parts = [(y,) if len(sizes) == 1 else y.split(sizes, 1) for y, sizes in zip(outs, self._class_split)]
            pieces = [x1.new_zeros(z, a) if c < 0 else parts[c][a].flatten(1) for c, a in self._segments]
            if not pieces:
                return x1.new_zeros(z, self.d_out)
            return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)

        ys = [y.flatten(1) for y in outs]
        for g, gr in enumerate(self._uuu_groups):
            x1b = x1_blocks[gr.block1].reshape(z, gr.u, gr.d1)
            # per channel, the product x1 ⊗ x2 [Z·u, d1·d2] against all tables of the pair: one matrix product
            x2c = x2[:, gr.x2_start : gr.x2_start + gr.u * gr.d2].reshape(z, gr.u, 1, gr.d2)
            xx = (x1b.unsqueeze(-1) * x2c).reshape(z * gr.u, gr.d1 * gr.d2)
            y = (xx @ getattr(self, f"B_uuu_{g}").to(dtype)).reshape(z, gr.u, gr.k)
            widx = getattr(self, f"widx_{g}")
            if widx is not None and w is not None:
                y = y * self._extend(w).index_select(-1, widx.reshape(-1)).reshape(*wb, *widx.shape)
            ys.append(y.flatten(1))
        if self._uvw:
            x2_blocks = x2.split([mul_ir.dim for mul_ir in self.spec.irreps_in2], 1)
            ys += self._forward_uvw(x1, x2, w, x1_blocks, x2_blocks, stage1)
        if not ys:
            return x1.new_zeros(z, self.d_out)
        y = ys[0] if len(ys) == 1 else torch.cat(ys, 1)
        if self._permute:
            if self._pad:
                y = torch.cat([y, y.new_zeros(z, 1)], 1)
            return _Permute.apply(y, self.out_fwd, self.out_bwd)
        out = y.new_zeros(z, self.d_out + 1).index_add_(1, self.out_index, y)
        return out[:, : self.d_out]


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
