"""Equivariant linear map between direct sums of irreps (e3nn's ``o3.Linear``).

By Schur's lemma an equivariant linear map only mixes copies of the same irrep: block ``i_out`` (``mul_out × ir``)
receives ``Σ_{i_in} a W[u, w] x_{i_in}[u, :]`` over the input blocks of the same irrep, with one ``mul_in × mul_out``
weight matrix per path and e3nn's normalization ``a = 1 / sqrt(Σ fan-in)`` (``path_normalization="element"``: the
sum of ``mul_in`` over the paths into that output; ``"path"``: the path's ``mul_in`` times their number), so unit-
variance inputs and N(0, 1) weights give unit-variance outputs. Biases are only allowed on scalar (``0e``) outputs.

The flat weight and bias vectors have e3nn's layout (paths in instruction order, each ``[mul_in, mul_out]``
row-major; biases per ``0e`` output block), so the same tensors can be fed to ``e3nn.o3.Linear``.

The forward pass is one matrix product per distinct irrep (all input and output blocks of that irrep at once, with
a block weight matrix assembled from the paths), not one per path.

Example::

    >>> lin = Linear("8x0e + 4x1o", "16x0e + 2x1o")
    >>> lin(torch.randn(10, 20)).shape
    torch.Size([10, 22])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from liequiv.o3.irreps import Irreps, check_features
from liequiv.validation import check_tensor

__all__ = ["Linear"]


class Linear(nn.Module):
    """``x [..., irreps_in.dim] -> [..., irreps_out.dim]``, equivariant under O(3).

    Args:
        irreps_in, irreps_out: the irreps of the input and the output.
        biases: True for a bias on every ``0e`` output block (default; note that e3nn's default is False), False,
            or one bool per output block (True only on ``0e`` blocks).
        instructions: ``(i_in, i_out)`` pairs of blocks with the same irrep; default: all such pairs.
        weights: ``"shared"`` (trainable ``weight`` [weight_numel], N(0, 1), and ``bias`` [bias_numel], zeros) or
            ``"per_sample"`` (``forward`` takes ``weight [..., weight_numel]`` and ``bias [..., bias_numel]``).
        path_normalization: ``"element"`` (default) or ``"path"``, as e3nn.
    """

    def __init__(
        self,
        irreps_in: Any,
        irreps_out: Any,
        biases: bool | Sequence[bool] = True,
        instructions: Iterable[tuple[int, int]] | None = None,
        weights: str = "shared",
        path_normalization: str = "element",
    ) -> None:
        super().__init__()
        if weights not in ("shared", "per_sample"):
            raise ValueError(f"weights must be 'shared' or 'per_sample', got {weights!r}")
        if path_normalization not in ("element", "path"):
            raise ValueError(f"path_normalization must be 'element' or 'path', got {path_normalization!r}")
        self.irreps_in = irreps_in = Irreps(irreps_in)
        self.irreps_out = irreps_out = Irreps(irreps_out)
        if instructions is None:
            instructions = [
                (i, o) for i, (_, ir_in) in enumerate(irreps_in) for o, (_, ir_out) in enumerate(irreps_out)
                if ir_in == ir_out
            ]
        instructions = [tuple(x) for x in instructions]
        for i, o in instructions:
            if not (0 <= i < len(irreps_in) and 0 <= o < len(irreps_out)):
                raise ValueError(f"instruction {(i, o)} out of range for {irreps_in} -> {irreps_out}")
            if irreps_in[i].ir != irreps_out[o].ir:
                raise ValueError(f"instruction {(i, o)} connects {irreps_in[i].ir} to {irreps_out[o].ir}")
        if isinstance(biases, bool):
            biases = [biases and ir.is_scalar() for _, ir in irreps_out]
        biases = [bool(b) for b in biases]
        if len(biases) != len(irreps_out):
            raise ValueError(f"biases needs one bool per output block ({len(irreps_out)}), got {len(biases)}")
        if any(b and not ir.is_scalar() for b, (_, ir) in zip(biases, irreps_out)):
            raise ValueError("biases are only allowed on 0e outputs")

        def fan_in(i: int, o: int) -> int:
            same = [x for x in instructions if x[1] == o]
            x = sum(irreps_in[a].mul for a, _ in same) if path_normalization == "element" else irreps_in[i].mul * len(
                same)
            return x if x > 0 else 1

        self.instructions = [(i, o, 1 / math.sqrt(fan_in(i, o))) for i, o in instructions]
        self.shared_weights = weights == "shared"
        self.weight_numel = sum(irreps_in[i].mul * irreps_out[o].mul for i, o in instructions)
        self.bias_numel = sum(mul_ir.dim for b, mul_ir in zip(biases, irreps_out) if b)

        # one block matrix [U, W] per irrep: rows = copies of the irrep in the input, columns = in the output
        s_in, s_out = irreps_in.slices(), irreps_out.slices()
        self._groups: list[tuple[int, int, int]] = []  # (d, U, W)
        in_idx, out_idx, w_idx, w_scale = [], [], [], []
        offsets, n = {}, 0
        for i, o in instructions:
            offsets[(i, o)] = n
            n += irreps_in[i].mul * irreps_out[o].mul
        for ir in sorted({ir for _, ir in irreps_out}):
            ins_b = [i for i, (mul, r) in enumerate(irreps_in) if r == ir and mul > 0]
            outs_b = [o for o, (mul, r) in enumerate(irreps_out) if r == ir and mul > 0]
            paths = [(i, o, a) for i, o, a in self.instructions if i in ins_b and o in outs_b]
            if not paths:
                continue
            row0, col0, rows, cols = {}, {}, 0, 0
            for i in ins_b:
                row0[i] = rows
                rows += irreps_in[i].mul
            for o in outs_b:
                col0[o] = cols
                cols += irreps_out[o].mul
            idx = torch.full((rows, cols), n, dtype=torch.long)  # n: an appended zero
            scale = torch.zeros(rows, cols, dtype=torch.float64)
            for i, o, a in paths:
                mi, mo = irreps_in[i].mul, irreps_out[o].mul
                idx[row0[i] : row0[i] + mi, col0[o] : col0[o] + mo] = offsets[(i, o)] + torch.arange(mi * mo).reshape(
                    mi, mo)
                scale[row0[i] : row0[i] + mi, col0[o] : col0[o] + mo] = a
            self._groups.append((ir.dim, rows, cols))
            in_idx.append(torch.cat([torch.arange(s_in[i].start, s_in[i].stop) for i in ins_b]))
            out_idx.append(torch.cat([torch.arange(s_out[o].start, s_out[o].stop) for o in outs_b]))
            w_idx.append(idx.reshape(-1))
            w_scale.append(scale.reshape(-1))
        # output assembly: the concatenation of every group's result [W, d] is a permutation of the written outputs
        cat_out = torch.cat(out_idx) if out_idx else torch.zeros(0, dtype=torch.long)
        gather = torch.full((irreps_out.dim,), cat_out.numel(), dtype=torch.long)  # unwritten: an appended zero
        gather[cat_out] = torch.arange(cat_out.numel())
        self._pad = bool((gather == cat_out.numel()).any())
        bias_idx = torch.full((irreps_out.dim,), self.bias_numel, dtype=torch.long)
        b = 0
        for has_bias, sl in zip(biases, s_out):
            if has_bias:
                bias_idx[sl] = b + torch.arange(sl.stop - sl.start)
                b += sl.stop - sl.start
        self.register_buffer("in_index", torch.cat(in_idx) if in_idx else torch.zeros(0, dtype=torch.long), False)
        self.register_buffer("w_index", torch.cat(w_idx) if w_idx else torch.zeros(0, dtype=torch.long), False)
        self.register_buffer("w_scale", torch.cat(w_scale) if w_scale else torch.zeros(0), False)
        self.register_buffer("out_gather", gather, False)
        self.register_buffer("bias_index", bias_idx, False)
        self._in_identity = bool(torch.equal(self.in_index, torch.arange(irreps_in.dim)))
        self._out_identity = not self._pad and bool(torch.equal(gather, torch.arange(irreps_out.dim)))

        if self.shared_weights:
            self.weight = nn.Parameter(torch.randn(self.weight_numel))
            self.bias = nn.Parameter(torch.zeros(self.bias_numel))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in.simplify()} -> {self.irreps_out.simplify()} | "
                f"{self.weight_numel} weights, {self.bias_numel} biases)")

    def forward(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """``x [..., d_in]`` (and per-sample ``weight [..., weight_numel]``, ``bias [..., bias_numel]``)."""
        check_features(x, self.irreps_in)
        w = self.weight if weight is None else weight
        b = self.bias if bias is None else bias
        if w is None and self.weight_numel > 0:
            raise ValueError("this Linear has per-sample weights: pass weight [..., weight_numel]")
        if b is None and self.bias_numel > 0:
            raise ValueError("this Linear has per-sample biases: pass bias [..., bias_numel]")
        for name, t, n in (("weight", w, self.weight_numel), ("bias", b, self.bias_numel)):
            if t is not None:
                check_tensor(t, name, (n,), finite=False)
        per_sample = not self.shared_weights or (weight is not None and weight.ndim > 1)
        batch = x.shape[:-1]
        if per_sample and w is not None:
            batch = torch.broadcast_shapes(batch, w.shape[:-1])
        z = math.prod(batch)
        x = x.expand(*batch, x.shape[-1]).reshape(z, self.irreps_in.dim)
        if w is not None:
            w = w.to(x.dtype)
            w = w.expand(*batch, w.shape[-1]).reshape(z, w.shape[-1]) if per_sample else w
        xs = x if self._in_identity else x.index_select(1, self.in_index)
        ys, r = [], 0
        if self._groups:
            wext = torch.cat([w, w.new_zeros(*w.shape[:-1], 1)], -1)
            mats = (wext.index_select(-1, self.w_index) * self.w_scale.to(x.dtype)).split(
                [u * v for _, u, v in self._groups], -1)
            for (d, u, v), m in zip(self._groups, mats):
                xg = xs[:, r : r + u * d].reshape(z, u, d)
                if per_sample:
                    y = torch.bmm(m.reshape(z, u, v).transpose(1, 2), xg)  # [Z, W, d]
                elif d == 1:
                    y = xg.reshape(z, u) @ m.reshape(u, v)
                else:  # one matrix product over (Z, d) rows
                    y = (xg.transpose(1, 2).reshape(z * d, u) @ m.reshape(u, v)).reshape(z, d, v).transpose(1, 2)
                ys.append(y.reshape(z, v * d))
                r += u * d
        if not ys:
            out = x.new_zeros(z, self.irreps_out.dim)
        else:
            y = ys[0] if len(ys) == 1 else torch.cat(ys, 1)
            if self._pad:
                y = torch.cat([y, y.new_zeros(z, 1)], 1)
            out = y if self._out_identity else y.index_select(1, self.out_gather)
        if self.bias_numel > 0:
            b = b.to(x.dtype)
            bext = torch.cat([b, b.new_zeros(*b.shape[:-1], 1)], -1).index_select(-1, self.bias_index)
            out = out + (bext.expand(*batch, bext.shape[-1]).reshape(z, bext.shape[-1]) if bext.ndim > 1 else bext)
        return out.reshape(*batch, self.irreps_out.dim)
