"""Sinusoidal features of a scalar (a diffusion time, a frame index), as in the transformer's position encoding."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """``[...] -> [..., dim]``: ``sin(ω_k s), cos(ω_k s)`` for ``dim / 2`` frequencies ``ω_k`` spaced
    geometrically from 1 to ``max_frequency``. No parameters.

    >>> SinusoidalEmbedding(8)(torch.tensor([0.0, 0.5])).shape
    torch.Size([2, 8])
    """

    def __init__(self, dim: int, max_frequency: float = 1000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 2, got {dim}")
        if not max_frequency >= 1:
            raise ValueError(f"max_frequency must be >= 1, got {max_frequency}")
        exponents = torch.arange(dim // 2, dtype=torch.float64) / max(dim // 2 - 1, 1)
        frequencies = torch.exp(exponents * math.log(max_frequency)).to(torch.get_default_dtype())
        self.register_buffer("frequencies", frequencies, persistent=False)

    def forward(self, s: Tensor) -> Tensor:
        angles = s[..., None] * self.frequencies.to(s.dtype)
        return torch.cat([angles.sin(), angles.cos()], -1)
