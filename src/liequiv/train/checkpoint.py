"""Checkpoints that know which task and model wrote them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, *, task: str, model_name: str, **state: Any) -> None:
    """Write ``state`` with the task and model names, atomically (a partial file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"task": task, "model_name": model_name, **state}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, *, task: str, model: str) -> dict[str, Any]:
    """Read a checkpoint; ``ValueError`` if it is missing, unreadable, or from another task or model."""
    if not path.exists():
        raise ValueError(f"no checkpoint to resume from at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path} could not be read: {error}") from error
    if not isinstance(state, dict) or "model_name" not in state:
        raise ValueError(f"{path} is not a liequiv checkpoint")
    if state["task"] != task or state["model_name"] != model:
        raise ValueError(f"checkpoint {path} was written for task {state['task']!r} and model "
                         f"{state['model_name']!r}, not task {task!r} and model {model!r}")
    return state
