"""QM9 (Ramakrishnan et al., Sci. Data 2014): the 130,831 characterized molecules, read from the ``qm9pack`` package.

``qm9pack`` (``pip install liequiv[qm9]``) ships the data as CSV files; they are converted once into a cached npz
(``<cache>/qm9/qm9-<hash>.npz``; ``cache_dir``, ``$LIEQUIV_CACHE`` or ``~/.cache/liequiv``), after which the package
is no longer read. The molecules keep qm9pack's order, which is the ascending GDB-9 index (1 to 133,885 without the
3,054 molecules that failed the paper's consistency check, as Cormorant excludes them).

Arrays of the cache: per atom, concatenated over molecules, ``numbers [A]``, ``positions [A, 3]`` (Å),
``mulliken [A]`` (Mulliken charges, e); per molecule ``offsets [M + 1]`` (molecule m has the atoms
``offsets[m]:offsets[m + 1]``), ``index [M]`` (GDB-9 index), ``smiles [M]`` (fixed-width unicode) and
``targets [M, 12]`` in the order and units of :data:`TARGETS` (EGNN's QM9 table):

    mu D, alpha Bohr³, homo / lumo / gap meV, r2 Bohr², zpve meV, U0 / U / H / G meV, Cv cal/(mol K)

``U0, U, H, G`` are atomization energies: the molecule's energy minus the sum of its atoms' thermochemical reference
energies (:data:`ATOM_REFERENCES`), as Cormorant and EGNN subtract them. Cormorant also subtracts the reference
heat capacity (2.981 cal/(mol K) per atom); here ``Cv`` is the raw value: the difference is a function of the atom
count, which every model sees, so it changes the normalization but not what can be learned.

Split (:func:`qm9_split`): Cormorant's, which EGNN reuses: ``np.random.seed(0); perm = np.random.permutation(M)``
(here with ``np.random.RandomState(0).permutation(M)``, the same legacy Mersenne-Twister stream, without touching
NumPy's global state), then train, valid, test are consecutive blocks of ``perm``: 100,000 / 17,748 / 13,083 for
all 130,831 molecules (test ``int(0.1 M)``, train ``100,000 M // 130,831``, valid the rest; the same formula
for a ``max_molecules`` subset).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from liequiv.data.cache import cache_root, cached_arrays, params_hash

__all__ = ["ATOM_REFERENCES", "HARTREE_MEV", "QM9_MOLECULES", "TARGETS", "QM9Dataset", "collate_qm9", "load_qm9",
           "qm9_data_dir", "qm9_split", "target_index"]

GENERATOR_VERSION = 1  # bump when a change alters the converted numbers (invalidates caches)
QM9_MOLECULES = 130_831
SPLITS = ("train", "valid", "test")
HARTREE_MEV = 27_211.386245988  # meV per Hartree (CODATA 2018; Cormorant's conversion uses 27.2114 eV)
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
CSV_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")

# Single-atom thermochemical reference energies (Hartree) for U0, U (298.15 K), H (298.15 K), G (298.15 K), B3LYP/
# 6-31G(2df,p) as the molecules: the "atomref" table of the QM9 paper (Ramakrishnan et al. 2014, figshare file
# 3195395, "Atomref: Reference thermochemical energies of H, C, N, O, F atoms").
ATOM_REFERENCES = {
    1: (-0.500273, -0.498857, -0.497912, -0.510927),
    6: (-37.846772, -37.845355, -37.844411, -37.861317),
    7: (-54.583861, -54.582445, -54.581501, -54.598897),
    8: (-75.064579, -75.063163, -75.062219, -75.079532),
    9: (-99.718730, -99.717314, -99.716370, -99.733544),
}

# name: (qm9pack column, factor to the unit of EGNN's table, column of ATOM_REFERENCES subtracted or None)
TARGET_COLUMNS = {
    "mu": ("Dipole_debye", 1.0, None),
    "alpha": ("Polarizability_bohr3", 1.0, None),
    "homo": ("HOMO_au", HARTREE_MEV, None),
    "lumo": ("LUMO_au", HARTREE_MEV, None),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_MEV, None),
    "r2": ("R2_bohr2", 1.0, None),
    "zpve": ("ZPVE_au", HARTREE_MEV, None),
    "U0": ("InternalEnergy_0K_au", HARTREE_MEV, 0),
    "U": ("InternalEnergy_298K_au", HARTREE_MEV, 1),
    "H": ("Enthalphy_298K_au", HARTREE_MEV, 2),
    "G": ("GibbsFreeEnergy_298K_au", HARTREE_MEV, 3),
    "Cv": ("Heatcapacity_Cv_cal_mol_K", 1.0, None),
}
TARGETS = tuple(TARGET_COLUMNS)
UNITS = {"mu": "D", "alpha": "Bohr^3", "homo": "meV", "lumo": "meV", "gap": "meV", "r2": "Bohr^2", "zpve": "meV",
         "U0": "meV", "U": "meV", "H": "meV", "G": "meV", "Cv": "cal/(mol K)"}
REQUIRED = ("numbers", "positions", "mulliken", "offsets", "index", "smiles", "targets")


def target_index(name: str) -> int:
    """The column of target ``name`` in ``targets`` (case ignored: "u0" is "U0"); ValueError naming the twelve."""
    lowered = {target.lower(): k for k, target in enumerate(TARGETS)}
    key = str(name).lower()
    if key not in lowered:
        raise ValueError(f"unknown QM9 target {name!r}; choose from {', '.join(TARGETS)}")
    return lowered[key]


def qm9_data_dir() -> Path:
    """The ``data`` folder of the installed ``qm9pack`` (found without importing it: its ``__init__`` needs
    ``pkg_resources``, gone from recent setuptools); ModuleNotFoundError when it is missing."""
    spec = importlib.util.find_spec("qm9pack")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        if all((Path(folder) / "data" / name).is_file() for name in CSV_FILES):
            return Path(folder) / "data"
    raise ModuleNotFoundError("QM9 needs the qm9pack package (its CSV files): pip install liequiv[qm9]")


def _numbers_in(column: Sequence[str]) -> str:
    """The comma-separated numbers of a column of bracketed lists ("[[1.0,2.0],[3.0,4.0]]", ...)."""
    return ",".join(column).replace("[", "").replace("]", "")


def convert_qm9(max_molecules: int | None = None) -> dict[str, np.ndarray]:
    """Read qm9pack's CSV files (the first ``max_molecules`` rows, or all) into the arrays of the module docstring."""
    import pandas as pd

    folder = qm9_data_dir()
    columns = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", "Mulliken_pop",
               *(column for column, _, _ in TARGET_COLUMNS.values())]
    frames, remaining = [], max_molecules
    for name in CSV_FILES:
        if remaining is not None and remaining <= 0:
            break
        frames.append(pd.read_csv(folder / name, usecols=columns, nrows=remaining))
        remaining = None if remaining is None else remaining - len(frames[-1])
    table = pd.concat(frames, ignore_index=True)
    n_atoms = table["N_atoms"].to_numpy(np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    symbols = _numbers_in(table["Elements"]).replace("'", "").replace('"', "").split(",")
    numbers = np.array([ELEMENTS[s.strip()] for s in symbols], dtype=np.int64)
    positions = np.fromstring(_numbers_in(table["XYZ_Ang"]), sep=",").reshape(-1, 3)
    mulliken = np.fromstring(_numbers_in(table["Mulliken_pop"]), sep=",")
    if not len(numbers) == len(positions) == len(mulliken) == offsets[-1]:
        raise RuntimeError(f"qm9pack's atom lists disagree with N_atoms ({len(numbers)} elements, {len(positions)} "
                           f"positions, {len(mulliken)} charges for {offsets[-1]} atoms)")
    molecule = np.repeat(np.arange(len(table)), n_atoms)
    references = np.zeros((len(table), 4))  # Σ_atoms E_ref(z), Hartree, for U0, U, H, G
    for z, energies in ATOM_REFERENCES.items():
        count = np.bincount(molecule[numbers == z], minlength=len(table))
        references += count[:, None] * np.asarray(energies)
    targets = np.empty((len(table), len(TARGETS)))
    for k, (column, factor, reference) in enumerate(TARGET_COLUMNS.values()):
        raw = table[column].to_numpy(np.float64)
        targets[:, k] = factor * (raw if reference is None else raw - references[:, reference])
    return {"numbers": numbers, "positions": positions, "mulliken": mulliken, "offsets": offsets,
            "index": table["Index"].to_numpy(np.int64), "smiles": np.array(table["SMILES"].tolist(), dtype=str),
            "targets": targets}


def _check_max_molecules(max_molecules: int | None) -> int | None:
    if max_molecules is None:
        return None
    if isinstance(max_molecules, bool) or not isinstance(max_molecules, int) or max_molecules < 1:
        raise ValueError(f"max_molecules must be a positive integer or None, got {max_molecules!r}")
    return min(max_molecules, QM9_MOLECULES)


def load_qm9(*, max_molecules: int | None = None, cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The arrays of :func:`convert_qm9`, from ``<cache>/qm9/qm9-<hash>.npz`` or converted and cached there
    (``max_molecules``: only the first molecules, for tests). qm9pack is needed only to convert."""
    max_molecules = _check_max_molecules(max_molecules)
    params = {"source": "qm9pack>=1.0.3", "max_molecules": max_molecules, "targets": TARGETS,
              "version": GENERATOR_VERSION}
    path = cache_root(cache_dir) / "qm9" / f"qm9-{params_hash(params)}.npz"
    what = f"QM9 ({max_molecules or QM9_MOLECULES} molecules from qm9pack)"
    return cached_arrays(path, params, lambda: convert_qm9(max_molecules), REQUIRED, what=what)


def qm9_split(n_molecules: int = QM9_MOLECULES) -> dict[str, np.ndarray]:
    """Molecule indices of train, valid, test (Cormorant's recipe, see the module docstring; not sorted: the
    order of the permutation, so that the first ``k`` training molecules are a random subset)."""
    n_train = n_molecules * 100_000 // QM9_MOLECULES
    n_test = int(0.1 * n_molecules)
    bounds = np.cumsum([0, n_train, n_molecules - n_train - n_test, n_test])
    perm = np.random.RandomState(0).permutation(n_molecules)
    return {split: perm[bounds[k]:bounds[k + 1]] for k, split in enumerate(SPLITS)}


class QM9Dataset(Dataset):
    """The molecules of one QM9 split with one target: items ``{"numbers" [n], "pos" [n, 3] (Å), "mulliken" [n],
    "target" []}`` (the target in the units of :data:`UNITS`, float64). Batch with :func:`collate_qm9`.

    ``train_size`` keeps the first molecules of the training split (in the order of the permutation, as Cormorant's
    ``num_train``); ``max_molecules`` builds everything from the first molecules of the data set only (tests).
    """

    def __init__(self, split: str = "train", target: str = "U0", train_size: int | None = None, *,
                 cache_dir: str | os.PathLike | None = None, max_molecules: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        split = {"val": "valid", "validation": "valid"}.get(split, split)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (or 'val'), got {split!r}")
        column = target_index(target)
        data = load_qm9(max_molecules=max_molecules, cache_dir=cache_dir)
        molecules = qm9_split(len(data["index"]))[split]
        if train_size is not None:
            if split != "train":
                raise ValueError(f"train_size applies to the training split only, got split={split!r}")
            if isinstance(train_size, bool) or not isinstance(train_size, int) or not 1 <= train_size <= len(molecules):
                raise ValueError(f"train_size must be an integer in [1, {len(molecules)}] (the training split), "
                                 f"got {train_size!r}")
            molecules = molecules[:train_size]
        self.split, self.target_name, self.molecules = split, TARGETS[column], molecules
        self.unit = UNITS[self.target_name]
        offsets = data["offsets"]
        self.offsets = torch.from_numpy(offsets)
        self.numbers = torch.from_numpy(data["numbers"])
        self.pos = torch.from_numpy(data["positions"]).to(dtype)
        self.mulliken = torch.from_numpy(data["mulliken"]).to(dtype)
        self.targets = torch.from_numpy(data["targets"][molecules, column])
        self.smiles = data["smiles"][molecules]
        self.n_atoms = torch.from_numpy(offsets[molecules + 1] - offsets[molecules])

    def __len__(self) -> int:
        return len(self.molecules)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        m = int(self.molecules[i])
        atoms = slice(int(self.offsets[m]), int(self.offsets[m + 1]))
        return {"numbers": self.numbers[atoms], "pos": self.pos[atoms], "mulliken": self.mulliken[atoms],
                "target": self.targets[i]}

    def statistics(self) -> tuple[float, float]:
        """``(mean, MAD)`` of the target over these molecules, EGNN's normalization (``MAD = mean |y - mean|``)."""
        mean = self.targets.mean()
        return float(mean), float((self.targets - mean).abs().mean())


def _graph_edges(n_atoms: Tensor, pos: Tensor, cutoff: float | None) -> Tensor:
    """``edge_index [2, E]`` joining every pair of distinct atoms of each molecule (``n_atoms [B]``, atoms in
    order), within ``cutoff`` (Å) when given."""
    ptr = torch.cumsum(n_atoms, 0) - n_atoms  # first atom of each molecule
    molecule = torch.repeat_interleave(torch.arange(len(n_atoms), device=pos.device), n_atoms)
    per_atom = n_atoms[molecule]  # [N]: size of the atom's molecule
    src = torch.repeat_interleave(torch.arange(len(molecule), device=pos.device), per_atom)
    start = torch.cumsum(per_atom, 0) - per_atom
    dst = ptr[molecule[src]] + torch.arange(len(src), device=pos.device) - start.repeat_interleave(per_atom)
    keep = src != dst
    if cutoff is not None:
        keep &= torch.linalg.vector_norm(pos[dst] - pos[src], dim=-1) < cutoff
    return torch.stack([src[keep], dst[keep]])


def collate_qm9(samples: Sequence[Mapping[str, Tensor]], cutoff: float | None = None) -> dict[str, Tensor]:
    """Batch molecules into one PyG-style graph: atoms concatenated (``numbers [N]``, ``pos [N, 3]``,
    ``mulliken [N]``), ``batch [N]``, ``n_atoms [B]``, ``target [B]`` and ``edge_index [2, E]``: all ordered pairs of
    distinct atoms of each molecule (EGNN's and PONITA's QM9 graphs), or only those closer than ``cutoff`` Å (a
    radius graph, for the tensor-product model)."""
    if not samples:
        raise ValueError("cannot collate an empty list of molecules")
    if cutoff is not None and not cutoff > 0:
        raise ValueError(f"cutoff must be positive (Å) or None, got {cutoff}")
    out = {key: torch.cat([s[key] for s in samples]) for key in ("numbers", "pos", "mulliken")}
    out["target"] = torch.stack([s["target"] for s in samples])
    out["n_atoms"] = torch.tensor([len(s["numbers"]) for s in samples])
    out["batch"] = torch.repeat_interleave(torch.arange(len(samples)), out["n_atoms"])
    out["edge_index"] = _graph_edges(out["n_atoms"], out["pos"], cutoff)
    return out
