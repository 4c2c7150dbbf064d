r"""Equivariant attention over time: the temporal layer of GeoTDM's trajectory network (Han et al., "Geometric
Trajectory Diffusion Models", NeurIPS 2024), written for one node's trajectory of frames.

For every node, frames f and g of its trajectory (all pairs), and each head k::

    a^k_fg = softmax_g( q^k(h_f) · k^k(h_g) / √d + w_k |x_f − x_g|² + b_k )
    h_f'   = h_f + W_o concat_k( Σ_g a^k_fg v^k(h_g) )
    x_f'   = x_f + Σ_k φ^k_x(h_f) Σ_g a^k_fg (x_g − x_f)

q, k, v, W_o are linear maps, w_k and b_k learned scalars (a bias linear in the squared distance between the
two frames' positions: an MLP there would run on every pair of frames of every node), φ_x a SiLU MLP without a
last bias (started near zero, so the layer starts near the identity on positions). Attention weights depend
only on invariants, and positions move along differences ``x_g − x_f``: x' is E(3)-equivariant,
h' invariant. Nodes are independent here (no message between them), so the layer commutes with permutations.

Shapes: ``h [N, F, hidden]``, ``x [N, F, 3]`` -> ``(h' [N, F, hidden], x' [N, F, 3])``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.nn.mlp import MLP


class TemporalAttention(nn.Module):
    """Multi-head E(3)-equivariant attention over the frames of each node (see the module docstring).

    >>> layer = TemporalAttention(hidden=16, heads=4)
    >>> h, x = layer(torch.randn(5, 7, 16), torch.randn(5, 7, 3))
    >>> h.shape, x.shape
    (torch.Size([5, 7, 16]), torch.Size([5, 7, 3]))
    """

    def __init__(self, hidden: int, heads: int = 4) -> None:
        super().__init__()
        if hidden < 1 or heads < 1 or hidden % heads:
            raise ValueError(f"need hidden >= 1 divisible by heads >= 1, got hidden={hidden}, heads={heads}")
        self.heads, self.head_dim = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.distance_bias = nn.Linear(1, heads)
        self.coord_weights = MLP([hidden, hidden, heads], last_bias=False)
        nn.init.xavier_uniform_(self.coord_weights[-1].weight, gain=0.001)

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        n, frames, hidden = h.shape
        q, k, v = self.qkv(h).view(n, frames, 3, self.heads, self.head_dim).unbind(2)  # [N, F, heads, d]
        rel = x[:, None, :, :] - x[:, :, None, :]  # [N, F(f), F(g), 3]: x_g - x_f
        bias = self.distance_bias(rel.square().sum(-1, keepdim=True))  # [N, F, F, heads]
        logits = torch.einsum("nfkd,ngkd->nfgk", q, k) / self.head_dim**0.5 + bias
        weights = logits.softmax(dim=2)  # over g
        mixed = torch.einsum("nfgk,ngkd->nfkd", weights, v).reshape(n, frames, hidden)
        step = torch.einsum("nfgk,nfgc->nfkc", weights, rel)  # [N, F, heads, 3]
        x = x + torch.einsum("nfk,nfkc->nfc", self.coord_weights(h), step)
        return h + self.out(mixed), x
