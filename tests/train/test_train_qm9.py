"""The qm9 task: normalization, loss and metrics against their definitions, bad settings, and short training runs on
the first 300 molecules of QM9 (skipped without qm9pack)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from liequiv.cli import main
from liequiv.train.checkpoint import load_checkpoint
from liequiv.train.loop import TrainConfig, fit
from liequiv.train.qm9 import QM9Task, qm9_model_from_config
from qm9_testing import N_SUBSET


def _config(model: str = "egnn", tmp_path=None, **overrides) -> tuple[QM9Task, TrainConfig]:
    task = QM9Task()
    defaults = task.defaults(model)
    defaults["extra"].update({"max_molecules": N_SUBSET, "valid_size": None, "test_size": None,
                              **overrides.pop("extra", {})})
    defaults.update({"train_size": None, "hidden": 16, "layers": 2, "plots": False, "threads": None,
                     "run_dir": str(tmp_path / "run") if tmp_path else "runs/unused", **overrides})
    config = TrainConfig(task="qm9", model=model, **defaults)
    task.configure(config)
    return task, config


def test_normalization_loss_and_metrics_follow_their_definitions(qm9_cache):
    task, config = _config(extra={"target": "gap"})
    train, _, test = task.datasets(config)
    model = task.build_model(config, train).double()
    y_train = np.array([float(train[i]["target"]) for i in range(len(train))])
    assert float(model.mean) == pytest.approx(y_train.mean(), rel=1e-12)
    assert float(model.mad) == pytest.approx(np.abs(y_train - y_train.mean()).mean(), rel=1e-12)
    batch = task.collate([test[i] for i in range(7)])
    batch["pos"] = batch["pos"].double()
    with torch.no_grad():
        loss, metrics = task.loss(model, batch)
    y = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], 7).detach().numpy()
    target = batch["target"].numpy()
    mean, mad = y_train.mean(), np.abs(y_train - y_train.mean()).mean()
    assert float(loss) == pytest.approx(np.abs(y - (target - mean) / mad).mean(), rel=1e-10)
    assert metrics["mae"].tolist() == pytest.approx([np.abs(mean + mad * y - target).sum(), 7], rel=1e-10)
    assert metrics["baseline_mae"].tolist() == pytest.approx([np.abs(target - mean).sum(), 7], rel=1e-12)
    assert 1000 < float(model.mean) < 20000  # the HOMO-LUMO gap of small molecules: several eV, in meV


def test_bad_settings(qm9_cache, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown QM9 target 'energy'; choose from mu, alpha"):
        _config(extra={"target": "energy"})
    task, config = _config(train_size=230)
    with pytest.raises(ValueError, match="train_size"):
        task.datasets(config)
    task, config = _config(extra={"valid_size": 42})
    with pytest.raises(ValueError, match="valid_size 42 is larger than the valid split"):
        task.datasets(config)
    with pytest.raises(ValueError, match="test_size"):
        _config(extra={"test_size": 0})
    assert main(["train", "qm9", "--target", "bogus", "--run-dir", str(tmp_path / "cli"), "--no-plots"]) == 2
    assert "unknown QM9 target 'bogus'" in capsys.readouterr().err


def test_short_egnn_run_beats_the_training_mean(qm9_cache, tmp_path):
    task, config = _config("egnn", tmp_path, epochs=6, batch_size=16, lr=3e-3, extra={"target": "U0"})
    metrics = fit(task, config, log=lambda s: None)
    train, _, test = task.datasets(config)
    mean = float(torch.stack([train[i]["target"] for i in range(len(train))]).mean())
    baseline = float(np.mean([abs(float(test[i]["target"]) - mean) for i in range(len(test))]))
    assert metrics["test_baseline_mae"] == pytest.approx(baseline, rel=1e-10)
    assert metrics["test_mae"] < 0.5 * baseline, (metrics["test_mae"], baseline)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test_mae"] == metrics["test_mae"]
    # the checkpoint carries the normalization: a model rebuilt from it predicts the same
    state = load_checkpoint(tmp_path / "run" / "best.pt", task="qm9", model="egnn")
    rebuilt = qm9_model_from_config(json.loads((tmp_path / "run" / "config.json").read_text()))
    rebuilt.load_state_dict(state["model"])
    batch = task.collate([test[i] for i in range(len(test))])
    with torch.no_grad():
        y = rebuilt(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], len(test))
    mae = float((rebuilt.denormalize(y) - batch["target"]).abs().mean())
    assert mae == pytest.approx(metrics["test_mae"], rel=1e-6)


@pytest.mark.parametrize("model", ["ponita", "potential"])
def test_other_models_train(qm9_cache, tmp_path, model):
    extra = {"target": "alpha", "valid_size": 8, "test_size": 8, "num_ori": 4} if model == "ponita" else {
        "target": "alpha", "valid_size": 8, "test_size": 8, "lmax": 1, "correlation": 2}
    task, config = _config(model, tmp_path, epochs=2, batch_size=16, train_size=32, hidden=8, extra=extra)
    metrics = fit(task, config, log=lambda s: None)
    assert np.isfinite(metrics["test_mae"]) and metrics["history"][-1]["train_loss"] < metrics["history"][0][
        "train_loss"]
    assert asdict(config)["extra"]["unit"] == "Bohr^3"
