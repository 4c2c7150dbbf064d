"""The materials task: its loss with the stress term and the stress metric against their definitions, and a short
``liequiv train materials`` run whose checkpoint the ASE calculator reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from liequiv.train.loop import TrainConfig
from liequiv.train.potential import MaterialsTask


def test_loss_and_stress_metric_follow_their_definitions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIEQUIV_CACHE", str(tmp_path))
    task = MaterialsTask()
    defaults = task.defaults("tp-potential")
    defaults["extra"].update({"material": "cuni", "sizes": (8, 2, 2), "lmax": 1, "cutoff": 3.0, "dtype": "float64",
                              "energy_weight": 2.0, "forces_weight": 30.0, "stress_weight": 7.0})
    config = TrainConfig(task="materials", model="tp-potential", **{**defaults, "hidden": 4})
    task.configure(config)
    train, _, test = task.datasets(config)
    assert len(train) == 8 and "stress" in train[0]
    model = task.build_model(config, train).eval()
    assert config.extra["elements"] == [28, 29]
    batch = task.collate([test[0], test[1]])
    loss, metrics = task.loss(model, batch)
    out = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], batch["shifts"],
                cell=batch["cell"], compute_stress=True)
    d_e, d_f, d_s = out["energy"] - batch["energy"], out["forces"] - batch["forces"], out["stress"] - batch["stress"]
    expected = (2.0 * (d_e / batch["n_atoms"]).square().mean() + 30.0 * d_f.square().mean()
                + 7.0 * d_s.square().mean())
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)
    total, count = metrics["stress_mae"].tolist()
    assert count == 18 and total / count == pytest.approx(1000 * float(d_s.abs().mean()), rel=1e-10)


def test_train_materials_and_load_the_calculator(tmp_path: Path) -> None:
    from ase.build import bulk

    from liequiv.calculators import LiequivCalculator

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "liequiv", "train", "materials", "--material", "cu", "--split", "16", "4", "4",
           "--epochs", "3", "--batch-size", "4", "--hidden", "8", "--lmax", "1", "--cutoff", "4.0", "--lr", "5e-3",
           "--stress-weight", "50", "--run-dir", str(run_dir), "--threads", "1", "--no-plots"]
    env = {**os.environ, "LIEQUIV_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stress_mae" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["test_stress_mae"]) and metrics["test_stress_mae"] > 0
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=0)
    atoms.calc = LiequivCalculator.from_checkpoint(run_dir / "best.pt", dtype=torch.float64)
    assert np.isfinite(atoms.get_potential_energy()) and atoms.get_stress().shape == (6,)
