r"""The blocks of EqMotion (Xu et al., "EqMotion: Equivariant Multi-agent Motion Prediction with Invariant
Interaction Reasoning", CVPR 2023): invariant interaction reasoning and the feature-learning layer.

Each agent i carries *geometric features* ``G_i [C, 3]`` (C channels of 3D vectors, E(3)-equivariant: rotated
and reflected with the scene, translation-invariant because they are built relative to its centre), velocity
channels ``V_i [C, 3]`` (O(3)-equivariant) and *pattern features* ``h_i [hidden]`` (invariant). For an edge from
j to i (``edge_index = [[j, ...], [i, ...]]``), ``d_ij = G_i − G_j`` (receiver minus sender, as the paper) and
``r_ij = (|d_ij^1|, ..., |d_ij^C|)`` its channel norms.

:class:`InteractionReasoning` infers K edge types, once per forward pass, from invariants only::

    ρ_ij = φ_r(|X_i^c − X_j^c| for the 2C channels c of X = [G, V])
    e_ij = φ_e(h_i, h_j, ρ_ij)          h̃_i = φ_n(h_i, Σ_j e_ij)
    w_ij = softmax(φ_c(h̃_i, h̃_j, ρ_ij) / τ)          (K weights per edge, summing to 1)

:class:`EqMotionLayer` updates both kinds of features with those weights::

    s_ij = (h_i, h_j, r_ij)
    f_ij = φ_f(Σ_k w_ij,k φ_k(s_ij))                                   (C channel weights per edge)
    G_i ← G_i + φ_a(h_i) ⊙ (G_i − Ḡ) + Σ_j f_ij ⊙ d_ij + W_v V_i      (attention, interaction, velocity)
    G_i ← Ḡ + σ(W_q (G_i − Ḡ), W_k (G_i − Ḡ))                          (equivariant non-linearity)
    h_i ← h_i + φ_h(h_i, Σ_j φ_m(s_ij))

``Ḡ [C, 3]`` is the mean over the agents of i's graph, per channel (taken anew before the non-linearity; a choice:
the reference code averages over the channels as well);
``⊙`` scales each channel by one number; ``W_v, W_q, W_k [C, C]`` mix channels without bias. The non-linearity
acts per channel on ``q = W_q G, k = W_k G``: ``σ(q, k) = q`` where ``q·k ≥ 0``, else ``q − (q·k) k / (|k|² + ε)``
(q with its component along k removed; continuous across ``q·k = 0``). All φ are SiLU MLPs. Only norms and dot
products of vectors enter the φ, and vectors are only combined linearly with invariant coefficients, so G' is
E(3)-equivariant and h', w invariant; both are permutation-equivariant.

Shapes: ``h [N, hidden]``, ``G, V [N, C, 3]``, ``edge_index [2, E]``, ``weights [E, K]``, ``batch [N]`` (optional:
one graph) -> ``(h' [N, hidden], G' [N, C, 3])``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.nn.graph import scatter_mean, scatter_sum
from liequiv.nn.mlp import MLP


def channel_norms(vectors: Tensor) -> Tensor:
    """``|v|`` of ``[..., C, 3]`` -> ``[..., C]``, with a finite gradient at ``v = 0``."""
    return (vectors * vectors).sum(-1).clamp_min(1e-24).sqrt()


def mix_channels(linear: nn.Linear, vectors: Tensor) -> Tensor:
    """Channel mixing ``[..., C_in, 3] -> [..., C_out, 3]`` by a bias-free ``linear`` (equivariant)."""
    return linear(vectors.transpose(-1, -2)).transpose(-1, -2)


def graph_channel_mean(vectors: Tensor, batch: Tensor | None) -> Tensor:
    """Per-channel mean over the nodes of each node's graph, ``[N, C, 3] -> [N, C, 3]``."""
    if batch is None:
        return vectors.mean(0, keepdim=True).expand_as(vectors)
    return scatter_mean(vectors, batch, vectors.shape[0])[batch]


class InteractionReasoning(nn.Module):
    """Invariant interaction reasoning: K edge-type weights ``[E, K]`` per edge (see the module docstring)."""

    def __init__(self, hidden: int, channels: int, edge_types: int = 2, temperature: float = 1.0) -> None:
        super().__init__()
        if edge_types < 1 or temperature <= 0:
            raise ValueError(f"need edge_types >= 1 and temperature > 0, got {edge_types}, {temperature}")
        self.temperature = temperature
        self.distance_mlp = MLP([2 * channels, hidden, hidden], last_activation=True)
        self.edge_mlp = MLP([3 * hidden, hidden, hidden], last_activation=True)
        self.node_mlp = MLP([2 * hidden, hidden, hidden], last_activation=True)
        self.type_mlp = MLP([3 * hidden, hidden, edge_types])

    def forward(self, h: Tensor, geometric: Tensor, velocity: Tensor, edge_index: Tensor) -> Tensor:
        src, dst = edge_index
        channels = torch.cat([geometric, velocity], -2)
        rho = self.distance_mlp(channel_norms(channels[dst] - channels[src]))
        edge = self.edge_mlp(torch.cat([h[dst], h[src], rho], -1))
        h = self.node_mlp(torch.cat([h, scatter_sum(edge, dst, h.shape[0])], -1))
        logits = self.type_mlp(torch.cat([h[dst], h[src], rho], -1))
        return torch.softmax(logits / self.temperature, -1)


class EqMotionLayer(nn.Module):
    """One EqMotion feature-learning layer (see the module docstring for the update and the shapes).

    >>> layer = EqMotionLayer(hidden=8, channels=4, edge_types=2)
    >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    >>> h, g = layer(torch.randn(3, 8), torch.randn(3, 4, 3), torch.randn(3, 4, 3), edge_index,
    ...              torch.full((3, 2), 0.5))
    >>> h.shape, g.shape
    (torch.Size([3, 8]), torch.Size([3, 4, 3]))
    """

    def __init__(self, hidden: int, channels: int, edge_types: int = 2, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        edge_in = 2 * hidden + channels
        self.message_mlp = MLP([edge_in, hidden, hidden], last_activation=True)
        self.type_mlps = nn.ModuleList(MLP([edge_in, hidden, channels], last_activation=True)
                                       for _ in range(edge_types))
        self.factor_mlp = MLP([channels, channels, channels])
        nn.init.xavier_uniform_(self.factor_mlp[-1].weight, gain=0.001)  # interactions start small
        self.attention_mlp = MLP([hidden, channels], last_activation=True)
        self.velocity = nn.Linear(channels, channels, bias=False)
        self.query = nn.Linear(channels, channels, bias=False)
        self.key = nn.Linear(channels, channels, bias=False)
        self.node_mlp = MLP([2 * hidden, hidden, hidden])

    def forward(self, h: Tensor, geometric: Tensor, velocity: Tensor, edge_index: Tensor, weights: Tensor,
                batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        src, dst = edge_index
        n = h.shape[0]
        diff = geometric[dst] - geometric[src]  # [E, C, 3]
        pair = torch.cat([h[dst], h[src], channel_norms(diff)], -1)
        typed = sum(weights[:, k, None] * mlp(pair) for k, mlp in enumerate(self.type_mlps))
        factors = self.factor_mlp(typed)  # [E, C]
        centred = geometric - graph_channel_mean(geometric, batch)
        geometric = (geometric + self.attention_mlp(h)[..., None] * centred
                     + scatter_sum(factors[..., None] * diff, dst, n) + mix_channels(self.velocity, velocity))
        geometric = self.nonlinearity(geometric, batch)
        h = h + self.node_mlp(torch.cat([h, scatter_sum(self.message_mlp(pair), dst, n)], -1))
        return h, geometric

    def nonlinearity(self, geometric: Tensor, batch: Tensor | None) -> Tensor:
        """``Ḡ + σ(W_q (G − Ḡ), W_k (G − Ḡ))`` per channel, ``[N, C, 3] -> [N, C, 3]``."""
        mean = graph_channel_mean(geometric, batch)
        q, k = mix_channels(self.query, geometric - mean), mix_channels(self.key, geometric - mean)
        dot = (q * k).sum(-1, keepdim=True)
        removed = q - dot / ((k * k).sum(-1, keepdim=True) + self.eps) * k
        return mean + torch.where(dot >= 0, q, removed)
