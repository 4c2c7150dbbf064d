r"""Radial bases of edge lengths and a smooth cutoff envelope, the invariant inputs of interatomic potentials.

* :class:`BesselBasis` (DimeNet, Gasteiger et al. 2020; NequIP, Batzner et al. 2022; MACE, Batatia et al. 2022):
  ``b_n(r) = sqrt(2 / r_c) sin(n π r / r_c) / r`` for ``n = 1..num_basis``, orthonormal on the ball:
  ``∫_0^{r_c} b_n b_m r² dr = δ_nm``.
* :class:`GaussianBasis` (SchNet, Schütt et al. 2017): ``exp(-(r - μ_k)² / (2 σ²))`` on ``num_basis`` centres
  evenly spaced in ``[start, r_c]`` with ``σ`` their spacing.
* :class:`PolynomialCutoff` (DimeNet's envelope): with ``x = r / r_c`` and ``p`` its order,
  ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^{p+1} - p(p+1)/2 x^{p+2}`` for ``x < 1`` and 0 beyond, so that ``u``,
  ``u'`` and ``u''`` vanish at the cutoff: energies and forces stay continuous when atoms cross it.

All map lengths ``[...]`` to ``[..., num_basis]`` (the envelope to ``[...]``) in the input's dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from liequiv.validation import check_positive_int

__all__ = ["BesselBasis", "GaussianBasis", "PolynomialCutoff"]


def _check_basis_args(cutoff: float, num_basis: int) -> None:
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive finite number, got {cutoff!r}")
    check_positive_int(num_basis, "num_basis")


class BesselBasis(nn.Module):
    """``r [...] -> [..., num_basis]``: ``sqrt(2/r_c) sin(n π r / r_c) / r``; ``trainable=True`` learns the
    frequencies ``n π`` (NequIP's option; MACE keeps them fixed). Lengths must be positive."""

    def __init__(self, cutoff: float, num_basis: int = 8, *, trainable: bool = False) -> None:
        super().__init__()
        _check_basis_args(cutoff, num_basis)
        self.cutoff, self.num_basis = float(cutoff), num_basis
        frequencies = math.pi * torch.arange(1, num_basis + 1, dtype=torch.float64)
        if trainable:
            self.frequencies = nn.Parameter(frequencies)
        else:
            self.register_buffer("frequencies", frequencies)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, num_basis={self.num_basis}"

    def forward(self, r: Tensor) -> Tensor:
        x = r[..., None] / self.cutoff
        prefactor = math.sqrt(2.0 / self.cutoff)
        return prefactor * torch.sin(self.frequencies.to(r.dtype) * x) / r[..., None]


class GaussianBasis(nn.Module):
    """``r [...] -> [..., num_basis]``: Gaussians of width their spacing, centred evenly on ``[start, cutoff]``."""

    def __init__(self, cutoff: float, num_basis: int = 8, *, start: float = 0.0) -> None:
        super().__init__()
        _check_basis_args(cutoff, num_basis)
        if not 0 <= start < cutoff:
            raise ValueError(f"start must lie in [0, cutoff = {cutoff}), got {start!r}")
        self.cutoff, self.num_basis = float(cutoff), num_basis
        centers = torch.linspace(start, cutoff, num_basis, dtype=torch.float64)
        self.width = float(centers[1] - centers[0]) if num_basis > 1 else float(cutoff - start)
        self.register_buffer("centers", centers)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, num_basis={self.num_basis}, width={self.width:.4g}"

    def forward(self, r: Tensor) -> Tensor:
        return torch.exp(-0.5 * ((r[..., None] - self.centers.to(r.dtype)) / self.width) ** 2)


class PolynomialCutoff(nn.Module):
    """``r [...] -> [...]``: DimeNet's envelope of order ``p`` (1 at 0, 0 from the cutoff on, ``C²`` there)."""

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        _check_basis_args(cutoff, 1)
        self.cutoff, self.p = float(cutoff), check_positive_int(p, "p")

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, p={self.p}"

    def forward(self, r: Tensor) -> Tensor:
        p = self.p
        x = r / self.cutoff
        u = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        return torch.where(x < 1, u, torch.zeros_like(u))
