"""The training loop: one process or many (torchrun), with progress, metrics, checkpoints and plots.

Data parallelism: each of ``world_size`` processes takes ``batch_size / world_size`` samples of every
global batch (a ``DistributedSampler`` seeded by ``seed + epoch``), DDP averages the gradients, and
metrics are summed over processes before they are divided, so that a run on k processes follows the
same trajectory as one process with the same global batch. Rank 0 alone writes files.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from liequiv.train.checkpoint import load_checkpoint, save_checkpoint
from liequiv.train.distributed import DistributedContext

Batch = dict[str, Tensor]


class Task(Protocol):
    """What the loop needs to know about a task."""

    name: str
    models: tuple[str, ...]

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]: ...

    def collate(self, samples: list[Any]) -> Batch: ...

    def build_model(self, config: TrainConfig) -> nn.Module: ...

    def predict(self, model: nn.Module, batch: Batch) -> Tensor: ...

    def target(self, batch: Batch) -> Tensor: ...


@dataclass
class TrainConfig:
    """Everything that defines a run (written to ``config.json`` in the run directory)."""

    task: str = "nbody"
    model: str = "egnn"
    epochs: int = 30
    batch_size: int = 100
    lr: float = 5e-4
    weight_decay: float = 1e-12
    hidden: int = 64
    layers: int = 4
    seed: int = 0
    train_size: int | None = None
    eval_every: int = 1
    run_dir: str = "runs/latest"
    resume: bool = False
    plots: bool = True
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _shard(dataset: Dataset, context: DistributedContext) -> Dataset:
    """Every world_size-th sample, from this rank's offset (no padding: evaluation counts each sample once)."""
    return Subset(dataset, range(context.rank, len(dataset), context.world_size))


def evaluate(task: Task, model: nn.Module, loader: Iterable[Batch], context: DistributedContext) -> float:
    """Mean squared error over all entries of all samples, reduced over processes."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for batch in loader:
            err = task.predict(model, batch) - task.target(batch)
            totals += torch.tensor([float((err.double() ** 2).sum()), err.numel()], dtype=torch.float64)
    totals = context.all_reduce_sum(totals)
    return float(totals[0] / totals[1].clamp_min(1))


def _environment() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def fit(task: Task, config: TrainConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``config.model`` on ``task``; return (and write, on rank 0) the metrics."""
    context = DistributedContext.from_environment()
    say = (log or (lambda s: print(s, flush=True))) if context.is_main else (lambda s: None)
    if config.batch_size % context.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {context.world_size} processes")
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    torch.manual_seed(config.seed)

    train_set, val_set, test_set = task.datasets(config)
    if config.train_size is not None:
        train_set = Subset(train_set, range(min(config.train_size, len(train_set))))
    model = task.build_model(config)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val_mse": math.inf, "epoch": -1, "state": None}
    start_epoch = 0
    if config.resume:
        state = load_checkpoint(run_dir / "last.pt", task=task.name, model=config.model)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
        torch.set_rng_state(state["rng"])
        say(f"resumed from {run_dir / 'last.pt'} at epoch {start_epoch}")
    trained = DistributedDataParallel(model) if context.enabled else model

    sampler = DistributedSampler(train_set, num_replicas=context.world_size, rank=context.rank, shuffle=True,
                                 seed=config.seed, drop_last=False)
    local_batch = config.batch_size // context.world_size
    train_loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, collate_fn=task.collate)
    val_loader = DataLoader(_shard(val_set, context), batch_size=local_batch, collate_fn=task.collate)
    test_loader = DataLoader(_shard(test_set, context), batch_size=local_batch, collate_fn=task.collate)

    say(f"{task.name} | model {config.model} ({n_params:,} parameters) | train {len(train_set)} "
        f"val {len(val_set)} test {len(test_set)} | {context.world_size} process(es) | {config.epochs} epochs")
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        trained.train()
        sampler.set_epoch(epoch)
        totals = torch.zeros(2, dtype=torch.float64)
        epoch_start = time.perf_counter()
        for step, batch in enumerate(train_loader):
            err = task.predict(trained, batch) - task.target(batch)
            loss = (err**2).mean()
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"training loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.tensor([float((err.detach().double() ** 2).sum()), err.numel()], dtype=torch.float64)
        totals = context.all_reduce_sum(totals)
        seconds = time.perf_counter() - epoch_start
        record = {"epoch": epoch + 1, "train_mse": float(totals[0] / totals[1]), "seconds": seconds,
                  "samples_per_s": len(train_set) / seconds}
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            record["val_mse"] = evaluate(task, model, val_loader, context)
            if record["val_mse"] < best["val_mse"]:
                best = {"val_mse": record["val_mse"], "epoch": epoch + 1,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        history.append(record)
        val = f" val {record['val_mse']:.5f}" if "val_mse" in record else ""
        say(f"epoch {epoch + 1:4d}/{config.epochs} | train {record['train_mse']:.5f}{val} | "
            f"best {best['val_mse']:.5f} @ {best['epoch']} | {record['samples_per_s']:,.0f} samples/s")
        if context.is_main:
            save_checkpoint(run_dir / "last.pt", task=task.name, model_name=config.model, config=asdict(config),
                            model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch,
                            history=history, best=best, rng=torch.get_rng_state())
        context.barrier()

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    test_mse = evaluate(task, model, test_loader, context)
    wall = time.perf_counter() - started
    throughput = [r["samples_per_s"] for r in history[start_epoch:]] or [0.0]
    metrics = {
        "task": task.name, "model": config.model, "parameters": n_params, "epochs": config.epochs,
        "best_epoch": best["epoch"], "best_val_mse": best["val_mse"], "test_mse": test_mse,
        "wall_seconds": wall, "samples_per_s": sorted(throughput)[len(throughput) // 2],
        "world_size": context.world_size, "history": history, "environment": _environment(),
        "command": " ".join(sys.argv),
    }
    say(f"test MSE {test_mse:.5f} (best validation {best['val_mse']:.5f} at epoch {best['epoch']}) "
        f"in {wall:.0f} s -> {run_dir}")
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if best["state"] is not None:
            torch.save({"task": task.name, "model_name": config.model, "model": best["state"]}, run_dir / "best.pt")
        if config.plots:
            from liequiv.train.plots import plot_run

            plot_run(task, model, test_set, history, run_dir)
    context.barrier()
    return metrics
