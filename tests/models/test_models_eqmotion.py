"""EqMotion: E(3) x S_n equivariance (certified by the checker), graphs in a batch kept apart, the pattern input,
bad input."""

from __future__ import annotations

import math

import pytest
import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE
from liequiv.models.eqmotion import EqMotion, turning_angles
from liequiv.nn.graph import fully_connected_edges
from liequiv.symmetry import check_equivariance
from message_passing_reference import randomize

DT = torch.float64


def _trajectories(n_graphs: int = 3, n: int = 5, history: int = 4, seed: int = 0):
    """(pos, vel [N, history, 3], charges ±1, edge_index, batch): smooth random trajectories, float64."""
    g = torch.Generator().manual_seed(seed)
    vel = torch.randn(n * n_graphs, 1, 3, generator=g, dtype=DT) + 0.3 * torch.randn(n * n_graphs, history, 3,
                                                                                      generator=g, dtype=DT)
    pos = torch.randn(n * n_graphs, 1, 3, generator=g, dtype=DT) + 0.1 * vel.cumsum(1)
    charges = torch.randint(0, 2, (n * n_graphs, 1), generator=g).to(DT) * 2 - 1
    return pos, vel, charges, fully_connected_edges(n, n_graphs), torch.arange(n_graphs).repeat_interleave(n)


def _model(**kwargs) -> EqMotion:
    settings = {"history": 4, "horizon": 3, "hidden": 8, "channels": 4, "layers": 2, **kwargs}
    return randomize(EqMotion(**settings), scale=0.4)


def test_certified_by_the_checker() -> None:
    """Rotations and reflections, translations, permutations of the particles across the whole batch."""
    model = _model()
    inputs = _trajectories()
    report = check_equivariance(model, inputs, "E(3) x S_n", NODE_TYPES, OUT_TYPE, n_samples=4)
    assert report.passed and report.max_abs_error < 1e-10, str(report)
    out = model(*inputs)
    assert out.shape == (15, 3, 3)
    pos = inputs[0]
    assert (out - pos[:, -1:]).abs().max() > 0.1  # the model does something


def test_not_equivariant_without_centring_is_detected() -> None:
    """The checker has teeth here: a model that forgets the centre is not translation-equivariant."""
    model = _model()
    inputs = _trajectories()

    def uncentred(pos, *rest):
        return model(pos, *rest) - pos.mean((0, 1))

    report = check_equivariance(uncentred, inputs, "E(3) x S_n", NODE_TYPES, OUT_TYPE, n_samples=2)
    assert not report.passed


def test_graphs_in_a_batch_do_not_interact() -> None:
    """Each graph gets its own centre and means: a graph's prediction is the same alone and in a batch."""
    model = _model()
    pos, vel, charges, edge_index, batch = _trajectories(n_graphs=3)
    together = model(pos, vel, charges, edge_index, batch)
    for b in range(3):
        nodes = slice(5 * b, 5 * b + 5)
        alone = model(pos[nodes], vel[nodes], charges[nodes], fully_connected_edges(5))
        torch.testing.assert_close(together[nodes], alone, rtol=0, atol=1e-13)


def test_turning_angles() -> None:
    s = 1 / math.sqrt(2)
    vel = torch.tensor([[1.0, 0, 0], [0, 2, 0], [0, -1, 0], [0, 0, 0], [0, 3, 0], [s, s, 0], [1, 0, 0],
                        [1, 1e-9, 0]], dtype=DT)
    expected = [math.pi / 2, math.pi, 0.0, 0.0, math.pi / 4, math.pi / 4, 1e-9]  # acos would give 0 for the last
    torch.testing.assert_close(turning_angles(vel), torch.tensor(expected, dtype=DT), rtol=1e-12, atol=1e-15)
    assert turning_angles(torch.randn(4, 1, 3)).shape == (4, 0)


def test_one_frame_and_no_node_features() -> None:
    model = _model(history=1, node_dim=0)
    pos, vel, _, edge_index, batch = _trajectories(history=1)
    out = model(pos, vel, pos.new_zeros(15, 0), edge_index, batch)
    assert out.shape == (15, 3, 3) and torch.isfinite(out).all()


def test_bad_input() -> None:
    model = _model()
    pos, vel, charges, edge_index, batch = _trajectories()
    with pytest.raises(ValueError, match=r"pos must have shape \[15, 4, 3\]"):
        model(pos[:, :3], vel, charges, edge_index, batch)
    with pytest.raises(ValueError, match="batch must have shape"):
        model(pos, vel, charges, edge_index, batch[:4])
    with pytest.raises(TypeError, match="float32"):
        model(pos.float(), vel.float(), charges.float(), edge_index, batch)
    with pytest.raises(ValueError, match="edge_index entries"):
        model(pos, vel, charges, edge_index + 100, batch)
    with pytest.raises(ValueError, match="channels"):
        EqMotion(history=4, horizon=3, channels=0)
