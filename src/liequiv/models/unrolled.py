r"""A one-step dynamics model unrolled into a trajectory forecaster: the EGNN baseline of trajectory prediction.

From the last two past frames, ``x_0 = x(T−1)`` and ``v_0 = x(T−1) − x(T−2)`` (the displacement per frame), each
step predicts the next frame and takes its velocity as the difference of the last two frames::

    x_{k+1} = EGNN(x_k, v_k, node_features),      v_{k+1} = x_{k+1} − x_k,      k = 0 ... horizon − 1

and returns ``(x_1, ..., x_horizon)``. Training backpropagates through the whole unroll (no detaching between
steps). Every step is E(3)- and permutation-equivariant, so the forecast is too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.egnn import EGNN


class UnrolledEGNN(nn.Module):
    """:class:`~liequiv.models.egnn.EGNN` applied autoregressively ``horizon`` times (see the module docstring).

    ``pos [N, history, 3]`` (history >= 2) -> positions ``[N, horizon, 3]``; the other arguments go to the EGNN.
    """

    def __init__(self, horizon: int, node_dim: int = 1, hidden: int = 64, layers: int = 4, *,
                 tanh: bool = False) -> None:
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.horizon, self.node_dim = horizon, node_dim
        self.step = EGNN(node_dim, hidden, layers, velocity=True, tanh=tanh)

    def forward(self, pos: Tensor, vel: Tensor | None, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos ``[N, history, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]`` -> ``[N, horizon, 3]``.

        ``vel`` is accepted for the interface shared with EqMotion and not used: the velocity is the difference of
        the last two frames, before and during the unroll alike.
        """
        if not isinstance(pos, Tensor) or pos.dim() != 3 or pos.shape[1] < 2 or pos.shape[2] != 3:
            raise ValueError(f"pos must have shape [N, history >= 2, 3], got {list(getattr(pos, 'shape', []))}")
        x, v = pos[:, -1], pos[:, -1] - pos[:, -2]
        frames = []
        for _ in range(self.horizon):
            x_next = self.step(x, v, node_features, edge_index, batch)
            x, v = x_next, x_next - x
            frames.append(x)
        return torch.stack(frames, 1)
