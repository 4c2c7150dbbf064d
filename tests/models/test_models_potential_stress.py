"""Stress of the tensor-product potential: against central finite differences of the energy under strain of periodic
cells (one where an atom sees its own images), symmetry, the virial of a molecule, and bad cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liequiv.data.atoms import collate_atoms
from liequiv.models import TensorProductPotential

DT = torch.float64


def _model() -> TensorProductPotential:
    torch.manual_seed(0)
    return TensorProductPotential((28, 29), channels=4, lmax=2, layers=2, correlation=2, cutoff=3.5,
                                  radial_hidden=(16,)).to(DT).eval()


def _triclinic() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(1)
    cell = 4.2 * np.eye(3) + 0.4 * rng.standard_normal((3, 3))
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.1], [0.2, 0.6, 0.55], [0.7, 0.1, 0.6]])
    return {"numbers": torch.tensor([29, 28, 29, 29]), "pos": torch.tensor(frac @ cell), "cell": torch.tensor(cell),
            "pbc": torch.ones(3, dtype=torch.bool)}


def _primitive_fcc() -> dict[str, torch.Tensor]:
    """One Cu atom in the primitive fcc cell (a = 3.6 Å): all its neighbours are its own images."""
    cell = 1.8 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    cell[0] += [0.15, -0.1, 0.05]  # break the cubic symmetry, which would make the stress isotropic
    return {"numbers": torch.tensor([29]), "pos": torch.zeros(1, 3, dtype=DT), "cell": torch.tensor(cell),
            "pbc": torch.ones(3, dtype=torch.bool)}


def _energy(model, batch, strain: torch.Tensor) -> torch.Tensor:
    """Energies [B] with positions and cells of every structure mapped by (I + strain) [B, 3, 3], same edges."""
    deform = torch.eye(3, dtype=DT) + strain
    pos = torch.einsum("ni,nij->nj", batch["pos"], deform[batch["batch"]])
    cell = batch["cell"] @ deform
    shifts = torch.einsum("ei,eij->ej", batch["unit_shifts"], cell[batch["batch"][batch["edge_index"][0]]])
    return model(batch["numbers"], pos, batch["edge_index"], batch["batch"], shifts, compute_forces=False,
                 num_graphs=len(cell))["energy"].detach()


def test_stress_is_the_strain_derivative_of_the_energy() -> None:
    model = _model()
    batch = collate_atoms([_triclinic(), _primitive_fcc()], model.cutoff)
    # the small cell has self-image edges
    src, dst = batch["edge_index"]
    assert bool(((src == dst) & (batch["batch"][src] == 1)).any())
    out = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], batch["shifts"],
                cell=batch["cell"], compute_stress=True)
    stress = out["stress"]
    assert stress.shape == (2, 3, 3)
    volume = torch.linalg.det(batch["cell"]).abs()
    eps = 1e-5
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        strain = torch.zeros(2, 3, 3, dtype=DT)
        strain[:, a, b] += eps / 2
        strain[:, b, a] += eps / 2
        numeric = (_energy(model, batch, strain) - _energy(model, batch, -strain)) / (2 * eps) / volume
        assert torch.allclose(stress[:, a, b], numeric, rtol=1e-6, atol=1e-9 * float(stress.abs().max())), (a, b)
    assert torch.equal(stress, stress.transpose(1, 2))
    assert float(stress.abs().min()) > 1e-7  # every component is tested, none is trivially zero
    # the forces are those without stress
    plain = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], batch["shifts"])
    assert torch.allclose(plain["forces"], out["forces"], atol=1e-12)


def test_virial_of_a_molecule() -> None:
    """Without periodic images, translation invariance gives ∂E/∂ε = -Σ_i r_i ⊗ F_i (symmetric part)."""
    model = _model()
    g = torch.Generator().manual_seed(3)
    pos = torch.randn(6, 3, generator=g, dtype=DT) * 1.3
    sample = {"numbers": torch.tensor([29, 28] * 3), "pos": pos}
    batch = collate_atoms([sample], model.cutoff)
    box = torch.diag(torch.tensor([20.0, 21.0, 22.0], dtype=DT))[None]  # only its volume is used
    out = model(batch["numbers"], pos, batch["edge_index"], batch["batch"], batch["shifts"], cell=box,
                compute_stress=True)
    virial = -torch.einsum("ni,nj->ij", pos, out["forces"])
    assert torch.allclose(out["stress"][0] * torch.linalg.det(box[0]), 0.5 * (virial + virial.T), atol=1e-10)
    assert float(virial.abs().max()) > 1e-3


def test_stress_needs_a_cell_with_volume() -> None:
    model = _model()
    batch = collate_atoms([_primitive_fcc()], model.cutoff)
    args = (batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], batch["shifts"])
    with pytest.raises(ValueError, match="cell"):
        model(*args, compute_stress=True)
    flat = batch["cell"].clone()
    flat[0, 2] = flat[0, 0] + flat[0, 1]
    with pytest.raises(ValueError, match="volume"):
        model(*args, cell=flat, compute_stress=True)
