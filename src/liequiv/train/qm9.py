"""The QM9 property-regression task: ``liequiv train qm9 --target U0 --model egnn | ponita | potential``.

Data: :class:`~liequiv.data.qm9.QM9Dataset`, Cormorant's split (100,000 / 17,748 / 13,083), one target in the units
of EGNN's table (``--target``, default U0; meV for energies). ``--train-size`` keeps the first molecules of the
training split, ``--valid-size`` and ``--test-size`` of the validation and test splits (short runs; the complete
splits with ``--valid-size 17748 --test-size 13083``).

Models, each a sum over atoms of an invariant readout, predicting the normalized target ``(y - mean) / MAD`` (mean
and mean absolute deviation of the training molecules used, EGNN's normalization), kept as buffers of
:class:`QM9Regressor` so that a checkpoint predicts in the target's units:

- ``egnn``: EGNN's QM9 network (:class:`~liequiv.models.molecular_properties.PropertyEGNN`) on the fully connected
  graph of each molecule, node features from the atom types and nuclear charges
  (:func:`~liequiv.models.molecular_properties.atom_type_features`; Mulliken charges are DFT outputs, not inputs).
- ``ponita``: :class:`~liequiv.models.molecular_properties.PropertyPONITA`, same graph and node features.
- ``potential``: :class:`~liequiv.models.TensorProductPotential` on a radius graph (``--cutoff``, 5 Å), its energy
  (a sum of invariant atomic readouts, without reference energies) read as the normalized target.

Loss: L1 on the normalized target (EGNN's). Metrics (``mae`` is the monitor): ``mae`` in the target's units,
``baseline_mae`` (predicting the training mean), ``loss``. The loop has no cosine learning-rate schedule (EGNN
anneals over its 1,000 epochs): only the plateau schedule of ``--lr-patience``.

EGNN's protocol: ``--model egnn --hidden 128 --layers 7 --train-size 100000 --valid-size 17748 --epochs 1000
--batch-size 96 --lr 1e-3 --weight-decay 1e-16 --valid-size 17748 --test-size 13083`` (lr 5e-4 for homo, lumo,
gap in the paper).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from liequiv.train.loop import Batch, Metrics, TrainConfig, metric

__all__ = ["QM9Regressor", "QM9Task", "dataset_targets", "graph_cutoff", "qm9_model_from_config"]

NEIGHBOR_SAMPLE = 1000  # training molecules that set the tensor-product model's average neighbour count


class QM9Regressor(nn.Module):
    """A property network with its normalization: ``forward`` gives the normalized prediction ``[B]``,
    :meth:`denormalize` maps it to the target's units (``mean + MAD · y``)."""

    def __init__(self, network: nn.Module, kind: str) -> None:
        super().__init__()
        self.network, self.kind = network, kind
        self.register_buffer("mean", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("mad", torch.tensor(1.0, dtype=torch.float64))

    def forward(self, numbers: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """``numbers [N]``, ``pos [N, 3]`` (Å), ``edge_index [2, E]``, ``batch [N]`` -> normalized prediction
        ``[B]``."""
        if self.kind == "potential":
            return self.network(numbers, pos, edge_index, batch, num_graphs=num_graphs, compute_forces=False)["energy"]
        from liequiv.models.molecular_properties import atom_type_features

        return self.network(atom_type_features(numbers).to(pos.dtype), pos, edge_index, batch, num_graphs)

    def denormalize(self, y: Tensor) -> Tensor:
        return self.mean + self.mad * y.double()


def graph_cutoff(model: str, extra: dict[str, Any]) -> float | None:
    """The neighbour cutoff (Å) of a model's molecular graphs: the potential's radius, none (complete graphs) for the
    others."""
    return float(extra.get("cutoff", 5.0)) if model == "potential" else None


def qm9_model_from_config(config: dict[str, Any]) -> QM9Regressor:
    """The untrained :class:`QM9Regressor` of a run's configuration (``asdict`` of its :class:`TrainConfig`)."""
    extra, model = config["extra"], config["model"]
    if model == "egnn":
        from liequiv.models.molecular_properties import PropertyEGNN

        network = PropertyEGNN(15, hidden=config["hidden"], layers=config["layers"])
    elif model == "ponita":
        from liequiv.models.molecular_properties import PropertyPONITA

        network = PropertyPONITA(15, hidden=config["hidden"], layers=config["layers"],
                                 num_ori=int(extra.get("num_ori", 16)))
    elif model == "potential":
        from liequiv.models.molecular_properties import QM9_ELEMENTS
        from liequiv.models.potential import TensorProductPotential

        network = TensorProductPotential(QM9_ELEMENTS, channels=config["hidden"], layers=config["layers"],
                                         lmax=int(extra.get("lmax", 2)), node_lmax=extra.get("node_lmax"),
                                         correlation=int(extra.get("correlation", 3)),
                                         cutoff=float(extra.get("cutoff", 5.0)),
                                         tp_backend=extra.get("tp_backend", "cg"))
    else:
        raise ValueError(f"unknown QM9 model {model!r}; choose from {', '.join(QM9Task.models)}")
    return QM9Regressor(network, model)


def dataset_targets(dataset: Dataset) -> Tensor:
    """The targets ``[n]`` of a QM9Dataset or a Subset of one."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    return dataset.targets


class QM9Task:
    """One QM9 property per run (see the module docstring)."""

    name = "qm9"
    models = ("egnn", "ponita", "potential")
    monitor = "mae"
    display = ("baseline_mae",)

    def __init__(self) -> None:
        self.cutoff: float | None = None

    def defaults(self, model: str) -> dict[str, Any]:
        """A run of a few minutes on a 2-core CPU: 1,000 training, 500 validation and 1,000 test molecules, 4 layers
        of 64 features (PONITA: 8 orientations; the potential: 2 layers of 32 channels, lmax 2, correlation 3,
        5 Å), 10 epochs, batch 96, lr 1e-3 (5e-3 for the potential) annealed by a cosine to 0, weight decay 1e-16
        (EGNN's)."""
        extra: dict[str, Any] = {"target": "U0", "valid_size": 500, "test_size": 1000, "max_molecules": None}
        size = {"hidden": 64, "layers": 4, "lr": 1e-3}
        if model == "ponita":
            extra["num_ori"] = 8
        if model == "potential":
            size = {"hidden": 32, "layers": 2, "lr": 5e-3}
            extra.update({"tp_backend": "cg", "correlation": 3, "lmax": 2, "node_lmax": None, "cutoff": 5.0})
        return {"epochs": 10, "batch_size": 96, "weight_decay": 1e-16, "train_size": 1000, "threads": None,
                "lr_schedule": "cosine",
                **size, "extra": extra}

    def configure(self, config: TrainConfig) -> None:
        """Check the target and sizes; the radius graph of the potential (the loop calls this first)."""
        from liequiv.data.qm9 import TARGETS, UNITS, target_index

        extra = config.extra
        extra["target"] = TARGETS[target_index(extra.get("target", "U0"))]
        extra["unit"] = UNITS[extra["target"]]  # saved in config.json: the unit of every MAE
        for key in ("valid_size", "test_size"):
            size = extra.get(key)
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
                raise ValueError(f"{key} must be a positive integer or None, got {size!r}")
        self.cutoff = graph_cutoff(config.model, extra)

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.qm9 import QM9Dataset

        extra = config.extra
        common = {"target": extra.get("target") or "U0", "max_molecules": extra.get("max_molecules")}
        sets = [QM9Dataset("train", train_size=config.train_size, **common)]
        for split, key in (("valid", "valid_size"), ("test", "test_size")):
            full, size = QM9Dataset(split, **common), extra.get(key)
            if size is not None and size > len(full):
                raise ValueError(f"{key} {size} is larger than the {split} split ({len(full)} molecules)")
            sets.append(full if size is None else Subset(full, range(size)))
        return tuple(sets)

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.qm9 import collate_qm9

        return collate_qm9(samples, self.cutoff)

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        model = qm9_model_from_config(asdict(config))
        targets = dataset_targets(train_set)
        mean = targets.mean()
        model.mean.fill_(float(mean))
        model.mad.fill_(float((targets - mean).abs().mean()))
        if config.model == "potential":
            from liequiv.data.atoms import average_num_neighbors

            sample = Subset(train_set, range(min(NEIGHBOR_SAMPLE, len(train_set))))
            model.network.set_statistics(avg_num_neighbors=average_num_neighbors(sample, model.network.cutoff))
        return model

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        regressor = model.module if hasattr(model, "module") else model  # DDP
        n_graphs = batch["target"].shape[0]
        y = model(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], n_graphs)
        normalized = (batch["target"] - regressor.mean) / regressor.mad
        loss = (y - normalized.to(y.dtype)).abs().mean()
        error = (regressor.denormalize(y.detach()) - batch["target"]).abs()
        return loss, {"loss": metric(loss * n_graphs, n_graphs), "mae": metric(error.sum(), n_graphs),
                      "baseline_mae": metric((batch["target"] - regressor.mean).abs().sum(), n_graphs)}
