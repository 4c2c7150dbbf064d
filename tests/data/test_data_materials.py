"""EMT materials frames: determinism and caching, the protocol's structures (kinds, composition, strain, pbc), labels
against a fresh EMT evaluation and the stress against finite strain differences, data sets and batches with stress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from liequiv.data.atoms import AtomsDataset, collate_atoms
from liequiv.data.materials import KINDS, U_300K, MaterialsConfig, load_material, material_datasets, material_frames

TINY = MaterialsConfig(n_frames=12, supercell=1, slab_size=(1, 1, 3), kind_weights=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def cuni(tmp_path_factory) -> tuple[dict, Path]:
    cache = tmp_path_factory.mktemp("cache")
    return load_material("Cu-Ni", TINY, cache_dir=cache, progress=False), cache


def test_deterministic_and_cached(cuni, capsys) -> None:
    arrays, cache = cuni
    again = load_material("cuni", TINY, cache_dir=cache, progress=False)
    assert "generating" not in capsys.readouterr().err  # read from the cache
    for key in arrays:
        assert np.array_equal(arrays[key], again[key]), key
    fresh = load_material("cuni", TINY, cache_dir=cache / "other", progress=False)  # regenerated
    assert all(np.array_equal(arrays[key], fresh[key]) for key in ("positions", "energy", "stress"))
    other = load_material("cuni", MaterialsConfig(**{**TINY.__dict__, "seed": 1}), cache_dir=cache, progress=False)
    assert not np.array_equal(other["energy"], arrays["energy"])


def test_structures_follow_the_protocol(cuni) -> None:
    arrays, _ = cuni
    frames = material_frames(arrays)
    assert len(frames) == 12 and set(arrays["kind"].tolist()) == {0, 1, 2}
    for frame, kind, temperature in zip(frames, arrays["kind"], arrays["temperature"]):
        n = len(frame["numbers"])
        assert n == {"bulk": 4, "vacancy": 3, "surface": 3}[KINDS[kind]]
        assert set(frame["numbers"].tolist()) <= {28, 29}
        assert frame["pbc"].tolist() == ([True, True, False] if KINDS[kind] == "surface" else [True] * 3)
        assert temperature in TINY.temperatures_K
        if KINDS[kind] == "bulk":  # a strained cubic cell of EMT's lattice constant (Vegard's law for the alloy)
            a = np.cbrt(abs(np.linalg.det(frame["cell"])))
            assert 3.49 * 0.9 < a < 3.59 * 1.1
        if KINDS[kind] != "surface":  # L (I + ε) with ε symmetric, |ε_ij| <= 3 %
            cell = frame["cell"]
            assert np.allclose(cell, cell.T, atol=1e-12)
            off = cell[~np.eye(3, dtype=bool)]
            assert np.abs(off).max() <= TINY.max_strain / (1 - TINY.max_strain) * np.diag(cell).min()
        ni = int((frame["numbers"] == 28).sum())
        assert round(0.25 * n) <= ni <= round(0.75 * n)
    # thermal displacements from the strained lattice, in units of u_300 sqrt(T / 300 K): standard normal
    ideal = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    scaled = [(f["positions"] - ideal @ f["cell"]) / (U_300K * np.sqrt(t / 300))
              for f, k, t in zip(frames, arrays["kind"], arrays["temperature"]) if KINDS[k] == "bulk"]
    scaled = np.concatenate(scaled).ravel()
    assert len(scaled) >= 24 and 0.6 < scaled.std() < 1.4 and abs(scaled.mean()) < 0.5
    cu = load_material("cu", TINY, cache_dir=cuni[1], progress=False)
    assert set(cu["numbers"].tolist()) == {29}


def test_labels_are_emt_and_stress_is_the_strain_derivative(cuni) -> None:
    arrays, _ = cuni
    for frame in material_frames(arrays)[:4]:
        atoms = Atoms(numbers=frame["numbers"], positions=frame["positions"], cell=frame["cell"], pbc=frame["pbc"])
        atoms.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(float(frame["energy"]), abs=1e-10)
        assert np.allclose(atoms.get_forces(), frame["forces"], atol=1e-10)
        if atoms.pbc.all():  # ASE's sign: (1/V) dE/dε by central differences
            numeric = atoms.calc.calculate_numerical_stress(atoms, d=1e-6, voigt=False)
            assert np.allclose(frame["stress"], numeric, atol=1e-7)
            assert np.allclose(frame["stress"], frame["stress"].T)


def test_data_sets_and_batches_carry_stress(cuni) -> None:
    _, cache = cuni
    sets = material_datasets("cuni", (6, 3, 3), config=TINY, cache_dir=cache, progress=False)
    assert [len(sets[s]) for s in ("train", "valid", "test")] == [6, 3, 3]
    samples = [sets["train"][i] for i in range(3)]
    batch = collate_atoms(samples, 3.0)
    assert batch["stress"].shape == (3, 3, 3)
    for k in range(3):
        assert np.array_equal(batch["stress"][k].numpy(), samples[k]["stress"].numpy())
    frames = material_frames(load_material("cuni", TINY, cache_dir=cache, progress=False))
    unlabelled = dict(frames[1])
    del unlabelled["stress"]
    with pytest.raises(ValueError, match="stress is given for 1 of 2 frames"):
        AtomsDataset([frames[0], unlabelled])
    with pytest.raises(ValueError, match="unknown material"):
        load_material("steel", TINY, cache_dir=cache)
