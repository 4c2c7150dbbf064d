"""Figures of a run: learning curves, and predicted vs true positions on a test sample."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

if TYPE_CHECKING:
    from liequiv.train.loop import PredictionTask


def plot_learning_curves(history: list[dict[str, float]], metric: str, path: Path) -> None:
    """Train and validation ``metric`` per epoch, log scale; where training reports another metric (a generative
    model's loss), it goes on a second axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    trained = [k for k in history[0] if k.startswith("train_")] if history else []
    train_key = f"train_{metric}" if f"train_{metric}" in trained else (trained[0] if trained else None)
    train_ax = ax if train_key == f"train_{metric}" else ax.twinx()
    if train_key is not None:
        train_ax.plot([r["epoch"] for r in history], [r[train_key] for r in history], color="C0",
                      label=f"train {train_key.removeprefix('train_')}")
        train_ax.set_yscale("log")
    val = [r for r in history if f"val_{metric}" in r]
    ax.plot([r["epoch"] for r in val], [r[f"val_{metric}"] for r in val], color="C1", label=f"validation {metric}")
    ax.set(xlabel="epoch", ylabel=metric, yscale="log", title="learning curves")
    fig.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_prediction(task: PredictionTask, model: nn.Module, sample: Any, path: Path) -> None:
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



def plot_parity(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], path: Path) -> None:
    """One panel per ``name: (reference, predicted)``: predicted against reference, with the diagonal."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.5), squeeze=False)
    for ax, (name, (ref, pred)) in zip(axes[0], pairs.items(), strict=True):
        ref, pred = ref.detach().double().numpy(), pred.detach().double().numpy()
        low, high = min(ref.min(), pred.min()), max(ref.max(), pred.max())
        ax.plot([low, high], [low, high], color="0.6", lw=1)
        ax.scatter(ref, pred, s=4, alpha=0.5)
        mae = abs(ref - pred).mean()
        ax.set(xlabel=f"reference {name}", ylabel=f"predicted {name}", title=f"MAE {mae:.4g}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_trajectories(past: torch.Tensor, true: torch.Tensor, pred: torch.Tensor, path: Path) -> None:
    """Past ``[N, T, 3]``, true and predicted future ``[N, H, 3]`` (or ``[K, N, H, 3]``: K drawn futures)
    trajectories, projected on the xy and xz planes; one colour a particle, the future drawn on from the last past
    frame."""
    past, true, pred = (t.detach().double().cpu() for t in (past, true, pred))
    pred = pred[None] if pred.dim() == 3 else pred
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (i, j, name) in zip(axes, [(0, 1, "xy"), (0, 2, "xz")], strict=True):
        for k in range(past.shape[0]):
            colour = colours(k % 10)
            last = past[k, -1:]
            ax.plot(past[k, :, i], past[k, :, j], color=colour, lw=1, alpha=0.5, label="past" if k == 0 else None)
            ax.scatter(last[:, i], last[:, j], color=colour, s=15)
            future = torch.cat([last, true[k]])
            ax.plot(future[:, i], future[:, j], color=colour, lw=2, label="true" if k == 0 else None)
            for n, drawn in enumerate(pred[:, k]):
                future = torch.cat([last, drawn])
                ax.plot(future[:, i], future[:, j], color=colour, lw=1.5, ls="--", alpha=1 / len(pred) ** 0.5,
                        label="predicted" if k == n == 0 else None)
        ax.set(xlabel=name[0], ylabel=name[1], title=f"{name} projection", aspect="equal")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
