"""Periodic materials labelled by ASE's EMT potential, generated locally (no download): fcc Cu and Cu-Ni alloys.

EMT (effective-medium theory, Jacobsen et al. 1996) is a cheap many-body potential shipped with ASE; it stands
in for DFT so that a potential's training on bulk, defects, surfaces and stress can be tested in seconds.

Protocol (:class:`MaterialsConfig` defaults; every field, the material and the generator version enter the
cache key). All random draws come from ``rng = np.random.default_rng(seed)``, one frame after the other:

1. Kind of frame: ``bulk``, ``vacancy`` or ``surface`` with probabilities ``kind_weights`` (0.6, 0.2, 0.2).
   ``bulk``: the cubic fcc cell repeated ``supercell`` times along each axis (32 atoms), periodic in 3D.
   ``vacancy``: the same with one atom (drawn uniformly) removed. ``surface``: an fcc(111) slab of
   ``slab_size`` (2 x 2 x 4 = 16 atoms) with ``vacuum`` Å on each side, periodic in-plane only.
2. Composition (``cuni``): a Ni fraction ``x`` uniform in [0.25, 0.75], ``round(x n)`` Ni atoms on sites drawn
   without replacement, Cu elsewhere (a random solid solution). ``cu``: all Cu.
3. Lattice constant: EMT's fcc equilibrium (Cu 3.59 Å, Ni 3.49 Å, from a 0.01 Å scan of the energy),
   Vegard's law ``a = (1 - x) a_Cu + x a_Ni`` for alloys.
4. Strain: a symmetric ``ε`` with independent components uniform in ``[-max_strain, max_strain]`` (3 %),
   applied to the cell and positions (``x -> x (I + ε)``); in-plane components only for slabs.
5. Temperature: ``T`` drawn from ``temperatures_K`` (300-1200 K); each Cartesian coordinate is displaced by
   a Gaussian of standard deviation ``u_300 sqrt(T / 300 K)``, ``u_300 = 0.085 Å``: Cu's room-temperature
   Debye-Waller factor ``B ≈ 0.57 Å²`` gives ``<u_x²> = B / 8π²``, and a classical harmonic crystal's ``<u²>``
   grows linearly with ``T``. The displacements are independent (no phonon correlations, unlike MD
   snapshots), which samples more widely around the lattice for the same number of frames.
6. Labels: EMT energy (eV), forces (eV/Å) and stress ``[3, 3]`` (eV/Å³, ASE's sign: positive under tension;
   for slabs, the cell volume includes the vacuum, as ASE's EMT computes it).

Frames hold ``numbers``, ``positions``, ``cell``, ``pbc``, ``energy``, ``forces``, ``stress``, plus ``kind`` and
``temperature`` in the cached arrays. Splits as for molecules (:func:`liequiv.data.molecules.split_indices`).
1,000 frames take well under a minute of one core, once: they are cached.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liequiv.data.atoms import AtomsDataset
from liequiv.data.cache import cache_root, cached_arrays, params_hash
from liequiv.data.molecules import _Progress, split_indices

GENERATOR_VERSION = 1  # bump when a change alters the generated numbers (invalidates caches)
MATERIALS = ("cu", "cuni")
KINDS = ("bulk", "vacancy", "surface")
EMT_LATTICE = {29: 3.59, 28: 3.49}  # Å, fcc equilibrium of ASE's EMT
U_300K = 0.085  # Å, rms displacement per Cartesian component of Cu at 300 K


@dataclass(frozen=True)
class MaterialsConfig:
    """Parameters of the EMT generator (see the module docstring); every field enters the cache key."""

    n_frames: int = 1000
    supercell: int = 2
    slab_size: tuple[int, int, int] = (2, 2, 4)
    vacuum: float = 6.0
    kind_weights: tuple[float, float, float] = (0.6, 0.2, 0.2)
    temperatures_K: tuple[float, ...] = (300.0, 600.0, 900.0, 1200.0)
    max_strain: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.supercell < 1 or min(self.slab_size) < 1:
            raise ValueError(f"n_frames, supercell and slab_size must be positive, got {self.n_frames}, "
                             f"{self.supercell}, {self.slab_size}")
        if len(self.kind_weights) != 3 or min(self.kind_weights) < 0 or sum(self.kind_weights) <= 0:
            raise ValueError(f"kind_weights must be three non-negative weights (bulk, vacancy, surface), "
                             f"got {self.kind_weights}")
        if not self.temperatures_K or min(self.temperatures_K) < 0 or not 0 <= self.max_strain < 0.5:
            raise ValueError("temperatures_K must be non-negative and max_strain in [0, 0.5)")
        if self.vacuum <= 0:
            raise ValueError(f"vacuum must be positive (Å), got {self.vacuum}")


def material_key(name: str) -> str:
    """The key of ``name`` in :data:`MATERIALS` (case and hyphens ignored: "Cu-Ni" works)."""
    key = str(name).strip().lower().replace("-", "")
    if key not in MATERIALS:
        raise ValueError(f"unknown material {name!r}; known materials: {', '.join(MATERIALS)}")
    return key


def _frame(material: str, config: MaterialsConfig, rng: np.random.Generator):
    """One EMT-labelled structure (steps 1-6 of the protocol) and its kind index and temperature."""
    from ase.build import bulk, fcc111
    from ase.calculators.emt import EMT

    weights = np.asarray(config.kind_weights, dtype=float)
    kind = int(rng.choice(3, p=weights / weights.sum()))
    x = rng.uniform(0.25, 0.75) if material == "cuni" else 0.0
    a = (1 - x) * EMT_LATTICE[29] + x * EMT_LATTICE[28]
    if KINDS[kind] == "surface":
        atoms = fcc111("Cu", size=config.slab_size, a=a, vacuum=config.vacuum)
    else:
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(config.supercell)
    if KINDS[kind] == "vacancy":
        del atoms[int(rng.integers(len(atoms)))]
    numbers = np.full(len(atoms), 29)
    numbers[rng.choice(len(atoms), round(x * len(atoms)), replace=False)] = 28
    atoms.numbers = numbers
    strain = rng.uniform(-config.max_strain, config.max_strain, (3, 3))
    strain = np.triu(strain) + np.triu(strain, 1).T
    if KINDS[kind] == "surface":
        strain[2, :] = strain[:, 2] = 0.0
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    temperature = float(rng.choice(config.temperatures_K))
    atoms.positions += rng.normal(0.0, U_300K * np.sqrt(temperature / 300.0), (len(atoms), 3))
    atoms.calc = EMT()
    return atoms, kind, temperature


def generate_material(material: str, config: MaterialsConfig | None = None, *, progress: bool = True
                      ) -> dict[str, np.ndarray]:
    """Run the protocol of the module docstring (no cache). Frames differ in size, so per-atom arrays are
    concatenated: ``numbers [A]``, ``positions [A, 3]``, ``forces [A, 3]`` with ``n_atoms [F]``; per frame
    ``energy [F]``, ``stress [F, 3, 3]``, ``cell [F, 3, 3]``, ``pbc [F, 3]``, ``kind [F]`` (index into
    :data:`KINDS`), ``temperature [F]`` (K)."""
    material = material_key(material)
    config = MaterialsConfig() if config is None else config
    rng = np.random.default_rng(config.seed)
    columns: dict[str, list] = {key: [] for key in ("numbers", "positions", "forces", "n_atoms", "energy", "stress",
                                                    "cell", "pbc", "kind", "temperature")}
    report = _Progress(f"{material} EMT", config.n_frames, config.n_frames, progress)
    report(0, 0)
    for k in range(config.n_frames):
        atoms, kind, temperature = _frame(material, config, rng)
        values = {"numbers": atoms.numbers, "positions": atoms.positions, "forces": atoms.get_forces(),
                  "n_atoms": len(atoms), "energy": atoms.get_potential_energy(),
                  "stress": atoms.get_stress(voigt=False), "cell": atoms.cell.array, "pbc": atoms.pbc,
                  "kind": kind, "temperature": temperature}
        for key, value in values.items():
            columns[key].append(value)
        report(k + 1, k + 1)
    per_atom = ("numbers", "positions", "forces")
    out = {key: np.concatenate(value) if key in per_atom else np.array(value) for key, value in columns.items()}
    out["numbers"] = out["numbers"].astype(np.int64)
    if not all(np.isfinite(out[key]).all() for key in ("energy", "forces", "stress")):
        raise RuntimeError(f"{material}: EMT gave non-finite labels")
    return out


def load_material(material: str, config: MaterialsConfig | None = None, *,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """The arrays of :func:`generate_material`, from ``<cache>/materials/<material>-<hash>.npz`` or generated and
    cached there (``cache_dir``, ``$LIEQUIV_CACHE`` or ``~/.cache/liequiv``)."""
    material = material_key(material)
    config = MaterialsConfig() if config is None else config
    params = {**dataclasses.asdict(config), "material": material, "version": GENERATOR_VERSION}
    path = cache_root(cache_dir) / "materials" / f"{material}-{params_hash(params)}.npz"
    return cached_arrays(path, params, lambda: generate_material(material, config, progress=progress),
                         ("numbers", "positions", "forces", "n_atoms", "energy", "stress", "cell", "pbc"),
                         what=f"{material} EMT frames ({config.n_frames})")


def material_frames(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Split the concatenated arrays of :func:`generate_material` into frames (dicts of :mod:`liequiv.data.atoms`)."""
    bounds = np.concatenate([[0], np.cumsum(arrays["n_atoms"])])
    return [{"numbers": arrays["numbers"][lo:hi], "positions": arrays["positions"][lo:hi],
             "forces": arrays["forces"][lo:hi], "energy": arrays["energy"][k], "stress": arrays["stress"][k],
             "cell": arrays["cell"][k], "pbc": arrays["pbc"][k]}
            for k, (lo, hi) in enumerate(itertools.pairwise(bounds))]


def material_datasets(material: str, sizes: Sequence[int] = (600, 100, 300), split_seed: int = 0,
                      config: MaterialsConfig | None = None, *, cache_dir: str | os.PathLike | None = None,
                      progress: bool = True) -> dict[str, AtomsDataset]:
    """Train, valid and test :class:`AtomsDataset` of ``material`` (items carry ``stress [3, 3]``)."""
    arrays = load_material(material, config, cache_dir=cache_dir, progress=progress)
    full = AtomsDataset(material_frames(arrays))
    splits = split_indices(len(arrays["energy"]), sizes, split_seed)
    return {split: full.subset(index) for split, index in splits.items()}
