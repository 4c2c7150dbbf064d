"""The denoising network of Hoogeboom et al.'s E(3) equivariant diffusion model for molecules (EDM, ICML 2022): an
EGNN on the complete graph of each molecule that maps noisy positions and atom features to a prediction for both.

The atoms of a batch of molecules are laid out flat: ``positions [A, 3]``, ``features [A, F]`` (the continuous atom
types of :mod:`liequiv.generative.molecules`), ``batch [A]`` the molecule of each atom (any order), one time
``t [M]`` per molecule and optionally one scalar ``condition [M]`` per molecule (a property to guide generation).
Every atom is joined to every other atom of its molecule. The invariant input of atom ``i`` of molecule ``m`` is
``[features_i, sinusoidal(t_m), condition_m]``, embedded linearly; the input squared distances are an edge attribute
of every :class:`~liequiv.nn.egnn.EGNNLayer` (EDM's ``edge_attr``). After the layers, with final positions ``x_L``
and features ``h_L``:

    position output = x_L − positions, minus its mean over the molecule      [A, 3]
    feature output  = Linear(h_L)                                              [A, F]

The position output is E(3)-equivariant with no translation part (it rotates and reflects with the input, ignores
translations, and has zero centre of mass per molecule); the feature output is E(3)-invariant; both are
permutation-equivariant over the atoms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.nn.egnn import EGNNLayer
from liequiv.nn.graph import scatter_mean
from liequiv.nn.sinusoidal import SinusoidalEmbedding
from liequiv.validation import check_positive_int, check_tensor

__all__ = ["EDMDenoiser", "molecule_edges"]


def molecule_edges(batch: Tensor) -> Tensor:
    """``edge_index [2, E]`` of all ordered pairs of distinct atoms of the same molecule (``batch [A]``)."""
    same = batch[:, None] == batch[None, :]
    same.fill_diagonal_(False)
    src, dst = same.nonzero(as_tuple=True)
    return torch.stack([src, dst])


class EDMDenoiser(nn.Module):
    """EGNN denoiser of molecules (see the module docstring for the inputs and outputs).

    ``feature_dim``: ``F``, the atom features (5 one-hot elements of H, C, N, O, F, plus 1 with the charge);
    ``hidden``, ``layers``: width and depth of the EGNN; ``time_dim``: size of the sinusoidal time embedding;
    ``condition``: whether a scalar property per molecule is an input.

    >>> model = EDMDenoiser(feature_dim=5, hidden=16, layers=2)
    >>> pos, h = model(torch.randn(4, 3), torch.randn(4, 5), torch.rand(2), torch.tensor([0, 0, 1, 1]))
    >>> pos.shape, h.shape
    (torch.Size([4, 3]), torch.Size([4, 5]))
    """

    def __init__(self, feature_dim: int = 5, hidden: int = 128, layers: int = 6, *, time_dim: int = 16,
                 condition: bool = False, coords_range: float = 15.0) -> None:
        super().__init__()
        self.feature_dim = check_positive_int(feature_dim, "feature_dim")
        check_positive_int(hidden, "hidden")
        check_positive_int(layers, "layers")
        if not isinstance(condition, bool):
            raise TypeError(f"condition must be a bool, got {type(condition).__name__}")
        self.conditional = condition
        self.time_embedding = SinusoidalEmbedding(time_dim, max_frequency=100.0)
        self.embedding = nn.Linear(feature_dim + time_dim + int(condition), hidden)
        self.layers = nn.ModuleList(EGNNLayer(hidden, edge_dim=1, velocity=False, tanh=True, coords_range=coords_range,
                                              attention=True) for _ in range(layers))
        self.feature_out = nn.Linear(hidden, feature_dim)

    def forward(self, positions: Tensor, features: Tensor, t: Tensor, batch: Tensor,
                condition: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``positions [A, 3]``, ``features [A, F]``, ``t [M]``, ``batch [A]``, ``condition [M]`` ->
        ``(position output [A, 3], feature output [A, F])``."""
        check_tensor(positions, "positions", (3,))
        check_tensor(features, "features", (self.feature_dim,))
        check_tensor(t, "t", ())
        num_atoms, num_molecules = positions.shape[0], t.shape[0] if t.dim() else 0
        if positions.dim() != 2 or features.shape != (num_atoms, self.feature_dim) or t.dim() != 1:
            raise ValueError(f"need positions [A, 3], features [A, {self.feature_dim}] and t [M]; got "
                             f"{list(positions.shape)}, {list(features.shape)}, {list(t.shape)}")
        if not isinstance(batch, Tensor) or batch.dtype != torch.int64 or batch.shape != (num_atoms,):
            raise ValueError(f"batch must be an int64 tensor [A] = [{num_atoms}], got "
                             f"{getattr(batch, 'dtype', type(batch).__name__)} {list(getattr(batch, 'shape', []))}")
        if num_atoms and (int(batch.min()) < 0 or int(batch.max()) >= num_molecules):
            raise ValueError(f"batch entries must lie in [0, M) = [0, {num_molecules}) (one time t per molecule)")
        inputs = [features, self.time_embedding(t)[batch]]
        if self.conditional:
            if condition is None:
                raise ValueError("this denoiser was built with condition=True: pass condition [M]")
            check_tensor(condition, "condition", ())
            if condition.shape != (num_molecules,):
                raise ValueError(f"condition must have shape [M] = [{num_molecules}], got {list(condition.shape)}")
            inputs.append(condition[batch, None])
        elif condition is not None:
            raise ValueError("this denoiser was built with condition=False: pass no condition")
        edge_index = molecule_edges(batch)
        rel = positions[edge_index[1]] - positions[edge_index[0]]
        dist_sq = (rel * rel).sum(-1, keepdim=True)
        h, x = self.embedding(torch.cat(inputs, -1)), positions
        for layer in self.layers:
            h, x = layer(h, x, edge_index, dist_sq)
        moved = x - positions
        return moved - scatter_mean(moved, batch, num_molecules)[batch], self.feature_out(h)
