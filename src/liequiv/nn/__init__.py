"""Equivariant building blocks: MLPs, graph message passing."""

from liequiv.nn.graph import check_edge_index, fully_connected_edges, scatter_mean, scatter_sum
from liequiv.nn.mlp import MLP

__all__ = ["MLP", "check_edge_index", "fully_connected_edges", "scatter_mean", "scatter_sum"]
