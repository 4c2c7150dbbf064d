"""Built-in tasks for ``liequiv train``: data, models and what to predict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.train.loop import Batch, PredictionTask, Task, TrainConfig


def _build_nbody_model(config: TrainConfig) -> nn.Module:
    """The model called ``config.model`` (imported on demand), with one scalar node feature: the charge."""
    size = {"node_dim": 1, "hidden": config.hidden, "layers": config.layers}
    if config.model == "egnn":
        from liequiv.models.egnn import EGNN

        return EGNN(**size)
    if config.model in ("ponita", "ponita-r3"):
        from liequiv.models.ponita import PONITA, PONITAR3

        return PONITA(**size, **config.extra) if config.model == "ponita" else PONITAR3(**size)
    if config.model == "fa-gnn":
        from liequiv.models.frame_averaged import FrameAveragedGNN

        return FrameAveragedGNN(**size)
    if config.model == "gnn":
        from liequiv.models.baselines import GNN

        return GNN(**size)
    from liequiv.models.baselines import LinearDynamics

    return LinearDynamics()


class NBodyTask(PredictionTask):
    """Charged particles (EGNN's benchmark): positions, velocities and charges at frame 30 -> positions at 40.

    Splits of 3,000 / 2,000 / 2,000 trajectories, generated locally and cached (``liequiv.data.nbody``).
    """

    name = "nbody"
    models = ("egnn", "ponita", "ponita-r3", "fa-gnn", "gnn", "linear")

    def defaults(self, model: str) -> dict[str, Any]:
        """A configuration that trains in a few minutes on 2 CPU cores.

        One intra-op thread per process: the graphs are small (5 nodes), so threads only contend.
        """
        return {"epochs": 50, "batch_size": 100, "lr": 5e-4, "weight_decay": 1e-12, "hidden": 64, "layers": 4,
                "threads": 1}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.nbody import NBodyDataset

        return tuple(NBodyDataset(split, kind="charged") for split in ("train", "valid", "test"))

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.nbody import collate_nbody

        return collate_nbody(samples)

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        return _build_nbody_model(config)

    def predict(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(batch["pos"], batch["vel"], batch["charges"], batch["edge_index"], batch["batch"])

    def target(self, batch: Batch) -> Tensor:
        return batch["target"]


def _potential_task() -> Task:
    from liequiv.train.potential import PotentialTask

    return PotentialTask()


def _materials_task() -> Task:
    from liequiv.train.potential import MaterialsTask

    return MaterialsTask()


def _trajectory_task() -> Task:
    from liequiv.train.trajectory import TrajectoryTask

    return TrajectoryTask()


def _qm9_task() -> Task:
    from liequiv.train.qm9 import QM9Task

    return QM9Task()


def _registration_task() -> Task:
    from liequiv.train.registration import RegistrationTask

    return RegistrationTask()


def _qm9_generation_task() -> Task:
    from liequiv.train.qm9_generation import QM9GenerationTask

    return QM9GenerationTask()


def _digits_task() -> Task:
    from liequiv.train.digits import DigitsTask

    return DigitsTask()


def _gravity_task() -> Task:
    from liequiv.train.gravity import GravityTask

    return GravityTask()


TASKS: dict[str, Callable[[], Task]] = {"nbody": NBodyTask, "md17": _potential_task, "materials": _materials_task,
                                        "trajectory": _trajectory_task, "qm9": _qm9_task,
                                        "registration": _registration_task, "gravity": _gravity_task,
                                        "qm9gen": _qm9_generation_task, "digits": _digits_task}


def get_task(name: str) -> Task:
    """The task called ``name``; ``ValueError`` naming the known ones otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]()
