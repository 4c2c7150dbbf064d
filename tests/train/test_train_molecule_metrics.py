"""Molecule metrics: EDM's bond orders and stability on molecules of known geometry, RDKit validity and SMILES,
uniqueness and novelty, broken molecules counted invalid without raising, the QM9 data itself, file output."""

import importlib.util
import math

import numpy as np
import pytest
import torch

from liequiv.data.qm9 import load_qm9
from liequiv.generative.molecules import element_index
from liequiv.train.molecule_metrics import (
    atom_stability,
    bond_orders,
    canonical_smiles,
    molecule_metrics,
    rdkit_molecule,
    write_molecules,
)

H, C, N, O = 0, 1, 2, 3


def water():
    """Experimental geometry: O-H 0.9572 Å, H-O-H 104.52°."""
    half = math.radians(104.52) / 2
    pos = [[0, 0, 0], [0.9572 * math.sin(half), 0.9572 * math.cos(half), 0],
           [-0.9572 * math.sin(half), 0.9572 * math.cos(half), 0]]
    return np.array([O, H, H]), np.array(pos)


def methane():
    """C-H 1.087 Å, tetrahedral."""
    corners = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / math.sqrt(3)
    return np.array([C, H, H, H, H]), np.vstack([np.zeros(3), 1.087 * corners])


def ethylene():
    """C=C 1.339 Å, C-H 1.087 Å, H-C-H 117.4°, planar."""
    half = math.radians(117.4) / 2
    dx, dy = 1.087 * math.cos(half), 1.087 * math.sin(half)
    pos = [[-0.6695, 0, 0], [0.6695, 0, 0], [-0.6695 - dx, dy, 0], [-0.6695 - dx, -dy, 0], [0.6695 + dx, dy, 0],
           [0.6695 + dx, -dy, 0]]
    return np.array([C, C, H, H, H, H]), np.array(pos)


def hydrogen_cyanide():
    """H-C 1.066 Å, C≡N 1.156 Å, linear."""
    return np.array([H, C, N]), np.array([[-1.066, 0, 0], [0, 0, 0], [1.156, 0, 0]])


def test_bond_orders_of_known_molecules():
    elements, pos = ethylene()
    orders = bond_orders(elements, pos)
    expected = np.zeros((6, 6), int)
    for i, j, order in [(0, 1, 2), (0, 2, 1), (0, 3, 1), (1, 4, 1), (1, 5, 1)]:
        expected[i, j] = expected[j, i] = order
    np.testing.assert_array_equal(orders, expected)
    orders = bond_orders(*hydrogen_cyanide())
    np.testing.assert_array_equal(orders, [[0, 1, 0], [1, 0, 3], [0, 3, 0]])


@pytest.mark.parametrize(("molecule", "smiles"),
                         [(water, "O"), (methane, "C"), (ethylene, "C=C"), (hydrogen_cyanide, "C#N")])
def test_known_molecules_are_stable_and_valid(molecule, smiles):
    elements, pos = molecule()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))  # any rotation or reflection, any place
    for moved in (pos, pos @ q.T + [3.0, -1.0, 7.0]):
        assert atom_stability(elements, moved).all()
        mol = rdkit_molecule(torch.from_numpy(elements), torch.from_numpy(moved))
        assert mol is not None and canonical_smiles(mol) == smiles


def test_broken_molecules_are_unstable_and_invalid():
    elements, pos = methane()
    stacked = np.zeros_like(pos)  # all atoms on one point
    stretched = 3 * pos  # no bonds at all
    rng = np.random.default_rng(1)
    random = [(rng.integers(0, 5, 15), 2 * rng.normal(size=(15, 3))) for _ in range(20)]
    metrics = molecule_metrics([elements, elements] + [e for e, _ in random], [stacked, stretched] +
                               [p for _, p in random])
    assert not atom_stability(elements, stacked)[1:].any() and not atom_stability(elements, stretched).any()
    assert rdkit_molecule(elements, stacked) is None and rdkit_molecule(elements, stretched) is None
    assert metrics["molecule_stability"] == 0 and metrics["validity"] == 0 and metrics["atom_stability"] < 0.3
    assert math.isnan(metrics["uniqueness"])  # no valid molecule to count


def test_uniqueness_and_novelty():
    molecules = [water(), water(), methane(), ethylene()]
    metrics = molecule_metrics([e for e, _ in molecules], [p for _, p in molecules],
                               training_smiles=["[H]O[H]", "CC", "not a smiles"])
    assert metrics["atom_stability"] == 1 and metrics["molecule_stability"] == 1 and metrics["validity"] == 1
    assert metrics["uniqueness"] == pytest.approx(3 / 4)  # O, C, C=C
    assert metrics["novelty"] == pytest.approx(2 / 3)  # water is in the training set, written otherwise
    assert "novelty" not in molecule_metrics([water()[0]], [water()[1]])


@pytest.fixture(scope="module")
def qm9_molecules():
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed (pip install liequiv[qm9])")
    data = load_qm9(max_molecules=200)
    offsets = data["offsets"]
    atoms = [slice(offsets[m], offsets[m + 1]) for m in range(200)]
    elements = [element_index(torch.from_numpy(data["numbers"][a]).long()).numpy() for a in atoms]
    return elements, [data["positions"][a] for a in atoms], [str(s) for s in data["smiles"]]


def test_qm9_molecules_are_stable_and_valid(qm9_molecules):
    """The data are stable by EDM's tables (EDM reports 99.0 % of the atoms and 95.2 % of the molecules of QM9) and
    valid, and RDKit's SMILES of the geometries agree with QM9's own SMILES."""
    from rdkit import Chem

    elements, positions, smiles = qm9_molecules
    metrics = molecule_metrics(elements, positions, training_smiles=smiles[:100])
    assert metrics["atom_stability"] > 0.99 and metrics["molecule_stability"] > 0.95
    assert metrics["validity"] > 0.97 and metrics["uniqueness"] == 1
    assert 0.45 < metrics["novelty"] < 0.55  # the last 100 of 200 distinct molecules are new
    agree = [canonical_smiles(mol) == Chem.MolToSmiles(Chem.MolFromSmiles(s), isomericSmiles=False)
             for e, p, s in zip(elements, positions, smiles, strict=True) if (mol := rdkit_molecule(e, p)) is not None]
    assert np.mean(agree) > 0.95


def test_write_molecules(tmp_path):
    from rdkit import Chem

    molecules = [water(), methane()]
    elements, positions = [e for e, _ in molecules], [p for _, p in molecules]
    write_molecules(tmp_path / "out.xyz", elements, positions)
    lines = (tmp_path / "out.xyz").read_text().splitlines()
    assert lines[0] == "3" and lines[2].split()[0] == "O" and lines[5] == "5" and len(lines) == 3 + 2 + 5 + 2
    assert np.allclose([float(v) for v in lines[3].split()[1:]], positions[0][1], atol=1e-6)
    write_molecules(tmp_path / "out.sdf", [*elements, np.array([C, C])], [*positions, np.zeros((2, 3))])
    read = list(Chem.SDMolSupplier(str(tmp_path / "out.sdf"), removeHs=False))
    assert [m.GetNumAtoms() for m in read] == [3, 5, 2] and [m.GetNumBonds() for m in read] == [2, 4, 0]
    with pytest.raises(ValueError, match=r"\.xyz or \.sdf"):
        write_molecules(tmp_path / "out.pdb", elements, positions)


def test_bad_inputs():
    elements, pos = water()
    with pytest.raises(ValueError, match="positions must have shape"):
        atom_stability(elements, pos[:2])
    with pytest.raises(ValueError, match="indices in"):
        bond_orders(np.array([0, 7, 1]), pos)
    with pytest.raises(TypeError, match="elements must be integers"):
        bond_orders(pos[:, 0], pos)
    with pytest.raises(ValueError, match="same length"):
        molecule_metrics([elements], [pos, pos])
