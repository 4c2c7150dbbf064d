"""The gravity task: the inputs each model gets, and one epoch of every model on a tiny split."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from liequiv.data.gravity import GravityConfig
from liequiv.train.gravity import GravityPredictor, GravityTask
from liequiv.train.loop import TrainConfig, fit

TINY = GravityConfig(split_sizes=(40, 20, 20))  # 41 frames as the default, few trajectories


class _Recorder(nn.Module):
    """Returns pos and keeps the node features (and gravity) it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict = {}

    def forward(self, pos, vel, features, edge_index, batch, **kwargs):
        self.seen = {"features": features, **kwargs}
        return pos


def test_predictor_inputs() -> None:
    """Node scalars [charge, −x·ĝ] per graph's own ĝ; gravity passed on only to a network that takes it."""
    pos = torch.tensor([[0.0, 0, 2], [1, 1, 3], [0, 4, 0], [0, 0, 0]])
    charges = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    gravity = torch.tensor([[0.0, 0, -1], [0, 1, 0]])
    batch = torch.tensor([0, 0, 1, 1])
    for uses_gravity in (True, False):
        network = _Recorder()
        GravityPredictor(network, uses_gravity)(pos, torch.zeros(4, 3), charges, torch.zeros(2, 0, dtype=torch.long),
                                                batch, gravity)
        assert network.seen["features"].tolist() == [[1, 2], [-1, 3], [1, -4], [-1, 0]]
        assert ("gravity" in network.seen) == uses_gravity


@pytest.mark.parametrize("model", GravityTask.models)
def test_each_model_trains_one_epoch(tmp_path: Path, model: str) -> None:
    task = GravityTask(TINY)
    config = TrainConfig(task="gravity", model=model, **task.defaults(model))
    config.epochs, config.hidden, config.layers, config.batch_size = 1, 8, 2, 20
    config.run_dir, config.plots = str(tmp_path), False
    metrics = fit(task, config, log=lambda line: None)
    assert metrics["best_epoch"] == 1 and math.isfinite(metrics["test_mse"]) and metrics["test_mse"] > 0
    assert (tmp_path / "best.pt").exists()


def test_unknown_model() -> None:
    config = TrainConfig(task="gravity", model="ponita")
    with pytest.raises(ValueError, match="subegnn, egnn, gnn"):
        GravityTask(TINY).build_model(config, None)
