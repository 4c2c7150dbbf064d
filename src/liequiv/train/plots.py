"""Figures of a run: learning curves, and predicted vs true positions on a test sample."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from liequiv.train.loop import Task


def plot_learning_curves(history: list[dict[str, float]], path: Path) -> None:
    """Train and validation MSE per epoch, log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["epoch"] for r in history], [r["train_mse"] for r in history], label="train")
    val = [r for r in history if "val_mse" in r]
    ax.plot([r["epoch"] for r in val], [r["val_mse"] for r in val], label="validation")
    ax.set(xlabel="epoch", ylabel="MSE", yscale="log", title="learning curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_prediction(task: Task, model: nn.Module, sample: Any, path: Path) -> None:
    """Input, true and predicted positions of one sample, projected on the xy and xz planes."""
    batch = task.collate([sample])
    model.eval()
    with torch.no_grad():
        pred = task.predict(model, batch)
    start, true = batch["pos"], task.target(batch)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (i, j, name) in zip(axes, [(0, 1, "xy"), (0, 2, "xz")], strict=True):
        for k in range(start.shape[0]):
            ax.plot([start[k, i], true[k, i]], [start[k, j], true[k, j]], color="0.7", lw=1, zorder=1)
        ax.scatter(start[:, i], start[:, j], c="0.4", marker="o", label="input", zorder=2)
        ax.scatter(true[:, i], true[:, j], c="tab:blue", marker="o", label="true", zorder=3)
        ax.scatter(pred[:, i], pred[:, j], c="tab:red", marker="x", label="predicted", zorder=4)
        ax.set(xlabel=name[0], ylabel=name[1], title=f"{name} projection", aspect="equal")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_run(task: Task, model: nn.Module, test_set: Dataset, history: list[dict[str, float]], run_dir: Path) -> None:
    plot_learning_curves(history, run_dir / "learning_curves.png")
    if len(test_set):
        plot_prediction(task, model, test_set[0], run_dir / "prediction.png")
