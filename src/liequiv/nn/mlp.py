"""A plain multilayer perceptron, the invariant workhorse inside equivariant layers."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last), ``[..., dims[0]] -> [..., dims[-1]]``.

    ``last_activation=True`` also applies the activation after the last layer; ``last_bias=False`` drops the
    last bias (for outputs that must vanish with their input, such as EGNN's coordinate weights).
    """

    def __init__(self, dims: Sequence[int], activation: type[nn.Module] = nn.SiLU, *, last_activation: bool = False,
                 last_bias: bool = True) -> None:
        if len(dims) < 2 or any(int(d) != d or d < 1 for d in dims):
            raise ValueError(f"dims must be at least two positive integers, got {list(dims)}")
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(pairwise(dims)):
            last = i == len(dims) - 2
            layers.append(nn.Linear(d_in, d_out, bias=last_bias or not last))
            if not last or last_activation:
                layers.append(activation())
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
