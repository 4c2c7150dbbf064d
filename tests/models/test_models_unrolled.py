"""The unrolled EGNN: the unroll written out step by step, E(3) x S_n equivariance, gradients through the unroll."""

from __future__ import annotations

import pytest
import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE
from liequiv.models.unrolled import UnrolledEGNN
from liequiv.nn.graph import fully_connected_edges
from liequiv.symmetry import check_equivariance
from message_passing_reference import randomize

DT = torch.float64


def _trajectories(n_graphs: int = 3, n: int = 5, history: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n * n_graphs, 1, 3, generator=g, dtype=DT) + 0.1 * torch.randn(n * n_graphs, history, 3,
                                                                                      generator=g, dtype=DT).cumsum(1)
    vel = torch.randn(n * n_graphs, history, 3, generator=g, dtype=DT)
    charges = torch.randint(0, 2, (n * n_graphs, 1), generator=g).to(DT) * 2 - 1
    return pos, vel, charges, fully_connected_edges(n, n_graphs), torch.arange(n_graphs).repeat_interleave(n)


def _model(horizon: int = 4) -> UnrolledEGNN:
    return randomize(UnrolledEGNN(horizon, hidden=8, layers=2), scale=0.3)


def test_is_the_one_step_egnn_fed_its_own_output() -> None:
    model = _model()
    pos, vel, charges, edge_index, batch = _trajectories()
    out = model(pos, vel, charges, edge_index, batch)
    assert out.shape == (15, 4, 3)
    x_prev, x = pos[:, -2], pos[:, -1]
    for k in range(4):
        x_prev, x = x, model.step(x, x - x_prev, charges, edge_index, batch)
        torch.testing.assert_close(out[:, k], x, rtol=0, atol=1e-14)
    assert (out[:, 1:] - out[:, :-1]).abs().max() > 1e-2
    torch.testing.assert_close(model(pos, None, charges, edge_index, batch), out, rtol=0, atol=0)  # vel unused


def test_certified_by_the_checker() -> None:
    model = _model()
    report = check_equivariance(model, _trajectories(), "E(3) x S_n", NODE_TYPES, OUT_TYPE, n_samples=4)
    assert report.passed and report.max_abs_error < 1e-10, str(report)


def test_gradients_flow_through_the_unroll() -> None:
    """The last frame's gradient (w.r.t. the weights and the input) is that of the full composition of the steps:
    nothing is detached between steps."""
    model = _model(horizon=3)
    pos, vel, charges, edge_index, batch = _trajectories()
    pos.requires_grad_()
    wrt = [pos, *model.parameters()]
    grads = torch.autograd.grad(model(pos, vel, charges, edge_index, batch)[:, -1].square().sum(), wrt)
    x_prev, x = pos[:, -2], pos[:, -1]
    for _ in range(3):
        x_prev, x = x, model.step(x, x - x_prev, charges, edge_index, batch)
    expected = torch.autograd.grad(x.square().sum(), wrt)
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert grads[0][:, 0].abs().max() == 0 and grads[0][:, -2].abs().max() > 1e-3  # the unused frame, v_0


def test_bad_input() -> None:
    model = _model()
    pos, vel, charges, edge_index, batch = _trajectories()
    with pytest.raises(ValueError, match="history >= 2"):
        model(pos[:, -1:], vel, charges, edge_index, batch)
    with pytest.raises(ValueError, match="horizon"):
        UnrolledEGNN(0)
