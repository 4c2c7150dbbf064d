"""An E(3)-equivariant network for rigid registration: where should each source point go?

The source cloud (already moved by the current pose estimate) and the target cloud form one graph: every point
receives messages from its ``k`` nearest neighbours in its own cloud and from its ``k`` nearest points of the other
cloud (the edge attribute says which), and a stack of :class:`~liequiv.nn.egnn.EGNNLayer` moves the points. The
output is each source point's displacement and a positive confidence weight; a weighted Kabsch fit of the source
to its displaced copy turns them into a rigid motion (as a surrogate registration step of Jiang et al.'s SE(3)
diffusion, or in one shot as a direct regressor).

Moving both clouds by one rotation, reflection and translation rotates the displacements and leaves the weights
unchanged, so the rigid motion fitted from them is equivariant; it depends on the source only through its moved
copy, so it is also equivariant to the source's own frame. The neighbour graph is rebuilt from the positions
(without gradients); it is invariant except where distances tie.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liequiv.models.inputs import check_input_dtypes
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import knn_edges
from liequiv.nn.mlp import MLP
from liequiv.nn.sinusoidal import SinusoidalEmbedding


class RegistrationEGNN(nn.Module):
    """``(source [B, n, 3], target [B, m, 3], t [B] | None) -> (displacement [B, n, 3], weight [B, n])``.

    ``t`` is a diffusion time in ``[0, 1]`` (embedded sinusoidally; ``None``: zeros, for a one-shot regressor).
    """

    def __init__(self, hidden: int = 64, layers: int = 4, k: int = 8, time_dim: int = 16) -> None:
        super().__init__()
        if layers < 1 or k < 1:
            raise ValueError(f"need layers >= 1 and k >= 1, got {layers}, {k}")
        self.k = k
        self.time_embedding = SinusoidalEmbedding(time_dim)
        self.embedding = nn.Linear(2 + time_dim, hidden)
        self.layers = nn.ModuleList(EGNNLayer(hidden, 2, velocity=False) for _ in range(layers))
        self.weight = MLP([hidden, hidden, 1])

    def graph(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``edge_index [2, E]`` over the rows of ``cat([source, target], 1).reshape(-1, 3)`` and the one-hot
        edge attribute ``[E, 2]`` (within a cloud, across the clouds)."""
        n, m = source.shape[1], target.shape[1]

        def rows(index: Tensor, size: int, shift: int) -> Tensor:  # row of a cloud's flat index in the joint layout
            return index // size * (n + m) + index % size + shift

        parts, kinds = [], []
        for senders, receivers, s_shift, r_shift, exclude in ((source, source, 0, 0, True),
                                                               (target, target, n, n, True),
                                                               (target, source, n, 0, False),
                                                               (source, target, 0, n, False)):
            k = min(self.k, senders.shape[1] - exclude)
            if k < 1:
                continue
            src, dst = knn_edges(senders, receivers, k, exclude_self=exclude)
            parts.append(torch.stack([rows(src, senders.shape[1], s_shift), rows(dst, receivers.shape[1], r_shift)]))
            kinds.append(torch.full((src.shape[0],), int(s_shift != r_shift), device=source.device))
        edge_index = torch.cat(parts, 1)
        return edge_index, F.one_hot(torch.cat(kinds), 2).to(source.dtype)

    def forward(self, source: Tensor, target: Tensor, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if source.dim() != 3 or target.dim() != 3 or source.shape[-1] != 3 or target.shape[-1] != 3 \
                or source.shape[0] != target.shape[0]:
            raise ValueError(f"source and target must be [B, n, 3] and [B, m, 3], got {list(source.shape)} and "
                             f"{list(target.shape)}")
        b, n, m = source.shape[0], source.shape[1], target.shape[1]
        if n < 2 or m < 2:
            raise ValueError(f"need at least 2 points per cloud, got n={n}, m={m}")
        t = source.new_zeros(b) if t is None else t
        if t.shape != (b,):
            raise ValueError(f"t must have shape [{b}], got {list(t.shape)}")
        check_input_dtypes(self, source=source, target=target, t=t)
        edge_index, edge_attr = self.graph(source, target)
        x = torch.cat([source, target], 1).reshape(-1, 3)
        flag = torch.cat([torch.ones(n), torch.zeros(m)]).to(source)[None, :, None].expand(b, n + m, 1)
        h = self.embedding(torch.cat([flag, 1 - flag, self.time_embedding(t)[:, None].expand(b, n + m, -1)], -1))
        h = h.reshape(b * (n + m), -1)
        start = x
        for layer in self.layers:
            h, x = layer(h, x, edge_index, edge_attr)
        moved = (x - start).view(b, n + m, 3)[:, :n]
        weight = F.softplus(self.weight(h).view(b, n + m)[:, :n])
        return moved, weight
