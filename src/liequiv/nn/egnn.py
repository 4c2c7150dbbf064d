r"""The E(n)-equivariant graph convolution of Satorras, Hoogeboom & Welling, "E(n) Equivariant Graph Neural
Networks" (ICML 2021), with the velocity term of its dynamics experiments.

For a message from node j to node i (``edge_index = [[j, ...], [i, ...]]``)::

    m_ij = φ_e(h_i, h_j, |x_i − x_j|², a_ij)
    x_i' = x_i + C Σ_j (x_i − x_j) φ_x(m_ij) + φ_v(h_i) v_i        C = 1 / (number of j); velocity term optional
    h_i' = h_i + φ_h(h_i, Σ_j m_ij)

``x_i − x_j`` is receiver minus sender, as in the paper. φ_e, φ_h, φ_v are SiLU MLPs; φ_x is a SiLU MLP without
a last bias, optionally followed by ``r · tanh`` (``tanh=True``, ``r = coords_range``) to bound the coordinate
steps. With ``attention=True`` each message is gated, ``m_ij ← m_ij · sigmoid(w · m_ij + b)``, and
``update_positions=False`` keeps ``x`` (no φ_x, no velocity term): the reference's QM9 model, an invariant network
on distances. Positions move under E(3), velocities under O(3), h and a are invariant: x' is E(3)-equivariant and h'
invariant, and both are permutation-equivariant.

Shapes: ``h [N, hidden]``, ``x [N, 3]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]`` (optional),
``vel [N, 3]`` (with ``velocity=True``) -> ``(h' [N, hidden], x' [N, 3])``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.nn.graph import scatter_mean, scatter_sum
from liequiv.nn.mlp import MLP


class EGNNLayer(nn.Module):
    """One E(n)-equivariant message-passing layer (see the module docstring for the update and the shapes).

    ``update_features=False`` leaves h as it is (for a last layer, whose features nothing reads);
    ``update_positions=False`` leaves x as it is, ``attention=True`` gates the messages (module docstring).

    >>> layer = EGNNLayer(hidden=8, edge_dim=0, velocity=False)
    >>> h, x = layer(torch.randn(3, 8), torch.randn(3, 3), torch.tensor([[0, 1, 2], [1, 2, 0]]))
    >>> h.shape, x.shape
    (torch.Size([3, 8]), torch.Size([3, 3]))
    """

    def __init__(self, hidden: int, edge_dim: int = 0, *, velocity: bool = True, tanh: bool = False,
                 coords_range: float = 15.0, update_features: bool = True, update_positions: bool = True,
                 attention: bool = False) -> None:
        super().__init__()
        if velocity and not update_positions:
            raise ValueError("velocity=True needs update_positions=True (the velocity term moves the positions)")
        self.edge_mlp = MLP([2 * hidden + 1 + edge_dim, hidden, hidden], last_activation=True)
        self.node_mlp = MLP([2 * hidden, hidden, hidden]) if update_features else None
        self.attention = nn.Sequential(nn.Linear(hidden, 1), nn.Sigmoid()) if attention else None
        self.coord_mlp = None
        if update_positions:
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
        if self.attention is not None:
            message = message * self.attention(message)
        n = h.shape[0]
        x_new = x
        if self.coord_mlp is not None:
            x_new = x + scatter_mean(rel * self.coord_mlp(message) * self.coords_range, dst, n)
        if self.velocity_mlp is not None:
            if vel is None:
                raise ValueError("vel [N, 3] is required by a layer built with velocity=True")
            x_new = x_new + self.velocity_mlp(h) * vel
        if self.node_mlp is not None:
            h = h + self.node_mlp(torch.cat([h, scatter_sum(message, dst, n)], -1))
        return h, x_new
