"""A tiny dynamics task for testing the training loop (importable by torchrun child processes)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.models import EGNN
from liequiv.nn.graph import fully_connected_edges
from liequiv.train.loop import PredictionTask, TrainConfig

N_NODES = 4


class ToyDynamics(Dataset):
    """Graphs of 4 points; the target is pos + 0.3 vel + a charge-dependent pull to the centroid."""

    def __init__(self, size: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.pos = torch.randn(size, N_NODES, 3, generator=g)
        self.vel = torch.randn(size, N_NODES, 3, generator=g)
        self.charges = torch.randint(0, 2, (size, N_NODES, 1), generator=g).float() * 2 - 1
        centred = self.pos - self.pos.mean(1, keepdim=True)
        self.target = self.pos + 0.3 * self.vel - 0.2 * self.charges * centred

    def __len__(self) -> int:
        return self.pos.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"pos": self.pos[i], "vel": self.vel[i], "charges": self.charges[i], "target": self.target[i]}


class ToyTask(PredictionTask):
    name = "toy"
    models = ("egnn", "broken")

    def __init__(self, sizes: tuple[int, int, int] = (64, 16, 16)) -> None:
        self.sizes = sizes

    def defaults(self, model: str) -> dict[str, Any]:
        return {"epochs": 3, "batch_size": 8, "lr": 1e-3, "hidden": 16, "layers": 2}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        return tuple(ToyDynamics(n, seed) for n, seed in zip(self.sizes, (1, 2, 3), strict=True))

    def collate(self, samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        out = {k: torch.cat([s[k] for s in samples]) for k in samples[0]}
        out["edge_index"] = fully_connected_edges(N_NODES, len(samples))
        out["batch"] = torch.arange(len(samples)).repeat_interleave(N_NODES)
        return out

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        model = EGNN(node_dim=1, hidden=config.hidden, layers=config.layers)
        if config.model == "broken":
            model.embedding.weight.data.fill_(float("nan"))
        return model

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return model(batch["pos"], batch["vel"], batch["charges"], batch["edge_index"], batch["batch"])

    def target(self, batch: dict[str, Tensor]) -> Tensor:
        return batch["target"]


class Scale(nn.Module):
    """``y = w x`` with one weight ``w``, starting at 0 (float64)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x


class Line(Dataset):
    """``size`` points ``x`` (seeded normal, float64) with targets ``slope · x``."""

    def __init__(self, size: int, slope: float, seed: int) -> None:
        self.x = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.y = slope * self.x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class ScaleTask(PredictionTask):
    """Fit ``w`` to lines of slope 1 (training) while validation and test lines have slope 0.3: training moves
    ``w`` from 0 through 0.3 towards 1, so the validation MSE ``(w - 0.3)² mean(x²)`` is best at a middle epoch."""

    name = "scale"
    models = ("scale",)
    slopes = (1.0, 0.3, 0.3)

    def __init__(self, sizes: tuple[int, int, int] = (8, 5, 7)) -> None:
        self.sizes = sizes

    def defaults(self, model: str) -> dict[str, Any]:
        return {"epochs": 6, "batch_size": 8, "lr": 0.1, "weight_decay": 0.0}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        return tuple(Line(n, slope, seed) for n, slope, seed in zip(self.sizes, self.slopes, (1, 2, 3), strict=True))

    def collate(self, samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        return Scale()

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return model(batch["x"])

    def target(self, batch: dict[str, Tensor]) -> Tensor:
        return batch["y"]
