"""The equivariant geometric trajectory network (EGTN) of GeoTDM (Han et al., "Geometric Trajectory Diffusion
Models", NeurIPS 2024): the denoiser of trajectory diffusion, a stack of blocks each made of an E(n)-equivariant
graph convolution within every frame (:class:`~liequiv.nn.egnn.EGNNLayer`, nodes of one frame talk to each other)
and an equivariant attention over the frames of every node (:class:`~liequiv.nn.temporal_attention.TemporalAttention`).

The conditioning frames and the noisy future frames form one trajectory of ``history + horizon`` frames; every
frame's invariant features start from the node features, a sinusoidal embedding of the frame index and of the
diffusion time, a flag saying whether the frame is given or noisy, and the distance the node moved since the
previous frame. The output is each future frame's total displacement through the blocks: translation-invariant
and rotation-equivariant, as an ε (or a step towards x₀) must be. Positions should be given relative to a point
that moves with the system (the task uses the centre of the last conditioning frame), so that the whole model is
E(3)-equivariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_input_dtypes
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import check_edge_index
from liequiv.nn.sinusoidal import SinusoidalEmbedding
from liequiv.nn.temporal_attention import TemporalAttention


class EGTN(nn.Module):
    """GeoTDM's denoiser: ``(x_t [N, horizon, 3], t [N]; cond [N, history, 3], node_features [N, node_dim],
    edge_index [2, E]) -> [N, horizon, 3]``.

    The call follows :mod:`liequiv.generative`'s model contract ``model(x_t, t, **context)``; ``t`` is the
    diffusion time of each node's sample, in ``[0, 1]``. ``edge_index`` connects nodes within each sample (the
    same graph in every frame); the edge attribute is the product of the endpoints' node features.
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4, heads: int = 4,
                 embedding_dim: int = 16) -> None:
        super().__init__()
        if layers < 1 or node_dim < 0:
            raise ValueError(f"need layers >= 1 and node_dim >= 0, got {layers}, {node_dim}")
        self.node_dim = node_dim
        self.time_embedding = SinusoidalEmbedding(embedding_dim, max_frequency=1000.0)
        self.frame_embedding = SinusoidalEmbedding(embedding_dim, max_frequency=100.0)
        self.embedding = nn.Linear(node_dim + 2 * embedding_dim + 2, hidden)
        self.spatial = nn.ModuleList(EGNNLayer(hidden, node_dim, velocity=False) for _ in range(layers))
        self.temporal = nn.ModuleList(TemporalAttention(hidden, heads) for _ in range(layers))

    def forward(self, x_t: Tensor, t: Tensor, *, cond: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """``batch`` is accepted for the generative contract; the graph is ``edge_index``."""
        n = x_t.shape[0] if x_t.dim() else -1
        history = cond.shape[1] if cond.dim() == 3 else -1
        if x_t.dim() != 3 or x_t.shape[-1] != 3 or cond.shape != (n, history, 3):
            raise ValueError(f"x_t must be [N, horizon, 3] and cond [N, history, 3] with one N, got "
                             f"{list(x_t.shape)} and {list(cond.shape)}")
        if t.shape != (n,) or node_features.shape != (n, self.node_dim):
            raise ValueError(f"t must be [{n}] and node_features [{n}, {self.node_dim}], got {list(t.shape)} and "
                             f"{list(node_features.shape)}")
        check_input_dtypes(self, x_t=x_t, t=t, cond=cond, node_features=node_features)
        src, dst = check_edge_index(edge_index, n)
        x = torch.cat([cond, x_t], 1)  # [N, F, 3]
        frames = x.shape[1]
        index = torch.arange(frames, device=x.device)
        moved = torch.linalg.vector_norm(torch.diff(x, dim=1, prepend=x[:, :1]), dim=-1, keepdim=True)
        given = (index < history).to(x.dtype).expand(n, frames)[..., None]
        h = self.embedding(torch.cat([
            node_features[:, None].expand(n, frames, self.node_dim),
            self.time_embedding(t)[:, None].expand(n, frames, -1),
            self.frame_embedding(index.to(x.dtype)).expand(n, frames, -1),
            given, moved], -1))
        # every frame is a copy of the graph: node (i, f) is row i * F + f of the flattened [N * F, ...] tensors
        frame_edges = (torch.stack([src, dst])[:, :, None] * frames + index).reshape(2, -1)
        edge_attr = (node_features[src] * node_features[dst]).repeat_interleave(frames, 0)
        start = x
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            h, x = spatial(h.reshape(n * frames, -1), x.reshape(n * frames, 3), frame_edges, edge_attr)
            h, x = temporal(h.view(n, frames, -1), x.view(n, frames, 3))
        return (x - start)[:, history:]
