"""The ASE calculator: a checkpoint round trip, forces and stress against finite differences of its own energy, ASE's
Voigt order, caching, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.stress import full_3x3_to_voigt_6_stress

from liequiv.calculators import LiequivCalculator
from potential_testing import write_potential_checkpoint


def _numeric_force(atoms: Atoms, atom: int, axis: int, eps: float) -> float:
    """-dE/dx of one coordinate by central differences."""
    energies = []
    for step in (eps, -eps):
        moved = atoms.copy()
        moved.positions[atom, axis] += step
        energies.append(atoms.calc.get_potential_energy(moved))
    return -(energies[0] - energies[1]) / (2 * eps)


def _alloy(seed: int = 0) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[[1, 2]] = 28
    atoms.cell[0, 1] = 0.3  # triclinic
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def calc(tmp_path_factory) -> LiequivCalculator:
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    write_potential_checkpoint(path)
    return LiequivCalculator.from_checkpoint(path, dtype=torch.float64)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = write_potential_checkpoint(tmp_path / "best.pt").double().eval()
    calc = LiequivCalculator.from_checkpoint(tmp_path / "best.pt", dtype=torch.float64)
    atoms = _alloy()
    atoms.calc = calc
    from liequiv.data.atoms import collate_atoms

    batch = collate_atoms([{"numbers": torch.tensor(atoms.numbers), "pos": torch.tensor(atoms.positions),
                            "cell": torch.tensor(atoms.cell.array), "pbc": torch.ones(3, dtype=torch.bool)}], 3.5)
    out = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], batch["shifts"])
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"].detach()), abs=1e-12)
    assert np.allclose(atoms.get_potential_energies(), out["node_energy"].detach().numpy(), atol=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    single = LiequivCalculator.from_checkpoint(tmp_path / "best.pt", dtype=torch.float32)
    assert single.get_potential_energy(atoms) == pytest.approx(atoms.get_potential_energy(), abs=1e-4)


def test_forces_and_stress_against_finite_differences(calc: LiequivCalculator) -> None:
    atoms = _alloy(1)
    atoms.calc = calc
    forces = atoms.get_forces()
    for atom, axis in [(0, 0), (1, 2), (3, 1)]:
        assert forces[atom, axis] == pytest.approx(_numeric_force(atoms, atom, axis, 1e-5), abs=1e-7)
    stress = atoms.get_stress()
    numeric = calc.calculate_numerical_stress(atoms, d=1e-5)
    assert np.allclose(stress, numeric, rtol=1e-6, atol=1e-9)
    assert np.abs(stress).min() > 1e-7
    full = atoms.get_stress(voigt=False)  # ASE's order: xx, yy, zz, yz, xz, xy
    assert np.allclose(stress, [full[0, 0], full[1, 1], full[2, 2], full[1, 2], full[0, 2], full[0, 1]])
    assert np.allclose(stress, full_3x3_to_voigt_6_stress(full))


def test_results_are_cached(calc: LiequivCalculator, monkeypatch) -> None:
    atoms = _alloy(2)
    atoms.calc = calc
    calls = []
    forward = calc.model.forward
    monkeypatch.setattr(calc.model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    atoms.get_forces()
    atoms.get_forces()
    atoms.get_potential_energy()
    atoms.get_stress()
    assert len(calls) == 1
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    assert len(calls) == 2


def test_errors(calc: LiequivCalculator, tmp_path: Path) -> None:
    atoms = _alloy()
    atoms.numbers[0] = 26
    with pytest.raises(ValueError, match=r"unknown element\(s\) \[26\]"):
        calc.get_potential_energy(atoms)
    atoms = _alloy()
    atoms.positions[1] = atoms.positions[0] + 0.05
    with pytest.raises(ValueError, match="closer than"):
        calc.get_potential_energy(atoms)
    flat = _alloy()
    flat.cell[2] = flat.cell[0] + flat.cell[1]
    with pytest.raises(ValueError, match="degenerate"):
        calc.get_potential_energy(flat)
    molecule = Atoms("CuNi", positions=[[0, 0, 0], [2.3, 0, 0]])
    molecule.calc = calc
    assert np.isfinite(molecule.get_forces()).all()
    with pytest.raises(PropertyNotImplementedError):
        molecule.get_stress()
    write_potential_checkpoint(tmp_path / "nbody.pt", task="nbody")
    with pytest.raises(ValueError, match="not an interatomic potential"):
        LiequivCalculator.from_checkpoint(tmp_path / "nbody.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(ValueError, match="could not be read"):
        LiequivCalculator.from_checkpoint(tmp_path / "junk.pt")
