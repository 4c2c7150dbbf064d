"""Invariant regressors of one property per molecule (QM9): EGNN's and PONITA's property networks.

Both share one interface, ``forward(node_features [N, F], pos [N, 3], edge_index [2, E], batch [N], num_graphs)
-> [B]``: invariant node features, message passing, a per-atom readout, then a sum over each molecule's atoms. The
node features of EGNN's QM9 experiments are :func:`atom_type_features`. The outputs are invariant under E(3) and
under permutations of each molecule's atoms. (The tensor-product potential,
:class:`~liequiv.models.TensorProductPotential`, is the third such regressor: its energy is a sum of invariant atomic
readouts.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from liequiv.models.ponita import ConvNextBlock, KernelBasis, _check_hyperparameters, _prepare_graph
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import check_edge_index, scatter_sum
from liequiv.nn.mlp import MLP
from liequiv.nn.position_orientation_conv import SeparableSphereConv, position_orientation_invariants
from liequiv.o3.s2grid import fibonacci_sphere

QM9_ELEMENTS = (1, 6, 7, 8, 9)


def atom_type_features(numbers: Tensor, elements: Sequence[int] = QM9_ELEMENTS, charge_power: int = 2) -> Tensor:
    """EGNN's QM9 node features: ``numbers [N]`` -> ``[N, len(elements) · (charge_power + 1)]``, the one-hot element
    times ``(Z / Z_max)^p`` for ``p = 0..charge_power`` (``Z_max = max(elements)``; Cormorant's "charges" are the
    atomic numbers). ValueError for an element not in ``elements``."""
    table = torch.tensor(list(elements), device=numbers.device)
    hits = numbers[:, None] == table
    if not bool(hits.any(-1).all()):
        unknown = sorted(set(numbers[~hits.any(-1)].tolist()))
        raise ValueError(f"unknown element(s) {unknown}; the features know {list(elements)}")
    powers = (numbers[:, None].double() / max(elements)) ** torch.arange(charge_power + 1, device=numbers.device)
    return (hits[:, :, None] * powers[:, None, :]).reshape(len(numbers), -1).to(torch.get_default_dtype())


def _num_graphs(batch: Tensor, num_graphs: int | None) -> int:
    return (int(batch.max()) + 1 if batch.numel() else 0) if num_graphs is None else num_graphs


class PropertyEGNN(nn.Module):
    """EGNN's QM9 network (Satorras et al. 2021): an embedding, ``layers`` EGNN layers that keep the positions and
    gate their messages (:class:`~liequiv.nn.EGNNLayer` with ``update_positions=False, attention=True``: messages
    see ``|x_i - x_j|²``), a node MLP, the sum over each molecule's atoms, a graph MLP -> ``[B]``.
    The paper: 7 layers, 128 features.

    >>> model = PropertyEGNN(node_dim=15, hidden=8, layers=2)
    >>> model(torch.randn(3, 15), torch.randn(3, 3), torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 0, 1])).shape
    torch.Size([2])
    """

    def __init__(self, node_dim: int, hidden: int = 128, layers: int = 7, *, attention: bool = True) -> None:
        super().__init__()
        if node_dim < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"need node_dim, hidden, layers >= 1; got {node_dim}, {hidden}, {layers}")
        self.node_dim = node_dim
        self.embedding = nn.Linear(node_dim, hidden)
        self.layers = nn.ModuleList(EGNNLayer(hidden, velocity=False, update_positions=False, attention=attention)
                                    for _ in range(layers))
        self.node_decoder = MLP([hidden, hidden, hidden])
        self.graph_decoder = MLP([hidden, hidden, 1])

    def forward(self, node_features: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor,
                num_graphs: int | None = None) -> Tensor:
        """node_features ``[N, node_dim]``, pos ``[N, 3]``, edge_index ``[2, E]``, batch ``[N]`` -> ``[B]``."""
        check_edge_index(edge_index, pos.shape[0])
        h = self.embedding(node_features)
        for layer in self.layers:
            h, _ = layer(h, pos, edge_index)
        pooled = scatter_sum(self.node_decoder(h), batch, _num_graphs(batch, num_graphs))
        return self.graph_decoder(pooled)[:, 0]


class PropertyPONITA(nn.Module):
    """PONITA (Bekkers et al. 2024) for one invariant per molecule: the node features lifted to every orientation of
    the grid, ``layers`` ConvNeXt blocks of separable position-orientation convolutions (as
    :class:`~liequiv.models.PONITA`), a linear readout averaged over the orientations, summed over each molecule.
    Rotation invariance holds up to the grid's quadrature error; translations and permutations exactly.
    """

    def __init__(self, node_dim: int, hidden: int = 64, layers: int = 4, *, num_ori: int = 16,
                 basis_dim: int | None = None, degree: int = 3, widening_factor: int = 4,
                 layer_scale: float | None = None, self_loops: bool = True) -> None:
        super().__init__()
        basis_dim = hidden if basis_dim is None else basis_dim
        _check_hyperparameters(node_dim, hidden, layers, basis_dim, degree, widening_factor)
        if not isinstance(num_ori, int) or num_ori < 1:
            raise ValueError(f"num_ori must be an integer >= 1, got {num_ori!r}")
        self.node_dim, self.self_loops = node_dim, self_loops
        self.register_buffer("orientations", fibonacci_sphere(num_ori).to(torch.get_default_dtype()))  # [O, 3]
        self.spatial_basis = KernelBasis(2, hidden, basis_dim, degree)
        self.sphere_basis = KernelBasis(1, hidden, basis_dim, degree)
        self.embedding = nn.Linear(node_dim, hidden)
        self.blocks = nn.ModuleList(
            ConvNextBlock(hidden, SeparableSphereConv(hidden, basis_dim), widening_factor, layer_scale)
            for _ in range(layers)
        )
        self.readout = nn.Linear(hidden, 1)

    def forward(self, node_features: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor,
                num_graphs: int | None = None) -> Tensor:
        """node_features ``[N, node_dim]``, pos ``[N, 3]``, edge_index ``[2, E]``, batch ``[N]`` -> ``[B]``."""
        n, ori = pos.shape[0], self.orientations
        edge_index = _prepare_graph(edge_index, n, self.self_loops)
        src, dst = edge_index
        spatial_basis = self.spatial_basis(position_orientation_invariants(pos[src] - pos[dst], ori))
        sphere_basis = self.sphere_basis((ori @ ori.T)[..., None])
        x = self.embedding(node_features)[:, None, :].expand(-1, ori.shape[0], -1)  # [N, O, hidden]
        for block in self.blocks:
            x = block(x, edge_index, spatial_basis, sphere_basis)
        return scatter_sum(self.readout(x).mean((1, 2)), batch, _num_graphs(batch, num_graphs))
