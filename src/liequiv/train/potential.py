"""The interatomic-potential tasks: ``liequiv train md17`` (energies and forces of molecules) and ``liequiv train
materials`` (energies, forces and stress of periodic EMT-labelled metals, :mod:`liequiv.data.materials`).

Data: the GFN2-xTB molecular dynamics of one of the ten rMD17 molecules, generated and cached by
:mod:`liequiv.data.molecules` (``--molecule``), or any extended XYZ / ASE-readable file with energies and forces
(``--data``, keys found automatically or named by ``--energy-key`` / ``--forces-key``), split by a seeded
permutation. Model: :class:`~liequiv.models.TensorProductPotential`, its reference energies (least squares on the
training set), average neighbour count and energy scale (RMS of the training forces) fitted before training.

Loss (MACE's): ``w_E mean_B((ΔE / n_atoms)²) + w_F mean(ΔF²) [+ w_S mean(Δσ²)]`` over structures, force and stress
components (stress where the data carry it: eV/Å³, as ``[B, 3, 3]``). Metrics: energy MAE (meV per structure), force
MAE and RMSE (meV/Å), stress MAE (meV/Å³) where there is stress, the loss (the monitor). Forces come from autograd at
evaluation too (the loop evaluates with gradients enabled).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.train.loop import Batch, Metrics, TrainConfig, metric

__all__ = ["MaterialsTask", "PotentialTask", "potential_from_config"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _numbers(dataset: Dataset) -> list[np.ndarray]:
    return [dataset[i]["numbers"].numpy() for i in range(len(dataset))]


def potential_from_config(config: dict[str, Any]) -> nn.Module:
    """The untrained :class:`~liequiv.models.TensorProductPotential` of a run's configuration (``asdict`` of its
    :class:`TrainConfig`, as checkpoints store it), in float32; ``config["extra"]["elements"]`` names its elements."""
    from liequiv.models.potential import TensorProductPotential

    extra = config["extra"]
    if not extra.get("elements"):
        raise ValueError("the configuration does not name the model's elements (extra['elements'])")
    return TensorProductPotential(extra["elements"], channels=config["hidden"], layers=config["layers"],
                                  lmax=int(extra.get("lmax", 2)), node_lmax=extra.get("node_lmax"),
                                  correlation=int(extra.get("correlation", 3)), cutoff=float(extra.get("cutoff", 5.0)),
                                  tp_backend=extra.get("tp_backend", "cg"))


class PotentialTask:
    """Energies and forces of atomic structures (see the module docstring)."""

    name = "md17"
    models = ("tp-potential",)
    monitor = "loss"
    display = ("energy_mae", "force_mae")
    grad_in_eval = True  # forces are -dE/dx

    def defaults(self, model: str) -> dict[str, Any]:
        """A MACE-like model small enough for a 2-core CPU: 2 layers, 32 channels, lmax 2, correlation 3, and
        MACE's rMD17 recipe otherwise (batch 5, lr 0.01, EMA 0.99, plateau schedule, force weight 100x energy)."""
        return {"epochs": 50, "batch_size": 5, "lr": 1e-2, "weight_decay": 0.0, "hidden": 32, "layers": 2,
                "ema_decay": 0.99, "clip_grad": 10.0, "lr_patience": 5, "threads": None,
                "extra": {"molecule": "ethanol", "data": None, "energy_key": None, "forces_key": None,
                          "sizes": None, "split_seed": 0, "tp_backend": "cg", "correlation": 3, "lmax": 2,
                          "node_lmax": None, "cutoff": 5.0, "energy_weight": 1.0, "forces_weight": 100.0,
                          "dtype": "float32"}}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.atoms import AtomsDataset
        from liequiv.data.molecules import molecule_datasets, split_indices

        extra = config.extra
        if extra.get("data"):
            full = AtomsDataset.from_file(extra["data"], extra.get("energy_key"), extra.get("forces_key"))
            n = len(full)
            sizes = extra.get("sizes") or (n - 2 * (n // 10), n // 10, n // 10)
            splits = split_indices(n, sizes, extra.get("split_seed", 0))
            return tuple(full.subset(splits[s]) for s in ("train", "valid", "test"))
        sizes = extra.get("sizes") or (1000, 200, 1000)
        sets = molecule_datasets(extra.get("molecule", "ethanol"), sizes, extra.get("split_seed", 0))
        return sets["train"], sets["valid"], sets["test"]

    def __init__(self) -> None:
        self.cutoff, self.dtype, self.weights = 5.0, torch.float32, (1.0, 100.0, 100.0)

    def configure(self, config: TrainConfig) -> None:
        """This run's cutoff, dtype and loss weights (the loop calls this first)."""
        extra = config.extra
        self.cutoff = float(extra.get("cutoff", 5.0))
        dtype = extra.get("dtype", "float32")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        self.dtype = DTYPES[dtype]
        self.weights = (float(extra.get("energy_weight", 1.0)), float(extra.get("forces_weight", 100.0)),
                        float(extra.get("stress_weight", 100.0)))
        if min(self.weights) < 0 or max(self.weights[:2]) == 0:
            raise ValueError(f"energy_weight and forces_weight must be non-negative and not both zero, and "
                             f"stress_weight non-negative, got {self.weights}")

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.atoms import collate_atoms

        return collate_atoms(samples, self.cutoff)

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        from liequiv.data.atoms import average_num_neighbors, fit_reference_energies, rms_forces

        numbers = _numbers(train_set)
        elements = sorted({int(z) for frame in numbers for z in frame} | set(config.extra.get("elements") or ()))
        config.extra["elements"] = elements  # saved with the config: a checkpoint rebuilds its model from it
        model = potential_from_config(asdict(config))
        energies = np.array([float(train_set[i]["energy"]) for i in range(len(train_set))])
        model.set_statistics(reference_energies=fit_reference_energies(numbers, energies, elements),
                             avg_num_neighbors=average_num_neighbors(train_set, model.cutoff),
                             scale=rms_forces(train_set))
        return model.to(self.dtype)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        dtype = self.dtype
        n_graphs = batch["energy"].shape[0]
        with_stress = "stress" in batch
        out = model(batch["numbers"], batch["pos"].to(dtype), batch["edge_index"], batch["batch"],
                    batch["shifts"].to(dtype), num_graphs=n_graphs, cell=batch["cell"].to(dtype),
                    compute_stress=with_stress)
        d_energy = out["energy"] - batch["energy"].to(dtype)
        d_forces = out["forces"] - batch["forces"].to(dtype)
        w_energy, w_forces, w_stress = self.weights
        loss = w_energy * (d_energy / batch["n_atoms"].to(dtype)).square().mean() + w_forces * d_forces.square().mean()
        e, f = d_energy.detach().double() * 1000, d_forces.detach().double() * 1000  # meV, meV/Å
        stress = {}
        if with_stress:
            d_stress = out["stress"] - batch["stress"].to(dtype)
            loss = loss + w_stress * d_stress.square().mean()
            s = d_stress.detach().double() * 1000  # meV/Å³
            stress = {"stress_mae": metric(s.abs().sum(), s.numel())}
        return loss, {
            "loss": metric(loss * n_graphs, n_graphs),
            "energy_mae": metric(e.abs().sum(), n_graphs),
            "force_mae": metric(f.abs().sum(), f.numel()),
            "force_rmse": metric(f.square().sum(), f.numel()),
            **stress,
        }

    def plot(self, model: nn.Module, test_set: Dataset, run_dir) -> None:
        """Predicted against reference forces and energies on up to 50 test structures (``prediction.png``)."""
        from liequiv.train.plots import plot_parity

        if len(test_set) == 0:
            return
        batch = self.collate([test_set[i] for i in range(min(50, len(test_set)))])
        model.eval()
        out = model(batch["numbers"], batch["pos"].to(self.dtype), batch["edge_index"], batch["batch"],
                    batch["shifts"].to(self.dtype), num_graphs=batch["energy"].shape[0])
        plot_parity({"energy (eV)": (batch["energy"], out["energy"].detach()),
                     "force components (eV/Å)": (batch["forces"].reshape(-1), out["forces"].detach().reshape(-1))},
                    run_dir / "prediction.png")


class MaterialsTask(PotentialTask):
    """Energies, forces and stress of EMT-labelled Cu or Cu-Ni (``--material``; :mod:`liequiv.data.materials`).

    ``sum(sizes)`` frames are generated (default 600 / 100 / 300); the generator draws frame after frame, so a
    smaller set is the start of a larger one. The stress weight (default 100) makes a stress error ``Δσ`` weigh
    about as an energy error per atom of ``Ω Δσ`` would (``Ω ≈ 12 Å³``, the volume per Cu atom).
    """

    name = "materials"
    display = ("energy_mae", "force_mae", "stress_mae")

    def defaults(self, model: str) -> dict[str, Any]:
        """The md17 model and recipe, and the material's data options and stress weight."""
        defaults = super().defaults(model)
        for key in ("molecule", "data", "energy_key", "forces_key"):
            del defaults["extra"][key]
        defaults["extra"].update({"material": "cu", "stress_weight": 100.0})
        return defaults

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.materials import MaterialsConfig, material_datasets

        sizes = config.extra.get("sizes") or (600, 100, 300)
        sets = material_datasets(config.extra.get("material", "cu"), sizes, config.extra.get("split_seed", 0),
                                 MaterialsConfig(n_frames=sum(sizes)))
        return sets["train"], sets["valid"], sets["test"]
