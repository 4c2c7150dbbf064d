r"""Subequivariant EGNN: the E(n)-equivariant network of Satorras et al. given the direction of gravity ĝ, after Han
et al., "Learning Physical Dynamics with Subequivariant Graph Neural Networks" (NeurIPS 2022) and Chen et al.,
"Subequivariant Graph Reinforcement Learning in 3D Environments" (ICML 2023).

Han et al. stack, per edge, ``Z = [x_i − x_j, ĝ]``, feed the invariants ``ZᵀZ`` to the message MLP and move the
node by ``Z`` times learned coefficients. ``ZᵀZ`` holds ``|x_i − x_j|²``, ``(x_i − x_j)·ĝ`` and ``ĝ·ĝ = 1``, so
this is the EGNN update (:class:`~liequiv.nn.egnn.EGNNLayer`) with ``(x_i − x_j)·ĝ`` as one more edge attribute,
``v_i·ĝ`` as one more node invariant, and one more step, along ĝ::

    h_i = W [|v_i|, v_i·ĝ, f_i] + b
    a_ij = [f_i f_j, |x_i − x_j|² (input positions), (x_i − x_j)·ĝ (the layer's positions)]
    (h_i', x_i') = EGNNLayer(h, x, a, v)_i          steps along x_i − x_j and v_i
    x_i' ← x_i' + φ_g(h_i) ĝ                        the step along ĝ

Symmetry: jointly in ``(x, v, ĝ)`` the output is O(3)-equivariant, translation-equivariant in x (ĝ is a direction)
and permutation-equivariant. At a fixed ĝ that leaves the stabilizer of ĝ: rotations about ĝ and mirrors through
planes containing ĝ (O(2) about ĝ), with all translations. A rotation that moves ĝ changes ``(x_i − x_j)·ĝ``,
``v_i·ĝ`` and the direction of the last step, so the model is not O(3)-equivariant on its own: it can learn a fall.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_dynamics_inputs, check_input_dtypes
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import check_edge_index
from liequiv.nn.mlp import MLP

UNIT_TOLERANCE = 1e-5  # how far |ĝ| may be from 1 (float32 normalization is good to about 1e-7)


def _check_unit(gravity: Tensor) -> None:
    if not torch.isfinite(gravity).all():
        raise ValueError("gravity must be finite, got a NaN or infinite entry")
    norm = torch.linalg.vector_norm(gravity, dim=-1)
    if (norm == 0).any():
        raise ValueError("gravity is the zero vector; give the unit direction of gravity")
    if ((norm - 1).abs() > UNIT_TOLERANCE).any():
        raise ValueError(f"gravity must be a unit vector (the direction; its strength is learned), got norms "
                         f"{norm.tolist()}: pass gravity / |gravity|")


def gravity_per_node(gravity: Tensor, batch: Tensor | None, num_nodes: int) -> Tensor:
    """The unit gravity direction of every node, ``[N, 3]``, from ``gravity [3]`` (one for all graphs) or ``[B, 3]``
    (one per graph, read through ``batch [N]``; ``batch`` may be omitted when B = 1).

    ValueError for a wrong shape, a non-finite, zero or non-unit vector, or a ``batch`` that does not fit.
    """
    if not isinstance(gravity, Tensor) or not gravity.is_floating_point():
        raise TypeError(f"gravity must be a floating tensor [3] or [B, 3], got {type(gravity).__name__}")
    if gravity.dim() not in (1, 2) or gravity.shape[-1] != 3:
        raise ValueError(f"gravity must have shape [3] or [B, 3] (B graphs), got {list(gravity.shape)}")
    if not torch.compiler.is_compiling():  # value checks read the tensor; torch.compile skips them
        _check_unit(gravity)
    if gravity.dim() == 1:
        return gravity.expand(num_nodes, 3)
    if batch is None:
        if gravity.shape[0] != 1:
            raise ValueError(f"gravity [B, 3] with B = {gravity.shape[0]} needs batch [N] to assign nodes to graphs")
        return gravity.expand(num_nodes, 3)
    if not isinstance(batch, Tensor) or batch.dtype not in (torch.int64, torch.int32) or batch.shape != (num_nodes,):
        raise ValueError(f"batch must be an integer tensor of shape [{num_nodes}], got "
                         f"{getattr(batch, 'dtype', type(batch).__name__)} {list(getattr(batch, 'shape', []))}")
    checked = num_nodes and not torch.compiler.is_compiling()
    if checked and (int(batch.min()) < 0 or int(batch.max()) >= gravity.shape[0]):
        raise ValueError(f"batch entries must lie in [0, {gravity.shape[0]}) for gravity [{gravity.shape[0]}, 3], "
                         f"got [{int(batch.min())}, {int(batch.max())}]")
    return gravity[batch]


class SubequivariantEGNN(nn.Module):
    """EGNN for dynamics under gravity: predicts positions ``[N, 3]`` from positions, velocities, node scalars and
    the unit gravity direction; equivariant to O(2) about ĝ, translations and permutations (module docstring).

    The interface of :class:`~liequiv.models.EGNN` plus the keyword ``gravity`` (``[3]`` or per graph ``[B, 3]``).

    >>> model = SubequivariantEGNN(node_dim=1, hidden=8, layers=2)
    >>> pos, vel, q = torch.randn(4, 3), torch.randn(4, 3), torch.ones(4, 1)
    >>> edges = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    >>> model(pos, vel, q, edges, gravity=torch.tensor([0.0, 0.0, -1.0])).shape
    torch.Size([4, 3])
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4, *, velocity: bool = True,
                 tanh: bool = False) -> None:
        super().__init__()
        if layers < 1 or hidden < 1 or node_dim < 0:
            raise ValueError(f"need layers >= 1, hidden >= 1, node_dim >= 0; got {layers}, {hidden}, {node_dim}")
        self.node_dim = node_dim
        self.embedding = nn.Linear(2 + node_dim, hidden)
        edge_dim = node_dim + 2  # f_i f_j, input |x_i − x_j|², the layer's (x_i − x_j)·ĝ
        self.layers = nn.ModuleList(
            EGNNLayer(hidden, edge_dim, velocity=velocity, tanh=tanh, update_features=i < layers - 1)
            for i in range(layers)  # the last layer's features would be unused
        )
        self.gravity_mlps = nn.ModuleList(MLP([hidden, hidden, 1]) for _ in range(layers))

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None, *, gravity: Tensor) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]``, batch ``[N]`` (needed for a
        per-graph gravity), gravity ``[3]`` or ``[B, 3]`` (unit vectors) -> positions ``[N, 3]``."""
        check_dynamics_inputs(self, pos, vel, node_features)
        check_input_dtypes(self, gravity=gravity)
        n = pos.shape[0]
        src, dst = check_edge_index(edge_index, n)
        down = gravity_per_node(gravity, batch, n)
        speed = torch.linalg.vector_norm(vel, dim=-1, keepdim=True)
        h = self.embedding(torch.cat([speed, (vel * down).sum(-1, keepdim=True), node_features], -1))
        rel = pos[dst] - pos[src]
        edge_attr = torch.cat([node_features[src] * node_features[dst], (rel * rel).sum(-1, keepdim=True)], -1)
        x = pos
        for layer, gravity_mlp in zip(self.layers, self.gravity_mlps):
            along = ((x[dst] - x[src]) * down[dst]).sum(-1, keepdim=True)
            h_next, x = layer(h, x, edge_index, torch.cat([edge_attr, along], -1), vel)
            x = x + gravity_mlp(h) * down
            h = h_next
        return x
