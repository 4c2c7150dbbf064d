"""A small untrained tensor-product potential saved as a ``liequiv train`` checkpoint (for calculator and MD tests)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from liequiv.train.checkpoint import save_checkpoint
from liequiv.train.loop import TrainConfig
from liequiv.train.potential import PotentialTask, potential_from_config


def write_potential_checkpoint(path: Path, task: str = "md17", elements=(28, 29), scale: float = 0.7,
                               seed: int = 0) -> torch.nn.Module:
    """Save a seeded 4-channel, lmax-1 potential of ``elements`` (cutoff 3.5 Å) at ``path``; return it (float32)."""
    defaults = PotentialTask().defaults("tp-potential")
    defaults["extra"].update({"elements": list(elements), "lmax": 1, "cutoff": 3.5, "correlation": 2})
    config = TrainConfig(task=task, model="tp-potential", **{**defaults, "hidden": 4})
    torch.manual_seed(seed)
    model = potential_from_config(asdict(config))
    model.set_statistics(reference_energies=[-1.0 - k for k in range(len(elements))], scale=scale, shift=0.1,
                         avg_num_neighbors=12.0)
    save_checkpoint(path, task=task, model_name="tp-potential", config=asdict(config), model=model.state_dict())
    return model
