"""Random batches of particle systems in the uniform dynamics-model interface, shared by the model tests."""

from __future__ import annotations

import torch
from torch import Tensor

from liequiv.nn.graph import fully_connected_edges

DT = torch.float64

# The types of (pos, vel, charges, edge_index, batch) and of the output, for check_equivariance.
NODE_TYPES = ["pos, perm(0)", "1o, perm(0)", "scalar, perm(0)", "index", "scalar, perm(0)"]
OUT_TYPE = "pos, perm(0)"


def random_systems(n_graphs: int = 3, n: int = 5, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(pos, vel, charges ±1, edge_index fully connected within each system, batch), float64."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n * n_graphs, 3, generator=g, dtype=DT)
    vel = torch.randn(n * n_graphs, 3, generator=g, dtype=DT)
    charges = torch.randint(0, 2, (n * n_graphs, 1), generator=g).to(DT) * 2 - 1
    return pos, vel, charges, fully_connected_edges(n, n_graphs), torch.arange(n_graphs).repeat_interleave(n)
