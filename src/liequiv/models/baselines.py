"""Non-equivariant baselines for dynamics: a plain message-passing GNN and linear extrapolation.

Both follow the uniform model interface of the N-body task,
``forward(pos [N, 3], vel [N, 3], node_features [N, F], edge_index [2, E], batch [N] | None) -> positions [N, 3]``,
as the GNN and "Linear" rows of the EGNN paper's N-body table (Satorras et al., 2021).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_dynamics_inputs
from liequiv.nn.graph import check_edge_index, scatter_sum
from liequiv.nn.mlp import MLP


class GNN(nn.Module):
    """Plain message passing on raw coordinates: neither rotation- nor translation-equivariant.

    Node input ``[pos, vel, node_features]`` (``[N, 6 + node_dim]``); edge attributes: the product of the
    endpoints' node features (charge products for N-body) and the squared distance. Each layer, for a message
    from j to i,

        m_ij = φ_e(h_i, h_j, a_ij),    h_i ← h_i + φ_h(h_i, Σ_j m_ij),

    and the output is ``pos + decoder(h)``. Permutation-equivariant only.
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        if layers < 1 or hidden < 1 or node_dim < 0:
            raise ValueError(f"need layers >= 1, hidden >= 1, node_dim >= 0; got {layers}, {hidden}, {node_dim}")
        self.node_dim = node_dim
        edge_dim = node_dim + 1
        self.embedding = nn.Linear(6 + node_dim, hidden)
        self.edge_mlps = nn.ModuleList(
            MLP([2 * hidden + edge_dim, hidden, hidden], last_activation=True) for _ in range(layers)
        )
        self.node_mlps = nn.ModuleList(MLP([2 * hidden, hidden, hidden]) for _ in range(layers))
        self.decoder = MLP([hidden, hidden, 3])

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]`` -> positions ``[N, 3]``.

        ``batch`` is accepted for the uniform model interface; the GNN needs no per-graph pooling.
        """
        check_dynamics_inputs(self, pos, vel, node_features)
        n = pos.shape[0]
        src, dst = check_edge_index(edge_index, n)
        rel = pos[dst] - pos[src]
        edge_attr = torch.cat([node_features[src] * node_features[dst], (rel * rel).sum(-1, keepdim=True)], -1)
        h = self.embedding(torch.cat([pos, vel, node_features], -1))
        for edge_mlp, node_mlp in zip(self.edge_mlps, self.node_mlps):
            message = edge_mlp(torch.cat([h[dst], h[src], edge_attr], -1))
            h = h + node_mlp(torch.cat([h, scatter_sum(message, dst, n)], -1))
        return pos + self.decoder(h)


class LinearDynamics(nn.Module):
    """Linear extrapolation, the paper's "Linear" baseline: ``x_t + Δ·v_t`` with a learned time step Δ.

    ``per_axis=False``: ``pos + dt * vel`` with one learned scalar ``dt`` (initialized to the ``dt`` argument).
    ``per_axis=True``: ``pos + W [pos, vel] + b`` with a learned ``W [3, 6]``, ``b [3]``, initialized to
    ``W = [0 | dt·I]``, ``b = 0`` (the scalar model), so each output axis may mix every input axis.
    ``hidden`` and ``layers`` are accepted for the uniform constructor and unused; node features and the graph
    are validated and ignored (particles move independently).
    """

    def __init__(self, node_dim: int = 1, hidden: int | None = None, layers: int | None = None, *,
                 per_axis: bool = False, dt: float = 0.0) -> None:
        super().__init__()
        if node_dim < 0:
            raise ValueError(f"node_dim must be >= 0, got {node_dim}")
        self.node_dim = node_dim
        self.per_axis = per_axis
        if per_axis:
            self.linear = nn.Linear(6, 3)
            with torch.no_grad():
                self.linear.weight.copy_(torch.cat([torch.zeros(3, 3), dt * torch.eye(3)], -1))
                self.linear.bias.zero_()
        else:
            self.dt = nn.Parameter(torch.tensor(float(dt)))

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]`` -> positions ``[N, 3]``."""
        check_dynamics_inputs(self, pos, vel, node_features)
        check_edge_index(edge_index, pos.shape[0])
        if self.per_axis:
            return pos + self.linear(torch.cat([pos, vel], -1))
        return pos + self.dt * vel
