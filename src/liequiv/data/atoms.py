"""Atomistic frames: reading and writing files, checks, a torch data set, batches with neighbour lists, statistics.

A *frame* is a dict of numpy arrays in ASE's units (eV, Å, eV/Å): ``numbers [n] int64``, ``positions [n, 3]``,
``cell [3, 3]`` and ``pbc [3] bool`` (zeros and False for a molecule), and the labels ``energy []``,
``forces [n, 3]`` and, for periodic frames that have it, ``stress [3, 3]`` (eV/Å³, ASE's sign) (float64).
:func:`read_atoms_file` reads them from extended XYZ or any file ASE reads;
:func:`write_extxyz` writes them so that ASE, MACE and NequIP read them back (``energy=`` in the comment line,
a ``forces`` column).

Batches (:func:`collate_atoms`) follow PyTorch Geometric: the frames' atoms are concatenated, ``batch [N]``
names each atom's frame, ``edge_index [2, E]`` sends messages from ``edge_index[0]`` to ``edge_index[1]``,
and an edge's vector is ``pos[edge_index[1]] - pos[edge_index[0]] + shifts`` with ``shifts = unit_shifts @ cell``
(zero for molecules). Neighbour lists come from vesin (full lists: both directions of each pair, and the
periodic images of an atom itself where the cell is small); a vesin pair ``(i, j, S)`` is the edge
``(i, j)`` with ``unit_shifts = S``. Data stay float64; models cast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import vesin
from torch import Tensor
from torch.utils.data import Dataset

MIN_DISTANCE = 0.1  # Å: closer atoms are an error in the data (a duplicated atom, a unit mistake)
ENERGY_KEYS = ("energy", "REF_energy", "Energy")  # looked up in atoms.info when no energy_key is given
FORCES_KEYS = ("forces", "REF_forces")  # looked up in atoms.arrays when no forces_key is given
LABELS = ("energy", "forces", "stress")  # per-frame labels: a data set or batch has each for all frames or none


# ----------------------------------------------------------------------------------------------------------
# Frames: checks, reading, writing.

def _as_frame(frame: Mapping, index: int) -> dict[str, np.ndarray]:
    """Convert ``frame`` to the canonical numpy frame and check shapes, values and distances."""
    where = f"frame {index}"
    if not isinstance(frame, Mapping):
        raise TypeError(f"{where}: a frame must be a mapping of arrays, got {type(frame).__name__}")
    for key in ("numbers", "positions"):
        if key not in frame:
            raise ValueError(f"{where}: missing {key!r} (has {sorted(frame)})")
    numbers = np.asarray(frame["numbers"])
    if numbers.ndim != 1 or numbers.size == 0 or not np.issubdtype(numbers.dtype, np.integer):
        raise TypeError(f"{where}: numbers must be a non-empty 1-D integer array, got {numbers.dtype} "
                        f"{list(numbers.shape)}")
    n = numbers.shape[0]
    if numbers.min() < 1 or numbers.max() > 118:
        raise ValueError(f"{where}: atomic numbers must lie in [1, 118], got [{numbers.min()}, {numbers.max()}]")
    out = {"numbers": numbers.astype(np.int64)}
    shapes = {"positions": (n, 3), "forces": (n, 3), "energy": (), "stress": (3, 3), "cell": (3, 3), "pbc": (3,)}
    for key, shape in shapes.items():
        if key not in frame or frame[key] is None:
            continue
        value = np.asarray(frame[key], dtype=bool if key == "pbc" else np.float64)
        if value.shape != shape:
            raise ValueError(f"{where}: {key} must have shape {list(shape)} for {n} atoms, got {list(value.shape)}")
        if key != "pbc" and not np.isfinite(value).all():
            raise ValueError(f"{where}: {key} has non-finite values")
        out[key] = value
    out.setdefault("cell", np.zeros((3, 3)))
    out.setdefault("pbc", np.zeros(3, dtype=bool))
    periodic = out["cell"][out["pbc"]]
    if len(periodic) and np.linalg.matrix_rank(periodic, tol=1e-6) < len(periodic):
        raise ValueError(f"{where}: the cell vectors of the periodic directions {out['pbc'].tolist()} are "
                         f"degenerate: {out['cell'].tolist()}")
    # vesin's cell grid has cells of the cutoff's size: a 0.1 Å cutoff would make ~10⁶ cells (8 ms a molecule)
    i, j, d = _pairs(out["positions"], 1.0, out["cell"], out["pbc"], "ijd", full=False)
    close = d < MIN_DISTANCE
    i, j, d = i[close], j[close], d[close]
    if len(i):
        k = int(np.argmin(d))
        raise ValueError(f"{where}: atoms {int(i[k])} and {int(j[k])} are {d[k]:.3g} Å apart (less than "
                         f"{MIN_DISTANCE} Å; {len(i)} such pairs): duplicated atoms or positions not in Å?")
    return out


def check_frames(frames: Iterable[Mapping]) -> list[dict[str, np.ndarray]]:
    """Canonical frames (numpy, float64, with ``cell`` and ``pbc``) from mappings, each checked.

    Raises TypeError/ValueError naming the frame (and atoms) for: missing ``numbers``/``positions``, atomic
    numbers outside [1, 118], shapes that do not match the atom count, non-finite values, a degenerate
    periodic cell, and two atoms (or an atom and a periodic image) closer than 0.1 Å.
    """
    return [_as_frame(frame, index) for index, frame in enumerate(frames)]


def _label(kind: str, key: str | None, candidates: Sequence[str], store: Mapping, results: Mapping,
           index: int, path: os.PathLike | str, found: str) -> np.ndarray:
    """One label of one frame: ``store[key]`` or the calculator's ``results[kind]`` (see read_atoms_file)."""
    if key is not None:
        if key in store:
            return np.asarray(store[key], dtype=np.float64)
        if key in results:  # ASE moves extxyz energy=, forces, free_energy, ... into a SinglePointCalculator
            return np.asarray(results[key], dtype=np.float64)
        raise ValueError(f"{kind}_key={key!r} is not in frame {index} of {path}; found {found}")
    hits = [("calculator", np.asarray(results[kind], dtype=np.float64))] if kind in results else []
    hits += [(name, np.asarray(store[name], dtype=np.float64)) for name in candidates if name in store]
    if not hits:
        raise ValueError(f"no {kind} in frame {index} of {path} (looked for the calculator's {kind} and "
                         f"{list(candidates)}); found {found}; pass {kind}_key=")
    first = hits[0][1]
    for _, value in hits[1:]:
        if value.shape != first.shape or not np.allclose(value, first, rtol=1e-10, atol=0):
            raise ValueError(f"frame {index} of {path} has several different {kind} labels "
                             f"({[h[0] for h in hits]}); pass {kind}_key= to choose one")
    return first


def read_atoms_file(path: str | os.PathLike, energy_key: str | None = None, forces_key: str | None = None,
                    index: str | int | slice = ":") -> list[dict[str, np.ndarray]]:
    """Frames with energies and forces from an extended XYZ file or any file ``ase.io.read`` reads.

    Energies come from ``atoms.info[energy_key]``; without a key, from the attached calculator (ASE stores
    an extxyz ``energy=`` that way) or the info keys ``"energy"``, ``"REF_energy"``, ``"Energy"``. Forces
    likewise from ``atoms.arrays[forces_key]`` or the calculator or ``"forces"``, ``"REF_forces"``. Without a
    key, several different candidate labels in one frame are an error (pass the key). A missing label raises
    ValueError listing the info keys, per-atom arrays and calculator results found in that frame. The frames
    are checked as in :func:`check_frames`.
    """
    import ase.io

    images = ase.io.read(path, index=index)
    images = images if isinstance(images, list) else [images]
    if not images:
        raise ValueError(f"{path} holds no structures (index={index!r})")
    frames = []
    for i, atoms in enumerate(images):
        results = atoms.calc.results if atoms.calc is not None else {}
        found = (f"info keys {sorted(atoms.info)}, arrays {sorted(set(atoms.arrays) - {'numbers', 'positions'})}, "
                 f"calculator results {sorted(results)}")
        frames.append({
            "numbers": atoms.numbers, "positions": atoms.positions, "cell": atoms.cell.array, "pbc": atoms.pbc,
            "energy": _label("energy", energy_key, ENERGY_KEYS, atoms.info, results, i, path, found),
            "forces": _label("forces", forces_key, FORCES_KEYS, atoms.arrays, results, i, path, found),
        })
    return check_frames(frames)


def write_extxyz(path: str | os.PathLike, frames: Iterable[Mapping], energy_key: str = "energy",
                 forces_key: str = "forces") -> None:
    """Write frames (mappings as in :func:`check_frames`) to an extended XYZ file.

    With the default keys the labels go through an ASE SinglePointCalculator, so the file has ``energy=``
    in each comment line and a ``forces`` column, which ASE, MACE (``--energy_key energy``) and NequIP read;
    other keys (say ``REF_energy``, ``REF_forces``) are written as plain info and array entries.
    """
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    images = []
    for frame in check_frames(frames):
        atoms = ase.Atoms(numbers=frame["numbers"], positions=frame["positions"], cell=frame["cell"],
                          pbc=frame["pbc"])
        results = {}
        if "energy" in frame:
            if energy_key == "energy":
                results["energy"] = float(frame["energy"])
            else:
                atoms.info[energy_key] = float(frame["energy"])
        if "forces" in frame:
            if forces_key == "forces":
                results["forces"] = frame["forces"]
            else:
                atoms.arrays[forces_key] = frame["forces"].copy()
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        images.append(atoms)
    ase.io.write(path, images, format="extxyz")


# ----------------------------------------------------------------------------------------------------------
# Neighbour lists.

def _pairs(positions: np.ndarray, cutoff: float, cell: np.ndarray, pbc: np.ndarray, quantities: str,
           full: bool = True) -> list[np.ndarray]:
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=full, sorted=True)
    periodic = [bool(p) for p in pbc]
    box = cell if any(periodic) else np.zeros((3, 3))
    return calculator.compute(points=np.ascontiguousarray(positions), box=box, periodic=periodic,
                              quantities=quantities)


def neighbor_list(positions: np.ndarray, cutoff: float, cell: np.ndarray | None = None,
                  pbc: np.ndarray | Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs closer than ``cutoff``: ``edge_index [2, E] int64`` and ``unit_shifts [E, 3] int64``.

    ``positions [n, 3]`` in Å; ``cell [3, 3]`` (rows are the lattice vectors) and ``pbc [3]`` for periodic
    directions. The edge vector of column e is ``positions[j] - positions[i] + unit_shifts[e] @ cell`` with
    ``(i, j) = edge_index[:, e]``; both directions of every pair are listed, sorted by ``i``.
    """
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float, np.floating, np.integer)):
        raise TypeError(f"cutoff must be a number (Å), got {type(cutoff).__name__}")
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive finite number (Å), got {cutoff!r}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = np.zeros(3, dtype=bool) if pbc is None else np.asarray(pbc, dtype=bool)
    i, j, s = _pairs(positions, cutoff, cell, pbc, "ijS")
    return np.stack([i, j]).astype(np.int64), s.astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# Data set and batches.

class AtomsDataset(Dataset):
    """Frames as a torch data set; each item is a dict of tensors (float64 unless stated).

    Items: ``numbers [n] long``, ``pos [n, 3]``, ``cell [3, 3]``, ``pbc [3] bool`` and, where the frames have
    them, ``energy []`` (eV), ``forces [n, 3]`` (eV/Å) and ``stress [3, 3]`` (eV/Å³). Frames are checked on
    construction
    (:func:`check_frames`). Batch with ``functools.partial(collate_atoms, cutoff=...)``.
    """

    def __init__(self, frames: Iterable[Mapping], *, check: bool = True) -> None:
        frames = check_frames(frames) if check else list(frames)
        labelled = {key: sum(key in f for f in frames) for key in LABELS}
        for key, count in labelled.items():
            if 0 < count < len(frames):
                raise ValueError(f"{key} is given for {count} of {len(frames)} frames: label all frames or none")
        self.items = [self._item(frame) for frame in frames]

    @staticmethod
    def _item(frame: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
        names = {"numbers": "numbers", "positions": "pos", "cell": "cell", "pbc": "pbc", "energy": "energy",
                 "forces": "forces", "stress": "stress"}
        return {names[key]: torch.as_tensor(value) for key, value in frame.items() if key in names}

    @classmethod
    def from_arrays(cls, numbers: np.ndarray, positions: np.ndarray, energy: np.ndarray | None = None,
                    forces: np.ndarray | None = None, cell: np.ndarray | None = None,
                    pbc: np.ndarray | None = None) -> AtomsDataset:
        """Frames of equal size from stacked arrays: ``numbers [n]`` or ``[F, n]``, ``positions [F, n, 3]``,
        ``energy [F]``, ``forces [F, n, 3]``, ``cell [F, 3, 3]`` or ``[3, 3]``, ``pbc [F, 3]`` or ``[3]``."""
        positions = np.asarray(positions)
        if positions.ndim != 3:
            raise ValueError(f"positions must have shape [F, n, 3], got {list(positions.shape)}")
        f = positions.shape[0]

        def per_frame(name: str, value, frame_ndim: int) -> list | None:
            if value is None:
                return None
            value = np.asarray(value)
            if value.ndim == frame_ndim and name in ("numbers", "cell", "pbc"):
                value = np.broadcast_to(value, (f, *value.shape))
            if value.ndim != frame_ndim + 1 or value.shape[0] != f:
                raise ValueError(f"{name} must have {f} frames along its first axis (like positions), "
                                 f"got shape {list(value.shape)}")
            return list(value)

        columns = {"numbers": per_frame("numbers", numbers, 1), "positions": list(positions),
                   "energy": per_frame("energy", energy, 0), "forces": per_frame("forces", forces, 2),
                   "cell": per_frame("cell", cell, 2), "pbc": per_frame("pbc", pbc, 1)}
        columns = {key: value for key, value in columns.items() if value is not None}
        return cls([{key: value[k] for key, value in columns.items()} for k in range(f)])

    @classmethod
    def from_file(cls, path: str | os.PathLike, energy_key: str | None = None, forces_key: str | None = None,
                  index: str | int | slice = ":") -> AtomsDataset:
        """The frames of :func:`read_atoms_file`."""
        return cls(read_atoms_file(path, energy_key, forces_key, index), check=False)

    def subset(self, indices: Sequence[int] | np.ndarray) -> AtomsDataset:
        """The frames at ``indices``, sharing storage (no copy, no re-check)."""
        out = AtomsDataset.__new__(AtomsDataset)
        out.items = [self.items[int(k)] for k in indices]
        return out

    def numbers_per_frame(self) -> list[np.ndarray]:
        """The atomic numbers ``[n] int64`` of each frame (for :func:`fit_reference_energies`)."""
        return [item["numbers"].numpy() for item in self.items]

    def energies(self) -> np.ndarray:
        """The frames' energies ``[F]`` (eV)."""
        if self.items and "energy" not in self.items[0]:
            raise ValueError("the data set has no energies")
        return np.array([float(item["energy"]) for item in self.items], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return dict(self.items[index])


def collate_atoms(samples: Sequence[Mapping[str, Tensor]], cutoff: float) -> dict[str, Tensor]:
    """One batch of frames with its radius graph (PyTorch Geometric layout; see the module docstring).

    Returns ``pos [N, 3]``, ``numbers [N] long``, ``batch [N] long``, ``n_atoms [B] long``, ``edge_index [2, E]
    long`` (sender, receiver; indices offset by the atoms of the earlier frames), ``shifts [E, 3]`` (Cartesian,
    ``unit_shifts @ cell``), ``unit_shifts [E, 3]`` (integer-valued, in pos's dtype), ``cell [B, 3, 3]``,
    ``pbc [B, 3] bool`` and, if the samples are labelled, ``energy [B]``, ``forces [N, 3]`` and
    ``stress [B, 3, 3]``. An atom with no neighbour within ``cutoff`` simply has no edges.
    """
    if len(samples) == 0:
        raise ValueError("collate_atoms needs at least one sample")
    labels = [key for key in LABELS if key in samples[0]]
    if any(set(labels) != {key for key in LABELS if key in s} for s in samples):
        present = "/".join(key for key in LABELS if any(key in s for s in samples))
        raise ValueError(f"some samples of the batch carry {present} and others do not")
    edges, unit_shifts, shifts, offset = [], [], [], 0
    for sample in samples:
        pos = sample["pos"]
        cell = sample.get("cell", torch.zeros(3, 3, dtype=pos.dtype))
        pbc = sample.get("pbc", torch.zeros(3, dtype=torch.bool))
        edge_index, unit = neighbor_list(pos.detach().cpu().numpy(), cutoff, cell.cpu().numpy(), pbc.cpu().numpy())
        unit = torch.from_numpy(unit).to(pos.dtype)
        edges.append(torch.from_numpy(edge_index) + offset)
        unit_shifts.append(unit)
        shifts.append(unit @ cell.to(pos.dtype))
        offset += pos.shape[0]
    n_atoms = torch.tensor([s["pos"].shape[0] for s in samples], dtype=torch.long)
    dtype = samples[0]["pos"].dtype
    out = {
        "pos": torch.cat([s["pos"] for s in samples]),
        "numbers": torch.cat([s["numbers"] for s in samples]).long(),
        "batch": torch.arange(len(samples)).repeat_interleave(n_atoms),
        "n_atoms": n_atoms,
        "edge_index": torch.cat(edges, dim=1),
        "shifts": torch.cat(shifts),
        "unit_shifts": torch.cat(unit_shifts),
        "cell": torch.stack([s.get("cell", torch.zeros(3, 3, dtype=dtype)) for s in samples]),
        "pbc": torch.stack([s.get("pbc", torch.zeros(3, dtype=torch.bool)) for s in samples]),
    }
    if "energy" in labels:
        out["energy"] = torch.stack([s["energy"].reshape(()) for s in samples])
    if "forces" in labels:
        out["forces"] = torch.cat([s["forces"] for s in samples])
    if "stress" in labels:
        out["stress"] = torch.stack([s["stress"] for s in samples])
    return out


# ----------------------------------------------------------------------------------------------------------
# Statistics for fitting potentials (MACE's "average" E0s, its neighbour-count normalisation, force scale).

def fit_reference_energies(numbers_per_frame: Sequence[np.ndarray], energies: np.ndarray,
                           elements: Sequence[int] | None = None) -> np.ndarray:
    """Per-element reference energies ``e0 [n_elements]`` (eV) by least squares: min ‖C e0 - E‖.

    ``C [F, n_elements]`` counts each element (``elements``, default the sorted elements present) in each
    frame; ``E [F]`` are the frames' energies. Solved with ``numpy.linalg.lstsq``. When the elements always
    occur in the same ratios (every frame the same molecule) ``C`` has rank 1: the split between elements is
    arbitrary and lstsq returns the minimum-norm solution, which still gives ``C e0 = mean(E)``, all that
    the energy of such a data set needs.
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    frames = [np.asarray(z).reshape(-1) for z in numbers_per_frame]
    if len(frames) != len(energies):
        raise ValueError(f"numbers_per_frame has {len(frames)} frames but energies has {len(energies)}")
    if not frames:
        raise ValueError("no frames to fit reference energies on")
    present = np.unique(np.concatenate(frames))
    elements = present if elements is None else np.asarray(elements).reshape(-1)
    missing = np.setdiff1d(present, elements)
    if missing.size:
        raise ValueError(f"elements {missing.tolist()} occur in the frames but not in elements={elements.tolist()}")
    column = {int(z): k for k, z in enumerate(elements)}
    counts = np.zeros((len(frames), len(elements)))
    for f, z in enumerate(frames):
        np.add.at(counts[f], [column[int(v)] for v in z], 1.0)
    return np.linalg.lstsq(counts, energies, rcond=None)[0]


def _samples(dataset: Dataset) -> Iterable[Mapping[str, Tensor]]:
    return (dataset[i] for i in range(len(dataset)))


def average_num_neighbors(dataset: Dataset, cutoff: float) -> float:
    """Mean number of neighbours per atom within ``cutoff`` over all atoms of ``dataset`` (edges / atoms)."""
    edges = atoms = 0
    for sample in _samples(dataset):
        edge_index, _ = neighbor_list(sample["pos"].numpy(), cutoff, sample.get("cell"), sample.get("pbc"))
        edges += edge_index.shape[1]
        atoms += sample["pos"].shape[0]
    if atoms == 0:
        raise ValueError("the data set is empty")
    return edges / atoms


def rms_forces(dataset: Dataset) -> float:
    """Root mean square of all force components of ``dataset`` (eV/Å): ``sqrt(mean(F²))``."""
    total, count = 0.0, 0
    for sample in _samples(dataset):
        if "forces" not in sample:
            raise ValueError("the data set has no forces")
        total += float((sample["forces"].double() ** 2).sum())
        count += sample["forces"].numel()
    if count == 0:
        raise ValueError("the data set is empty")
    return math.sqrt(total / count)
