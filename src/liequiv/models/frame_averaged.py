"""A plain GNN made E(3)-equivariant by frame averaging (Puny et al., 2022): the FA-GNN of the N-body table."""

from __future__ import annotations

from torch import Tensor, nn

from liequiv.models.baselines import GNN
from liequiv.models.inputs import check_dynamics_inputs
from liequiv.symmetry.frames import FrameAveraging


class FrameAveragedGNN(nn.Module):
    """``GNN`` averaged over the 8 PCA frames (O(3) signs) of each graph's input positions.

    The backbone sees canonical positions and velocities; its output positions are mapped back by each frame
    element and averaged, so the model is exactly E(3)- and permutation-equivariant. ``mode="canonicalize"``
    uses one frame (8× cheaper, exact where the frame is not degenerate).
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4, *, mode: str = "average") -> None:
        super().__init__()
        self.node_dim = node_dim
        self.averaged = FrameAveraging(GNN(node_dim, hidden, layers), "E(3)", "equivariant",
                                       in_types=["pos", "1o", "scalar", "scalar"], out_type="pos", mode=mode)

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]``, batch ``[N]`` -> ``[N, 3]``."""
        check_dynamics_inputs(self, pos, vel, node_features)
        return self.averaged(pos, vel, node_features, edge_index, batch=batch)
