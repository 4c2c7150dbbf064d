"""Recomputed edge blocks of the tensor-product potential: the same energies, forces, stress and training gradients
as one pass, and far less memory kept for the backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liequiv.data.atoms import collate_atoms
from liequiv.models import TensorProductPotential

DT = torch.float64


def _model(backend: str = "cg") -> TensorProductPotential:
    torch.manual_seed(0)
    return TensorProductPotential((28, 29), channels=8, lmax=2, layers=2, correlation=2, cutoff=4.0,
                                  radial_hidden=(32, 32), tp_backend=backend).to(DT).eval()


def _cu_ni_cell() -> dict:
    """A rattled 32-atom fcc Cu-Ni cell (a = 3.6 Å), periodic: 576 edges within 4 Å."""
    rng = np.random.default_rng(0)
    frac = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=float)
    grid = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = 3.6 * (grid[:, None] + frac[None]).reshape(-1, 3) + 0.05 * rng.standard_normal((32, 3))
    numbers = rng.choice([28, 29], 32)
    return collate_atoms([{"numbers": torch.tensor(numbers), "pos": torch.tensor(pos), "cell": torch.eye(3) * 7.2,
                           "pbc": torch.ones(3, dtype=torch.bool)}], 4.0)


def _call(model, batch, **kwargs) -> dict[str, torch.Tensor]:
    return model(batch["numbers"], batch["pos"].to(DT), batch["edge_index"], batch["batch"], batch["shifts"].to(DT),
                 num_graphs=1, cell=batch["cell"].to(DT), compute_stress=True, **kwargs)


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for the backward while ``fn`` runs (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@pytest.mark.parametrize("backend", ["cg", "gaunt_grid"])
def test_edge_blocks_give_the_same_energy_forces_and_stress(backend: str) -> None:
    model, batch = _model(backend), _cu_ni_cell()
    edges = batch["edge_index"].shape[1]
    model.edge_block = None
    whole = _call(model, batch)
    model.edge_block = 100  # several blocks and a short last one
    assert edges > 4 * model.edge_block and edges % model.edge_block
    blocks = _call(model, batch)
    for key in ("energy", "node_energy", "forces", "stress"):
        torch.testing.assert_close(blocks[key], whole[key], rtol=1e-12, atol=1e-12)
    assert whole["forces"].abs().max() > 1e-4  # a real comparison, not of zeros


def test_edge_blocks_bound_the_memory_kept_for_the_backward() -> None:
    model, batch = _model(), _cu_ni_cell()
    model.edge_block = None
    whole = _saved_bytes(lambda: _call(model, batch))
    model.edge_block = 64
    blocks = _saved_bytes(lambda: _call(model, batch))
    edges = batch["edge_index"].shape[1]
    assert blocks < whole / 4
    assert blocks / edges < 2_000  # bytes per edge: the edge geometry and indices, not the messages


def test_edge_blocks_give_the_same_training_gradients() -> None:
    """With the graph of the forces kept (training), the blocks' recomputation is differentiated twice."""
    batch = _cu_ni_cell()
    grads = []
    for edge_block in (None, 64):
        model = _model()
        model.edge_block = edge_block
        out = _call(model, batch, training=True)
        loss = out["energy"].square().sum() + 10 * out["forces"].square().sum() + out["stress"].square().sum()
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for blocked, whole in zip(*grads):
        torch.testing.assert_close(blocked, whole, rtol=1e-10, atol=1e-12)
