r"""EqMotion (Xu et al., "EqMotion: Equivariant Multi-agent Motion Prediction with Invariant Interaction Reasoning",
CVPR 2023): from T past frames of every agent to its next H positions, E(3)- and permutation-equivariantly.

For agent i of a graph with centre ``c`` (the mean of its agents' past positions over all past frames)::

    G_i = Σ_t W_x[:, t] (x_i(t) − c),      V_i = Σ_t W_v[:, t] v_i(t)              (C channels each, [C, 3])
    h_i = W_h (|v_i(t)| for t < T, ∠(v_i(t−1), v_i(t)) for 0 < t < T, node_features_i) + b
    w = InteractionReasoning(h, G, V)                                   (edge-type weights, [E, K])
    (h, G) ← EqMotionLayer(h, G, V, w)                                  (``layers`` times)
    x̂_i(τ) = c + Σ_c W_out[τ, c] G_i^c                                 (τ = 1 ... H)

The layers are :mod:`liequiv.nn.eqmotion` (its docstring gives the updates). Choices where the paper leaves
freedom: the velocity enters as its own C channels (linear combinations of the past velocities), added to G in
every layer through ``W_v`` and joined to G in the reasoning module, and its per-frame norms and turning angles
are the invariant pattern input; the angle is ``atan2(|a × b|, a · b)`` (well conditioned near 0 and π,
unlike ``acos``). ``node_features`` (charges for N-body) join the pattern input (``node_dim=0``: none, as the
paper, which infers interactions without them). The edge types (K = 2 by default, the softmax temperature 1)
are inferred once and shared by the layers. The DCT over time of the reference code is left out: it is a fixed
invertible map over frames, which the learned W_x, W_v and W_out absorb. Sizes: by default C = 32 channels,
64 pattern features and 4 layers (the ``trajectory`` task trains 3 layers).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_input_dtypes
from liequiv.nn.eqmotion import EqMotionLayer, InteractionReasoning, mix_channels
from liequiv.nn.graph import check_edge_index, scatter_mean


def turning_angles(vel: Tensor) -> Tensor:
    """Angles in ``[0, π]`` between consecutive velocities, ``[..., T, 3] -> [..., T - 1]`` (0 where one is 0)."""
    a, b = vel[..., :-1, :], vel[..., 1:, :]
    return torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(-1))


class EqMotion(nn.Module):
    """EqMotion: past positions and velocities ``[N, history, 3]`` -> future positions ``[N, horizon, 3]``.

    ``channels`` geometric (and velocity) channels, ``hidden`` pattern features, ``layers`` feature-learning
    layers, ``edge_types`` inferred interaction types (see the module docstring).
    """

    def __init__(self, history: int, horizon: int, node_dim: int = 1, hidden: int = 64, channels: int = 32,
                 layers: int = 4, edge_types: int = 2, temperature: float = 1.0) -> None:
        super().__init__()
        if min(history, horizon, hidden, channels, layers) < 1 or node_dim < 0:
            raise ValueError("need history, horizon, hidden, channels, layers >= 1 and node_dim >= 0; got "
                             f"{history}, {horizon}, {hidden}, {channels}, {layers}, {node_dim}")
        self.history, self.horizon, self.node_dim = history, horizon, node_dim
        self.position_channels = nn.Linear(history, channels, bias=False)
        self.velocity_channels = nn.Linear(history, channels, bias=False)
        self.embedding = nn.Linear(2 * history - 1 + node_dim, hidden)
        self.reasoning = InteractionReasoning(hidden, channels, edge_types, temperature)
        self.layers = nn.ModuleList(EqMotionLayer(hidden, channels, edge_types) for _ in range(layers))
        self.output = nn.Linear(channels, horizon, bias=False)

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, history, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]``, batch ``[N]``
        (``None``: one graph) -> positions ``[N, horizon, 3]``."""
        self._check(pos, vel, node_features, batch)
        n = pos.shape[0]
        check_edge_index(edge_index, n)
        frame_mean = pos.mean(1)
        centre = (frame_mean.mean(0, keepdim=True) if batch is None
                  else scatter_mean(frame_mean, batch, n)[batch])[:, None]  # [N, 1, 3]
        geometric = mix_channels(self.position_channels, pos - centre)
        velocity = mix_channels(self.velocity_channels, vel)
        speed = torch.linalg.vector_norm(vel, dim=-1)
        h = self.embedding(torch.cat([speed, turning_angles(vel), node_features], -1))
        weights = self.reasoning(h, geometric, velocity, edge_index)
        for layer in self.layers:
            h, geometric = layer(h, geometric, velocity, edge_index, weights, batch)
        return centre + mix_channels(self.output, geometric)

    def _check(self, pos: Tensor, vel: Tensor, node_features: Tensor, batch: Tensor | None) -> None:
        n = pos.shape[0] if pos.dim() else -1
        expected = {"pos": (pos, (n, self.history, 3)), "vel": (vel, (n, self.history, 3)),
                    "node_features": (node_features, (n, self.node_dim))}
        if batch is not None:
            expected["batch"] = (batch, (n,))
        for name, (value, shape) in expected.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
            if tuple(value.shape) != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
        check_input_dtypes(self, pos=pos, vel=vel, node_features=node_features)
