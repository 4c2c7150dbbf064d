"""EGNN: E(3) and permutation equivariance, degenerate inputs, bad input."""

from __future__ import annotations

import pytest
import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE, random_systems
from liequiv.groups import SO3
from liequiv.models import EGNN
from liequiv.symmetry import check_equivariance
from message_passing_reference import affine, egnn_layer_reference, randomize

DT = torch.float64


def _inputs(n_graphs: int = 3, n: int = 5, seed: int = 0):
    return random_systems(n_graphs, n, seed)


def _model(**kwargs) -> EGNN:
    torch.manual_seed(0)
    model = EGNN(hidden=32, layers=3, **kwargs).to(DT)
    for p in model.parameters():  # move away from the near-identity initialization so the test has teeth
        p.data += 0.1 * torch.randn_like(p)
    return model


@pytest.mark.parametrize("tanh", [False, True])
def test_e3_equivariance(tanh: bool) -> None:
    model = _model(tanh=tanh)
    pos, vel, charges, edge_index, batch = _inputs()
    out = model(pos, vel, charges, edge_index, batch)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        rot = SO3.random((), generator=g, dtype=DT).as_matrix() * (-1) ** seed  # odd seeds: improper
        shift = torch.randn(3, generator=g, dtype=DT)
        moved = model(pos @ rot.T + shift, vel @ rot.T, charges, edge_index, batch)
        assert (moved - (out @ rot.T + shift)).abs().max() < 1e-10
    assert (out - pos).abs().max() > 1e-3  # the model does something


def test_coincident_points_and_no_edges_are_finite() -> None:
    model = _model()
    pos, vel, charges, edge_index, batch = _inputs(n_graphs=1)
    pos = torch.zeros_like(pos).requires_grad_()
    out = model(pos, vel, charges, edge_index, batch)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(pos.grad).all()
    single = model(pos[:1].detach(), vel[:1], charges[:1], torch.zeros(2, 0, dtype=torch.long), batch[:1])
    assert torch.isfinite(single).all()


def test_velocity_variant_needs_velocities_and_bad_input() -> None:
    model = _model()
    pos, vel, charges, edge_index, batch = _inputs()
    with pytest.raises(ValueError, match="vel must have shape"):
        model(pos, vel[:, :2], charges, edge_index, batch)
    with pytest.raises(ValueError, match="edge_index entries"):
        model(pos, vel, charges, edge_index + 100, batch)
    with pytest.raises(TypeError, match="edge_index"):
        model(pos, vel, charges, edge_index.float(), batch)
    with pytest.raises(ValueError, match="layers"):
        EGNN(layers=0)


def test_certified_by_the_checker() -> None:
    """E(3) x S_n, with permutations across the whole batch of graphs."""
    model = _model()
    report = check_equivariance(lambda *x: model(*x), _inputs(), "E(3) x S_n", NODE_TYPES, OUT_TYPE, n_samples=4)
    assert report.passed, str(report)


def test_matches_the_paper_on_a_small_graph() -> None:
    """h_i = W [|v_i|, q_i] + b, a_ij = [q_i q_j, |x_i − x_j|²], then the layers' update written out node by node."""
    model = randomize(EGNN(node_dim=1, hidden=3, layers=2))
    g = torch.Generator().manual_seed(0)
    pos, vel = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    charges = torch.tensor([[1.0], [-2.0], [0.5], [3.0]], dtype=DT)
    edges = [(1, 0), (2, 0), (3, 0), (0, 1), (3, 1), (1, 2), (0, 3)]
    out = model(pos, vel, charges, torch.tensor(edges).T)

    h = torch.stack([affine(model.embedding, torch.cat([vel[i].norm()[None], charges[i]])) for i in range(4)])
    edge_attr = torch.stack([torch.stack([charges[i, 0] * charges[j, 0], (pos[i] - pos[j]).square().sum()])
                             for j, i in edges])
    x = pos
    for layer in model.layers:
        h, x = egnn_layer_reference(layer, h, x, edges, edge_attr, vel)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-12)
    assert (out - pos).abs().max() > 1e-2
