"""PONITA (R³ × S²) and PONITAR3: exact translation/permutation symmetry, grid-limited rotation error, parts."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from dynamics_testing import random_systems
from liequiv.groups import SO3
from liequiv.models.ponita import PONITA, PONITAR3, ConvNextBlock, PolynomialFeatures
from liequiv.nn import PointConv
from liequiv.symmetry import check_equivariance

DT = torch.float64


def _inputs(n_graphs: int = 3, n: int = 5, seed: int = 0):
    return random_systems(n_graphs, n, seed)


def _ponita(**kwargs) -> PONITA:
    torch.manual_seed(0)
    return PONITA(**{"hidden": 16, "layers": 2, "num_ori": 12, **kwargs}).to(DT)


def _ponita_r3(**kwargs) -> PONITAR3:
    torch.manual_seed(0)
    return PONITAR3(**{"hidden": 16, "layers": 2, **kwargs}).to(DT)


MODELS = {"R3S2": _ponita, "R3": _ponita_r3}
TYPES = ["pos", "1o", "scalar", "scalar"]  # (pos, vel, charges, edge_index) under rotations alone


def _so3_report(model: torch.nn.Module, pos, vel, charges, edge_index, seed: int):
    return check_equivariance(model, (pos, vel, charges, edge_index), "SO(3)", TYPES, "pos", n_samples=3,
                              generator=torch.Generator().manual_seed(seed))


def _rotations(count: int, seed: int) -> torch.Tensor:
    return SO3.random((count,), generator=torch.Generator().manual_seed(seed), dtype=DT).as_matrix()


@pytest.mark.parametrize("name", MODELS)
def test_shapes_gradients_and_float32(name: str) -> None:
    model = MODELS[name]()
    pos, vel, charges, edge_index, batch = _inputs()
    out = model(pos, vel, charges, edge_index, batch)
    assert out.shape == pos.shape and out.dtype == DT
    assert (out - pos).abs().max() > 1e-3  # the model does something
    out.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), "every parameter is used"
    single = model.float()(pos.float(), vel.float(), charges.float(), edge_index, batch)
    assert single.dtype == torch.float32 and (single - out.detach()).abs().max() < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_translation_and_permutation_are_exact(name: str) -> None:
    model = MODELS[name]()
    pos, vel, charges, edge_index, batch = _inputs()
    out = model(pos, vel, charges, edge_index, batch)
    shift = torch.tensor([3.0, -1.5, 0.25], dtype=DT)
    assert (model(pos + shift, vel, charges, edge_index, batch) - (out + shift)).abs().max() < 1e-10
    perm = torch.randperm(pos.shape[0], generator=torch.Generator().manual_seed(1))
    inverse = torch.argsort(perm)
    moved = model(pos[perm], vel[perm], charges[perm], inverse[edge_index], batch[perm])
    assert (moved - out[perm]).abs().max() < 1e-10


def test_r3_variant_is_exactly_e3_equivariant() -> None:
    model = _ponita_r3()
    pos, vel, charges, edge_index, batch = _inputs()
    out = model(pos, vel, charges, edge_index, batch)
    for seed, rot in enumerate(_rotations(3, seed=2)):
        rot = rot * (-1) ** seed  # odd seeds: improper
        shift = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=DT)
        moved = model(pos @ rot.T + shift, vel @ rot.T, charges, edge_index, batch)
        assert (moved - (out @ rot.T + shift)).abs().max() < 1e-10
    assert _so3_report(model, pos, vel, charges, edge_index, seed=3).passed


def test_rotation_error_shrinks_with_the_grid() -> None:
    """The same weights on grids of 8, 20, 50, 100 orientations: the SO(3) error falls with every refinement."""
    pos, vel, charges, edge_index, _ = _inputs(n_graphs=2)
    errors = [_so3_report(_ponita(num_ori=n), pos, vel, charges, edge_index, seed=5).max_abs_error
              for n in (8, 20, 50, 100)]
    assert all(fine < 0.8 * coarse for coarse, fine in pairwise(errors)), errors
    assert errors[-1] < 0.1 * errors[0], errors
    assert errors[0] > 1e-3, "a coarse grid is only approximately equivariant"


def test_coincident_points_and_no_edges_are_finite() -> None:
    pos, vel, charges, edge_index, batch = _inputs(n_graphs=1)
    for model in (_ponita(), _ponita_r3()):
        still = torch.zeros_like(pos).requires_grad_()
        out = model(still, torch.zeros_like(vel), charges, edge_index, batch)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(still.grad).all()
        single = model(pos[:1], vel[:1], charges[:1], torch.zeros(2, 0, dtype=torch.long))
        assert single.shape == (1, 3) and torch.isfinite(single).all()


def test_self_loops_change_the_convolution() -> None:
    pos, vel, charges, edge_index, batch = _inputs()
    with_loops = _ponita(self_loops=True)(pos, vel, charges, edge_index, batch)
    without = _ponita(self_loops=False)(pos, vel, charges, edge_index, batch)
    assert (with_loops - without).abs().max() > 1e-6


def _small_graph():
    """4 nodes, node 3 only sends; the models add one self-loop per node after these edges."""
    g = torch.Generator().manual_seed(4)
    pos, vel = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    charges = torch.tensor([[1.0], [-2.0], [0.5], [3.0]], dtype=DT)
    edges = [(1, 0), (2, 0), (3, 0), (0, 1), (3, 1), (1, 2)]
    return pos, vel, charges, edges


def test_ponita_composes_its_layers_as_written() -> None:
    """Δ = x_j − x_i, a_ij(o) = [o·Δ, |Δ − (o·Δ) o|], fibers lifted as [q, |v|, o·v], output x + 1/O Σ_o f(o) o;
    the geometry is computed here and the blocks (tested in tests/nn) are reused."""
    model = _ponita(hidden=4, num_ori=6)
    pos, vel, charges, edges = _small_graph()
    out = model(pos, vel, charges, torch.tensor(edges).T)
    edges = edges + [(i, i) for i in range(4)]
    ori = model.orientations
    rel = torch.stack([pos[j] - pos[i] for j, i in edges])  # [E, 3]
    along = torch.einsum("ed,od->eo", rel, ori)
    across = (rel[:, None, :] - along[..., None] * ori).norm(dim=-1)
    spatial_basis = model.spatial_basis(torch.stack([along, across], -1))
    sphere_basis = model.sphere_basis(torch.einsum("od,pd->op", ori, ori)[..., None])
    lifted = torch.stack([torch.stack([torch.cat([charges[i], vel[i].norm()[None], (o @ vel[i])[None]]) for o in ori])
                          for i in range(4)])
    x = model.embedding(lifted)
    for block in model.blocks:
        x = block(x, torch.tensor(edges).T, spatial_basis, sphere_basis)
    expected = torch.stack([pos[i] + sum(model.readout(x[i, k]) * o for k, o in enumerate(ori)) / len(ori)
                            for i in range(4)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_ponita_r3_composes_its_layers_as_written() -> None:
    """a_ij = [|Δ|, Δ·v_i, Δ·v_j, v_i·v_j], node input [q, |v|], output x_i + mean_j w_ij Δ_ij + u(h_i) v_i with
    w_ij = w(LayerNorm(h_j ⊙ k(a_ij))), over the neighbours and the self-loop."""
    model = _ponita_r3(hidden=4)
    pos, vel, charges, edges = _small_graph()
    out = model(pos, vel, charges, torch.tensor(edges).T)
    edges = edges + [(i, i) for i in range(4)]
    rel = [pos[j] - pos[i] for j, i in edges]
    basis = model.basis(torch.stack([torch.stack([d.norm(), d @ vel[i], d @ vel[j], vel[i] @ vel[j]])
                                     for d, (j, i) in zip(rel, edges)]))
    x = model.embedding(torch.cat([charges, vel.norm(dim=-1, keepdim=True)], -1))
    for block in model.blocks:
        x = block(x, torch.tensor(edges).T, basis)
    expected = []
    for i in range(4):
        terms = [model.edge_readout(model.readout_norm(x[j] * model.readout_kernel(basis[k]))) * rel[k]
                 for k, (j, target) in enumerate(edges) if target == i]
        expected.append(pos[i] + sum(terms) / len(terms) + model.velocity_readout(x[i]) * vel[i])
    torch.testing.assert_close(out, torch.stack(expected), rtol=0, atol=1e-12)


def test_polynomial_features() -> None:
    features = PolynomialFeatures(num_inputs=2, degree=3)
    assert features.num_monomials == 10
    x = torch.tensor([[2.0, 3.0]], dtype=DT)
    values = sorted(features(x)[0].tolist())
    assert values == sorted([1, 2, 3, 4, 6, 9, 8, 12, 18, 27])
    zero = torch.zeros(1, 2, dtype=DT, requires_grad=True)
    features(zero).sum().backward()
    assert torch.isfinite(zero.grad).all() and torch.equal(zero.grad, torch.ones(1, 2, dtype=DT))


def test_convnext_layer_scale() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    basis = torch.randn(4, 5)
    silent = ConvNextBlock(8, PointConv(8, 5), layer_scale=0.0)
    assert torch.equal(silent(x, edge_index, basis), x)
    assert silent.mlp[0].out_features == 32  # widening factor 4
    active = ConvNextBlock(8, PointConv(8, 5), layer_scale=None)
    assert (active(x, edge_index, basis) - x).abs().max() > 1e-3


def test_learns_a_small_batch() -> None:
    pos, vel, charges, edge_index, batch = _inputs(n_graphs=4)
    target = pos + 0.5 * vel
    model = _ponita(num_ori=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = (model(pos, vel, charges, edge_index, batch) - target).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


@pytest.mark.parametrize("name", MODELS)
def test_bad_input(name: str) -> None:
    model = MODELS[name]()
    pos, vel, charges, edge_index, batch = _inputs()
    with pytest.raises(ValueError, match="vel must have shape"):
        model(pos, vel[:, :2], charges, edge_index, batch)
    with pytest.raises(ValueError, match="node_features must have shape"):
        model(pos, vel, torch.cat([charges, charges], -1), edge_index, batch)
    with pytest.raises(ValueError, match="edge_index entries"):
        model(pos, vel, charges, edge_index + 100, batch)
    with pytest.raises(TypeError, match="edge_index"):
        model(pos, vel, charges, edge_index.float(), batch)


def test_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="num_ori"):
        PONITA(num_ori=0)
    with pytest.raises(ValueError, match="layers"):
        PONITA(layers=0)
    with pytest.raises(ValueError, match="hidden"):
        PONITAR3(hidden=0)
    with pytest.raises(ValueError, match="degree"):
        PONITAR3(degree=0)
