"""PONITA's point convolution on R³ against its sum written out."""

from __future__ import annotations

import torch

from liequiv.nn import PointConv

DT = torch.float64


def test_convolution_matches_the_sum() -> None:
    """y_i = Σ_j (W β_ij) ⊙ x_j + b by explicit loops; node 2 receives nothing and keeps only the bias."""
    g = torch.Generator().manual_seed(0)
    edges = [(1, 0), (2, 0), (0, 1), (1, 1)]
    conv = PointConv(hidden=3, basis_dim=2).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    x = torch.randn(3, 3, generator=g, dtype=DT)
    basis = torch.randn(len(edges), 2, generator=g, dtype=DT)
    out = conv(x, torch.tensor(edges).T, basis)
    expected = conv.bias.detach().expand(3, 3).clone()
    for k, (j, i) in enumerate(edges):
        expected[i] += (conv.kernel.weight @ basis[k]) * x[j]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
