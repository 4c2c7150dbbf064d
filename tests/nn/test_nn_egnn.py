"""The EGNN layer against the update of Satorras et al. written out node by node; its symmetries; bad input."""

from __future__ import annotations

import pytest
import torch

from liequiv.nn import EGNNLayer
from liequiv.symmetry import check_equivariance
from message_passing_reference import egnn_layer_reference, randomize

DT = torch.float64
# 4 nodes; node 3 sends but receives nothing, node 0 has two senders (the mean's C differs per node)
EDGES = [(1, 0), (2, 0), (0, 1), (3, 1), (1, 2)]


def _graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(4, 3, generator=g, dtype=DT)
    x = torch.randn(4, 3, generator=g, dtype=DT)
    vel = torch.randn(4, 3, generator=g, dtype=DT)
    edge_attr = torch.randn(len(EDGES), 2, generator=g, dtype=DT)
    return h, x, vel, edge_attr, torch.tensor(EDGES).T


@pytest.mark.parametrize("tanh", [False, True])
@pytest.mark.parametrize("velocity", [False, True])
def test_matches_the_paper_update(tanh: bool, velocity: bool) -> None:
    layer = randomize(EGNNLayer(3, edge_dim=2, velocity=velocity, tanh=tanh, coords_range=2.0))
    h, x, vel, edge_attr, edge_index = _graph()
    vel = vel if velocity else None
    h_out, x_out = layer(h, x, edge_index, edge_attr, vel)
    h_ref, x_ref = egnn_layer_reference(layer, h, x, EDGES, edge_attr, vel)
    torch.testing.assert_close(x_out, x_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_out, h_ref, rtol=0, atol=1e-12)
    assert (x_out - x).abs().max() > 1e-2 and (h_out - h).abs().max() > 1e-2  # the update is not trivial


def test_without_edge_attributes_or_feature_update() -> None:
    layer = randomize(EGNNLayer(3, velocity=False, update_features=False))
    h, x, _, _, edge_index = _graph(seed=1)
    h_out, x_out = layer(h, x, edge_index)
    _, x_ref = egnn_layer_reference(layer, h, x, EDGES)
    assert torch.equal(h_out, h)
    torch.testing.assert_close(x_out, x_ref, rtol=0, atol=1e-12)


def test_invariant_layer_with_attention() -> None:
    """EGNN's QM9 layer: gated messages, fixed positions; h' is invariant under E(3) and x is returned as given."""
    layer = randomize(EGNNLayer(3, velocity=False, update_positions=False, attention=True))
    assert layer.coord_mlp is None and layer.velocity_mlp is None
    h, x, _, _, edge_index = _graph(seed=3)
    h_out, x_out = layer(h, x, edge_index)
    h_ref, _ = egnn_layer_reference(layer, h, x, EDGES)
    assert x_out is x
    torch.testing.assert_close(h_out, h_ref, rtol=0, atol=1e-12)
    assert (h_out - h).abs().max() > 1e-2
    report = check_equivariance(layer, (h, x, edge_index), "E(3) x S_n", ["scalar, perm(0)", "pos, perm(0)", "index"],
                                ["scalar, perm(0)", "pos, perm(0)"])
    assert report.passed, str(report)
    with pytest.raises(ValueError, match="update_positions"):
        EGNNLayer(3, update_positions=False)


def test_e3_and_permutation_equivariance() -> None:
    layer = randomize(EGNNLayer(3, edge_dim=2))
    h, x, vel, edge_attr, edge_index = _graph(seed=2)
    types = ["scalar, perm(0)", "pos, perm(0)", "index", "scalar", "1o, perm(0)"]
    report = check_equivariance(layer, (h, x, edge_index, edge_attr, vel), "E(3) x S_n", types,
                                ["scalar, perm(0)", "pos, perm(0)"])
    assert report.passed, str(report)


def test_velocity_layer_needs_velocities() -> None:
    h, x, _, _, edge_index = _graph()
    with pytest.raises(ValueError, match="vel"):
        EGNNLayer(3, velocity=True).double()(h, x, edge_index)
