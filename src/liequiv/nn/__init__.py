"""Layers, one a file (PyTorch Geometric style): MLPs and graph helpers, radial bases, the tensor-product
interaction block and the many-body product blocks, the EGNN layer, EqMotion's blocks, PONITA's convolutions on
position-orientation space and on R³, GeoTDM's attention over time, sinusoidal embeddings, lifting and group
convolutions on the affine groups R² ⋊ GL+(2), R² ⋊ SL(2) (and R² ⋊ SO(2)) with Monte Carlo sums over the group."""

from liequiv.nn.affine_conv import AffineGroupConv, AffineLifting, GroupSampler, invariant_max_pool, sample_group
from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.eqmotion import EqMotionLayer, InteractionReasoning
from liequiv.nn.graph import check_edge_index, fully_connected_edges, scatter_mean, scatter_sum
from liequiv.nn.interaction import Interaction, gate_for, natural_irreps
from liequiv.nn.many_body import GauntContraction, SymmetricContraction, symmetric_coupling_basis
from liequiv.nn.mlp import MLP
from liequiv.nn.point_conv import PointConv
from liequiv.nn.position_orientation_conv import SeparableSphereConv, position_orientation_invariants
from liequiv.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff
from liequiv.nn.sinusoidal import SinusoidalEmbedding
from liequiv.nn.temporal_attention import TemporalAttention

__all__ = [
    "MLP",
    "AffineGroupConv",
    "AffineLifting",
    "BesselBasis",
    "EGNNLayer",
    "EqMotionLayer",
    "GauntContraction",
    "GaussianBasis",
    "GroupSampler",
    "Interaction",
    "InteractionReasoning",
    "PointConv",
    "PolynomialCutoff",
    "SeparableSphereConv",
    "SinusoidalEmbedding",
    "SymmetricContraction",
    "TemporalAttention",
    "check_edge_index",
    "fully_connected_edges",
    "gate_for",
    "invariant_max_pool",
    "natural_irreps",
    "position_orientation_invariants",
    "sample_group",
    "scatter_mean",
    "scatter_sum",
    "symmetric_coupling_basis",
]
