"""Baselines: GNN (permutation-equivariant, not rotation-equivariant) and LinearDynamics (x + v·dt)."""

from __future__ import annotations

import pytest
import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE, random_systems
from liequiv.groups import SO3
from liequiv.models.baselines import GNN, LinearDynamics
from liequiv.symmetry import check_equivariance
from message_passing_reference import gnn_reference, randomize

DT = torch.float64


def _inputs(n_graphs: int = 3, n: int = 5, seed: int = 0):
    return random_systems(n_graphs, n, seed)


def _gnn() -> GNN:
    torch.manual_seed(0)
    return GNN(hidden=32, layers=3).to(DT)


def test_graph_helper_is_fully_connected() -> None:
    _, _, _, edge_index, batch = _inputs(n_graphs=2, n=5)
    assert edge_index.shape == (2, 40)
    assert (batch[edge_index[0]] == batch[edge_index[1]]).all() and (edge_index[0] != edge_index[1]).all()
    assert len({tuple(e) for e in edge_index.T.tolist()}) == 40


@pytest.mark.parametrize("model_fn", [_gnn, lambda: LinearDynamics(dt=0.3).to(DT),
                                      lambda: LinearDynamics(per_axis=True, dt=0.3).to(DT)])
def test_shapes_and_gradients(model_fn) -> None:
    model = model_fn()
    pos, vel, charges, edge_index, batch = _inputs()
    out = model(pos, vel, charges, edge_index, batch)
    assert out.shape == pos.shape and out.dtype == DT
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().max() > 0 for g in grads)


def test_linear_dynamics_is_x_plus_v_dt() -> None:
    pos, vel, charges, edge_index, batch = _inputs()
    scalar = LinearDynamics(dt=0.25).to(DT)
    assert torch.equal(scalar(pos, vel, charges, edge_index, batch), pos + 0.25 * vel)
    per_axis = LinearDynamics(per_axis=True, dt=0.25).to(DT)  # initialized to the scalar model
    assert torch.equal(per_axis(pos, vel, charges, edge_index, batch), pos + 0.25 * vel)
    with torch.no_grad():  # a per-axis time step and an affine drift
        per_axis.linear.weight.copy_(torch.cat([torch.zeros(3, 3), torch.diag(torch.tensor([1.0, 2.0, 3.0]))], -1))
        per_axis.linear.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    expected = pos + vel * torch.tensor([1.0, 2.0, 3.0], dtype=DT) + torch.tensor([0.5, 0.0, -0.5], dtype=DT)
    assert (per_axis(pos, vel, charges, edge_index, batch) - expected).abs().max() < 1e-14


def test_linear_dynamics_learns_the_time_step() -> None:
    pos, vel, charges, edge_index, batch = _inputs()
    target = pos + 0.7 * vel
    model = LinearDynamics().to(DT)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        (model(pos, vel, charges, edge_index, batch) - target).square().mean().backward()
        optimizer.step()
    assert abs(model.dt.item() - 0.7) < 1e-3


def test_gnn_matches_its_update_on_a_small_graph() -> None:
    """Node 3 only sends; distinct charges, so that q_i q_j is told apart from q_i² or q_j²."""
    model = randomize(GNN(node_dim=1, hidden=3, layers=2))
    g = torch.Generator().manual_seed(0)
    pos, vel = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    charges = torch.tensor([[1.0], [-2.0], [0.5], [3.0]], dtype=DT)
    edges = [(1, 0), (2, 0), (3, 0), (0, 1), (3, 1), (1, 2)]
    out = model(pos, vel, charges, torch.tensor(edges).T)
    torch.testing.assert_close(out, gnn_reference(model, pos, vel, charges, edges), rtol=0, atol=1e-12)


def test_gnn_is_permutation_equivariant() -> None:
    model = _gnn()
    report = check_equivariance(lambda *x: model(*x), _inputs(), "S_n", NODE_TYPES, OUT_TYPE, n_samples=3)
    assert report.passed, str(report)


def test_gnn_is_not_rotation_equivariant() -> None:
    model = _gnn()
    pos, vel, charges, edge_index, batch = _inputs()
    out = model(pos, vel, charges, edge_index, batch)
    rot = SO3.random((), generator=torch.Generator().manual_seed(3), dtype=DT).as_matrix()
    moved = model(pos @ rot.T, vel @ rot.T, charges, edge_index, batch)
    error = (moved - out @ rot.T).abs().max() / (out - pos).abs().max()
    assert error > 0.1


def test_single_node_and_no_edges() -> None:
    pos, vel, charges, _, _ = _inputs(n_graphs=1)
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    for model in (_gnn(), LinearDynamics(dt=1.0).to(DT)):
        out = model(pos[:1], vel[:1], charges[:1], no_edges)
        assert out.shape == (1, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("model_fn", [_gnn, lambda: LinearDynamics().to(DT)])
def test_bad_input(model_fn) -> None:
    model = model_fn()
    pos, vel, charges, edge_index, batch = _inputs()
    with pytest.raises(ValueError, match="vel must have shape"):
        model(pos, vel[:, :2], charges, edge_index, batch)
    with pytest.raises(ValueError, match="node_features must have shape"):
        model(pos, vel, charges[:-1], edge_index, batch)
    with pytest.raises(ValueError, match="pos must have shape"):
        model(pos[:, None], vel, charges, edge_index, batch)
    with pytest.raises(TypeError, match="vel must be a tensor"):
        model(pos, vel.tolist(), charges, edge_index, batch)
    with pytest.raises(ValueError, match="edge_index entries"):
        model(pos, vel, charges, edge_index + 100, batch)
    with pytest.raises(TypeError, match="edge_index"):
        model(pos, vel, charges, edge_index.float(), batch)


def test_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="layers"):
        GNN(layers=0)
    with pytest.raises(ValueError, match="node_dim"):
        LinearDynamics(node_dim=-1)
