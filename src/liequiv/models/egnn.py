"""E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling, 2021), with the velocity variant.

Each layer, for a message from node j to node i (``edge_index = [[j, ...], [i, ...]]``):

    m_ij = φ_e(h_i, h_j, |x_i - x_j|², a_ij)
    x_i ← x_i + mean_j (x_i - x_j) φ_x(m_ij) + φ_v(h_i) v_i        (velocity term optional)
    h_i ← h_i + φ_h(h_i, Σ_j m_ij)

Positions transform under E(3), velocities under O(3), and h, a stay invariant, so the output
positions are E(3)-equivariant and permutation-equivariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_dynamics_inputs
from liequiv.nn.graph import check_edge_index, scatter_mean, scatter_sum
from liequiv.nn.mlp import MLP


class EGNNLayer(nn.Module):
    """One E(n)-equivariant message-passing layer on (h ``[N, hidden]``, x ``[N, 3]``).

    ``update_features=False`` leaves h as it is (for a last layer, whose features nothing reads).
    """

    def __init__(self, hidden: int, edge_dim: int = 0, *, velocity: bool = True, tanh: bool = False,
                 coords_range: float = 15.0, update_features: bool = True) -> None:
        super().__init__()
        self.edge_mlp = MLP([2 * hidden + 1 + edge_dim, hidden, hidden], last_activation=True)
        self.node_mlp = MLP([2 * hidden, hidden, hidden]) if update_features else None
        coord = MLP([hidden, hidden, 1], last_bias=False)
        nn.init.xavier_uniform_(coord[-1].weight, gain=0.001)  # start near the identity map, as the reference
        self.coord_mlp = nn.Sequential(coord, nn.Tanh()) if tanh else coord
        self.coords_range = coords_range if tanh else 1.0
        self.velocity_mlp = MLP([hidden, hidden, 1]) if velocity else None

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                vel: Tensor | None = None) -> tuple[Tensor, Tensor]:
        src, dst = edge_index
        rel = x[dst] - x[src]
        dist_sq = (rel * rel).sum(-1, keepdim=True)
        parts = [h[dst], h[src], dist_sq] + ([edge_attr] if edge_attr is not None else [])
        message = self.edge_mlp(torch.cat(parts, -1))
        n = h.shape[0]
        x = x + scatter_mean(rel * self.coord_mlp(message) * self.coords_range, dst, n)
        if self.velocity_mlp is not None:
            if vel is None:
                raise ValueError("vel [N, 3] is required by a layer built with velocity=True")
            x = x + self.velocity_mlp(h) * vel
        if self.node_mlp is not None:
            h = h + self.node_mlp(torch.cat([h, scatter_sum(message, dst, n)], -1))
        return h, x


class EGNN(nn.Module):
    """EGNN for dynamics: predicts future positions ``[N, 3]`` from positions, velocities and node scalars.

    Invariant node input: ``|v|`` and ``node_features [N, F]`` (charges for N-body); edge attributes:
    the product of the endpoints' node features and the input squared distance, as in the N-body
    experiments of the paper.
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4, *, velocity: bool = True,
                 tanh: bool = False) -> None:
        super().__init__()
        if layers < 1 or hidden < 1 or node_dim < 0:
            raise ValueError(f"need layers >= 1, hidden >= 1, node_dim >= 0; got {layers}, {hidden}, {node_dim}")
        self.node_dim = node_dim
        self.embedding = nn.Linear(1 + node_dim, hidden)
        edge_dim = node_dim + 1
        self.layers = nn.ModuleList(
            EGNNLayer(hidden, edge_dim, velocity=velocity, tanh=tanh, update_features=i < layers - 1)
            for i in range(layers)  # the last layer's features would be unused
        )

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]`` -> positions ``[N, 3]``.

        ``batch`` is accepted for a uniform model interface; EGNN needs no per-graph pooling.
        """
        check_dynamics_inputs(pos, vel, node_features, self.node_dim)
        n = pos.shape[0]
        src, dst = check_edge_index(edge_index, n)
        speed = torch.linalg.vector_norm(vel, dim=-1, keepdim=True)
        h = self.embedding(torch.cat([speed, node_features], -1))
        rel = pos[dst] - pos[src]
        edge_attr = torch.cat([node_features[src] * node_features[dst], (rel * rel).sum(-1, keepdim=True)], -1)
        x = pos
        for layer in self.layers:
            h, x = layer(h, x, edge_index, edge_attr, vel)
        return x
