"""3D molecule generation on QM9, ``liequiv train qm9gen`` and ``liequiv sample qm9``.

Models: ``edm`` (:class:`~liequiv.generative.MoleculeDiffusion`, EDM's joint diffusion of zero-centre-of-mass
positions and scaled one-hot elements, ε-prediction, polynomial schedule) and ``flow``
(:class:`~liequiv.generative.MoleculeFlowMatching`, the same state on the linear path), both with
:class:`~liequiv.models.EDMDenoiser` (an attention EGNN on each molecule's complete graph). Hydrogens included,
positions in Å. ``--target`` conditions on one property (normalized by the training mean and MAD, PropMolFlow-style
conditioning); without it the model is unconditional.

Training loss and the monitored metric: the generator's loss (``loss``; validation and test draw the noise and
times from a seed per batch, so that epochs compare). Sampling (:func:`sample_molecules`) draws the atom counts
(and, when conditional, the property values) jointly from the training molecules, generates, and scores the
molecules with :func:`~liequiv.train.molecule_metrics.molecule_metrics` (EDM's bond tables for atom and molecule
stability; RDKit for validity, uniqueness and novelty against the training split's SMILES).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.train.loop import Batch, Metrics, TrainConfig, metric

__all__ = ["QM9GenerationTask", "load_generator", "property_error", "sample_molecules"]

SAMPLE_CHUNK = 100  # molecules generated at once


class QM9GenerationTask:
    """Unconditional or property-conditioned generation of QM9 molecules (see the module docstring)."""

    name = "qm9gen"
    models = ("edm", "flow")
    monitor = "loss"

    def defaults(self, model: str) -> dict[str, Any]:
        """A run of some minutes on a 2-core CPU: 5,000 training and 500 validation / test molecules, 4 EGNN layers of
        64 features, 20 epochs, batch 64, lr 5e-4 annealed by a cosine, gradients clipped at 1 (EDM: 9 layers of
        256, 3,000 epochs on a GPU)."""
        return {"epochs": 20, "batch_size": 64, "lr": 5e-4, "weight_decay": 1e-12, "hidden": 64, "layers": 4,
                "train_size": 5000, "clip_grad": 1.0, "lr_schedule": "cosine", "threads": None,
                "extra": {"target": None, "valid_size": 500, "test_size": 500, "max_molecules": None,
                          "sample_steps": 500 if model == "edm" else 100,
                          "sampler": "ancestral" if model == "edm" else "heun"}}

    def configure(self, config: TrainConfig) -> None:
        """Check the conditioning target's name (the loop calls this first)."""
        from liequiv.data.qm9 import TARGETS, target_index

        target = config.extra.get("target")
        if target is not None:
            config.extra["target"] = TARGETS[target_index(target)]

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        """Those of the qm9 task (``target`` only matters to a conditional model)."""
        from liequiv.train.qm9 import QM9Task

        return QM9Task().datasets(config)

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.qm9 import collate_qm9

        batch = collate_qm9(samples)
        del batch["edge_index"]  # the denoiser builds its own complete graphs
        return batch

    def build_model(self, config: TrainConfig, train_set: Dataset | None) -> nn.Module:
        model = generator_from_config(asdict(config))
        if train_set is not None and config.extra.get("target") is not None:
            from liequiv.train.qm9 import dataset_targets

            targets = dataset_targets(train_set)
            mean = targets.mean()
            model.condition_mean.fill_(float(mean))
            model.condition_mad.fill_(float((targets - mean).abs().mean()))
        return model

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        generator = None
        if not model.training:
            generator = torch.Generator(batch["pos"].device).manual_seed(int(batch["n_atoms"].sum()))
        loss = model(batch["pos"], batch["numbers"], batch["batch"], batch["target"], generator=generator)
        count = batch["n_atoms"].shape[0]
        return loss, {"loss": metric(loss * count, count)}


class ConditionedGenerator(nn.Module):
    """A molecule generator with the normalization of its conditioning property (``condition_mad = 0``: none)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("condition_mean", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("condition_mad", torch.tensor(0.0, dtype=torch.float64))

    def normalize(self, values: Tensor) -> Tensor:
        """Property values ``[M]`` in their units -> the model's condition ``[M]``."""
        return (values.double() - self.condition_mean) / self.condition_mad

    def forward(self, pos: Tensor, numbers: Tensor, batch: Tensor, values: Tensor, *,
                generator: torch.Generator | None = None) -> Tensor:
        """The training loss of molecules ``numbers [A]`` at ``pos [A, 3]`` (Å), ``batch [A]``, conditioned on their
        property ``values [M]`` if the model is conditional."""
        from liequiv.generative.molecules import element_index

        condition = self.normalize(values).to(pos.dtype) if self.condition_mad > 0 else None
        return self.generator.loss(pos, element_index(numbers), batch, condition, generator=generator)


def generator_from_config(config: dict[str, Any]) -> ConditionedGenerator:
    """The untrained generator of a run's configuration (``asdict`` of its :class:`TrainConfig`)."""
    from liequiv.generative.molecules import SYMBOLS, MoleculeDiffusion, MoleculeFlowMatching
    from liequiv.models.edm_denoiser import EDMDenoiser

    conditional = config["extra"].get("target") is not None
    denoiser = EDMDenoiser(len(SYMBOLS), config["hidden"], config["layers"], condition=conditional)
    if config["model"] == "edm":
        return ConditionedGenerator(MoleculeDiffusion(denoiser))
    if config["model"] == "flow":
        return ConditionedGenerator(MoleculeFlowMatching(denoiser))
    raise ValueError(f"unknown model {config['model']!r} for task 'qm9gen'; choose from "
                     f"{', '.join(QM9GenerationTask.models)}")


def load_generator(checkpoint: str | Path) -> tuple[ConditionedGenerator, TrainConfig]:
    """The trained generator of ``liequiv train qm9gen`` from its ``best.pt`` or ``last.pt``, in evaluation mode."""
    from liequiv.train.checkpoint import load_checkpoint

    state = load_checkpoint(Path(checkpoint), task="qm9gen", model=QM9GenerationTask.models)
    config = TrainConfig(**state["config"])
    model = generator_from_config(asdict(config))
    model.load_state_dict(state["model"])
    return model.eval(), config


def property_error(regressor_checkpoint: str | Path, target: str, elements_list: list, positions_list: list,
                   requested: Tensor) -> dict[str, float]:
    """PropMolFlow's evaluation of property-conditioned generation: a trained ``liequiv train qm9`` regressor of the
    same ``target`` predicts the property of each generated molecule; returns the mean absolute error between the
    requested values ``[M]`` and the predictions (``property_mae``) and, for reference, that of the requested values
    against their own mean (``property_mae_of_mean``), in the target's units."""
    from liequiv.data.qm9 import collate_qm9
    from liequiv.generative.molecules import ATOMIC_NUMBERS
    from liequiv.train.checkpoint import load_checkpoint
    from liequiv.train.qm9 import QM9Task, graph_cutoff, qm9_model_from_config

    state = load_checkpoint(Path(regressor_checkpoint), task="qm9", model=QM9Task.models)
    if state["config"]["extra"]["target"] != target:
        raise ValueError(f"the regressor predicts {state['config']['extra']['target']!r}, the generator is conditioned "
                         f"on {target!r}")
    regressor = qm9_model_from_config(state["config"])
    regressor.load_state_dict(state["model"])
    regressor.eval()
    numbers = torch.tensor(ATOMIC_NUMBERS)
    samples = [{"numbers": numbers[torch.as_tensor(e)], "pos": torch.as_tensor(p, dtype=torch.float32),
                "mulliken": torch.zeros(len(e)), "target": torch.tensor(0.0)}
               for e, p in zip(elements_list, positions_list, strict=True)]
    cutoff, predictions = graph_cutoff(state["config"]["model"], state["config"]["extra"]), []
    for start in range(0, len(samples), SAMPLE_CHUNK):
        batch = collate_qm9(samples[start:start + SAMPLE_CHUNK], cutoff)
        with torch.no_grad():
            y = regressor(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"],
                          len(batch["n_atoms"]))
        predictions.append(regressor.denormalize(y))
    predicted, requested = torch.cat(predictions), requested.double()
    return {"property_mae": float((predicted - requested).abs().mean()),
            "property_mae_of_mean": float((requested - requested.mean()).abs().mean())}


def sample_molecules(checkpoint: str | Path, out: str | Path, *, n: int = 1000, steps: int | None = None,
                     sampler: str | None = None, seed: int = 0,
                     regressor: str | Path | None = None) -> dict[str, Any]:
    """Generate ``n`` molecules with a trained ``qm9gen`` checkpoint; write ``molecules.xyz``, ``molecules.sdf``
    (the molecules RDKit accepts) and ``metrics.json`` to ``out``; return the metrics.

    Atom counts (and property values, for a conditional model) are drawn jointly from the training molecules;
    ``steps`` and ``sampler`` default to the run's ``sample_steps`` and ``sampler``. For a conditional model,
    ``regressor`` (a ``liequiv train qm9`` checkpoint of the same target) adds :func:`property_error`."""
    from liequiv.data.qm9 import QM9Dataset
    from liequiv.train.molecule_metrics import molecule_metrics, write_molecules
    from liequiv.validation import check_positive_int

    check_positive_int(n, "n")
    model, config = load_generator(checkpoint)
    steps = int(config.extra["sample_steps"]) if steps is None else check_positive_int(steps, "steps")
    sampler = str(config.extra["sampler"]) if sampler is None else sampler
    target = config.extra.get("target")
    train = QM9Dataset("train", target=target or "U0", train_size=config.train_size,
                       max_molecules=config.extra.get("max_molecules"))
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(train), (n,), generator=generator)
    if regressor is not None and target is None:
        raise ValueError("regressor evaluates property-conditioned generation; this generator is unconditional")
    elements_list, positions_list = [], []
    for chunk in pick.split(SAMPLE_CHUNK):
        condition = model.normalize(train.targets[chunk]).float() if target is not None else None
        pos, elements, batch = model.generator.sample(train.n_atoms[chunk], steps, sampler, condition,
                                                      generator=generator)
        counts = torch.bincount(batch, minlength=len(chunk)).tolist()
        positions_list += [p.double().numpy() for p in pos.split(counts)]
        elements_list += [e.numpy() for e in elements.split(counts)]
    metrics = molecule_metrics(elements_list, positions_list, training_smiles=train.smiles.tolist())
    if regressor is not None:
        metrics.update(property_error(regressor, target, elements_list, positions_list, train.targets[pick]))
    metrics.update({"molecules": n, "steps": steps, "sampler": sampler, "checkpoint": str(checkpoint)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_molecules(out / "molecules.xyz", elements_list, positions_list)
    write_molecules(out / "molecules.sdf", elements_list, positions_list)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
