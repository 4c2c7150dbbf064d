"""The trajectory-forecasting task, ``liequiv train trajectory``: from ``history`` past frames of the charged N-body
system, predict the positions of the next ``horizon`` frames (:class:`~liequiv.data.nbody.NBodyTrajectoryDataset`,
frames 0-9 -> 10-29 by default, the cached splits of ``liequiv train nbody``: 3,000 / 2,000 / 2,000 trajectories).

Models: ``eqmotion`` (:class:`~liequiv.models.EqMotion`, which sees past positions, velocities and charges) and
``egnn`` (:class:`~liequiv.models.UnrolledEGNN`, the one-step EGNN applied ``horizon`` times from the last two
past frames, trained through the unroll). Loss: the mean squared error over all future frames, particles and
components (``mse``). Metrics: ADE, the Euclidean distance between predicted and true positions averaged over the
future frames and the particles (the monitor), and FDE, the same on the final frame only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.train.loop import Batch, Metrics, TrainConfig

if TYPE_CHECKING:
    from liequiv.data.nbody import NBodyConfig

__all__ = ["TrajectoryTask", "displacement_errors"]


def displacement_errors(pred: Tensor, target: Tensor) -> Metrics:
    """ADE and FDE of ``pred`` against ``target`` ``[N, horizon, 3]``, as ``(sum, count)`` pairs (float64).

    ``ade``: the sum of ``|pred − target|`` over particles and frames, and ``N · horizon``; ``fde``: the sum over
    particles on the last frame, and ``N``. Summed over batches and divided, they give the means over all samples.
    """
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both have shape [N, horizon, 3], got {list(pred.shape)} and "
                         f"{list(target.shape)}")
    distance = torch.linalg.vector_norm(pred.detach().double() - target.double(), dim=-1)  # [N, horizon]
    return {"ade": torch.stack([distance.sum(), torch.tensor(float(distance.numel()))]),
            "fde": torch.stack([distance[:, -1].sum(), torch.tensor(float(distance.shape[0]))])}


class TrajectoryTask:
    """Trajectory forecasting on the charged N-body system (see the module docstring)."""

    name = "trajectory"
    models = ("eqmotion", "egnn")
    monitor = "ade"
    display = ("fde",)

    def __init__(self, nbody_config: NBodyConfig | None = None) -> None:
        """``nbody_config``: the generator of the splits (default: the published charged preset)."""
        self.nbody_config = nbody_config
        self.frames = {"history": 10, "horizon": 20, "start": 0}

    def defaults(self, model: str) -> dict[str, Any]:
        """Configurations that train in a few minutes on 2 CPU cores, one intra-op thread (5-node graphs).

        The unrolled EGNN feeds on its own output for ``horizon`` steps; with larger steps of the optimizer its
        rollouts diverged in our runs, hence its small learning rate, gradient clipping and bounded coordinate
        messages (EGNN's ``tanh``).
        """
        if model == "egnn":
            return {"epochs": 15, "batch_size": 100, "lr": 2e-4, "weight_decay": 1e-12, "hidden": 32, "layers": 2,
                    "clip_grad": 0.3, "threads": 1, "extra": {**self.frames, "tanh": True}}
        return {"epochs": 30, "batch_size": 100, "lr": 2e-3, "weight_decay": 1e-12, "hidden": 64, "layers": 3,
                "lr_patience": 5, "threads": 1, "extra": {**self.frames, "channels": 32, "edge_types": 2}}

    def configure(self, config: TrainConfig) -> None:
        """This run's frames (the loop calls this before it asks for the data)."""
        self.frames = {key: int(config.extra.get(key, default)) for key, default in
                       {"history": 10, "horizon": 20, "start": 0}.items()}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.nbody import NBodyTrajectoryDataset

        return tuple(NBodyTrajectoryDataset(split, kind="charged", **self.frames, config=self.nbody_config)
                     for split in ("train", "valid", "test"))

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.nbody import collate_nbody

        return collate_nbody(samples)

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        if config.model == "eqmotion":
            from liequiv.models.eqmotion import EqMotion

            return EqMotion(self.frames["history"], self.frames["horizon"], node_dim=1, hidden=config.hidden,
                            channels=int(config.extra.get("channels", 32)), layers=config.layers,
                            edge_types=int(config.extra.get("edge_types", 2)))
        if config.model == "egnn":
            from liequiv.models.unrolled import UnrolledEGNN

            return UnrolledEGNN(self.frames["horizon"], node_dim=1, hidden=config.hidden, layers=config.layers,
                                tanh=bool(config.extra.get("tanh", True)))
        raise ValueError(f"unknown model {config.model!r} for task 'trajectory'; choose from {', '.join(self.models)}")

    def predict(self, model: nn.Module, batch: Batch) -> Tensor:
        """Future positions ``[N, horizon, 3]``."""
        return model(batch["pos"], batch["vel"], batch["charges"], batch["edge_index"], batch["batch"])

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        pred = self.predict(model, batch)
        target = batch["target"]
        errors = displacement_errors(pred, target)  # checks the shapes
        err = pred - target
        loss = err.square().mean()
        mse = torch.stack([err.detach().double().square().sum(), torch.tensor(float(err.numel()))])
        return loss, {"mse": mse, **errors}

    def plot(self, model: nn.Module, test_set: Dataset, run_dir: Path) -> None:
        """Past, true and predicted trajectories of the first test sample (``prediction.png``)."""
        from liequiv.train.plots import plot_trajectories

        if len(test_set) == 0:
            return
        batch = self.collate([test_set[0]])
        model.eval()
        with torch.no_grad():
            pred = self.predict(model, batch)
        plot_trajectories(batch["pos"], batch["target"], pred, Path(run_dir) / "prediction.png")
