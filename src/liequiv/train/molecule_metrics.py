"""Quality of generated 3D molecules: EDM's stability from bond lengths, and RDKit's validity, uniqueness, novelty.

A molecule is ``elements [n]`` (indices into ``SYMBOLS = (H, C, N, O, F)``) and ``positions [n, 3]`` (Å).

**Stability** (Hoogeboom et al., EDM, 2022). The bond order of each pair of atoms follows from their distance ``d``
and the typical single, double and triple bond lengths of the pair (pm; EDM's tables, from standard tables of
covalent bond lengths): order 1 if ``d < single + 10``, 2 if also ``d < double + 5``, 3 if also ``d < triple + 3``,
else 0. An atom is stable when the sum of its bond orders equals the valence of its element (H 1, C 4, N 3, O 2,
F 1); a molecule is stable when all its atoms are.

    single  H    C    N    O    F          double  C    N    O          triple  C    N    O
    H       74   109  101  96   92         C       134  129  120        C       120  116  113
    C       109  154  147  143  135        N       129  125  121        N       116  110  -
    N       101  147  145  140  136        O       120  121  121        O       113  -    -
    O       96   143  140  148  142
    F       92   135  136  142  142        (no double or triple bonds with H or F)

**RDKit** (Landrum et al.): the molecule is read from an XYZ block, its bonds determined from the geometry with
``rdDetermineBonds.DetermineBonds`` (connectivity, then bond orders for a neutral molecule), and sanitized; a
molecule that fails any step is invalid (nothing raises), and so is one that falls apart into several fragments or
keeps radical electrons (stricter than EDM, which keeps the largest fragment: RDKit turns a cloud of unbonded atoms
into charged ions, ``[C-4].[H+].[H+].[H+].[H+]``, which sanitize). Its SMILES is the canonical SMILES without
stereochemistry of the hydrogen-suppressed molecule. Validity is the fraction of valid molecules, uniqueness the
fraction of distinct SMILES among the valid ones, novelty the fraction of the distinct valid SMILES that are not
among the training SMILES (canonicalized the same way).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from torch import Tensor

from liequiv.generative.molecules import SYMBOLS

__all__ = ["BOND_MARGINS", "DOUBLE_BONDS", "SINGLE_BONDS", "TRIPLE_BONDS", "VALENCES", "atom_stability",
           "bond_orders", "canonical_smiles", "molecule_metrics", "rdkit_molecule", "write_molecules"]

Array = Tensor | np.ndarray

_NONE = -np.inf  # no such bond: no distance is below the threshold
SINGLE_BONDS = np.array([[74, 109, 101, 96, 92],
                         [109, 154, 147, 143, 135],
                         [101, 147, 145, 140, 136],
                         [96, 143, 140, 148, 142],
                         [92, 135, 136, 142, 142]], dtype=float)
DOUBLE_BONDS = np.full((5, 5), _NONE)
DOUBLE_BONDS[1:4, 1:4] = [[134, 129, 120], [129, 125, 121], [120, 121, 121]]
TRIPLE_BONDS = np.full((5, 5), _NONE)
TRIPLE_BONDS[1:4, 1:4] = [[120, 116, 113], [116, 110, _NONE], [113, _NONE, _NONE]]
BOND_MARGINS = (10.0, 5.0, 3.0)  # pm, added to the single, double, triple lengths
VALENCES = np.array([1, 4, 3, 2, 1])


def _as_numpy(elements: Array, positions: Array) -> tuple[np.ndarray, np.ndarray]:
    elements = np.asarray(elements.detach().cpu() if isinstance(elements, Tensor) else elements)
    positions = np.asarray(positions.detach().cpu() if isinstance(positions, Tensor) else positions, dtype=float)
    if elements.ndim != 1 or not np.issubdtype(elements.dtype, np.integer):
        raise TypeError(f"elements must be integers [n] (indices into {SYMBOLS}), got {elements.dtype} "
                        f"{list(elements.shape)}")
    if elements.size and not 0 <= elements.min() <= elements.max() < len(SYMBOLS):
        raise ValueError(f"elements must be indices in [0, {len(SYMBOLS)}) into {SYMBOLS}")
    if positions.shape != (len(elements), 3):
        raise ValueError(f"positions must have shape [n, 3] = [{len(elements)}, 3], got {list(positions.shape)}")
    return elements, positions


def bond_orders(elements: Array, positions: Array) -> np.ndarray:
    """EDM's bond orders ``[n, n]`` (0 to 3, zero diagonal) from the distances (module docstring)."""
    elements, positions = _as_numpy(elements, positions)
    distance = 100 * np.linalg.norm(positions[:, None] - positions[None], axis=-1)  # pm
    pair = np.ix_(elements, elements)
    single, double, triple = (table[pair] + margin for table, margin in
                              zip((SINGLE_BONDS, DOUBLE_BONDS, TRIPLE_BONDS), BOND_MARGINS, strict=True))
    orders = ((distance < single).astype(int) * (1 + (distance < double) * (1 + (distance < triple))))
    np.fill_diagonal(orders, 0)
    return orders


def atom_stability(elements: Array, positions: Array) -> np.ndarray:
    """Whether each atom's bond orders sum to its element's valence, ``bool [n]``."""
    elements, positions = _as_numpy(elements, positions)
    return bond_orders(elements, positions).sum(1) == VALENCES[elements]


def rdkit_molecule(elements: Array, positions: Array):  # -> rdkit.Chem.Mol | None
    """The sanitized RDKit molecule with bonds determined from the geometry, or ``None`` where RDKit fails or the
    result is not one connected closed-shell molecule (module docstring)."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.rdBase import BlockLogs

    elements, positions = _as_numpy(elements, positions)
    if not len(elements):
        return None
    try:
        with BlockLogs():
            mol = Chem.MolFromXYZBlock(_xyz_block(elements, positions))
            rdDetermineBonds.DetermineBonds(mol, charge=0)
            Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises ValueError, RuntimeError or its own sanitization errors
        return None
    connected = len(Chem.GetMolFrags(mol)) == 1
    return mol if connected and not any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()) else None


def canonical_smiles(mol) -> str:  # mol: rdkit.Chem.Mol
    """Canonical SMILES of ``mol`` without hydrogens and without stereochemistry."""
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False)


def _canonical_training_smiles(smiles: Iterable[str]) -> set[str]:
    from rdkit import Chem
    from rdkit.rdBase import BlockLogs

    with BlockLogs():
        mols = [Chem.MolFromSmiles(s) for s in smiles]
    return {Chem.MolToSmiles(m, isomericSmiles=False) for m in mols if m is not None}


def molecule_metrics(elements_list: Sequence[Array], positions_list: Sequence[Array],
                     training_smiles: Iterable[str] | None = None) -> dict[str, float]:
    """Metrics of molecules (``elements_list[i] [n_i]``, ``positions_list[i] [n_i, 3]`` Å), module docstring:
    ``atom_stability``, ``molecule_stability``, ``validity``, ``uniqueness`` and, with ``training_smiles``,
    ``novelty``, all fractions in ``[0, 1]`` (``nan`` where nothing is counted)."""
    if len(elements_list) != len(positions_list):
        raise ValueError(f"elements_list and positions_list must have the same length, got {len(elements_list)} "
                         f"and {len(positions_list)}")
    stable_atoms = [atom_stability(e, p) for e, p in zip(elements_list, positions_list, strict=True)]
    mols = [rdkit_molecule(e, p) for e, p in zip(elements_list, positions_list, strict=True)]
    smiles = [canonical_smiles(m) for m in mols if m is not None]
    unique = set(smiles)
    atoms = np.concatenate(stable_atoms) if stable_atoms else np.zeros(0, bool)
    metrics = {"atom_stability": _fraction(atoms.sum(), atoms.size),
               "molecule_stability": _fraction(sum(s.size > 0 and s.all() for s in stable_atoms), len(stable_atoms)),
               "validity": _fraction(len(smiles), len(mols)),
               "uniqueness": _fraction(len(unique), len(smiles))}
    if training_smiles is not None:
        metrics["novelty"] = _fraction(len(unique - _canonical_training_smiles(training_smiles)), len(unique))
    return metrics


def _fraction(count: int, total: int) -> float:
    return float(count) / total if total else float("nan")


def _xyz_block(elements: np.ndarray, positions: np.ndarray, comment: str = "") -> str:
    lines = [str(len(elements)), comment]
    lines += [f"{SYMBOLS[e]} {x:.6f} {y:.6f} {z:.6f}" for e, (x, y, z) in zip(elements, positions, strict=True)]
    return "\n".join(lines) + "\n"


def write_molecules(path: str | os.PathLike, elements_list: Sequence[Array], positions_list: Sequence[Array]) -> None:
    """Write molecules to ``path``: ``.xyz`` (one XYZ block each, concatenated) or ``.sdf`` (RDKit, with the bonds
    determined as for validity; an invalid molecule is written with its atoms and no bonds)."""
    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    if suffix not in ("xyz", "sdf"):
        raise ValueError(f"path must end in .xyz or .sdf, got {os.fspath(path)!r}")
    if len(elements_list) != len(positions_list):
        raise ValueError(f"elements_list and positions_list must have the same length, got {len(elements_list)} "
                         f"and {len(positions_list)}")
    molecules = [_as_numpy(e, p) for e, p in zip(elements_list, positions_list, strict=True)]
    if suffix == "xyz":
        with open(path, "w") as f:
            f.writelines(_xyz_block(e, p, f"molecule {i}") for i, (e, p) in enumerate(molecules))
        return
    from rdkit import Chem

    with Chem.SDWriter(os.fspath(path)) as writer:
        for e, p in molecules:
            writer.write(rdkit_molecule(e, p) or Chem.MolFromXYZBlock(_xyz_block(e, p)))
