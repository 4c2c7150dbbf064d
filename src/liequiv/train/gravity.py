"""The gravity task, ``liequiv train gravity``: charged particles falling onto a floor
(:class:`~liequiv.data.gravity.GravityDataset`, 3,000 / 500 / 500 trajectories); from positions, velocities and
charges at frame 30 predict the positions at frame 40, one time unit later (``--train-size`` from 100 to 3,000).

Models, each given the node scalars ``[charge, height above the floor]`` (the floor breaks vertical translations;
without the height no model could know when a particle bounces), the height being ``−x·ĝ`` (the floor passes through
the origin, perpendicular to ĝ):

- ``subegnn``: :class:`~liequiv.models.subequivariant.SubequivariantEGNN`, which also gets the direction ĝ as a
  vector: equivariant to rotations about ĝ and mirrors through vertical planes, like the dynamics.
- ``egnn``: :class:`~liequiv.models.EGNN`, E(3)-equivariant without ĝ: it has no vector that points down, so it
  cannot represent the fall.
- ``gnn``: :class:`~liequiv.models.GNN`, non-equivariant message passing on raw coordinates (which contain ĝ
  implicitly, as the z axis of every sample).

Loss and metric: the mean squared error of the positions (``mse``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.data.gravity import GravityConfig
from liequiv.train.loop import Batch, PredictionTask, TrainConfig

__all__ = ["GravityPredictor", "GravityTask"]


class GravityPredictor(nn.Module):
    """A dynamics network with the gravity task's inputs: node scalars ``[charge, height = −x·ĝ]``, and ĝ itself for
    a network that takes ``gravity`` (``uses_gravity``).

    ``forward(pos [N, 3], vel [N, 3], charges [N, 1], edge_index [2, E], batch [N], gravity [B, 3]) -> [N, 3]``.
    """

    def __init__(self, network: nn.Module, uses_gravity: bool) -> None:
        super().__init__()
        self.network, self.uses_gravity = network, uses_gravity

    def forward(self, pos: Tensor, vel: Tensor, charges: Tensor, edge_index: Tensor, batch: Tensor,
                gravity: Tensor) -> Tensor:
        height = -(pos * gravity[batch]).sum(-1, keepdim=True)
        features = torch.cat([charges, height], -1)
        if self.uses_gravity:
            return self.network(pos, vel, features, edge_index, batch, gravity=gravity)
        return self.network(pos, vel, features, edge_index, batch)


class GravityTask(PredictionTask):
    """Charged particles under gravity above a floor: the state at frame 30 -> the positions at frame 40.

    ``data_config`` replaces the generator's settings (smaller splits in tests).
    """

    name = "gravity"
    models = ("subegnn", "egnn", "gnn")

    def __init__(self, data_config: GravityConfig | None = None) -> None:
        self.data_config = GravityConfig() if data_config is None else data_config

    def defaults(self, model: str) -> dict[str, Any]:
        """A configuration that trains in about two minutes on 2 CPU cores: all 3,000 training trajectories, 40 epochs.

        One intra-op thread per process: the graphs are small (5 nodes), so threads only contend.
        """
        return {"epochs": 40, "batch_size": 100, "lr": 5e-4, "weight_decay": 1e-12, "hidden": 64, "layers": 4,
                "threads": 1}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.gravity import GravityDataset

        return tuple(GravityDataset(split, config=self.data_config) for split in ("train", "valid", "test"))

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.gravity import collate_gravity

        return collate_gravity(samples)

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        size = {"node_dim": 2, "hidden": config.hidden, "layers": config.layers}
        if config.model == "subegnn":
            from liequiv.models.subequivariant import SubequivariantEGNN

            return GravityPredictor(SubequivariantEGNN(**size), uses_gravity=True)
        if config.model == "egnn":
            from liequiv.models.egnn import EGNN

            return GravityPredictor(EGNN(**size), uses_gravity=False)
        if config.model == "gnn":
            from liequiv.models.baselines import GNN

            return GravityPredictor(GNN(**size), uses_gravity=False)
        raise ValueError(f"unknown model {config.model!r} for task 'gravity'; choose from {', '.join(self.models)}")

    def predict(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(batch["pos"], batch["vel"], batch["charges"], batch["edge_index"], batch["batch"],
                     batch["gravity"])

    def target(self, batch: Batch) -> Tensor:
        return batch["target"]
