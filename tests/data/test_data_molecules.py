"""Molecular data: GFN2-xTB MD generation and cache, atom files, the data set, batches, statistics."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import pytest
import torch

from liequiv.data import molecules
from liequiv.data.atoms import (
    AtomsDataset,
    average_num_neighbors,
    check_frames,
    collate_atoms,
    fit_reference_energies,
    neighbor_list,
    read_atoms_file,
    rms_forces,
    write_extxyz,
)
from liequiv.data.molecules import MOLECULES, MDConfig, load_molecule, molecule_datasets, simulate_md, split_indices

TINY = MDConfig(n_equilibration=20, interval=5, n_frames=6, seed=3)  # 50 steps of ethanol: ~0.2 s


@pytest.fixture(scope="module")
def tiny_ethanol(tmp_path_factory) -> dict:
    """The tiny ethanol run, generated once into a temporary cache; counts calls of the generator."""
    cache = tmp_path_factory.mktemp("cache")
    calls = []
    original = molecules.simulate_md

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(molecules, "simulate_md", counting)
        data = load_molecule("ethanol", TINY, cache_dir=cache, progress=False)
        again = load_molecule("Ethanol", TINY, cache_dir=cache, progress=False)
    return {"data": data, "again": again, "calls": calls, "cache": cache}


def _random_frames(rng: np.random.Generator, sizes: tuple[int, ...], box: float = 6.0) -> list[dict]:
    """Frames of random atoms (H, C, O) at least 0.8 Å apart, with random energies and forces."""
    frames = []
    for n in sizes:
        points = []
        while len(points) < n:
            x = rng.uniform(0, box, 3)
            if all(np.linalg.norm(x - p) > 0.8 for p in points):
                points.append(x)
        frames.append({"numbers": rng.choice([1, 6, 8], n), "positions": np.array(points),
                       "energy": rng.normal(), "forces": rng.normal(size=(n, 3))})
    return frames


def _brute_force_edges(pos: np.ndarray, cutoff: float, cell: np.ndarray | None = None,
                       pbc: np.ndarray | None = None, images: int = 2) -> dict[tuple, np.ndarray]:
    """All (i, j, unit shift) with |pos[j] - pos[i] + shift @ cell| < cutoff, O(N²) over periodic images."""
    cell = np.zeros((3, 3)) if cell is None else cell
    pbc = np.zeros(3, dtype=bool) if pbc is None else pbc
    ranges = [range(-images, images + 1) if p else [0] for p in pbc]
    out = {}
    for shift in itertools.product(*ranges):
        for i, j in itertools.product(range(len(pos)), repeat=2):
            vector = pos[j] - pos[i] + np.array(shift) @ cell
            if (i != j or any(shift)) and np.linalg.norm(vector) < cutoff:
                out[(i, j, *shift)] = vector
    return out


def _edges_of(batch: dict, first: int, last: int) -> dict[tuple, np.ndarray]:
    """The batch's edges among atoms [first, last), keyed as the brute force, with their vectors."""
    src, dst = batch["edge_index"]
    keep = (src >= first) & (src < last)
    vectors = batch["pos"][dst] - batch["pos"][src] + batch["shifts"]
    return {(int(i) - first, int(j) - first, *map(int, s)): v.numpy()
            for i, j, s, v in zip(src[keep], dst[keep], batch["unit_shifts"][keep], vectors[keep])}


# ---------------------------------------------------------------------------------------------------------
# Molecules and MD generation

def test_molecule_table_and_names() -> None:
    from rdkit import Chem

    atom_counts = {"aspirin": 21, "azobenzene": 24, "benzene": 12, "ethanol": 9, "malonaldehyde": 9,
                   "naphthalene": 18, "paracetamol": 20, "salicylic_acid": 16, "toluene": 15, "uracil": 12}
    assert set(MOLECULES) == set(atom_counts)  # the ten rMD17 molecules
    for name, smiles in MOLECULES.items():
        assert Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms() == atom_counts[name], name
    assert molecules.molecule_key("Salicylic acid") == molecules.molecule_key("salicylic") == "salicylic_acid"
    with pytest.raises(ValueError, match=r"unknown molecule 'caffeine'.*aspirin.*uracil"):
        load_molecule("caffeine")
    with pytest.raises(ValueError, match="sizes"):
        split_indices(100, (80, 10, 20))
    with pytest.raises(ValueError, match="n_frames"):
        MDConfig(n_frames=0)


def test_generation_is_cached_and_deterministic(tiny_ethanol, capsys) -> None:
    data, again, calls = tiny_ethanol["data"], tiny_ethanol["again"], tiny_ethanol["calls"]
    assert len(calls) == 1  # the second load read the file
    (path,) = (tiny_ethanol["cache"] / "molecules").glob("ethanol-*.npz")
    for key in ("numbers", "positions", "energy", "forces", "temperature", "step"):
        np.testing.assert_array_equal(again[key], data[key])
    assert "tblite==" in str(data["versions"])
    rerun = simulate_md(MOLECULES["ethanol"], TINY, what="ethanol")  # same seed, no cache: bitwise equal
    for key in rerun:
        np.testing.assert_array_equal(rerun[key], data[key])
    err = capsys.readouterr().err
    assert "ethanol: 6/6 frames (step 50/50)" in err and "ETA" in err
    other = simulate_md(MOLECULES["ethanol"], dataclasses.replace(TINY, seed=4), progress=False)
    assert not np.allclose(other["positions"], data["positions"])
    assert len(path.stem) == len("ethanol-") + 16


def test_generated_arrays(tiny_ethanol) -> None:
    data = tiny_ethanol["data"]
    f = TINY.n_frames
    assert data["numbers"].dtype == np.int64 and sorted(data["numbers"].tolist()) == [1] * 6 + [6, 6, 8]
    assert data["positions"].shape == data["forces"].shape == (f, 9, 3)
    assert data["energy"].shape == data["temperature"].shape == (f,)
    assert data["positions"].dtype == data["energy"].dtype == data["forces"].dtype == np.float64
    assert np.isfinite(data["positions"]).all() and np.isfinite(data["forces"]).all()
    assert np.isfinite(data["energy"]).all()
    np.testing.assert_array_equal(data["step"], TINY.n_equilibration + TINY.interval * np.arange(1, f + 1))
    assert -320 < data["energy"].mean() < -300  # GFN2-xTB ethanol is about -310 eV
    np.testing.assert_allclose(data["forces"].sum(1), 0.0, atol=1e-8)  # the energy is translation-invariant
    bonds = np.linalg.norm(data["positions"][:, :, None] - data["positions"][:, None], axis=-1)
    assert (bonds + 10 * np.eye(9) > 0.8).all() and bonds.max() < 5  # one intact, unexploded molecule


def test_forces_are_minus_energy_gradient(tiny_ethanol) -> None:
    """Stored forces = -dE/dx by central differences of the tblite energy (eV, Å): labels and units."""
    from ase import Atoms

    data = tiny_ethanol["data"]
    frame, h = 2, 1e-3
    calculator_config = dataclasses.replace(TINY, accuracy=0.01)  # tighter SCF for the differences
    atoms = Atoms(numbers=data["numbers"], positions=data["positions"][frame])
    numeric = np.zeros((9, 3))
    with molecules._openmp_threads(1):  # OpenMP threads spin when the cores are busy: 20x slower
        for i, k in itertools.product(range(9), range(3)):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, k] += sign * h
                moved.calc = molecules.xtb_calculator(calculator_config)
                energies.append(moved.get_potential_energy())
            numeric[i, k] = -(energies[0] - energies[1]) / (2 * h)
        atoms.calc = molecules.xtb_calculator(calculator_config)
        np.testing.assert_allclose(atoms.get_potential_energy(), data["energy"][frame], rtol=0, atol=1e-5)
    # measured 6e-5 eV/Å (h² truncation and SCF convergence) against forces of up to ~5 eV/Å
    np.testing.assert_allclose(data["forces"][frame], numeric, rtol=0, atol=3e-4)
    assert np.abs(numeric).max() > 0.5


def test_molecule_datasets_split(tiny_ethanol) -> None:
    splits = molecule_datasets("ethanol", (3, 1, 2), split_seed=1, config=TINY, cache_dir=tiny_ethanol["cache"],
                               progress=False)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3, 1, 2]
    index = split_indices(TINY.n_frames, (3, 1, 2), seed=1)
    assert sorted(np.concatenate(list(index.values())).tolist()) == list(range(6))
    np.testing.assert_array_equal(split_indices(6, (3, 1, 2), seed=1)["train"], index["train"])
    sample = splits["test"][1]
    k = int(index["test"][1])
    np.testing.assert_array_equal(sample["pos"].numpy(), tiny_ethanol["data"]["positions"][k])
    assert sample["pos"].dtype == sample["forces"].dtype == sample["energy"].dtype == torch.float64
    assert float(sample["energy"]) == tiny_ethanol["data"]["energy"][k]
    with pytest.raises(ValueError, match="n_frames"):
        molecule_datasets("ethanol", (5, 1, 2), config=TINY, cache_dir=tiny_ethanol["cache"])


# ---------------------------------------------------------------------------------------------------------
# Files

def test_extxyz_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = _random_frames(rng, (5, 3))
    frames[1]["cell"] = np.diag([7.0, 8.0, 9.0])
    frames[1]["pbc"] = np.array([True, True, False])
    path = tmp_path / "frames.xyz"
    write_extxyz(path, frames)
    text = path.read_text()
    assert "energy=" in text and "forces:R:3" in text  # what ASE, MACE and NequIP read
    read = read_atoms_file(path)
    assert len(read) == 2
    for a, b in zip(frames, read):
        np.testing.assert_array_equal(b["numbers"], a["numbers"])
        np.testing.assert_allclose(b["positions"], a["positions"], atol=1e-8)  # extxyz keeps 8 decimals
        np.testing.assert_allclose(b["forces"], a["forces"], atol=1e-8)
        np.testing.assert_allclose(b["energy"], a["energy"], rtol=1e-12)
    np.testing.assert_array_equal(read[0]["pbc"], [False] * 3)
    np.testing.assert_array_equal(read[0]["cell"], np.zeros((3, 3)))
    np.testing.assert_allclose(read[1]["cell"], frames[1]["cell"])
    np.testing.assert_array_equal(read[1]["pbc"], [True, True, False])
    ref = tmp_path / "ref.xyz"
    write_extxyz(ref, frames, energy_key="REF_energy", forces_key="REF_forces")
    assert "REF_energy=" in ref.read_text()
    for b in (read_atoms_file(ref), read_atoms_file(ref, "REF_energy", "REF_forces")):
        np.testing.assert_allclose(b[0]["energy"], frames[0]["energy"], rtol=1e-12)
    dataset = AtomsDataset.from_file(path, index="1")
    assert len(dataset) == 1 and dataset[0]["pbc"].tolist() == [True, True, False]


def test_missing_and_ambiguous_keys_name_what_was_found(tmp_path) -> None:
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = ase.Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.info["my_energy"] = -14.2
    atoms.arrays["my_forces"] = np.ones((3, 3))
    path = tmp_path / "custom.xyz"
    ase.io.write(path, atoms, format="extxyz")
    with pytest.raises(ValueError, match=r"no energy in frame 0.*my_energy.*my_forces"):
        read_atoms_file(path)
    with pytest.raises(ValueError, match=r"no forces in frame 0.*my_forces"):
        read_atoms_file(path, energy_key="my_energy")
    with pytest.raises(ValueError, match=r"energy_key='E'.*found.*my_energy"):
        read_atoms_file(path, energy_key="E", forces_key="my_forces")
    (frame,) = read_atoms_file(path, energy_key="my_energy", forces_key="my_forces")
    assert frame["energy"] == -14.2 and (frame["forces"] == 1).all()
    # A calculator energy and a different REF_energy: which one is the label is the user's call.
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0, forces=np.zeros((3, 3)))
    atoms.info["REF_energy"] = -14.2
    ase.io.write(path, atoms, format="extxyz")
    with pytest.raises(ValueError, match="several different energy labels"):
        read_atoms_file(path)
    (frame,) = read_atoms_file(path, energy_key="REF_energy")
    assert frame["energy"] == -14.2
    (frame,) = read_atoms_file(path, energy_key="energy")  # the calculator's, as ASE stores energy=
    assert frame["energy"] == -10.0


# ---------------------------------------------------------------------------------------------------------
# Checks of bad input

def test_bad_frames_raise_clear_errors() -> None:
    good = {"numbers": np.array([8, 1, 1]), "positions": np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.0]])}
    close = {"numbers": np.array([6, 1, 1, 1]), "positions": np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0],
                                                                        [1.1, 0.05, 0]])}
    with pytest.raises(ValueError, match=r"frame 1: atoms 1 and 3 are 0.05 Å apart"):
        AtomsDataset([good, close])
    nan = {**good, "positions": np.where(np.eye(3, dtype=bool), np.nan, good["positions"])}
    with pytest.raises(ValueError, match="frame 0: positions has non-finite"):
        check_frames([nan])
    with pytest.raises(ValueError, match=r"frame 0: forces must have shape \[3, 3\]"):
        check_frames([{**good, "forces": np.zeros((2, 3))}])
    with pytest.raises(ValueError, match=r"positions must have shape \[3, 3\]"):
        check_frames([{**good, "positions": np.zeros((4, 3))}])
    with pytest.raises(ValueError, match=r"energy must have shape \[\]"):
        check_frames([{**good, "energy": [1.0, 2.0]}])
    with pytest.raises(TypeError, match="numbers must be a non-empty 1-D integer"):
        check_frames([{**good, "numbers": np.array([8.0, 1.0, 1.0])}])
    with pytest.raises(ValueError, match=r"atomic numbers must lie in \[1, 118\]"):
        check_frames([{**good, "numbers": np.array([8, 0, 1])}])
    with pytest.raises(ValueError, match="missing 'positions'"):
        check_frames([{"numbers": good["numbers"]}])
    with pytest.raises(ValueError, match="energy is given for 1 of 2 frames"):
        AtomsDataset([{**good, "energy": 1.0}, good])
    with pytest.raises(ValueError, match="energy must have 4 frames"):
        AtomsDataset.from_arrays(good["numbers"], np.stack([good["positions"]] * 4), energy=np.zeros(3))
    with pytest.raises(ValueError, match="degenerate"):
        check_frames([{**good, "cell": np.diag([5.0, 5.0, 0.0]), "pbc": [True, True, True]}])
    sample = AtomsDataset([good])[0]
    with pytest.raises(ValueError, match="cutoff must be a positive"):
        collate_atoms([sample], cutoff=-1.0)
    with pytest.raises(TypeError, match="cutoff must be a number"):
        collate_atoms([sample], cutoff="5")
    labelled = AtomsDataset([{**good, "energy": 1.0, "forces": np.zeros((3, 3))}])[0]
    with pytest.raises(ValueError, match="carry energy/forces and others do not"):
        collate_atoms([labelled, sample], cutoff=3.0)


# ---------------------------------------------------------------------------------------------------------
# Batches

def test_collate_matches_brute_force_neighbours() -> None:
    rng = np.random.default_rng(1)
    frames = _random_frames(rng, (11, 7))
    dataset = AtomsDataset(frames)
    cutoff = 3.0
    batch = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=functools.partial(collate_atoms,
                                                                                            cutoff=cutoff))
    (batch,) = list(batch)
    assert batch["pos"].shape == (18, 3) and batch["pos"].dtype == torch.float64
    assert batch["numbers"].dtype == batch["batch"].dtype == batch["edge_index"].dtype == torch.long
    assert batch["batch"].tolist() == [0] * 11 + [1] * 7 and batch["n_atoms"].tolist() == [11, 7]
    np.testing.assert_array_equal(batch["energy"].numpy(), [frames[0]["energy"], frames[1]["energy"]])
    np.testing.assert_array_equal(batch["forces"][11:].numpy(), frames[1]["forces"])
    np.testing.assert_array_equal(batch["numbers"][11:].numpy(), frames[1]["numbers"])
    assert batch["cell"].shape == (2, 3, 3) and batch["pbc"].shape == (2, 3)
    assert not batch["shifts"].any()
    src, dst = batch["edge_index"]
    assert (batch["batch"][src] == batch["batch"][dst]).all()  # no edge between frames
    for frame, (first, last) in zip(frames, ((0, 11), (11, 18))):
        expected = _brute_force_edges(frame["positions"], cutoff)
        got = _edges_of(batch, first, last)
        assert set(got) == set(expected) and len(expected) >= 8
        for key, vector in expected.items():
            np.testing.assert_allclose(got[key], vector, rtol=0, atol=1e-12)
    assert batch["edge_index"].shape[1] == len(_brute_force_edges(frames[0]["positions"], cutoff)) + len(
        _brute_force_edges(frames[1]["positions"], cutoff))


def test_collate_periodic_matches_brute_force() -> None:
    """Shifts are unit_shifts @ cell; a small cell gives edges to an atom's own images."""
    rng = np.random.default_rng(2)
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 4.5, 0.0], [0.5, 0.3, 5.0]])
    frame = _random_frames(rng, (4,), box=3.5)[0]
    frame.update(cell=cell, pbc=np.array([True, True, False]))
    batch = collate_atoms([AtomsDataset(_random_frames(rng, (3,)))[0], AtomsDataset([frame])[0]], cutoff=4.6)
    expected = _brute_force_edges(frame["positions"], 4.6, cell, frame["pbc"], images=3)
    got = _edges_of(batch, 3, 7)
    assert set(got) == set(expected)
    assert any(i == j for i, j, *_ in expected)  # self-images within the cutoff
    for key, vector in expected.items():
        np.testing.assert_allclose(got[key], vector, rtol=0, atol=1e-12)
    np.testing.assert_allclose(batch["shifts"], batch["unit_shifts"] @ torch.from_numpy(cell), atol=1e-12)


def test_isolated_and_single_atoms_collate() -> None:
    frames = [{"numbers": np.array([6, 1, 8]), "positions": np.array([[0, 0, 0], [1.09, 0, 0], [20.0, 0, 0]])},
              {"numbers": np.array([18]), "positions": np.zeros((1, 3))}]
    batch = collate_atoms([AtomsDataset(frames)[0], AtomsDataset(frames)[1]], cutoff=5.0)
    assert batch["edge_index"].tolist() == [[0, 1], [1, 0]]  # atom 2 (and the lone argon) have none
    assert batch["shifts"].shape == (2, 3) and batch["n_atoms"].tolist() == [3, 1]
    lone = collate_atoms([AtomsDataset(frames)[1]], cutoff=5.0)
    assert lone["edge_index"].shape == (2, 0) and lone["edge_index"].dtype == torch.long
    assert lone["shifts"].shape == (0, 3) and "energy" not in lone
    edge_index, unit_shifts = neighbor_list(frames[0]["positions"], 5.0)
    assert edge_index.dtype == unit_shifts.dtype == np.int64


# ---------------------------------------------------------------------------------------------------------
# Statistics

def test_fit_reference_energies_recovers_known_e0() -> None:
    rng = np.random.default_rng(3)
    elements = [1, 6, 7, 8]
    e0 = np.array([-13.6, -1030.0, -1485.0, -2040.0])
    frames = [rng.choice(elements, rng.integers(3, 12)) for _ in range(40)]
    counts = np.array([[np.sum(z == e) for e in elements] for z in frames])
    energies = counts @ e0
    np.testing.assert_allclose(fit_reference_energies(frames, energies, elements), e0, rtol=1e-10)
    np.testing.assert_allclose(fit_reference_energies(frames, energies, [8, 1, 7, 6]), e0[[3, 0, 2, 1]], rtol=1e-10)
    np.testing.assert_allclose(fit_reference_energies(frames, energies), e0, rtol=1e-10)  # elements present
    noisy = energies + rng.normal(scale=0.1, size=len(frames))
    expected = np.linalg.solve(counts.T @ counts, counts.T @ noisy)  # normal equations
    np.testing.assert_allclose(fit_reference_energies(frames, noisy, elements), expected, rtol=1e-9)


def test_fit_reference_energies_single_molecule_is_rank_deficient() -> None:
    """One molecule: the per-element split is arbitrary, but the fit reproduces the mean energy."""
    ethanol = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    energies = -310.0 + np.random.default_rng(4).normal(scale=0.3, size=50)
    e0 = fit_reference_energies([ethanol] * 50, energies, [1, 6, 8])
    counts = np.array([6, 2, 1])
    np.testing.assert_allclose(counts @ e0, energies.mean(), rtol=1e-12)
    np.testing.assert_allclose(e0, counts * energies.mean() / (counts @ counts), rtol=1e-10)  # minimum norm
    dataset = AtomsDataset.from_arrays(ethanol, np.zeros((50, 9, 3)) + 1.5 * np.arange(9)[:, None], energies,
                                       np.zeros((50, 9, 3)))
    np.testing.assert_array_equal(fit_reference_energies(dataset.numbers_per_frame(), dataset.energies(),
                                                         [1, 6, 8]), e0)
    with pytest.raises(ValueError, match=r"elements \[8\] occur"):
        fit_reference_energies([ethanol], energies[:1], [1, 6])
    with pytest.raises(ValueError, match="has 1 frames but energies has 2"):
        fit_reference_energies([ethanol], energies[:2], [1, 6, 8])


def test_average_num_neighbors_and_rms_forces() -> None:
    rng = np.random.default_rng(5)
    frames = _random_frames(rng, (9, 5, 12))
    dataset = AtomsDataset(frames)
    expected = sum(len(_brute_force_edges(f["positions"], 2.5)) for f in frames) / 26
    assert average_num_neighbors(dataset, 2.5) == pytest.approx(expected, rel=1e-12)
    assert average_num_neighbors(dataset.subset([1]), 100.0) == 4  # everyone sees the other four
    forces = np.concatenate([f["forces"] for f in frames])
    assert rms_forces(dataset) == pytest.approx(np.sqrt(np.mean(forces**2)), rel=1e-12)
    constant = AtomsDataset.from_arrays([1, 1], np.array([[[0, 0, 0], [1.0, 0, 0]]] * 3),
                                        energy=np.zeros(3), forces=np.full((3, 2, 3), -2.0))
    assert rms_forces(constant) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no forces"):
        rms_forces(AtomsDataset([{k: frames[0][k] for k in ("numbers", "positions")}]))
