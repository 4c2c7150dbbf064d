"""An ASE calculator for trained tensor-product potentials (:class:`~liequiv.models.TensorProductPotential`).

    atoms.calc = LiequivCalculator.from_checkpoint("runs/md17-.../best.pt")
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Energies in eV, forces in eV/Å, stress in eV/Å³ as ASE's Voigt vector ``(xx, yy, zz, yz, xz, xy)`` with ASE's sign
(positive under tension), per-atom ``energies`` in eV. Results are cached through ASE's ``check_state``: asking
again without changing the atoms does not evaluate the model again. Neighbour lists come from vesin
(:func:`liequiv.data.atoms.collate_atoms`), periodic images included.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import nn

__all__ = ["POTENTIAL_TASKS", "LiequivCalculator", "load_potential"]

POTENTIAL_TASKS = ("md17", "materials")  # the tasks of liequiv train whose checkpoints hold a potential


def load_potential(path: str | os.PathLike, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The :class:`~liequiv.models.TensorProductPotential` of a ``liequiv train md17|materials`` checkpoint
    (``best.pt`` or ``last.pt``), in ``dtype``, in eval mode, on the CPU; ValueError for any other file."""
    from liequiv.train.potential import potential_from_config

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a missing, truncated or foreign file, or one holding Python objects
        raise ValueError(f"checkpoint {path} could not be read: {error}") from error
    if not isinstance(state, dict) or not {"task", "model_name", "config", "model"} <= set(state):
        raise ValueError(f"{path} is not a liequiv training checkpoint")
    if state["task"] not in POTENTIAL_TASKS or state["model_name"] != "tp-potential":
        raise ValueError(f"{path} holds model {state['model_name']!r} of task {state['task']!r}, not an interatomic "
                         f"potential (model 'tp-potential' of a task in {POTENTIAL_TASKS})")
    if not state["config"].get("extra", {}).get("elements"):
        raise ValueError(f"{path} does not record its model's elements (a checkpoint of an older liequiv): retrain")
    model = potential_from_config(state["config"])
    model.load_state_dict(state["model"])
    return model.to(dtype).eval()


class LiequivCalculator(Calculator):
    """ASE calculator of a tensor-product potential (see the module docstring).

    Args:
        model: a :class:`~liequiv.models.TensorProductPotential` (its dtype is used).
        device: where the model runs.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dtype = next(model.parameters()).dtype

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float64, **kwargs: Any) -> LiequivCalculator:
        """The calculator of a ``liequiv train`` potential checkpoint (see :func:`load_potential`)."""
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        return cls(load_potential(path, dtype), device=device, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        from liequiv.data.atoms import collate_atoms

        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pbc = np.asarray(atoms.pbc, dtype=bool)
        cell = atoms.cell.array
        periodic = cell[pbc]
        if len(periodic) and np.linalg.matrix_rank(periodic, tol=1e-6) < len(periodic):
            raise ValueError(f"the cell vectors of the periodic directions {pbc.tolist()} are degenerate (zero "
                             f"volume): {cell.tolist()}")
        with_stress = bool(pbc.any()) and abs(np.linalg.det(cell)) > 1e-9
        if "stress" in properties and not with_stress:
            raise PropertyNotImplementedError("stress needs a periodic cell of non-zero volume")
        sample = {"numbers": torch.as_tensor(atoms.numbers, dtype=torch.long),
                  "pos": torch.as_tensor(atoms.positions, dtype=torch.float64),
                  "cell": torch.as_tensor(cell, dtype=torch.float64), "pbc": torch.as_tensor(pbc)}
        batch = collate_atoms([sample], self.model.cutoff)
        batch = {key: value.to(self.device) for key, value in batch.items()}
        floats = {key: batch[key].to(self.dtype) for key in ("pos", "shifts", "cell")}
        out = self.model(batch["numbers"], floats["pos"], batch["edge_index"], batch["batch"], floats["shifts"],
                         num_graphs=1, training=False, cell=floats["cell"], compute_stress=with_stress)
        energy = float(out["energy"].detach().double().sum())
        self.results = {"energy": energy, "free_energy": energy,
                        "energies": out["node_energy"].detach().double().cpu().numpy(),
                        "forces": out["forces"].detach().double().cpu().numpy()}
        if with_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(out["stress"][0].detach().double().cpu().numpy())
