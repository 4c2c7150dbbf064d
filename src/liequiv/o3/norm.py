"""Norm of every irrep copy in a direct sum of irreps (e3nn's ``o3.Norm``).

The norm is invariant under O(3) (the representation matrices are orthogonal), so the output is ``num_irreps x 0e``.

Example::

    >>> norm = Norm("4x0e + 2x1o")
    >>> norm(torch.randn(10, 10)).shape
    torch.Size([10, 6])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liequiv.o3.irreps import Irreps, check_features

__all__ = ["Norm"]


class Norm(nn.Module):
    """``x [..., irreps_in.dim] -> [..., irreps_in.num_irreps]``: the Euclidean norm of each irrep copy.

    Copies are in input order: block by block, ``mul`` copies per block. With ``squared=True`` the squared norm is
    returned. Unlike e3nn (``sqrt`` of a ReLU, NaN gradient at 0), the norm of a zero copy has gradient 0, so it is
    finite everywhere.

    Args:
        irreps_in: the irreps of the input; stored simplified as ``irreps_in`` (same layout), as e3nn.
        squared: return the squared norm instead of the norm.

    Attributes:
        irreps_out: ``num_irreps x 0e`` (empty when there is no copy).
    """

    def __init__(self, irreps_in: Any, squared: bool = False) -> None:
        super().__init__()
        if not isinstance(squared, bool):
            raise TypeError(f"squared must be a bool, got {type(squared).__name__}")
        self.irreps_in = Irreps(irreps_in).simplify()
        self.irreps_out = Irreps([(self.irreps_in.num_irreps, "0e")]).simplify()
        self.squared = squared
        copy_of_component = [c for c, l in enumerate(self.irreps_in.ls) for _ in range(2 * l + 1)]
        self.register_buffer("copy_index", torch.tensor(copy_of_component, dtype=torch.long), persistent=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in}, squared={self.squared})"

    def forward(self, x: Tensor) -> Tensor:
        """``x [..., irreps_in.dim]`` -> norms ``[..., irreps_in.num_irreps]``."""
        check_features(x, self.irreps_in)
        squares = x.new_zeros(*x.shape[:-1], self.irreps_in.num_irreps).index_add(-1, self.copy_index, x * x)
        if self.squared:
            return squares
        # sqrt only where positive (in both branches) so that the gradient at a zero copy is 0, not NaN
        positive = squares > 0
        return torch.where(positive, torch.where(positive, squares, 1).sqrt(), 0)
