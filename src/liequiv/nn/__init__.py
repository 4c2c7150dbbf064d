"""Layers, one a file (PyTorch Geometric style): MLPs and graph helpers, radial bases, the tensor-product
interaction block and the many-body product blocks."""

from liequiv.nn.graph import check_edge_index, fully_connected_edges, scatter_mean, scatter_sum
from liequiv.nn.interaction import Interaction, gate_for, natural_irreps
from liequiv.nn.many_body import GauntContraction, SymmetricContraction, symmetric_coupling_basis
from liequiv.nn.mlp import MLP
from liequiv.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff

__all__ = [
    "MLP",
    "BesselBasis",
    "GauntContraction",
    "GaussianBasis",
    "Interaction",
    "PolynomialCutoff",
    "SymmetricContraction",
    "check_edge_index",
    "fully_connected_edges",
    "gate_for",
    "natural_irreps",
    "scatter_mean",
    "scatter_sum",
    "symmetric_coupling_basis",
]
