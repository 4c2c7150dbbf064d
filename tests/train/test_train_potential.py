"""The md17 potential task: its loss and metrics against their definitions, the fitted statistics, and a short
training run from a user's extended XYZ file (EMT-labelled copper clusters, made in a second)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from liequiv.data.atoms import AtomsDataset, write_extxyz
from liequiv.train.checkpoint import load_checkpoint
from liequiv.train.distributed import DistributedContext
from liequiv.train.loop import TrainConfig, evaluate, fit
from liequiv.train.potential import PotentialTask


def _clusters(n_frames: int = 40, seed: int = 0) -> list[dict]:
    """Distorted 8-atom copper clusters labelled by ASE's EMT (energies in eV, forces in eV/Å)."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    base = 2.55 * np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    frames = []
    for _ in range(n_frames):
        atoms = Atoms("Cu8", positions=base + 0.15 * rng.standard_normal(base.shape))
        atoms.calc = EMT()
        frames.append({"numbers": atoms.numbers, "positions": atoms.positions, "energy": atoms.get_potential_energy(),
                       "forces": atoms.get_forces()})
    return frames


def _task(tmp_path: Path, **extra) -> tuple[PotentialTask, TrainConfig]:
    path = tmp_path / "cu.extxyz"
    write_extxyz(path, _clusters())
    task = PotentialTask()
    defaults = task.defaults("tp-potential")
    defaults["extra"].update({"data": str(path), "sizes": (24, 8, 8), "lmax": 1, "cutoff": 4.0, **extra})
    config = TrainConfig(task="md17", model="tp-potential", **{**defaults, "hidden": 8})
    task.configure(config)
    return task, config


def test_loss_and_metrics_follow_their_definitions(tmp_path: Path) -> None:
    task, config = _task(tmp_path, dtype="float64", energy_weight=2.0, forces_weight=30.0)
    train, _, test = task.datasets(config)
    model = task.build_model(config, train)
    # statistics from the training set: one element, so E0 = mean energy per atom; scale = RMS force
    energies = np.array([float(train[i]["energy"]) for i in range(len(train))])
    assert float(model.reference_energies[0]) == pytest.approx(energies.mean() / 8, rel=1e-10)
    forces = torch.cat([train[i]["forces"] for i in range(len(train))])
    assert float(model.scale) == pytest.approx(float(forces.square().mean().sqrt()), rel=1e-10)
    assert float(model.interactions[0].avg_num_neighbors) > 1
    batch = task.collate([test[i] for i in range(4)])
    loss, metrics = task.loss(model.eval(), batch)
    out = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], num_graphs=4)
    d_e, d_f = (out[key].detach() - batch[key] for key in ("energy", "forces"))  # out carries the force graph
    expected = 2.0 * (d_e / 8).square().mean() + 30.0 * d_f.square().mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-10)
    total, count = metrics["energy_mae"].tolist()
    assert count == 4 and total / count == pytest.approx(1000 * float(d_e.abs().mean()), rel=1e-10)
    total, count = metrics["force_rmse"].tolist()
    assert count == 4 * 8 * 3 and total / count == pytest.approx(1e6 * float(d_f.square().mean()), rel=1e-10)


def test_train_from_a_user_file(tmp_path: Path) -> None:
    path = tmp_path / "cu.extxyz"
    write_extxyz(path, _clusters())
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "liequiv", "train", "md17", "--data", str(path), "--split", "24", "8", "8",
           "--epochs", "6", "--batch-size", "4", "--hidden", "8", "--lmax", "1", "--cutoff", "4.0", "--lr", "5e-3",
           "--ema-decay", "0.5", "--tp-backend", "gaunt_grid", "--run-dir", str(run_dir), "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "energy_mae" in done.stdout and "force_mae" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = metrics["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    for key in ("test_energy_mae", "test_force_mae", "test_force_rmse", "best_val_loss"):
        assert np.isfinite(metrics[key]), key
    assert metrics["test_force_rmse"] >= metrics["test_force_mae"]
    for name in ("learning_curves.png", "prediction.png", "best.pt", "last.pt"):
        assert (run_dir / name).stat().st_size > 0, name


class FlippedForcesTask(PotentialTask):
    """Copper clusters whose validation and test frames have their forces negated: as the model learns the
    training forces, those errors grow, so the best validation epoch comes early and the last weights test worse."""

    def datasets(self, config: TrainConfig) -> tuple[AtomsDataset, AtomsDataset, AtomsDataset]:
        frames = _clusters(20)
        flipped = [{**frame, "forces": -frame["forces"]} for frame in frames[12:]]
        return AtomsDataset(frames[:12]), AtomsDataset(flipped[:4]), AtomsDataset(flipped[4:])


def test_test_metrics_come_from_the_best_epoch(tmp_path: Path) -> None:
    task = FlippedForcesTask()
    defaults = task.defaults("tp-potential")
    defaults["extra"].update({"lmax": 1, "cutoff": 4.0, "dtype": "float64", "correlation": 1})
    options = {"hidden": 8, "layers": 1, "epochs": 2, "batch_size": 4, "lr": 5e-3, "ema_decay": 0.5}
    config = TrainConfig(task="md17", model="tp-potential", **{**defaults, **options}, run_dir=str(tmp_path),
                         plots=False)
    metrics = fit(task, config, log=lambda s: None)
    val = [record["val_loss"] for record in metrics["history"]]
    assert metrics["best_epoch"] == 1 + val.index(min(val)) < config.epochs
    train, _, test = task.datasets(config)
    model = task.build_model(config, train)
    loader = DataLoader(test, batch_size=4, collate_fn=task.collate)
    model.load_state_dict(load_checkpoint(tmp_path / "best.pt", task="md17", model="tp-potential")["model"])
    expected = evaluate(task, model, loader, DistributedContext())
    for name, value in expected.items():
        assert metrics[f"test_{name}"] == pytest.approx(value, rel=1e-9), name
    ema = load_checkpoint(tmp_path / "last.pt", task="md17", model="tp-potential")["ema"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")})
    last = evaluate(task, model, loader, DistributedContext())
    assert last["loss"] != pytest.approx(expected["loss"], rel=1e-3)  # the last weights would test otherwise


def test_options_of_another_task_are_refused(capsys) -> None:
    from liequiv.cli import main

    assert main(["train", "nbody", "--molecule", "aspirin"]) == 2
    assert "--molecule is not an option of task 'nbody'" in capsys.readouterr().err


def test_missing_labels_name_the_keys_found(tmp_path: Path) -> None:
    frames = _clusters(3)
    path = tmp_path / "weird.extxyz"
    write_extxyz(path, frames, energy_key="E_dft", forces_key="F_dft")
    with pytest.raises(ValueError, match="E_dft"):
        AtomsDataset.from_file(path)
    assert len(AtomsDataset.from_file(path, "E_dft", "F_dft")) == 3
