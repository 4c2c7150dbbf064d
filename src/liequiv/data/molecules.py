"""MD17-style molecular dynamics data generated locally: GFN2-xTB Langevin MD of the ten rMD17 molecules.

rMD17 itself is a download; these data follow its recipe (MD at 500 K, 1,000 training frames, at least
1,000 test frames) with GFN2-xTB (tblite) in place of PBE/def2-SVP, so published rMD17 errors are for
orientation only.

Protocol (:class:`MDConfig` defaults; every field, the molecule's name and SMILES enter the cache key):

1. Structure: RDKit builds the molecule from its SMILES (:data:`MOLECULES`) with explicit hydrogens, embeds it
   with ETKDGv3 (``randomSeed = seed``) and relaxes it with MMFF94 (up to 2,000 iterations). Atoms are in
   RDKit's order (heavy atoms as in the SMILES, then hydrogens).
2. Velocities: Maxwell-Boltzmann momenta at 500 K drawn from ``rng = np.random.default_rng(seed)``; the
   centre-of-mass momentum is removed and the centre of mass is then held fixed (ASE ``FixCom``).
3. Dynamics: ASE Langevin (BAOAB-type, ``fixcm=False``), time step 0.5 fs, friction 0.01/fs (relaxation time
   100 fs), 500 K, noise from the same ``rng``; energies (eV) and forces (eV/Å) from
   ``tblite.ase.TBLite(method="GFN2-xTB", verbosity=0)`` (accuracy 1, electronic temperature 300 K).
4. Sampling: 2,000 steps (1 ps, ten friction times) of equilibration are discarded, then a frame is saved
   every 20 steps (10 fs) until 2,200 frames (22 ps); each frame keeps the positions, energy and the
   unconstrained forces at those positions (the calculator's forces before ``FixCom``), the kinetic
   temperature and the step.
5. Splits (:func:`split_indices`): a permutation of all frames from ``default_rng(split_seed)``; train,
   valid and test are its consecutive blocks of the requested sizes (default 1,000 / 200 / 1,000).

Frames 10 fs apart are correlated in the slow modes (torsions, methyl rotors), and a random split puts
test frames next to training frames in time (as rMD17's random split of one trajectory does, though its
frames lie further apart). tblite runs on one OpenMP thread while generating (a second thread gained
nothing measurable at these sizes), which makes a run bitwise reproducible for a given tblite build
(checked across OpenMP thread settings; with several threads its reductions round differently from run
to run, and chaotic MD amplifies that). A default data set takes minutes of one core (the cost of an xTB step
grows with the molecule), with a progress bar, once: it is cached.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from liequiv.data.atoms import AtomsDataset
from liequiv.data.cache import cache_root, cached_arrays, params_hash

GENERATOR_VERSION = 1  # bump when a change alters the generated numbers (invalidates caches)
SPLITS = ("train", "valid", "test")

MOLECULES: dict[str, str] = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "azobenzene": "c1ccc(cc1)/N=N/c1ccccc1",  # trans
    "benzene": "c1ccccc1",
    "ethanol": "CCO",
    "malonaldehyde": "O=CCC=O",  # propanedial, the dialdehyde of MD17's frames (not the enol)
    "naphthalene": "c1ccc2ccccc2c1",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "salicylic_acid": "O=C(O)c1ccccc1O",
    "toluene": "Cc1ccccc1",
    "uracil": "O=c1cc[nH]c(=O)[nH]1",
}


@dataclass(frozen=True)
class MDConfig:
    """Parameters of the MD generator (see the module docstring); every field enters the cache key."""

    temperature_K: float = 500.0
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.01
    n_equilibration: int = 2000
    interval: int = 20
    n_frames: int = 2200
    seed: int = 0
    method: str = "GFN2-xTB"
    accuracy: float = 1.0
    electronic_temperature_K: float = 300.0

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.interval < 1 or self.n_equilibration < 0:
            raise ValueError(f"need n_frames >= 1, interval >= 1, n_equilibration >= 0; got {self.n_frames}, "
                             f"{self.interval}, {self.n_equilibration}")
        if not (self.temperature_K > 0 and self.timestep_fs > 0 and self.friction_per_fs >= 0):
            raise ValueError("temperature_K and timestep_fs must be positive and friction_per_fs non-negative")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must lie in [0, 2**31) (RDKit's randomSeed), got {self.seed}")

    @property
    def n_steps(self) -> int:
        """MD steps in all: equilibration plus ``interval`` per frame."""
        return self.n_equilibration + self.interval * self.n_frames


def molecule_key(name: str) -> str:
    """The key of ``name`` in :data:`MOLECULES` (case, spaces and hyphens ignored: "Salicylic acid" works)."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    key = {"salicylic": "salicylic_acid"}.get(key, key)  # rMD17 names the file "salicylic"
    if key not in MOLECULES:
        raise ValueError(f"unknown molecule {name!r}; known molecules: {', '.join(MOLECULES)} "
                         f"(or pass smiles= for another molecule)")
    return key


def embed_smiles(smiles: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``numbers [n] int64`` and MMFF-relaxed ``positions [n, 3]`` (Å) of ``smiles`` with hydrogens (ETKDGv3)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse smiles={smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError(f"RDKit could not embed {smiles!r} in 3D (seed {seed})")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
    return numbers, np.array(mol.GetConformer().GetPositions(), dtype=np.float64)


def xtb_calculator(config: MDConfig):
    """The tblite ASE calculator of ``config`` (GFN2-xTB by default), silent."""
    from tblite.ase import TBLite

    return TBLite(method=config.method, accuracy=config.accuracy,
                  electronic_temperature=config.electronic_temperature_K, verbosity=0)


@contextmanager
def _openmp_threads(n: int) -> Iterator[None]:
    """Run the block with the already loaded OpenMP runtimes (tblite's libgomp or libomp) on ``n`` threads."""
    mode = getattr(os, "RTLD_NOLOAD", None)
    changed = []
    if mode is not None:
        for name in ("libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so", "libgomp.1.dylib", "libomp.dylib"):
            try:
                lib = ctypes.CDLL(name, mode=mode | os.RTLD_LAZY)  # only a runtime that is loaded already
            except OSError:
                continue
            changed.append((lib, lib.omp_get_max_threads()))
            lib.omp_set_num_threads(n)
    try:
        yield
    finally:
        for lib, previous in changed:
            lib.omp_set_num_threads(previous)


class _Progress:
    """A one-line progress report on stderr: frames done of the total, elapsed time, ETA (from the step rate)."""

    def __init__(self, what: str, total_steps: int, total_frames: int, enabled: bool) -> None:
        self.what, self.total_steps, self.total_frames, self.enabled = what, total_steps, total_frames, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.start = self.last = time.perf_counter()
        self.every = max(total_frames // 10, 1)  # without a terminal: a line per 10 %

    @staticmethod
    def _clock(seconds: float) -> str:
        seconds = round(seconds)
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def __call__(self, steps: int, frames: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        done = frames == self.total_frames and steps == self.total_steps
        if not done and (now - self.last < 0.5 if self.tty else frames % self.every or frames == 0):
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / steps * (self.total_steps - steps) if steps else float("nan")
        line = (f"{self.what}: {frames}/{self.total_frames} frames (step {steps}/{self.total_steps}), "
                f"{self._clock(elapsed)} elapsed, ETA {self._clock(eta) if steps else '?'}")
        end = "\n" if done or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def simulate_md(smiles: str, config: MDConfig | None = None, *, progress: bool = True,
                what: str = "MD") -> dict[str, np.ndarray]:
    """Run the protocol of the module docstring for ``smiles`` (no cache).

    Returns ``numbers [N] int64``, ``positions [F, N, 3]`` (Å), ``energy [F]`` (eV), ``forces [F, N, 3]``
    (eV/Å), ``temperature [F]`` (K, kinetic) and ``step [F] int64`` (the MD step of each frame).
    """
    from ase import Atoms, units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    config = MDConfig() if config is None else config
    numbers, positions = embed_smiles(smiles, config.seed)
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = xtb_calculator(config)
    rng = np.random.default_rng(config.seed)
    masses = atoms.get_masses()
    momenta = rng.standard_normal((len(atoms), 3)) * np.sqrt(masses * units.kB * config.temperature_K)[:, None]
    momenta -= masses[:, None] * momenta.sum(0) / masses.sum()
    atoms.set_momenta(momenta)
    atoms.set_constraint(FixCom())
    dynamics = Langevin(atoms, timestep=config.timestep_fs * units.fs, temperature_K=config.temperature_K,
                        friction=config.friction_per_fs / units.fs, fixcm=False, rng=rng)

    f, n = config.n_frames, len(atoms)
    out = {"numbers": numbers, "positions": np.empty((f, n, 3)), "energy": np.empty(f),
           "forces": np.empty((f, n, 3)), "temperature": np.empty(f), "step": np.empty(f, dtype=np.int64)}
    report = _Progress(what, config.n_steps, f, progress)
    steps = 0
    report(0, 0)
    with _openmp_threads(1):
        while steps < config.n_equilibration:
            chunk = min(config.interval, config.n_equilibration - steps)
            dynamics.run(chunk)
            steps += chunk
            report(steps, 0)
        for k in range(f):
            dynamics.run(config.interval)
            steps += config.interval
            out["positions"][k] = atoms.get_positions()
            out["energy"][k] = atoms.get_potential_energy()
            out["forces"][k] = atoms.get_forces(apply_constraint=False)
            out["temperature"][k] = atoms.get_temperature()
            out["step"][k] = steps
            report(steps, k + 1)
    if not (np.isfinite(out["energy"]).all() and np.isfinite(out["forces"]).all()):
        raise RuntimeError(f"{what}: the MD produced non-finite energies or forces")
    return out


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("tblite", "ase", "rdkit", "numpy"):
        try:
            found.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            found.append(f"{package}==?")
    return " ".join(found)


def load_molecule(name: str, config: MDConfig | None = None, *, smiles: str | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """The MD frames of molecule ``name``, from the cache or generated (:func:`simulate_md`) and cached.

    ``name`` is a key of :data:`MOLECULES` unless ``smiles`` is given (then any name, used for the file).
    The file is ``<cache>/molecules/<name>-<hash>.npz`` under ``cache_dir``, ``$LIEQUIV_CACHE`` or
    ``~/.cache/liequiv``; the hash covers ``config``, the SMILES and the generator version. Besides the
    arrays of :func:`simulate_md` it stores ``versions`` (the packages that made it, a string).
    """
    config = MDConfig() if config is None else config
    if smiles is None:
        name = molecule_key(name)
        smiles = MOLECULES[name]
    elif not str(name) or any(c in str(name) for c in "/\\"):
        raise ValueError(f"name must be a plain file name component, got {name!r}")
    params = {**dataclasses.asdict(config), "name": name, "smiles": smiles, "version": GENERATOR_VERSION}
    path = cache_root(cache_dir) / "molecules" / f"{name}-{params_hash(params)}.npz"

    def build() -> dict[str, np.ndarray]:
        return {**simulate_md(smiles, config, progress=progress, what=name), "versions": np.array(_versions())}

    return cached_arrays(path, params, build, ("numbers", "positions", "energy", "forces"),
                         what=f"{name} GFN2-xTB MD ({config.n_frames} frames, {config.n_steps} steps)")


def split_indices(n_frames: int, sizes: Sequence[int] = (1000, 200, 1000), seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint frame indices for train, valid, test: consecutive blocks of a permutation from ``default_rng(seed)``."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != 3 or min(sizes) < 0:
        raise ValueError(f"sizes must be three non-negative numbers (train, valid, test), got {sizes}")
    if sum(sizes) > n_frames:
        raise ValueError(f"sizes {sizes} need {sum(sizes)} frames but there are {n_frames}; raise MDConfig.n_frames")
    order = np.random.default_rng(seed).permutation(n_frames)
    bounds = np.cumsum((0, *sizes))
    return {split: np.sort(order[bounds[k]:bounds[k + 1]]) for k, split in enumerate(SPLITS)}


def molecule_datasets(name: str, sizes: Sequence[int] = (1000, 200, 1000), split_seed: int = 0,
                      config: MDConfig | None = None, *, smiles: str | None = None,
                      cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, AtomsDataset]:
    """Train, valid and test :class:`AtomsDataset` of molecule ``name`` (see :func:`load_molecule`,
    :func:`split_indices`); items are float64, eV and Å."""
    data = load_molecule(name, config, smiles=smiles, cache_dir=cache_dir, progress=progress)
    splits = split_indices(len(data["energy"]), sizes, split_seed)
    full = AtomsDataset.from_arrays(data["numbers"], data["positions"], data["energy"], data["forces"])
    return {split: full.subset(index) for split, index in splits.items()}
