"""Complete networks. Every dynamics model shares one interface:
``forward(pos [N, 3], vel [N, 3], node_features [N, F], edge_index [2, E], batch [N] | None) -> positions [N, 3]``;
trajectory models (EqMotion, UnrolledEGNN) take ``[N, history, 3]`` and return ``[N, horizon, 3]``; the
interatomic potential maps ``(numbers, pos, edge_index, batch)`` to energies and forces. The image classifiers
(AffineCNN on R² ⋊ GL+(2) / SL(2) / SO(2), and its PlainCNN baseline) map ``[B, C, H, W]`` to logits ``[B, classes]``.
"""

from liequiv.models.affine import AffineCNN, PlainCNN
from liequiv.models.baselines import GNN, LinearDynamics
from liequiv.models.edm_denoiser import EDMDenoiser
from liequiv.models.egnn import EGNN
from liequiv.models.egtn import EGTN
from liequiv.models.eqmotion import EqMotion
from liequiv.models.frame_averaged import FrameAveragedGNN
from liequiv.models.ponita import PONITA, PONITAR3
from liequiv.models.potential import TensorProductPotential
from liequiv.models.subequivariant import SubequivariantEGNN
from liequiv.models.unrolled import UnrolledEGNN
from liequiv.nn.egnn import EGNNLayer

__all__ = ["EGNN", "EGTN", "GNN", "PONITA", "PONITAR3", "AffineCNN", "EDMDenoiser", "EGNNLayer", "EqMotion",
           "FrameAveragedGNN", "LinearDynamics", "PlainCNN", "SubequivariantEGNN", "TensorProductPotential",
           "UnrolledEGNN"]
