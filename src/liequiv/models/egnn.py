"""E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling, 2021), with the velocity variant: an
embedding of the invariant node inputs, then a stack of :class:`~liequiv.nn.egnn.EGNNLayer` (its docstring gives
the update). The output positions are E(3)-equivariant and permutation-equivariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_dynamics_inputs
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import check_edge_index


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
        check_dynamics_inputs(self, pos, vel, node_features)
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
