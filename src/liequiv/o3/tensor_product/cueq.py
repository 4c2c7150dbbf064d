"""NVIDIA cuEquivariance backend of :class:`~liequiv.o3.tensor_product.interface.TensorProduct`: ``"cueq"``.

The channel-wise products that NequIP and MACE spend their GPU time on (``uvu`` paths with ``mul2 = 1``, the
message ``x1 ⊗ Y(r̂)``) run as one ``cuequivariance_torch.SegmentedPolynomial``: its CUDA kernel (``uniform_1d``)
on a GPU, and its plain-torch ``naive`` method on other devices, which makes a model with this backend portable
(train on a GPU, run molecular dynamics on a CPU) and checkable without a GPU. It needs the optional dependency
``cuequivariance-torch`` (``pip install liequiv[cueq]``; the CUDA kernels also ``cuequivariance-ops-torch-cu12``).

The polynomial is built from this library's own normalized Clebsch-Gordan tables (the ``cg`` backend's), not from
cuEquivariance's descriptors, so the basis, the path normalization and the flat weight layout are exactly those
of ``backend="cg"``: one weight tensor gives the same result on both. A segmented tensor product with subscripts
``u, iu, j, ku + ijk`` (weights ``[u]`` per path, ``x1`` blocks ``[d1, u]``, ``x2`` blocks ``[d2]``, output blocks
``[d3, u]``) holds one path per instruction with coefficients ``a_p C_p[i, j, k]``; its coefficient modes are
flattened so that every segment is a vector over the channels ``u`` (the form of the CUDA kernel). cuEquivariance
keeps channels innermost ("ir_mul") while e3nn's layout is "mul_ir", so ``x1`` and the output are transposed per
block on the way in and out.

Accepted: every path ``uvu`` with ``mul2 = 1``, and all paths weighted (shared or per-sample weights) or none;
anything else raises ``ValueError``.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor, nn

from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import TensorProductSpec, register_backend
from liequiv.o3.wigner import clebsch_gordan

__all__ = ["CueqTensorProduct", "cueq_available"]


def cueq_available() -> bool:
    """Whether ``cuequivariance_torch`` can be imported."""
    return importlib.util.find_spec("cuequivariance_torch") is not None


def _layout_permutation(irreps: Irreps) -> Tensor:
    """Column ``c`` of the "ir_mul" layout (``[d, mul]`` per block) -> its column in e3nn's "mul_ir" (``[mul, d]``)."""
    cols, start = [], 0
    for mul, ir in irreps:
        cols.append(start + torch.arange(mul * ir.dim).reshape(mul, ir.dim).T.reshape(-1))
        start += mul * ir.dim
    return torch.cat(cols) if cols else torch.zeros(0, dtype=torch.long)


class CueqTensorProduct(nn.Module):
    """Channel-wise product through cuEquivariance (see the module docstring). Built by
    ``TensorProduct(..., backend="cueq")``."""

    def __init__(self, spec: TensorProductSpec) -> None:
        super().__init__()
        if not cueq_available():
            raise ValueError("backend 'cueq' needs cuequivariance-torch: pip install cuequivariance-torch "
                             "(and cuequivariance-ops-torch-cu12 for its CUDA kernels)")
        import cuequivariance as cue

        irreps1, irreps2, irreps_out = spec.irreps_in1, spec.irreps_in2, spec.irreps_out
        paths = [ins for ins in spec.instructions if 0 not in ins.path_shape]
        for ins in paths:
            if ins.connection_mode != "uvu" or irreps2[ins.i_in2].mul != 1:
                raise ValueError(f"backend 'cueq' computes channel-wise products (uvu, mul2 = 1), got path {ins}")
        weighted = {ins.has_weight for ins in paths}
        if len(weighted) > 1:
            raise ValueError("backend 'cueq' needs every path weighted or none")
        self.weighted = weighted == {True}
        self.d_out = irreps_out.dim

        stp = cue.SegmentedTensorProduct.from_subscripts("u,iu,j,ku+ijk" if self.weighted else "iu,j,ku+ijk")
        first = 1 if self.weighted else 0  # operand of x1
        seg1 = [stp.add_segment(first, (ir.dim, mul)) for mul, ir in irreps1]
        seg2 = [stp.add_segment(first + 1, (ir.dim,)) for _, ir in irreps2]
        seg_out = [stp.add_segment(first + 2, (ir.dim, mul)) for mul, ir in irreps_out]
        for ins in paths:
            (u, ir1), ir2, ir3 = irreps1[ins.i_in1], irreps2[ins.i_in2].ir, irreps_out[ins.i_out].ir
            table = (clebsch_gordan(ir1.l, ir2.l, ir3.l) * ins.path_weight).numpy()
            operands = [seg1[ins.i_in1], seg2[ins.i_in2], seg_out[ins.i_out]]
            if self.weighted:
                operands.insert(0, stp.add_segment(0, (u,)))
            stp.add_path(*operands, c=table)
        stp = stp.flatten_coefficient_modes().squeeze_modes()  # every segment a vector over the channels
        self.polynomial = cue.SegmentedPolynomial.eval_last_operand(stp)
        self.uniform = stp.all_same_segment_shape()
        self.register_buffer("perm1", _layout_permutation(irreps1), persistent=False)
        self.register_buffer("perm_out", torch.argsort(_layout_permutation(irreps_out)), persistent=False)
        self._modules_by_device: dict[tuple[str, torch.dtype], nn.Module] = {}

    def _operation(self, x: Tensor) -> nn.Module:
        """cuEquivariance's module for ``x``'s device and dtype (CUDA kernel on a GPU, plain torch elsewhere)."""
        key = (str(x.device), x.dtype)
        if key not in self._modules_by_device:
            import cuequivariance_torch as cuet

            method = "uniform_1d" if x.device.type == "cuda" and self.uniform else "naive"
            op = cuet.SegmentedPolynomial(self.polynomial, method=method, math_dtype=x.dtype)
            self._modules_by_device[key] = op.to(x.device)
        return self._modules_by_device[key]

    def forward(self, x1: Tensor, x2: Tensor, w: Tensor | None) -> Tensor:
        """``x1 [Z, d1]``, ``x2 [Z, d2]``, ``w`` (None, ``[nw]`` or ``[Z, nw]``) -> ``[Z, d_out]``."""
        if x1.shape[0] == 0 or not self.polynomial.operations:
            return x1.new_zeros(x1.shape[0], self.d_out)
        inputs = [x1.index_select(1, self.perm1), x2]
        if self.weighted:
            inputs.insert(0, w[None] if w.ndim == 1 else w)
        (out,) = self._operation(x1)(inputs)
        return out.index_select(1, self.perm_out)


register_backend("cueq", CueqTensorProduct)
