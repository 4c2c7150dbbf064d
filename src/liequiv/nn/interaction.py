r"""The tensor-product interaction block of NequIP (Batzner et al., Nat. Commun. 2022) and MACE (Batatia et al.,
NeurIPS 2022): equivariant messages from neighbours, an optional many-body product, a self-connection and a gate.

For node ``i`` with features ``h_i``, element ``z_i`` and edges ``j -> i`` (``edge_index = [[j, ...], [i, ...]]``,
``r_ij = x_i - x_j``, receiver minus sender)::

    m_i  = 1/n̄ Σ_j  R(|r_ij|) ⊙ (W_up h_j ⊗ Y(r̂_ij))              channel-wise tensor product, radial weights
    A_i  = Linear(m_i)                                              (only with a product)
    h_i' = Gate( Linear(Product(A_i, z_i)) + SelfConnection(h_i, z_i) )

with ``n̄`` the average number of neighbours of the training set, ``R`` a radial MLP of the edge basis times the
cutoff envelope, ``Product`` a many-body block of :mod:`liequiv.nn.many_body` (or none: NequIP's layer, where
``A = m``), ``SelfConnection`` an element-dependent linear map (the tensor product of ``h`` with the one-hot
element, as both papers) and :class:`~liequiv.o3.Gate` (SiLU on scalars, sigmoid gates on the rest; ``gate=False``
leaves the sum as it is, for a last layer).

Tensor-product backends (``backend``): ``"cg"`` gives every path ``l_1 ⊗ l_2 -> l_3`` its own weight per channel
and edge (:class:`~liequiv.o3.ChannelwiseTensorProduct`, the NequIP/MACE message). ``"gaunt_grid"`` and
``"gaunt_fourier"`` multiply the two spherical signals (Luo et al., ICLR 2024): the radial weights then factorize
per degree, ``R_{c, l_1} R'_{c, l_3}`` (they scale the degree blocks of ``W_up h_j`` before the product and of the
message after it), and only paths with ``l_1 + l_2 + l_3`` even exist, so features must have natural parity.
``"cueq"`` is ``"cg"``'s product through NVIDIA's cuEquivariance (:mod:`liequiv.o3.tensor_product.cueq`; for GPUs).

On the CPU the messages are computed and summed in chunks of edges whose messages take ``MESSAGE_CHUNK_BYTES``
(cache-sized temporaries; the memory does not grow with the edges' message width). With ``edge_block=B`` the
edges go in blocks of ``B`` whose messages are recomputed in the backward (activation checkpointing): the memory
kept for the backward is then a few numbers per edge instead of the radial weights and messages of every edge, at
the cost of a second forward of the messages (for energies and forces of large structures).

Shapes: ``h [N, irreps_in.dim]``, ``node_attrs [N, num_elements]`` (one-hot), ``species [N]``, ``edge_index [2, E]``,
``edge_sh [E, (lmax_sh+1)²]``, ``edge_basis [E, num_basis]``, ``edge_envelope [E]`` -> ``[N, irreps_out.dim]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from liequiv.nn.mlp import MLP
from liequiv.o3 import ChannelwiseTensorProduct, FullyConnectedTensorProduct, Gate, Irreps, Linear, TensorProduct

__all__ = ["Interaction", "gate_for", "natural_irreps"]

TP_BACKENDS = ("cg", "gaunt_grid", "gaunt_fourier", "cueq")
# per-edge messages are computed in chunks of edges whose messages take about this many bytes (on the CPU)
MESSAGE_CHUNK_BYTES = 8 << 20


def natural_irreps(channels: int, lmax: int) -> Irreps:
    """``C x (0e + 1o + 2e + ...)`` up to ``lmax``: the irreps of natural parity ``(-1)^l``."""
    return Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


def gate_for(irreps_out: Any) -> Gate:
    """A :class:`~liequiv.o3.Gate` whose output is ``irreps_out``: SiLU on the ``0e`` blocks, one sigmoid gate
    (a ``0e`` scalar) per copy of every other irrep. Other scalars (``0o``) are not supported."""
    irreps_out = Irreps(irreps_out)
    scalars = Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    if any(ir.p != 1 for _, ir in scalars):
        raise ValueError(f"gate_for needs 0e scalars only, got {irreps_out}")
    gates = Irreps([(gated.num_irreps, "0e")]) if gated.num_irreps else Irreps("")
    return Gate(scalars, [torch.nn.functional.silu] * len(scalars), gates, [torch.sigmoid] * len(gates), gated)


def _degree_scale_index(irreps: Irreps) -> Tensor:
    """Column of ``C x (one block per degree)`` -> its ``(channel, degree)`` in ``[C, lmax + 1]`` flattened."""
    lmax = irreps.lmax
    cols = []
    for mul, ir in irreps:
        for c in range(mul):
            cols += [c * (lmax + 1) + ir.l] * ir.dim
    return torch.tensor(cols, dtype=torch.long)


class Interaction(nn.Module):
    """One interaction block (see the module docstring).

    Args:
        irreps_in: node features ``h``; for a Gaunt backend ``C x`` natural irreps, one block per degree.
        irreps_out: the block's output (after the gate).
        lmax_sh: degree of the edge harmonics ``Y``.
        irreps_message: irreps of ``A`` (``C x`` natural irreps); the messages keep the paths into these irreps.
        num_basis: size of the radial basis; ``radial_hidden``: widths of the radial MLP's hidden layers.
        num_elements: size of the one-hot element encoding.
        avg_num_neighbors: ``n̄`` (a buffer, saved with the model; set it from the training set).
        backend: ``"cg"``, ``"gaunt_grid"``, ``"gaunt_fourier"`` or ``"cueq"``.
        product: a many-body block ``(A [N, irreps_message.dim], species [N]) -> [N, product.irreps_out.dim]``, or
            None (NequIP).
        gate: end in a gate (True) or return the sum as it is.
    """

    def __init__(self, irreps_in: Any, irreps_out: Any, lmax_sh: int, irreps_message: Any, num_basis: int,
                 num_elements: int, *, radial_hidden: tuple[int, ...] = (64, 64, 64), avg_num_neighbors: float = 1.0,
                 backend: str = "cg", product: nn.Module | None = None, gate: bool = True) -> None:
        super().__init__()
        if backend not in TP_BACKENDS:
            raise ValueError(f"backend must be one of {TP_BACKENDS}, got {backend!r}")
        self.irreps_in, self.irreps_message = Irreps(irreps_in), Irreps(irreps_message)
        irreps_sh = Irreps.spherical_harmonics(lmax_sh)
        self.backend = backend
        self.linear_up = Linear(self.irreps_in, self.irreps_in)
        if backend in ("cg", "cueq"):
            keep = [ir for _, ir in self.irreps_message]
            self.tp = ChannelwiseTensorProduct(self.irreps_in, irreps_sh, filter_ir_out=keep, weights="per_sample",
                                               backend=backend)
            n_weights = self.tp.weight_numel
        else:
            channels = {mul for mul, _ in self.irreps_in}
            lmax_tp = min(self.irreps_message.lmax, self.irreps_in.lmax + lmax_sh)
            irreps_tp = natural_irreps(channels.pop() if len(channels) == 1 else 0, lmax_tp)
            self.tp = TensorProduct(self.irreps_in, irreps_sh, irreps_tp, connection="uvu", weights=None,
                                    backend=backend)
            self.register_buffer("scale_in", _degree_scale_index(self.irreps_in), persistent=False)
            self.register_buffer("scale_out", _degree_scale_index(irreps_tp), persistent=False)
            self._split = [int(self.scale_in.max()) + 1, int(self.scale_out.max()) + 1]
            n_weights = sum(self._split)
        self.radial = MLP([num_basis, *radial_hidden, n_weights])
        self.register_buffer("avg_num_neighbors", torch.tensor(float(avg_num_neighbors), dtype=torch.float64))
        self.product = product
        if product is not None:
            self.linear = Linear(self.tp.irreps_out, self.irreps_message)
            product_out = product.irreps_out
        else:
            self.linear = None
            product_out = self.tp.irreps_out
        self.gate = gate_for(irreps_out) if gate else None
        pre_gate = self.gate.irreps_in if gate else Irreps(irreps_out)
        self.linear_out = Linear(product_out, pre_gate)
        self.self_connection = FullyConnectedTensorProduct(self.irreps_in, Irreps([(num_elements, "0e")]), pre_gate)
        self.irreps_out = Irreps(irreps_out)

    def forward(self, h: Tensor, node_attrs: Tensor, species: Tensor, edge_index: Tensor, edge_sh: Tensor,
                edge_basis: Tensor, edge_envelope: Tensor, *, edge_block: int | None = None) -> Tensor:
        h_up = self.linear_up(h)
        edges = (edge_index[0], edge_index[1], edge_sh, edge_basis, edge_envelope)
        if edge_block is None or edge_index.shape[1] <= edge_block:
            a = self._aggregate(h_up, *edges)
        else:
            a = h.new_zeros(h.shape[0], self.tp.irreps_out.dim)
            for block in zip(*(t.split(edge_block) for t in edges)):
                a = a + checkpoint(self._aggregate, h_up, *block, use_reentrant=False)
        a = a / self.avg_num_neighbors.to(h.dtype)
        if self.product is not None:
            a = self.product(self.linear(a), species)
        out = self.linear_out(a) + self.self_connection(h, node_attrs)
        return self.gate(out) if self.gate is not None else out

    def _aggregate(self, h_up: Tensor, src: Tensor, dst: Tensor, edge_sh: Tensor, edge_basis: Tensor,
                   edge_envelope: Tensor) -> Tensor:
        """``Σ_j R ⊙ (h_up_j ⊗ Y)`` over the given edges, ``[N, tp.irreps_out.dim]`` (not yet divided by ``n̄``)."""
        weights = self.radial(edge_basis) * edge_envelope[:, None]
        # the edges in chunks on the CPU: the per-edge messages (the widest tensors) stay cache-sized, so the cost per
        # edge does not grow with the structure
        row_bytes = max(self.tp.irreps_out.dim * h_up.element_size(), 1)
        rows = max(1, MESSAGE_CHUNK_BYTES // row_bytes if h_up.device.type == "cpu" else src.shape[0])
        a = h_up.new_zeros(h_up.shape[0], self.tp.irreps_out.dim)
        chunks = (t.split(rows) for t in (h_up.index_select(0, src), edge_sh, weights, dst))  # split: one backward
        for x, sh, w, receivers in zip(*chunks):
            a.index_add_(0, receivers, self._messages(x, sh, w))
        return a

    def _messages(self, x: Tensor, edge_sh: Tensor, weights: Tensor) -> Tensor:
        """``R ⊙ (x ⊗ Y)`` per edge: ``x [E, irreps_in.dim]`` (the senders' features) -> ``[E, tp.irreps_out.dim]``."""
        if self.backend in ("cg", "cueq"):
            return self.tp(x, edge_sh, weights)
        w_in, w_out = weights.split(self._split, 1)
        return self.tp(x * w_in.index_select(1, self.scale_in), edge_sh) * w_out.index_select(1, self.scale_out)
