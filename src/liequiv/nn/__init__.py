"""Equivariant building blocks: MLPs, graph message passing."""

from liequiv.nn.graph import scatter_mean, scatter_sum
from liequiv.nn.mlp import MLP

__all__ = ["MLP", "scatter_mean", "scatter_sum"]
