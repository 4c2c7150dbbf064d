"""Molecular dynamics with a trained potential (``liequiv md``): ASE's velocity Verlet (NVE) or Langevin (NVT).

Outputs in ``out``: ``trajectory.extxyz`` (every ``log_every`` steps, with energies and forces), ``md.log`` (step,
time in fs, potential, kinetic and total energy in eV, temperature in K), ``md.png`` (energies per atom and
temperature against time) and ``summary.json``:

- NVE energy drift: the slope of a least-squares line through the total energy per atom against time, eV per
  atom per ps (Verlet's energy error oscillates at O(Δt²); a trend means the force field or the step is wrong).
- Stability of molecules (after Fu et al. 2022, "Forces are not enough"): bonds are the pairs closer than 1.2 times
  the sum of their covalent radii at the start; their reference lengths ``b_ij`` are the means over the logged
  frames of the first tenth of the run; the run is stable until the first logged time at which some bond has
  ``|r_ij - b_ij| > Δ`` (``bond_tolerance``, 0.5 Å as in the paper). Not defined for periodic systems.
- A run that explodes (temperature above ``max_temperature_K``, non-finite energy or forces, or atoms closer than
  the model accepts) stops at that step with the reason in the summary; the trajectory up to there is kept.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BUILTIN_STRUCTURES", "MDExploded", "bond_stability", "build_structure", "run_md"]

BUILTIN_STRUCTURES = ("cu", "cuni")  # fcc bulk 3 x 3 x 3 cubic cells (108 atoms); and the rMD17 molecules by name


class MDExploded(RuntimeError):
    """The dynamics left the physical range; ``step`` and ``reason`` say where and why."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"step {step}: {reason}")
        self.step, self.reason = step, reason


def build_structure(structure: str, seed: int = 0):
    """ASE ``Atoms`` from a file ASE reads (its last frame), a builtin bulk (``cu``, ``cuni``: a random 50 % alloy
    from ``seed``, Vegard's lattice constant) or an rMD17 molecule name (RDKit embedding, MMFF-relaxed)."""
    import ase.io
    from ase import Atoms
    from ase.build import bulk

    from liequiv.data.materials import EMT_LATTICE
    from liequiv.data.molecules import MOLECULES, embed_smiles, molecule_key

    if os.path.isfile(structure):
        return ase.io.read(structure)
    key = structure.strip().lower().replace("-", "")
    if key in BUILTIN_STRUCTURES:
        x = 0.5 if key == "cuni" else 0.0
        atoms = bulk("Cu", "fcc", a=(1 - x) * EMT_LATTICE[29] + x * EMT_LATTICE[28], cubic=True).repeat(3)
        rng = np.random.default_rng(seed)
        atoms.numbers[rng.choice(len(atoms), round(x * len(atoms)), replace=False)] = 28
        return atoms
    try:
        name = molecule_key(structure)
    except ValueError:
        raise ValueError(f"structure {structure!r} is neither a file nor a builtin ({', '.join(BUILTIN_STRUCTURES)}, "
                         f"{', '.join(MOLECULES)})") from None
    numbers, positions = embed_smiles(MOLECULES[name], seed)
    return Atoms(numbers=numbers, positions=positions)


def _bonds(atoms) -> np.ndarray:
    """``[K, 2]`` pairs closer than 1.2 x the sum of their covalent radii (non-periodic)."""
    from ase.data import covalent_radii

    pos = atoms.positions
    radii = covalent_radii[atoms.numbers]
    distance = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    i, j = np.nonzero(np.triu(distance < 1.2 * (radii[:, None] + radii[None]), 1))
    return np.stack([i, j], axis=1)


def bond_stability(times_fs: np.ndarray, lengths: np.ndarray, tolerance: float = 0.5) -> float | None:
    """Time (fs) of the first frame where a bond length ``lengths [T, K]`` (Å) leaves ``b ± tolerance``, with ``b``
    its mean over the frames in the first tenth of the run (at least the first frame); None if it never does."""
    times_fs, lengths = np.asarray(times_fs, dtype=float), np.asarray(lengths, dtype=float)
    if lengths.ndim != 2 or lengths.shape[0] != times_fs.shape[0] or lengths.shape[0] == 0:
        raise ValueError(f"lengths must be [T, K] with T = {times_fs.shape[0]} frames, got {lengths.shape}")
    window = times_fs <= times_fs[0] + 0.1 * (times_fs[-1] - times_fs[0])
    reference = lengths[window].mean(axis=0)
    broken = np.nonzero((np.abs(lengths - reference) > tolerance).any(axis=1))[0]
    return float(times_fs[broken[0]]) if len(broken) else None


def _plot(table: np.ndarray, n_atoms: int, temperature_K: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time = table[:, 1] / 1000
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for column, name in ((2, "potential"), (3, "kinetic"), (4, "total")):
        top.plot(time, (table[:, column] - table[0, column]) / n_atoms, label=name)
    top.set(ylabel="E - E(0) per atom (eV)", title="energies")
    top.legend()
    bottom.plot(time, table[:, 5])
    bottom.axhline(temperature_K, color="0.6", lw=1, ls="--")
    bottom.set(xlabel="time (ps)", ylabel="temperature (K)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_md(atoms, calculator, out: str | os.PathLike, *, ensemble: str = "nve", temperature_K: float = 300.0,
           timestep_fs: float = 0.5, steps: int = 1000, friction_per_fs: float = 0.01, log_every: int = 10,
           max_temperature_K: float | None = None, bond_tolerance: float = 0.5, seed: int = 0,
           progress: bool = True, plot: bool = True) -> dict[str, Any]:
    """Run ``steps`` of MD of ``atoms`` with ``calculator`` and write the outputs of the module docstring to ``out``.

    Velocities start from Maxwell-Boltzmann at ``temperature_K`` (``seed``), without centre-of-mass motion (and
    rotation, for molecules). ``max_temperature_K`` defaults to ``max(2000, 5 T)``. Returns the summary.
    """
    import ase.io
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from liequiv.data.molecules import _Progress

    if ensemble not in ("nve", "nvt"):
        raise ValueError(f"ensemble must be 'nve' or 'nvt', got {ensemble!r}")
    for name, value in (("temperature_K", temperature_K), ("timestep_fs", timestep_fs)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value}")
    if steps < 1 or log_every < 1:
        raise ValueError(f"steps and log_every must be positive integers, got {steps}, {log_every}")
    limit = max(2000.0, 5 * temperature_K) if max_temperature_K is None else max_temperature_K
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atoms = atoms.copy()
    atoms.calc = calculator
    periodic = bool(atoms.pbc.any())
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    if not periodic:
        ZeroRotation(atoms)
    if ensemble == "nve":
        dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    else:
        dynamics = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                            friction=friction_per_fs / units.fs, rng=rng)
    bonds = None if periodic else _bonds(atoms)
    rows, lengths = [], []
    trajectory = out / "trajectory.extxyz"
    trajectory.unlink(missing_ok=True)
    report = _Progress("MD", steps, steps, progress)

    def observe(step: int) -> None:
        forces = atoms.get_forces()
        epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        temperature = atoms.get_temperature()
        if not (np.isfinite(forces).all() and math.isfinite(epot)):
            raise MDExploded(step, "non-finite energy or forces")
        if temperature > limit:
            raise MDExploded(step, f"temperature {temperature:.4g} K above the bound {limit:.4g} K")
        if step % log_every == 0 or step == steps:
            rows.append((step, step * timestep_fs, epot, ekin, epot + ekin, temperature))
            ase.io.write(trajectory, atoms, format="extxyz", append=True)
            if bonds is not None:
                vectors = atoms.positions[bonds[:, 1]] - atoms.positions[bonds[:, 0]]
                lengths.append(np.linalg.norm(vectors, axis=1))
        report(step, step)

    stopped, step = None, 0
    try:
        observe(0)
        for step in range(1, steps + 1):
            dynamics.run(1)
            observe(step)
    except MDExploded as error:
        stopped = {"step": error.step, "reason": error.reason}
    except ValueError as error:  # the model refuses the structure (atoms too close)
        stopped = {"step": step, "reason": str(error)}

    table = np.array(rows, dtype=float).reshape(-1, 6)
    np.savetxt(out / "md.log", table, fmt=["%d", "%.3f", "%.8f", "%.8f", "%.8f", "%.3f"],
               header="step time_fs Epot_eV Ekin_eV Etot_eV T_K")
    n = len(atoms)
    drift = None
    if ensemble == "nve" and len(table) >= 2:
        drift = float(np.polyfit(table[:, 1] / 1000, table[:, 4] / n, 1)[0])
    stable_fs = None
    if bonds is not None and len(bonds) and lengths:
        stable_fs = bond_stability(table[:, 1], np.stack(lengths), bond_tolerance)
    summary = {"ensemble": ensemble, "atoms": n, "steps_requested": steps,
               "steps_done": stopped["step"] if stopped else steps, "timestep_fs": timestep_fs,
               "temperature_K": temperature_K, "stopped": stopped,
               "energy_drift_eV_per_atom_per_ps": drift,
               "mean_temperature_K": float(table[:, 5].mean()) if len(table) else None,
               "bonds": None if bonds is None else len(bonds),
               "bond_tolerance_A": bond_tolerance if bonds is not None else None,
               "bonds_broken_at_fs": stable_fs}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if plot and len(table):
        _plot(table, n, temperature_K, out / "md.png")
    return summary
