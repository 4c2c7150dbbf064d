"""QM9 from qm9pack: conversion of units and atomization energies, the Cormorant/EGNN split, the data set, collation.

Tests that read the data build a cache of the first molecules only and skip when qm9pack is not installed.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from liequiv.data import qm9
from liequiv.data.qm9 import QM9Dataset, collate_qm9, load_qm9, qm9_split

N_SUBSET = 300
# the twelve targets of EGNN's table: qm9pack column and the factor to the table's unit ("ha" = Hartree -> meV)
SPEC = {"mu": ("Dipole_debye", 1), "alpha": ("Polarizability_bohr3", 1), "homo": ("HOMO_au", "ha"),
        "lumo": ("LUMO_au", "ha"), "gap": ("HOMO_LUMO_gap_au", "ha"), "r2": ("R2_bohr2", 1), "zpve": ("ZPVE_au", "ha"),
        "U0": ("InternalEnergy_0K_au", "ha"), "U": ("InternalEnergy_298K_au", "ha"), "H": ("Enthalphy_298K_au", "ha"),
        "G": ("GibbsFreeEnergy_298K_au", "ha"), "Cv": ("Heatcapacity_Cv_cal_mol_K", 1)}
# QM9 paper's atomref table (Hartree): U0, U, H, G of the free atoms
ATOMREF = {"H": (-0.500273, -0.498857, -0.497912, -0.510927), "C": (-37.846772, -37.845355, -37.844411, -37.861317)}


@pytest.fixture(scope="module")
def csv_rows() -> list[dict[str, str]]:
    """The first rows of qm9pack's first CSV file, read with the csv module (skips without qm9pack)."""
    try:
        folder = qm9.qm9_data_dir()
    except ModuleNotFoundError:
        pytest.skip("qm9pack is not installed (pip install liequiv[qm9])")
    with open(folder / "qm9_part1.csv", newline="") as f:
        reader = csv.DictReader(f)
        return [next(reader) for _ in range(N_SUBSET)]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, csv_rows) -> str:
    path = tmp_path_factory.mktemp("qm9-cache")
    load_qm9(max_molecules=N_SUBSET, cache_dir=path)
    return str(path)


@pytest.fixture(scope="module")
def arrays(cache_dir) -> dict[str, np.ndarray]:
    return load_qm9(max_molecules=N_SUBSET, cache_dir=cache_dir)


def test_hartree_to_mev_is_codata():
    scipy_constants = pytest.importorskip("scipy.constants")
    hartree_ev = scipy_constants.physical_constants["Hartree energy in eV"][0]
    assert qm9.HARTREE_MEV == pytest.approx(1000 * hartree_ev, rel=1e-12)


def test_methane_atoms_and_positions(csv_rows, arrays):
    row = csv_rows[0]
    assert row["SMILES"] == "C" and arrays["smiles"][0] == "C" and arrays["index"][0] == 1
    lo, hi = arrays["offsets"][:2]
    assert (lo, hi) == (0, 5)
    np.testing.assert_array_equal(arrays["numbers"][lo:hi], [6, 1, 1, 1, 1])
    np.testing.assert_array_equal(arrays["positions"][lo:hi], np.array(json.loads(row["XYZ_Ang"])))
    np.testing.assert_array_equal(arrays["mulliken"][lo:hi], json.loads(row["Mulliken_pop"]))


def test_methane_targets_in_egnn_units(csv_rows, arrays):
    row = csv_rows[0]
    hartree_mev = 27.211386245988 * 1000
    ch4 = [ATOMREF["C"][k] + 4 * ATOMREF["H"][k] for k in range(4)]
    expected = {}
    for name, (column, factor) in SPEC.items():
        raw = float(row[column])
        if name in ("U0", "U", "H", "G"):
            raw -= ch4[("U0", "U", "H", "G").index(name)]
        expected[name] = raw * (hartree_mev if factor == "ha" else 1)
    got = dict(zip(qm9.TARGETS, arrays["targets"][0]))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-9)
    u0 = (float(row["InternalEnergy_0K_au"]) - 4 * -0.500273 - -37.846772) * hartree_mev
    assert got["U0"] == pytest.approx(u0, rel=1e-12)
    assert -17.3e3 < got["U0"] < -17.0e3  # methane binds with about 17.2 eV


def test_every_molecule_against_its_csv_row(csv_rows, arrays):
    """Counts, elements and a target of every molecule of the subset, from the rows read independently."""
    n_atoms = np.diff(arrays["offsets"])
    for m, row in enumerate(csv_rows):
        assert n_atoms[m] == int(row["N_atoms"]) and arrays["smiles"][m] == row["SMILES"]
        elements = row["Elements"].strip("[]").replace("'", "").split(",")
        numbers = [{"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}[e] for e in elements]
        np.testing.assert_array_equal(arrays["numbers"][arrays["offsets"][m]:arrays["offsets"][m + 1]], numbers)
        assert arrays["targets"][m, qm9.target_index("gap")] == pytest.approx(
            float(row["HOMO_LUMO_gap_au"]) * 27211.386245988, rel=1e-12)
        assert arrays["targets"][m, qm9.target_index("alpha")] == float(row["Polarizability_bohr3"])


def test_cache_is_reused(cache_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("converted again although the cache holds the data")

    monkeypatch.setattr(qm9, "convert_qm9", refuse)
    assert load_qm9(max_molecules=N_SUBSET, cache_dir=cache_dir)["targets"].shape == (N_SUBSET, 12)


def test_missing_qm9pack_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(qm9.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install liequiv\[qm9\]"):
        load_qm9(max_molecules=3, cache_dir=tmp_path)


def test_standard_split_sizes_disjoint_and_cormorant_permutation():
    splits = qm9_split()
    assert {k: len(v) for k, v in splits.items()} == {"train": 100_000, "valid": 17_748, "test": 13_083}
    everything = np.concatenate([splits["train"], splits["valid"], splits["test"]])
    np.testing.assert_array_equal(np.sort(everything), np.arange(130_831))
    state = np.random.get_state()  # noqa: NPY002
    try:  # Cormorant's recipe, literally
        np.random.seed(0)  # noqa: NPY002
        perm = np.random.permutation(130_831)  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    np.testing.assert_array_equal(everything, perm)
    again = qm9_split()
    assert all(np.array_equal(again[k], splits[k]) for k in splits)


def test_subset_split_follows_the_same_recipe():
    splits = qm9_split(N_SUBSET)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 229, "valid": 41, "test": 30}  # 300 * 100000 // 130831, rest, int(0.1 * 300)
    assert len(np.unique(np.concatenate(list(splits.values())))) == N_SUBSET


def test_dataset_items_targets_and_train_size(cache_dir, arrays):
    sets = {split: QM9Dataset(split, "homo", cache_dir=cache_dir, max_molecules=N_SUBSET)
            for split in ("train", "valid", "test")}
    assert [len(s) for s in sets.values()] == [229, 41, 30]
    molecules = [set(s.molecules.tolist()) for s in sets.values()]
    assert not (molecules[0] & molecules[1] or molecules[0] & molecules[2] or molecules[1] & molecules[2])
    m = int(sets["valid"].molecules[3])
    item = sets["valid"][3]
    lo, hi = arrays["offsets"][m], arrays["offsets"][m + 1]
    assert item["numbers"].dtype == torch.long and item["pos"].shape == (hi - lo, 3)
    np.testing.assert_array_equal(item["numbers"].numpy(), arrays["numbers"][lo:hi])
    np.testing.assert_allclose(item["pos"].numpy(), arrays["positions"][lo:hi], atol=1e-6)
    assert float(item["target"]) == arrays["targets"][m, 2]
    small = QM9Dataset("train", "homo", train_size=50, cache_dir=cache_dir, max_molecules=N_SUBSET)
    np.testing.assert_array_equal(small.molecules, sets["train"].molecules[:50])


def test_normalization_is_mean_and_mad_of_the_split(cache_dir, arrays):
    data = QM9Dataset("train", "Cv", cache_dir=cache_dir, max_molecules=N_SUBSET)
    values = arrays["targets"][qm9_split(N_SUBSET)["train"], 11]
    mean, mad = data.statistics()
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert mad == pytest.approx(np.abs(values - values.mean()).mean(), rel=1e-12)


def test_bad_input(cache_dir):
    with pytest.raises(ValueError, match="mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv"):
        QM9Dataset("train", "energy", cache_dir=cache_dir, max_molecules=N_SUBSET)
    with pytest.raises(ValueError, match="train_size"):
        QM9Dataset("train", "U0", train_size=230, cache_dir=cache_dir, max_molecules=N_SUBSET)
    with pytest.raises(ValueError, match="training split only"):
        QM9Dataset("test", "U0", train_size=10, cache_dir=cache_dir, max_molecules=N_SUBSET)
    with pytest.raises(ValueError, match="split"):
        QM9Dataset("holdout", "U0", cache_dir=cache_dir, max_molecules=N_SUBSET)
    with pytest.raises(ValueError, match="max_molecules"):
        load_qm9(max_molecules=0, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="empty"):
        collate_qm9([])
    assert QM9Dataset("train", "u0", cache_dir=cache_dir, max_molecules=N_SUBSET).target_name == "U0"


@pytest.mark.parametrize("cutoff", [None, 2.0])
def test_collate_graphs_against_brute_force(cache_dir, cutoff):
    data = QM9Dataset("test", "mu", cache_dir=cache_dir, max_molecules=N_SUBSET)
    samples = [data[i] for i in range(6)]
    batch = collate_qm9(samples, cutoff=cutoff)
    expected, start = set(), 0
    for s in samples:
        n = len(s["numbers"])
        distance = torch.cdist(s["pos"].double(), s["pos"].double())
        expected |= {(start + i, start + j) for i in range(n) for j in range(n)
                     if i != j and (cutoff is None or distance[i, j] < cutoff)}
        start += n
    got = list(map(tuple, batch["edge_index"].T.tolist()))
    assert len(got) == len(set(got)) and set(got) == expected
    sizes = [len(s["numbers"]) for s in samples]
    np.testing.assert_array_equal(batch["batch"].numpy(), np.repeat(np.arange(6), sizes))
    assert batch["target"].shape == (6,) and batch["pos"].shape == (sum(sizes), 3)
