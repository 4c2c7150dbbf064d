"""SubequivariantEGNN: equivariance to O(2) about the gravity direction (and translations, permutations) but not
to O(3) at a fixed direction; O(3)-equivariance when the direction turns too; the update written out; bad input."""

from __future__ import annotations

import pytest
import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE, random_systems
from liequiv.models import SubequivariantEGNN
from liequiv.symmetry import check_equivariance, rotations_about
from message_passing_reference import affine, egnn_layer_reference, randomize, two_layer

DT = torch.float64
DOWN = torch.tensor([1.0, -2.0, 0.5], dtype=DT) / torch.tensor(5.25, dtype=DT).sqrt()  # not a coordinate axis


def _model(**kwargs) -> SubequivariantEGNN:
    return randomize(SubequivariantEGNN(node_dim=1, hidden=16, layers=3, **kwargs), scale=0.3)


def _with_gravity(model: SubequivariantEGNN, gravity: torch.Tensor = DOWN):
    return lambda pos, vel, q, edge_index, batch: model(pos, vel, q, edge_index, batch, gravity=gravity)


@pytest.mark.parametrize("tanh", [False, True])
def test_equivariant_to_o2_about_gravity_translations_and_permutations(tanh: bool) -> None:
    """Rotations about ĝ, mirrors through planes containing ĝ (odd samples), translations of R³, node relabelling."""
    group = rotations_about(DOWN.tolist(), reflections=True) * "T(3) x S_n"
    report = check_equivariance(_with_gravity(_model(tanh=tanh)), random_systems(), group, NODE_TYPES, OUT_TYPE,
                                n_samples=6)
    assert report.passed and report.max_abs_error < 1e-10, str(report)


def test_not_equivariant_to_rotations_that_move_gravity() -> None:
    """At a fixed ĝ: O(3), and O(2) about another axis, break the output by far more than round-off."""
    fn, inputs = _with_gravity(_model()), random_systems()
    for group in ("O(3)", rotations_about((0.0, 0.0, 1.0), reflections=True)):
        report = check_equivariance(fn, inputs, group, NODE_TYPES, OUT_TYPE, n_samples=4)
        assert report.max_abs_error > 1e-3, str(report)


def test_equivariant_to_e3_when_gravity_turns_too() -> None:
    """(x, v, ĝ) -> (R x + t, R v, R ĝ) for R in O(3), t in R³, with permutations: the joint symmetry."""
    model = _model()
    report = check_equivariance(lambda *args: model(*args[:5], gravity=args[5]), (*random_systems(), DOWN),
                                "E(3) x S_n", [*NODE_TYPES, "1o"], OUT_TYPE, n_samples=6)
    assert report.passed and report.max_abs_error < 1e-10, str(report)


def test_float32_subequivariance() -> None:
    model = _model().float()
    inputs = tuple(x.float() if x.is_floating_point() else x for x in random_systems())
    group = rotations_about(DOWN.tolist(), reflections=True) * "T(3)"
    report = check_equivariance(_with_gravity(model, DOWN.float()), inputs, group, NODE_TYPES, OUT_TYPE)
    assert report.passed and report.max_abs_error < 1e-5, str(report)


def test_update_written_out_on_a_small_graph() -> None:
    """h_i = W [|v_i|, v_i·ĝ, q_i] + b, a_ij = [q_i q_j, |x_i − x_j|² (input), (x_i − x_j)·ĝ (current)], the EGNN
    layer node by node, then x_i += φ_g(h_i) ĝ."""
    model = _model()
    g = torch.Generator().manual_seed(1)
    pos, vel = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    charges = torch.tensor([[1.0], [-2.0], [0.5], [3.0]], dtype=DT)
    edges = [(1, 0), (2, 0), (3, 0), (0, 1), (3, 1), (1, 2), (0, 3)]
    out = model(pos, vel, charges, torch.tensor(edges).T, gravity=DOWN)

    h = torch.stack([affine(model.embedding, torch.cat([vel[i].norm()[None], (vel[i] @ DOWN)[None], charges[i]]))
                     for i in range(4)])
    x = pos
    for layer, gravity_mlp in zip(model.layers, model.gravity_mlps):
        edge_attr = torch.stack([torch.stack([charges[i, 0] * charges[j, 0], (pos[i] - pos[j]).square().sum(),
                                              (x[i] - x[j]) @ DOWN]) for j, i in edges])
        h_next, x = egnn_layer_reference(layer, h, x, edges, edge_attr, vel)
        x = x + torch.stack([two_layer(gravity_mlp, h[i]) * DOWN for i in range(4)])
        h = h_next
    torch.testing.assert_close(out, x, rtol=0, atol=1e-12)
    assert (out - pos).abs().max() > 1e-2


def test_per_graph_gravity_is_each_graphs_own() -> None:
    """A batch of two graphs with two directions gives what each graph gives alone; [1, 3] needs no batch."""
    model = _model()
    pos, vel, charges, edge_index, batch = random_systems(n_graphs=2)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    both = model(pos, vel, charges, edge_index, batch, gravity=torch.stack([DOWN, up]))
    single = edge_index[:, : edge_index.shape[1] // 2]
    first = model(pos[:5], vel[:5], charges[:5], single, gravity=DOWN[None])
    second = model(pos[5:], vel[5:], charges[5:], single, gravity=up)
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=0, atol=1e-12)
    assert (first - model(pos[:5], vel[:5], charges[:5], single, gravity=up)).abs().max() > 1e-3


def test_bad_gravity() -> None:
    model = _model()
    pos, vel, charges, edge_index, batch = random_systems(n_graphs=2)
    cases = {
        "zero vector": torch.zeros(3, dtype=DT),
        "unit vector": torch.tensor([0.0, 0.0, -9.81], dtype=DT),
        "finite": torch.tensor([float("nan"), 0.0, 1.0], dtype=DT),
        r"shape \[3\] or \[B, 3\]": torch.tensor([0.0, 1.0], dtype=DT),
        "needs batch": torch.stack([DOWN, DOWN]),
    }
    for message, gravity in cases.items():
        with pytest.raises(ValueError, match=message):
            model(pos, vel, charges, edge_index, None if message == "needs batch" else batch, gravity=gravity)
    with pytest.raises(ValueError, match=r"batch entries must lie in \[0, 1\)"):
        model(pos, vel, charges, edge_index, batch, gravity=DOWN[None])
    with pytest.raises(TypeError, match="gravity is float32"):
        model(pos, vel, charges, edge_index, batch, gravity=DOWN.float())
    with pytest.raises(TypeError, match="gravity must be a floating tensor"):
        model(pos, vel, charges, edge_index, batch, gravity=[0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="vel must have shape"):
        model(pos, vel[:, :2], charges, edge_index, batch, gravity=DOWN)
