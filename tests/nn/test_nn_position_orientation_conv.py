"""PONITA's separable convolution on R³ × S² against its sums written out; the position-orientation invariants."""

from __future__ import annotations

import torch

from liequiv.groups import SO3
from liequiv.nn import SeparableSphereConv, position_orientation_invariants

DT = torch.float64
EDGES = [(1, 0), (2, 0), (0, 1), (0, 2), (2, 2)]  # (j, i): message from j to i; one self-loop


def test_convolution_matches_the_separable_sum() -> None:
    """y_i(o') = 1/O Σ_o k_S²(o, o') ⊙ Σ_j k_R³(i, j, o) ⊙ x_j(o) + b, with k = W · basis, by explicit loops."""
    g = torch.Generator().manual_seed(0)
    num_nodes, num_ori, channels, basis_dim = 3, 4, 2, 3
    conv = SeparableSphereConv(channels, basis_dim).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    x = torch.randn(num_nodes, num_ori, channels, generator=g, dtype=DT)
    spatial_basis = torch.randn(len(EDGES), num_ori, basis_dim, generator=g, dtype=DT)
    sphere_basis = torch.randn(num_ori, num_ori, basis_dim, generator=g, dtype=DT)
    out = conv(x, torch.tensor(EDGES).T, spatial_basis, sphere_basis)

    w_space, w_sphere, bias = conv.spatial_kernel.weight, conv.sphere_kernel.weight, conv.bias  # [C, B], [C, B], [C]
    expected = torch.zeros_like(out)
    for i in range(num_nodes):
        for o_out in range(num_ori):
            for c in range(channels):
                total = 0.0
                for o in range(num_ori):
                    spatial = sum(w_space[c] @ spatial_basis[k, o] * x[j, o, c]
                                  for k, (j, target) in enumerate(EDGES) if target == i)
                    total = total + (w_sphere[c] @ sphere_basis[o, o_out]) * spatial
                expected[i, o_out, c] = total / num_ori + bias[c]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_position_orientation_invariants() -> None:
    g = torch.Generator().manual_seed(0)
    rel = torch.randn(7, 3, generator=g, dtype=DT)
    orientations = torch.nn.functional.normalize(torch.randn(4, 3, generator=g, dtype=DT), dim=-1)
    attributes = position_orientation_invariants(rel, orientations)
    assert attributes.shape == (7, 4, 2)
    assert torch.allclose(attributes.square().sum(-1), rel.square().sum(-1, keepdim=True).expand(-1, 4))
    assert (attributes[..., 1] >= 0).all()
    axis = torch.tensor([[0.0, 0.0, 1.0]], dtype=DT)
    assert torch.allclose(position_orientation_invariants(torch.tensor([[3.0, 4.0, 2.0]], dtype=DT), axis),
                          torch.tensor([[[2.0, 5.0]]], dtype=DT))
    rot = SO3.random((), generator=torch.Generator().manual_seed(1), dtype=DT).as_matrix()
    rotated = position_orientation_invariants(rel @ rot.T, orientations @ rot.T)  # rotating pair and orientation
    assert (rotated - attributes).abs().max() < 1e-12
