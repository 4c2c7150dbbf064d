r"""The separable group convolution on position-orientation space R³ × S² of Bekkers et al., "Fast, Expressive
SE(n) Equivariant Networks through Weight-Sharing in Position-Orientation Space" (PONITA, ICLR 2024).

Features live on the nodes times a grid of ``O`` orientations ``o``. For a message from node j to node i with
``Δ = x_j − x_i`` (sender minus receiver, as in the paper), the kernels see only the invariants of the pair
``(x_i, o), (x_j, o)`` and of two orientations::

    a_ij(o) = [o·Δ, |Δ − (o·Δ) o|]                          position_orientation_invariants, [E, O, 2]
    y_i(o') = 1/O Σ_o k_S²(o, o') ⊙ Σ_j k_R³(i, j, o) ⊙ x_j(o) + b

a depthwise convolution, first over space and then over the sphere, with kernels linear in given bases,
``k_R³(i, j, o) = W_R³ β_ij(o)`` and ``k_S²(o, o') = W_S² γ(o, o')``, where β is a basis of functions of
``a_ij(o)`` and γ of ``o·o'`` (computed once per forward and shared by every layer of a model).

Shapes: ``x [N, O, C]``, ``edge_index [2, E]``, ``spatial_basis β [E, O, B]``, ``sphere_basis γ [O, O, B]``
-> ``[N, O, C]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.nn.graph import scatter_sum


def safe_norm(x: Tensor, keepdim: bool = False) -> Tensor:
    """Euclidean norm over the last axis ``[...]``, with a zero (not NaN) gradient at the origin."""
    squared = (x * x).sum(-1, keepdim=keepdim)
    return squared.clamp_min(torch.finfo(x.dtype).tiny).sqrt()


def position_orientation_invariants(rel: Tensor, orientations: Tensor) -> Tensor:
    """Invariants of ``(x_i, o)`` and ``x_j``: ``rel = x_j − x_i [E, 3]``, ``orientations [O, 3]`` -> ``[E, O, 2]``.

    The two attributes are ``o·Δ`` (along the orientation) and ``|Δ − (o·Δ) o|`` (orthogonal to it).
    """
    along = rel @ orientations.T
    orthogonal = rel[:, None, :] - along[..., None] * orientations
    return torch.stack([along, safe_norm(orthogonal)], -1)


class SeparableSphereConv(nn.Module):
    """Depthwise convolution on R³ × S², separable into a spatial and a spherical kernel (module docstring).

    ``hidden``: the channels C; ``basis_dim``: the size B of both bases.

    >>> conv = SeparableSphereConv(hidden=4, basis_dim=3)
    >>> edge_index = torch.tensor([[0, 1], [1, 0]])
    >>> conv(torch.randn(2, 6, 4), edge_index, torch.randn(2, 6, 3), torch.randn(6, 6, 3)).shape
    torch.Size([2, 6, 4])
    """

    def __init__(self, hidden: int, basis_dim: int) -> None:
        super().__init__()
        self.spatial_kernel = nn.Linear(basis_dim, hidden, bias=False)
        self.sphere_kernel = nn.Linear(basis_dim, hidden, bias=False)
        self.bias = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: Tensor, edge_index: Tensor, spatial_basis: Tensor, sphere_basis: Tensor) -> Tensor:
        src, dst = edge_index
        spatial = scatter_sum(x[src] * self.spatial_kernel(spatial_basis), dst, x.shape[0])
        kernel = self.sphere_kernel(sphere_basis)  # [O (from), O (to), C], computed once per call
        return torch.einsum("noc,opc->npc", spatial, kernel) / kernel.shape[0] + self.bias
