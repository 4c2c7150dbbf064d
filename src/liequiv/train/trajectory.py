"""The trajectory-forecasting task, ``liequiv train trajectory``: from ``history`` past frames of the charged N-body
system, predict the positions of the next ``horizon`` frames (:class:`~liequiv.data.nbody.NBodyTrajectoryDataset`,
frames 0-9 -> 10-29 by default, the cached splits of ``liequiv train nbody``: 3,000 / 2,000 / 2,000 trajectories).

Models: ``eqmotion`` (:class:`~liequiv.models.EqMotion`, which sees past positions, velocities and charges),
``egnn`` (:class:`~liequiv.models.UnrolledEGNN`, the one-step EGNN applied ``horizon`` times from the last two
past frames, trained through the unroll), both trained on the mean squared error over all future frames, particles
and components (``mse``), and ``geotdm`` (:class:`~liequiv.generative.TrajectoryDiffusion`, a generative model
trained on its diffusion loss, ``diffusion_mse``). Metrics: ADE, the Euclidean distance between predicted and true
positions averaged over the future frames and the particles (the monitor), and FDE, the same on the final frame
only. For ``geotdm`` they are GeoTDM's minADE/minFDE: ``k`` futures are drawn for each trajectory (``sample_steps``
steps of ``sampler``, from a fixed seed per batch so that epochs compare alike), and each trajectory's ADE and FDE
are the smallest over them, taken separately. Drawing futures costs ``k · sample_steps`` network calls, so its
validation and test sets are the first ``valid_size`` and ``test_size`` trajectories of the splits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from liequiv.nn.graph import scatter_mean
from liequiv.train.loop import Batch, Metrics, TrainConfig, metric

if TYPE_CHECKING:
    from liequiv.data.nbody import NBodyConfig

__all__ = ["TrajectoryTask", "displacement_errors", "load_geotdm", "min_displacement_errors", "sample_futures"]


def displacement_errors(pred: Tensor, target: Tensor) -> Metrics:
    """ADE and FDE of ``pred`` against ``target`` ``[N, horizon, 3]``, as ``(sum, count)`` pairs (float64).

    ``ade``: the sum of ``|pred − target|`` over particles and frames, and ``N · horizon``; ``fde``: the sum over
    particles on the last frame, and ``N``. Summed over batches and divided, they give the means over all samples.
    """
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both have shape [N, horizon, 3], got {list(pred.shape)} and "
                         f"{list(target.shape)}")
    distance = torch.linalg.vector_norm(pred.detach().double() - target.double(), dim=-1)  # [N, horizon]
    return {"ade": metric(distance.sum(), distance.numel()), "fde": metric(distance[:, -1].sum(), distance.shape[0])}


def min_displacement_errors(samples: Tensor, target: Tensor, batch: Tensor) -> Metrics:
    """minADE and minFDE of ``k`` drawn futures ``samples [k, N, horizon, 3]`` against ``target [N, horizon, 3]``,
    for the trajectories named by ``batch [N]``, as ``(sum, count)`` pairs over trajectories (float64).

    A trajectory's ADE is its mean distance over particles and frames, its FDE the mean over particles on the last
    frame; each is minimized over the ``k`` samples separately, as GeoTDM reports them.
    """
    if samples.dim() != 4 or samples.shape[1:] != target.shape or target.shape[-1] != 3:
        raise ValueError(f"samples must be [k, N, horizon, 3] around target [N, horizon, 3], got "
                         f"{list(samples.shape)} and {list(target.shape)}")
    distance = torch.linalg.vector_norm(samples.detach().double() - target.double(), dim=-1)  # [k, N, horizon]
    trajectories = int(batch.max()) + 1
    per_node = torch.stack([distance.mean(-1), distance[..., -1]], -1).transpose(0, 1)  # [N, k, 2]
    best = scatter_mean(per_node, batch, trajectories).amin(1)  # [B, 2]
    return {"ade": metric(best[:, 0].sum(), trajectories), "fde": metric(best[:, 1].sum(), trajectories)}


class TrajectoryTask:
    """Trajectory forecasting on the charged N-body system (see the module docstring)."""

    name = "trajectory"
    models = ("eqmotion", "egnn", "geotdm")
    monitor = "ade"
    display = ("fde",)

    def __init__(self, nbody_config: NBodyConfig | None = None) -> None:
        """``nbody_config``: the generator of the splits (default: the published charged preset)."""
        self.nbody_config = nbody_config
        self.frames = {"history": 10, "horizon": 20, "start": 0}
        self.sampling: dict[str, Any] | None = None  # how geotdm draws futures; None for the forecasters

    def defaults(self, model: str) -> dict[str, Any]:
        """Configurations that train in a few minutes on 2 CPU cores, one intra-op thread (5-node graphs).

        The unrolled EGNN feeds on its own output for ``horizon`` steps; with larger steps of the optimizer its
        rollouts diverged in our runs, hence its small learning rate, gradient clipping and bounded coordinate
        messages (EGNN's ``tanh``).
        """
        if model == "geotdm":
            return {"epochs": 100, "batch_size": 100, "lr": 1e-3, "weight_decay": 1e-12, "hidden": 32, "layers": 3,
                    "threads": 1, "eval_every": 5, "extra": {**self.frames, "k": 5, "sample_steps": 50,
                                                             "sampler": "ddim", "valid_size": 200, "test_size": 500}}
        if model == "egnn":
            return {"epochs": 15, "batch_size": 100, "lr": 2e-4, "weight_decay": 1e-12, "hidden": 32, "layers": 2,
                    "clip_grad": 0.3, "threads": 1, "extra": {**self.frames, "tanh": True}}
        return {"epochs": 30, "batch_size": 100, "lr": 2e-3, "weight_decay": 1e-12, "hidden": 64, "layers": 3,
                "lr_patience": 5, "threads": 1, "extra": {**self.frames, "channels": 32, "edge_types": 2}}

    def configure(self, config: TrainConfig) -> None:
        """This run's frames (the loop calls this before it asks for the data)."""
        self.frames = {key: int(config.extra.get(key, default)) for key, default in
                       {"history": 10, "horizon": 20, "start": 0}.items()}
        self.sampling = None
        if config.model == "geotdm":
            extra = config.extra
            self.sampling = {"k": int(extra.get("k", 5)), "steps": int(extra.get("sample_steps", 50)),
                             "sampler": str(extra.get("sampler", "ddim"))}
            self.subsets = (extra.get("valid_size"), extra.get("test_size"))

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.nbody import NBodyTrajectoryDataset

        train, valid, test = (NBodyTrajectoryDataset(split, kind="charged", **self.frames, config=self.nbody_config)
                              for split in ("train", "valid", "test"))
        if self.sampling is not None:
            valid, test = (Subset(data, range(min(int(size), len(data)))) if size is not None else data
                           for data, size in zip((valid, test), self.subsets, strict=True))
        return train, valid, test

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
        if config.model == "geotdm":
            from liequiv.generative.trajectory import constant_velocity_prior

            data = self.collate([train_set[i] for i in range(len(train_set))])
            residual = data["target"] - constant_velocity_prior(data["pos"], self.frames["horizon"])
            return self.geotdm(config, scale=float(residual.square().mean().sqrt()))
        raise ValueError(f"unknown model {config.model!r} for task 'trajectory'; choose from {', '.join(self.models)}")

    def geotdm(self, config: TrainConfig, scale: float = 1.0) -> nn.Module:
        """The geotdm model of ``config``; ``scale``: the RMS deviation of the training futures from the prior."""
        from liequiv.generative.trajectory import TrajectoryDiffusion

        return TrajectoryDiffusion(self.frames["history"], self.frames["horizon"], node_dim=1, hidden=config.hidden,
                                   layers=config.layers, scale=scale)

    def predict(self, model: nn.Module, batch: Batch) -> Tensor:
        """Future positions ``[N, horizon, 3]`` (``[k, N, horizon, 3]``: drawn futures for ``geotdm``)."""
        if self.sampling is not None:
            return model.sample(batch["pos"], batch["charges"], batch["edge_index"], batch["batch"],
                                k=self.sampling["k"], steps=self.sampling["steps"], sampler=self.sampling["sampler"],
                                generator=torch.Generator(batch["pos"].device).manual_seed(0))
        return model(batch["pos"], batch["vel"], batch["charges"], batch["edge_index"], batch["batch"])

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        if self.sampling is not None:
            return self._generative_loss(model, batch)
        pred = self.predict(model, batch)
        target = batch["target"]
        errors = displacement_errors(pred, target)  # checks the shapes
        err = pred - target
        loss = err.square().mean()
        mse = metric(err.detach().double().square().sum(), err.numel())
        return loss, {"mse": mse, **errors}

    def _generative_loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        """Training: the diffusion loss. Evaluation: minADE / minFDE over ``k`` drawn futures."""
        if model.training:
            loss = model(batch["pos"], batch["charges"], batch["target"], batch["edge_index"], batch["batch"])
            count = batch["target"].numel()
            return loss, {"diffusion_mse": metric(loss * count, count)}
        return torch.zeros(()), min_displacement_errors(self.predict(model, batch), batch["target"], batch["batch"])

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


def load_geotdm(checkpoint: str | Path, nbody_config: NBodyConfig | None = None) -> tuple[nn.Module, TrajectoryTask]:
    """The trained model of ``liequiv train trajectory --model geotdm`` from its ``best.pt`` or ``last.pt``, with
    the task configured as it was trained (frames, sampling settings; ``nbody_config`` as given to the task), in
    evaluation mode."""
    from liequiv.train.checkpoint import load_checkpoint

    state = load_checkpoint(Path(checkpoint), task="trajectory", model="geotdm")
    config = TrainConfig(**state["config"])
    task = TrajectoryTask(nbody_config)
    task.configure(config)
    model = task.geotdm(config)
    model.load_state_dict(state["model"])  # the scale too
    return model.eval(), task


def sample_futures(checkpoint: str | Path, out: str | Path, *, trajectories: int = 10, k: int = 5, steps: int = 50,
                   sampler: str = "ddim", seed: int = 0, nbody_config: NBodyConfig | None = None) -> dict[str, float]:
    """Draw ``k`` futures of the first ``trajectories`` test trajectories with a trained geotdm checkpoint; write
    ``samples.npz`` (past, true and drawn futures), ``samples.png`` (the first trajectory) and ``metrics.json``
    (minADE / minFDE over the ``k`` futures) to ``out``; return the metrics."""
    import numpy as np

    from liequiv.data.nbody import NBodyTrajectoryDataset, collate_nbody
    from liequiv.train.plots import plot_trajectories

    model, task = load_geotdm(checkpoint, nbody_config)
    test = NBodyTrajectoryDataset("test", kind="charged", **task.frames, config=nbody_config)
    if not 1 <= trajectories <= len(test):
        raise ValueError(f"trajectories must lie in [1, {len(test)}], got {trajectories}")
    batch = collate_nbody([test[i] for i in range(trajectories)])
    drawn = model.sample(batch["pos"], batch["charges"], batch["edge_index"], batch["batch"], k=k, steps=steps,
                         sampler=sampler, generator=torch.Generator().manual_seed(seed))
    errors = min_displacement_errors(drawn, batch["target"], batch["batch"])
    metrics = {name: float(total / count) for name, (total, count) in errors.items()}
    metrics.update({"trajectories": trajectories, "k": k, "steps": steps, "sampler": sampler})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = int((batch["batch"] == 0).sum())
    np.savez(out / "samples.npz", past=batch["pos"].numpy(), future=batch["target"].numpy(), drawn=drawn.numpy(),
             batch=batch["batch"].numpy())
    plot_trajectories(batch["pos"][:n], batch["target"][:n], drawn[:, :n], out / "samples.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
