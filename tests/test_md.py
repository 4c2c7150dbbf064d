"""MD with a trained potential: NVE energy conservation at second order in the time step, the outputs parse, the
bond-stability measure against hand-made series, the explosion stop, and the ``liequiv md`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk

from liequiv.calculators import LiequivCalculator
from liequiv.md import bond_stability, build_structure, run_md
from potential_testing import write_potential_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    write_potential_checkpoint(path, elements=(1, 6, 8, 28, 29), scale=20.0)
    return path


def _copper():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.numbers[::3] = 28
    atoms.rattle(0.1, seed=0)
    return atoms


def test_nve_conserves_energy_at_second_order(checkpoint: Path, tmp_path: Path) -> None:
    """Velocity Verlet's energy error over a fixed time scales as Δt²: halving the step divides it by ~4."""
    calc = LiequivCalculator.from_checkpoint(checkpoint)
    errors = []
    for dt, steps in ((1.0, 20), (0.5, 40)):
        summary = run_md(_copper(), calc, tmp_path / f"dt{dt}", timestep_fs=dt, steps=steps, log_every=1,
                         temperature_K=600, progress=False, plot=False)
        assert summary["stopped"] is None and summary["steps_done"] == steps
        table = np.loadtxt(tmp_path / f"dt{dt}" / "md.log")
        assert table.shape == (steps + 1, 6)
        assert np.allclose(table[:, 4], table[:, 2] + table[:, 3])
        assert table[:, 3].std() > 1e-3  # energy moves between kinetic and potential
        errors.append(np.abs(table[:, 4] - table[0, 4]).max() / len(_copper()))
        # the step is dt fs: x(t + dt) - x(t) = dt (v(t) + v(t + dt)) / 2 + O(dt³)
        first, second = ase.io.read(tmp_path / f"dt{dt}" / "trajectory.extxyz", index="0:2")
        moved = second.positions - first.positions
        expected = dt * units.fs * (first.get_velocities() + second.get_velocities()) / 2
        assert np.abs(moved - expected).max() < 0.02 * np.abs(moved).max()
    assert errors[0] < 1e-3  # eV per atom over 20 fs
    assert 2.5 < errors[0] / errors[1] < 6.0, errors


def test_outputs_exist_and_parse(checkpoint: Path, tmp_path: Path) -> None:
    calc = LiequivCalculator.from_checkpoint(checkpoint)
    summary = run_md(_copper(), calc, tmp_path, ensemble="nvt", steps=6, log_every=2, progress=False)
    frames = ase.io.read(tmp_path / "trajectory.extxyz", index=":")
    assert len(frames) == 4 and np.isfinite(frames[-1].get_forces()).all()
    assert frames[-1].get_potential_energy() == pytest.approx(np.loadtxt(tmp_path / "md.log")[-1, 2], abs=1e-6)
    assert (tmp_path / "md.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["energy_drift_eV_per_atom_per_ps"] is None and summary["bonds"] is None


def test_bond_stability() -> None:
    times = np.arange(11.0) * 10
    lengths = np.full((11, 2), 1.0)
    assert bond_stability(times, lengths) is None
    lengths[7, 1] = 1.6  # leaves the 0.5 Å band at 70 fs
    lengths[9, 0] = 0.4
    assert bond_stability(times, lengths) == 70.0
    lengths[:2, 1] = [1.2, 0.8]  # the reference is the mean over the first tenth (two frames): still 1.0
    assert bond_stability(times, lengths, tolerance=0.59) == 70.0
    assert bond_stability(times, lengths, tolerance=0.61) is None


def test_molecule_bonds_and_explosion_stop(checkpoint: Path, tmp_path: Path) -> None:
    calc = LiequivCalculator.from_checkpoint(checkpoint)
    ethanol = build_structure("ethanol")
    summary = run_md(ethanol, calc, tmp_path / "ok", steps=4, timestep_fs=0.1, progress=False, plot=False)
    assert summary["bonds"] == 8  # C-C, C-O, O-H, 5 C-H
    assert summary["bonds_broken_at_fs"] is None and summary["energy_drift_eV_per_atom_per_ps"] is not None
    summary = run_md(_copper(), calc, tmp_path / "hot", steps=50, max_temperature_K=1.0, progress=False)
    assert summary["stopped"]["step"] == 0 and "above the bound 1 K" in summary["stopped"]["reason"]
    assert summary["steps_done"] == 0
    # a force field that turns non-finite after a few evaluations
    calls = []
    original = calc.calculate

    def failing(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if len(calls) > 3:
            calc.results["forces"] = calc.results["forces"] * np.nan

    calc.calculate = failing
    summary = run_md(_copper(), calc, tmp_path / "nan", steps=50, log_every=1, progress=False)
    step = summary["stopped"]["step"]
    assert summary["stopped"]["reason"] == "non-finite energy or forces" and 2 <= step <= 4
    assert len(ase.io.read(tmp_path / "nan" / "trajectory.extxyz", index=":")) == step  # steps before it kept


def test_md_command(checkpoint: Path, tmp_path: Path) -> None:
    structure = tmp_path / "cu.extxyz"
    ase.io.write(structure, _copper())
    cmd = [sys.executable, "-m", "liequiv", "md", "--checkpoint", str(checkpoint), "--structure", str(structure),
           "--steps", "4", "--log-every", "2", "--out", str(tmp_path / "out"), "--dtype", "float32"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["steps_done"] == 4
    for name in ("trajectory.extxyz", "md.log", "md.png", "summary.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    done = subprocess.run([*cmd[:-4], "--max-temperature", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "stopped at step 0" in done.stderr
    assert torch.load(checkpoint, weights_only=False)["task"] == "md17"


def test_bad_input(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a file nor a builtin"):
        build_structure("steel")
    assert len(build_structure("cuni")) == 108 and (build_structure("cuni").numbers == 28).sum() == 54
    calc = LiequivCalculator.from_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="ensemble"):
        run_md(_copper(), calc, tmp_path, ensemble="npt")
    with pytest.raises(ValueError, match="timestep_fs"):
        run_md(_copper(), calc, tmp_path, timestep_fs=0.0)
