"""The qm9gen task and ``liequiv sample qm9``: the conditioning's normalization, a deterministic evaluation loss, a
short run of each model whose loss falls, and sampling that writes scored molecules (first 300 molecules of QM9,
skipped without qm9pack)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liequiv.cli import main
from liequiv.generative.molecules import SYMBOLS
from liequiv.train.loop import TrainConfig, fit
from liequiv.train.qm9_generation import QM9GenerationTask, load_generator, sample_molecules
from qm9_testing import N_SUBSET


def _config(model: str, tmp_path, **overrides) -> tuple[QM9GenerationTask, TrainConfig]:
    task = QM9GenerationTask()
    defaults = task.defaults(model)
    defaults["extra"].update({"max_molecules": N_SUBSET, "valid_size": 16, "test_size": 16,
                              **overrides.pop("extra", {})})
    defaults.update({"train_size": 64, "hidden": 16, "layers": 2, "batch_size": 16, "lr": 2e-3, "plots": False,
                     "threads": None, "run_dir": str(tmp_path / "run"), **overrides})
    config = TrainConfig(task="qm9gen", model=model, **defaults)
    task.configure(config)
    return task, config


def test_conditioning_is_normalized_and_enters_the_loss(qm9_cache, tmp_path):
    task, config = _config("edm", tmp_path, extra={"target": "gap"})
    train, valid, _ = task.datasets(config)
    model = task.build_model(config, train).eval()
    y = np.array([float(train[i]["target"]) for i in range(len(train))])
    assert float(model.condition_mean) == pytest.approx(y.mean(), rel=1e-12)
    assert float(model.condition_mad) == pytest.approx(np.abs(y - y.mean()).mean(), rel=1e-12)
    batch = task.collate([valid[i] for i in range(8)])
    with torch.no_grad():
        first, metrics = task.loss(model, batch)
        second, _ = task.loss(model, batch)
        assert float(first) == float(second)  # evaluation draws from a seed
        assert metrics["loss"].tolist() == pytest.approx([8 * float(first), 8])
        shifted = dict(batch, target=batch["target"] + 5 * float(model.condition_mad))
        assert abs(float(task.loss(model, shifted)[0]) - float(first)) > 1e-6  # the property is an input
    unconditional = task.build_model(_config("edm", tmp_path)[1], train)
    assert float(unconditional.condition_mad) == 0 and not unconditional.generator.denoiser.conditional


@pytest.mark.parametrize("model", ["edm", "flow"])
def test_short_run_and_sampling(qm9_cache, tmp_path, model):
    task, config = _config(model, tmp_path, epochs=4)
    metrics = fit(task, config, log=lambda s: None)
    history = metrics["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] and np.isfinite(metrics["test_loss"])
    out = tmp_path / "samples"
    sampled = sample_molecules(tmp_path / "run" / "best.pt", out, n=6, steps=4, seed=1)
    for key in ("atom_stability", "molecule_stability", "validity"):
        assert 0 <= sampled[key] <= 1
    assert sampled["molecules"] == 6 and sampled["sampler"] == config.extra["sampler"]
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(sampled, nan_ok=True)
    blocks = (out / "molecules.xyz").read_text().split("molecule ")
    counts = [int(line) for line in (out / "molecules.xyz").read_text().splitlines() if line.strip().isdigit()]
    assert len(counts) == 6 and len(blocks) == 7
    train, _, _ = task.datasets(config)
    assert set(counts) <= set(train.n_atoms.tolist())  # sizes drawn from the training molecules
    symbols = {line.split()[0] for line in (out / "molecules.xyz").read_text().splitlines() if len(line.split()) == 4}
    assert symbols <= set(SYMBOLS)
    assert (out / "molecules.sdf").read_text().count("$$$$") == 6
    generator, loaded = load_generator(tmp_path / "run" / "best.pt")
    assert loaded.model == model and not generator.training


def test_cli_sample_and_bad_input(qm9_cache, tmp_path, capsys):
    task, config = _config("flow", tmp_path, epochs=1)
    fit(task, config, log=lambda s: None)
    assert main(["sample", "qm9", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--n", "3", "--steps", "2",
                 "--out", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["molecules"] == 3
    with pytest.raises(ValueError, match="unknown model 'gan' for task 'qm9gen'"):
        task.build_model(TrainConfig(task="qm9gen", model="gan", extra={}), None)
    with pytest.raises(ValueError, match="was written for task 'qm9gen'"):
        from liequiv.train.checkpoint import load_checkpoint

        load_checkpoint(tmp_path / "run" / "best.pt", task="qm9", model="egnn")
    with pytest.raises(ValueError, match="n must be"):
        sample_molecules(tmp_path / "run" / "best.pt", tmp_path / "bad", n=0)
    with pytest.raises(ValueError, match="regressor evaluates property-conditioned generation"):
        sample_molecules(tmp_path / "run" / "best.pt", tmp_path / "bad", n=2, regressor=tmp_path / "none.pt")


def test_property_error_is_the_regressors_mae_on_given_molecules(qm9_cache, tmp_path):
    """Real molecules passed as 'generated', with their true values requested: the property error is the regressor's
    own MAE on them, as its task computes it."""
    from liequiv.generative.molecules import element_index
    from liequiv.train.qm9 import QM9Task
    from liequiv.train.qm9_generation import property_error

    task = QM9Task()
    defaults = task.defaults("egnn")
    defaults["extra"].update({"target": "gap", "max_molecules": N_SUBSET, "valid_size": None, "test_size": None})
    defaults.update({"train_size": None, "hidden": 16, "layers": 2, "epochs": 2, "plots": False, "threads": None,
                     "run_dir": str(tmp_path / "regressor")})
    config = TrainConfig(task="qm9", model="egnn", **defaults)
    task.configure(config)
    metrics = fit(task, config, log=lambda s: None)
    _, _, test = task.datasets(config)
    molecules = [test[i] for i in range(len(test))]
    requested = torch.stack([m["target"] for m in molecules])
    errors = property_error(tmp_path / "regressor" / "best.pt", "gap", [element_index(m["numbers"]) for m in molecules],
                            [m["pos"] for m in molecules], requested)
    assert errors["property_mae"] == pytest.approx(metrics["test_mae"], rel=1e-5)
    assert errors["property_mae_of_mean"] == pytest.approx(float((requested - requested.mean()).abs().mean()))
    with pytest.raises(ValueError, match="the regressor predicts 'gap', the generator is conditioned on 'homo'"):
        property_error(tmp_path / "regressor" / "best.pt", "homo", [], [], requested[:0])
