r"""The depthwise point convolution on R³ of PONITA's point-cloud variant (Bekkers et al., "Fast, Expressive SE(n)
Equivariant Networks through Weight-Sharing in Position-Orientation Space", ICLR 2024).

For a message from node j to node i, with a kernel linear in a given basis ``β_ij`` of invariant pair
attributes (distances, dot products)::

    y_i = Σ_j (W β_ij) ⊙ x_j + b

Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``basis β [E, B]`` -> ``[N, C]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.nn.graph import scatter_sum


class PointConv(nn.Module):
    """Depthwise convolution on R³ with a kernel on invariant pair attributes (module docstring).

    ``hidden``: the channels C; ``basis_dim``: the size B of the basis.

    >>> conv = PointConv(hidden=4, basis_dim=3)
    >>> conv(torch.randn(2, 4), torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(self, hidden: int, basis_dim: int) -> None:
        super().__init__()
        self.kernel = nn.Linear(basis_dim, hidden, bias=False)
        self.bias = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: Tensor, edge_index: Tensor, basis: Tensor) -> Tensor:
        src, dst = edge_index
        return scatter_sum(x[src] * self.kernel(basis), dst, x.shape[0]) + self.bias
