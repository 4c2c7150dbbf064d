"""An equivariant network for rigid registration: where should each source point go?

Each cloud gets invariant per-point descriptors, computed from its own points alone: the local geometry of the
``k`` nearest neighbours (:func:`local_geometry`: the patch's principal extents, and point-pair features between
neighbours built from distances and sign-free normals) and a histogram of the distances to every point of the
cloud (where the point sits in the whole shape), refined by a stack of :class:`~liequiv.nn.egnn.EGNNLayer` over
the neighbour graph (positions fixed). A descriptor therefore does not change when its cloud alone is rotated,
reflected or translated. Every source point is then matched softly to the target: the attention
``softmax_j(⟨q_i, k_j⟩/√d - β(t) |p_i - y_j|²)`` over the target points ``y_j`` mixes how alike the descriptors
are with how close the point ``p_i`` (the source moved by the current pose estimate) already lies, with a weight
``β(t) ≥ 0`` learned as a function of the diffusion time (robust point matching's annealing, with the schedule
learned). The point's displacement is its soft correspondence ``Σ_j a_ij y_j`` minus ``p_i``, and its positive
confidence weight comes from its descriptor, its largest attention value and the time; a weighted Kabsch fit of
the source to its displaced copy turns them into a rigid motion (a registration step of Jiang et al.'s SE(3)
diffusion, or in one shot a direct regressor).

Equivariance: moving both clouds by one rotation, reflection and translation rotates the displacements and leaves
the weights unchanged (descriptors and distances are invariant), so the fitted motion is equivariant; the network
sees the source only through its moved copy, so the motion is also equivariant to the source's own frame. Where
``β`` is zero the matching ignores the relative pose altogether, so the estimate does not depend on how far the
clouds start apart. Descriptors carry no gradient to the positions (the clouds are data); the neighbour graphs
are invariant except where distances tie.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liequiv.models.inputs import check_input_dtypes
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import knn_edges
from liequiv.nn.mlp import MLP
from liequiv.nn.radial import GaussianBasis
from liequiv.nn.sinusoidal import SinusoidalEmbedding

DISTANCE_RANGE, DISTANCE_BASIS = 1.0, 16  # Gaussians of the neighbour distance (clouds of radius about 1)


def local_geometry(points: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Invariant local geometry of ``points [B, n, 3]`` over each point's ``k`` nearest neighbours.

    Returns the square roots of the neighbourhood covariance's eigenvalues ``[B, n, 3]`` (ascending: thickness,
    width, length of the patch), the point-pair features ``[E, 4]`` of the edges (distance ``r``, and with the
    unit normals ``n`` (the covariance's least eigenvector, sign-free) and ``u = (x_j - x_i)/r``: ``|n_i·n_j|``,
    ``|n_i·u|``, ``|n_j·u|``; Drost et al.'s pair features made blind to the normals' signs) and their
    ``edge_index [2, E]`` (``E = B·n·k``, senders ``j`` first) over the rows of ``points.reshape(-1, 3)``.
    """
    b, n = points.shape[:2]
    edge_index = knn_edges(points, points, k, exclude_self=True)
    x = points.reshape(b * n, 3)
    neighbours = x[edge_index[0]].view(b * n, k, 3)
    centred = neighbours - neighbours.mean(-2, keepdim=True)
    values, vectors = torch.linalg.eigh(centred.mT @ centred / k)
    normal = vectors[..., 0]
    rel = x[edge_index[0]] - x[edge_index[1]]
    r = torch.linalg.vector_norm(rel, dim=-1)
    u = rel / r.clamp_min(torch.finfo(r.dtype).tiny)[:, None]
    n_i, n_j = normal[edge_index[1]], normal[edge_index[0]]
    pair = torch.stack([r, (n_i * n_j).sum(-1).abs(), (n_i * u).sum(-1).abs(), (n_j * u).sum(-1).abs()], -1)
    return values.clamp_min(0).sqrt().view(b, n, 3), pair, edge_index


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
        self.embedding = nn.Linear(3 + DISTANCE_BASIS, hidden)
        self.spread_basis = GaussianBasis(2.0, DISTANCE_BASIS)
        self.distance_basis = GaussianBasis(DISTANCE_RANGE, DISTANCE_BASIS)
        self.layers = nn.ModuleList(EGNNLayer(hidden, DISTANCE_BASIS + 3, velocity=False, update_positions=False)
                                    for _ in range(layers))
        self.query, self.key = nn.Linear(hidden, hidden, bias=False), nn.Linear(hidden, hidden, bias=False)
        self.proximity = MLP([time_dim, hidden, 1])  # β(t) before its softplus
        self.weight = MLP([hidden + 1 + time_dim, hidden, 1])

    def descriptors(self, points: Tensor) -> Tensor:
        """Invariant descriptors ``[B, n, hidden]`` of ``points [B, n, 3]`` (no gradient reaches the points)."""
        b, n = points.shape[:2]
        k = min(self.k, n - 1)
        node, edge_attr, edge_index = local_geometry(points.detach(), k)
        edge_attr = torch.cat([self.distance_basis(edge_attr[:, 0]), edge_attr[:, 1:]], -1)
        spread = self.spread_basis(torch.cdist(points.detach(), points.detach())).mean(-2)  # [B, n, basis]
        h = self.embedding(torch.cat([node, spread], -1)).reshape(b * n, -1)
        x = points.detach().reshape(b * n, 3)
        for layer in self.layers:
            h, _ = layer(h, x, edge_index, edge_attr)
        return h.view(b, n, -1)

    def matching(self, source: Tensor, target: Tensor, t: Tensor,
                 descriptors: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """The matching logits ``[B, n, m]`` of the source points over the target points, and the source's
        descriptors ``[B, n, hidden]`` (``descriptors``: both clouds', if already computed)."""
        h_source, h_target = descriptors or (self.descriptors(source), self.descriptors(target))
        similarity = self.query(h_source) @ self.key(h_target).mT / h_source.shape[-1] ** 0.5
        beta = F.softplus(self.proximity(self.time_embedding(t)))[:, :, None]  # [B, 1, 1]
        distance_sq = (source[:, :, None] - target[:, None]).square().sum(-1)  # [B, n, m]
        return similarity - beta * distance_sq, h_source

    def forward(self, source: Tensor, target: Tensor, t: Tensor | None = None,
                descriptors: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``descriptors``: :meth:`descriptors` of the source and the target, ``[B, n, hidden]`` and
        ``[B, m, hidden]``, when already known. They are invariant to moving either cloud rigidly, so a sampler
        that only moves the source computes them once."""
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
        if descriptors is not None:
            hidden = self.query.in_features
            shapes = [tuple(d.shape) for d in descriptors]
            if shapes != [(b, n, hidden), (b, m, hidden)]:
                raise ValueError(f"descriptors must be (source's [{b}, {n}, {hidden}], target's [{b}, {m}, {hidden}]), "
                                 f"got {shapes}")
        logits, h_source = self.matching(source, target, t, descriptors)
        attention = torch.softmax(logits, -1)
        time = self.time_embedding(t)[:, None].expand(b, n, -1)
        weight = self.weight(torch.cat([h_source, attention.amax(-1, keepdim=True), time], -1))
        return attention @ target - source, F.softplus(weight[..., 0])
