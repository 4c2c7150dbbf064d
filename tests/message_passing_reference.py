"""Message passing written out node by node in plain torch, for the layer and model tests: the EGNN update of
Satorras et al. (2021) and the plain GNN baseline.

It reads the modules' own parameter tensors but none of their code: no MLP, no scatter, loops over receivers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def silu(z: Tensor) -> Tensor:
    return z * torch.sigmoid(z)


def affine(linear: nn.Linear, z: Tensor) -> Tensor:
    """``W z + b`` from the parameters of ``linear`` (no bias when it has none)."""
    out = linear.weight @ z
    return out if linear.bias is None else out + linear.bias


def two_layer(mlp: nn.Sequential, z: Tensor, *, last_silu: bool = False) -> Tensor:
    """``W2 silu(W1 z + b1) + b2`` (then silu again when ``last_silu``) with the Linear layers of ``mlp``."""
    first, second = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    out = affine(second, silu(affine(first, z)))
    return silu(out) if last_silu else out


def egnn_layer_reference(layer: nn.Module, h: Tensor, x: Tensor, edges: list[tuple[int, int]],
                         edge_attr: Tensor | None = None, vel: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One EGNN layer for ``edges`` (j, i) = message from j to i:

        m_ij = φ_e(h_i, h_j, |x_i − x_j|², a_ij)
        x_i' = x_i + C Σ_j (x_i − x_j) φ_x(m_ij) + φ_v(h_i) v_i,   C = 1 / #{j}
        h_i' = h_i + φ_h(h_i, Σ_j m_ij)

    with φ_x = r tanh(...) when the layer was built with ``tanh=True``, ``m_ij ← m_ij sigmoid(w · m_ij + b)`` with
    ``attention=True``, and x' = x with ``update_positions=False``.
    """
    moves = layer.coord_mlp is not None
    tanh = moves and isinstance(layer.coord_mlp[-1], nn.Tanh)
    h_out, x_out = h.clone(), x.clone()
    for i in range(h.shape[0]):
        senders = [(k, j) for k, (j, target) in enumerate(edges) if target == i]
        messages, step = [], torch.zeros_like(x[i])
        for k, j in senders:
            diff = x[i] - x[j]
            parts = [h[i], h[j], (diff @ diff)[None]] + ([edge_attr[k]] if edge_attr is not None else [])
            m_ij = two_layer(layer.edge_mlp, torch.cat(parts), last_silu=True)
            if layer.attention is not None:
                m_ij = m_ij * torch.sigmoid(affine(layer.attention[0], m_ij))
            messages.append(m_ij)
            if moves:
                weight = two_layer(layer.coord_mlp, m_ij)
                step = step + diff * (layer.coords_range * torch.tanh(weight) if tanh else weight)
        if senders and moves:
            x_out[i] = x[i] + step / len(senders)
        if layer.velocity_mlp is not None:
            x_out[i] = x_out[i] + two_layer(layer.velocity_mlp, h[i]) * vel[i]
        if layer.node_mlp is not None:
            total = torch.stack(messages).sum(0) if messages else torch.zeros_like(h[i])
            h_out[i] = h[i] + two_layer(layer.node_mlp, torch.cat([h[i], total]))
    return h_out, x_out


def gnn_reference(model: nn.Module, pos: Tensor, vel: Tensor, node_features: Tensor,
                  edges: list[tuple[int, int]]) -> Tensor:
    """The GNN baseline for ``edges`` (j, i):

        h_i = W [x_i, v_i, q_i] + b,   a_ij = [q_i q_j, |x_i − x_j|²]
        m_ij = φ_e(h_i, h_j, a_ij),    h_i ← h_i + φ_h(h_i, Σ_j m_ij)     (each layer)
        x_i' = x_i + decoder(h_i)
    """
    n = pos.shape[0]
    h = torch.stack([affine(model.embedding, torch.cat([pos[i], vel[i], node_features[i]])) for i in range(n)])
    edge_attr = [torch.cat([node_features[i] * node_features[j], (pos[i] - pos[j]).square().sum()[None]])
                 for j, i in edges]
    for edge_mlp, node_mlp in zip(model.edge_mlps, model.node_mlps):
        updated = h.clone()
        for i in range(n):
            messages = [two_layer(edge_mlp, torch.cat([h[i], h[j], edge_attr[k]]), last_silu=True)
                        for k, (j, target) in enumerate(edges) if target == i]
            total = torch.stack(messages).sum(0) if messages else torch.zeros_like(h[i])
            updated[i] = h[i] + two_layer(node_mlp, torch.cat([h[i], total]))
        h = updated
    return pos + torch.stack([two_layer(model.decoder, h[i]) for i in range(n)])


def randomize(module: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Overwrite every parameter with fixed uniform values in ``[-scale, scale]`` (float64)."""
    g = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * scale)
    return module
