"""The training loop: one process or many (torchrun), with progress, metrics, checkpoints and plots.

A task returns, for a batch, its loss and a dictionary of metrics as ``(sum, count)`` pairs; the loop sums them
over batches and processes and divides once (names ending in ``_rmse`` are sums of squares, reported as the root
of the mean). The task's ``monitor`` metric on the validation set picks the best epoch and drives the optional
learning-rate schedule on plateau (``lr_schedule="plateau"`` with ``lr_patience``); ``lr_schedule="cosine"``
anneals the rate from ``lr`` to 0 over ``epochs`` instead (``lr (1 + cos(π e / epochs)) / 2`` in epoch ``e + 1``,
counted from 0, as EGNN's QM9 runs). Options: an exponential moving average of the weights (``ema_decay``; the
average is what is validated, tested and saved as ``best.pt``), gradient clipping by norm (``clip_grad``).
The test set is evaluated with the weights of the best validation epoch, the ones in ``best.pt`` (with that
``epoch``, counted from 1); ``last.pt`` holds everything needed to resume.

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
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from liequiv.train.checkpoint import load_checkpoint, save_checkpoint
from liequiv.train.distributed import DistributedContext

Batch = dict[str, Tensor]


Metrics = dict[str, Tensor]  # name -> tensor [2]: (sum, count) over the batch


class Task(Protocol):
    """What the loop needs to know about a task."""

    name: str
    models: tuple[str, ...]
    monitor: str  # the validation metric (lower is better) that picks the best epoch

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]: ...

    def collate(self, samples: list[Any]) -> Batch: ...

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module: ...

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]: ...


class PredictionTask:
    """A task that predicts one tensor per batch against a target, with the mean squared error as loss and metric
    (``mse``); subclasses give ``predict`` and ``target``."""

    monitor = "mse"

    def predict(self, model: nn.Module, batch: Batch) -> Tensor:
        raise NotImplementedError

    def target(self, batch: Batch) -> Tensor:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        err = self.predict(model, batch) - self.target(batch)
        loss = (err**2).mean()
        return loss, {"mse": metric((err.detach().double() ** 2).sum(), err.numel())}

    def plot(self, model: nn.Module, test_set: Dataset, run_dir: Path) -> None:
        """Input, true and predicted positions of the first test sample (``prediction.png``)."""
        from liequiv.train.plots import plot_prediction

        if len(test_set):
            plot_prediction(self, model, test_set[0], run_dir / "prediction.png")


LR_SCHEDULES = ("plateau", "cosine")


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
    ema_decay: float | None = None
    clip_grad: float | None = None
    lr_patience: int | None = None  # evaluations without improvement before the learning rate is reduced
    lr_factor: float = 0.8
    lr_schedule: str = "plateau"  # or "cosine"
    device: str = "cpu"  # or "cuda" (with torchrun: each process its LOCAL_RANK's GPU)
    extra: dict[str, Any] = field(default_factory=dict)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _shard(dataset: Dataset, context: DistributedContext) -> Dataset:
    """Every world_size-th sample, from this rank's offset (no padding: evaluation counts each sample once)."""
    return Subset(dataset, range(context.rank, len(dataset), context.world_size))


def metric(total: Tensor, count: float | Tensor) -> Tensor:
    """A metric's ``(sum, count)`` pair ``[2]`` in float64 on ``total``'s device, detached."""
    total = total.detach().to(torch.float64)
    return torch.stack([total, torch.as_tensor(count, dtype=torch.float64, device=total.device)])


def resolve_device(device: str, context: DistributedContext) -> torch.device:
    """``config.device`` as a torch.device: "cpu", or "cuda" (this process's GPU: LOCAL_RANK's under torchrun);
    ValueError when it cannot be used."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}") from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: this torch sees no GPU (torch.cuda.is_available() is False)")
        if resolved.index is None:
            resolved = torch.device("cuda", context.local_rank if context.enabled else torch.cuda.current_device())
        torch.cuda.set_device(resolved)
    return resolved


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch's tensors on ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _add(totals: dict[str, Tensor], metrics: Metrics) -> None:
    for name, value in metrics.items():
        value = value.detach().to(torch.float64)
        totals[name] = totals[name] + value if name in totals else value.clone()


def reduce_metrics(totals: dict[str, Tensor], context: DistributedContext) -> dict[str, float]:
    """``{name: (sum, count)}`` summed over processes -> ``{name: sum / count}`` (root of it for ``*_rmse``)."""
    out = {}
    for name in sorted(totals):
        total, count = context.all_reduce_sum(totals[name]).tolist()
        value = total / max(count, 1)
        out[name] = math.sqrt(value) if name.endswith("_rmse") else value
    return out


def evaluate(task: Task, model: nn.Module, loader: Iterable[Batch], context: DistributedContext,
             device: torch.device | None = None) -> dict[str, float]:
    """The task's metrics over all samples (moved to ``device``), reduced over processes. Gradients stay enabled
    where the task says its predictions need them (``grad_in_eval``: forces as -dE/dx); nothing is accumulated in
    the parameters."""
    model.eval()
    totals: dict[str, Tensor] = {}
    with torch.set_grad_enabled(getattr(task, "grad_in_eval", False)):
        for batch in loader:
            _, metrics = task.loss(model, batch if device is None else to_device(batch, device))
            _add(totals, metrics)
    return reduce_metrics(totals, context)


def _environment() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def fit(task: Task, config: TrainConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``config.model`` on ``task``; return (and write, on rank 0) the metrics."""
    backend = "nccl" if str(config.device).startswith("cuda") else "gloo"
    context = DistributedContext.from_environment(backend)
    device = resolve_device(config.device, context)
    say = (log or (lambda s: print(s, flush=True))) if context.is_main else (lambda s: None)
    if config.batch_size % context.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {context.world_size} processes")
    if config.ema_decay is not None and not 0 < config.ema_decay < 1:
        raise ValueError(f"ema_decay must lie in (0, 1), got {config.ema_decay}")
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    torch.manual_seed(config.seed)
    monitor = task.monitor
    if hasattr(task, "configure"):  # optional hook: settings of this run the task needs before its data
        task.configure(config)

    train_set, val_set, test_set = task.datasets(config)
    if config.train_size is not None:
        train_set = Subset(train_set, range(min(config.train_size, len(train_set))))
    model = task.build_model(config, train_set).to(device)
    parameters = list(model.parameters())
    n_params = sum(p.numel() for p in parameters)
    if not parameters and config.epochs:  # a fixed baseline (ICP) is only evaluated
        raise ValueError(f"model {config.model!r} has no parameters to train: run it with epochs 0")
    optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay) if parameters else None
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {config.lr_schedule!r}")
    scheduler = None
    if config.lr_schedule == "plateau" and config.lr_patience is not None and optimizer is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.lr_factor,
                                                               patience=config.lr_patience)
    ema = None
    if config.ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    evaluated = ema.module if ema is not None else model
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val": math.inf, "epoch": -1, "state": None}
    start_epoch = 0
    if config.resume:
        state = load_checkpoint(run_dir / "last.pt", task=task.name, model=config.model)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
        torch.set_rng_state(state["rng"])
        say(f"resumed from {run_dir / 'last.pt'} at epoch {start_epoch}")
    trained = model
    if context.enabled:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

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
        totals: dict[str, Tensor] = {}
        epoch_start = time.perf_counter()
        if config.lr_schedule == "cosine":  # from the epoch alone, so that a resumed run with more epochs follows it
            for group in optimizer.param_groups:
                group["lr"] = config.lr * (1 + math.cos(math.pi * epoch / config.epochs)) / 2
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trains with
        for step, batch in enumerate(train_loader):
            loss, metrics = task.loss(trained, to_device(batch, device))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"training loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            _add(totals, metrics)
        seconds = time.perf_counter() - epoch_start
        record: dict[str, float] = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in
                                                          reduce_metrics(totals, context).items()},
                                    "seconds": seconds, "samples_per_s": len(train_set) / seconds,
                                    "lr": lr}
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            record.update({f"val_{k}": v for k, v in evaluate(task, evaluated, val_loader, context,
                                                                          device).items()})
            if scheduler is not None:
                scheduler.step(record[f"val_{monitor}"])
            if record[f"val_{monitor}"] < best["val"]:
                best = {"val": record[f"val_{monitor}"], "epoch": epoch + 1,
                        "state": {k: v.detach().clone() for k, v in evaluated.state_dict().items()}}
        history.append(record)
        val = f" val {record[f'val_{monitor}']:.5g}" if f"val_{monitor}" in record else ""
        extra = "".join(f" | {name} {record[f'val_{name}']:.4g}" for name in getattr(task, "display", ())
                        if f"val_{name}" in record)
        trained_value = record.get(f"train_{monitor}",  # a generative task trains on another metric than it monitors
                                   next((v for k, v in record.items() if k.startswith("train_")), math.nan))
        say(f"epoch {epoch + 1:4d}/{config.epochs} | train {trained_value:.5g}{val}{extra} | "
            f"best {best['val']:.5g} @ {best['epoch']} | {record['samples_per_s']:,.0f} samples/s")
        if context.is_main:
            save_checkpoint(run_dir / "last.pt", task=task.name, model_name=config.model, config=asdict(config),
                            model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch,
                            history=history, best=best, rng=torch.get_rng_state(),
                            scheduler=scheduler.state_dict() if scheduler is not None else None,
                            ema=ema.state_dict() if ema is not None else None)
        context.barrier()

    if best["state"] is not None:
        evaluated.load_state_dict(best["state"])
    test = evaluate(task, evaluated, test_loader, context, device)
    wall = time.perf_counter() - started
    throughput = [r["samples_per_s"] for r in history[start_epoch:]] or [0.0]
    metrics = {
        "task": task.name, "model": config.model, "parameters": n_params, "epochs": config.epochs,
        "monitor": monitor, "best_epoch": best["epoch"], f"best_val_{monitor}": best["val"],
        **{f"test_{k}": v for k, v in test.items()},
        "wall_seconds": wall, "samples_per_s": sorted(throughput)[len(throughput) // 2],
        "world_size": context.world_size, "history": history, "environment": _environment(),
        "command": " ".join(sys.argv),
    }
    shown = "".join(f", {name} {test[name]:.4g}" for name in getattr(task, "display", ()) if name in test)
    say(f"test {monitor} {test[monitor]:.5g}{shown} (best validation {best['val']:.5g} at epoch {best['epoch']}) "
        f"in {wall:.0f} s -> {run_dir}")
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if best["state"] is not None:
            save_checkpoint(run_dir / "best.pt", task=task.name, model_name=config.model, config=asdict(config),
                            model=best["state"], epoch=best["epoch"], **{f"val_{monitor}": best["val"]})
        if config.plots:
            from liequiv.train.plots import plot_learning_curves

            plot_learning_curves(history, monitor, run_dir / "learning_curves.png")
            if hasattr(task, "plot"):  # on the CPU, where the data sets live
                task.plot(evaluated.cpu(), test_set, run_dir)
    context.barrier()
    return metrics
