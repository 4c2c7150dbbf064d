"""Affine-invariant digit classification, ``liequiv train digits``: train on upright digits, test on digits moved by
random linear maps of growing magnitude (the idea of the affNIST protocol).

Data: :mod:`liequiv.data.digits` (scikit-learn's bundled 8×8 digits rendered smoothly into 28×28; 1,257 / 270 /
270). Training and validation images are upright; the test set is the test split moved (rendered exactly) at
each magnitude of ``magnitudes`` (``random_linear_maps`` in GL+(2): rotations up to ``m · 180°``, stretches and
shears with ``‖log P‖ ≤ m · 0.5``, one seeded draw per magnitude), and the test metrics give the error at each
(``error_m0.50`` ...) and over all of them (``error``). The ``probes`` (``PROBES``: one map for all test digits,
a rotation, a scaling or a stretch) give the error under each kind of map alone (``error_rot45`` ...; not in
``error``).

Models: ``glplus``, ``sl``, ``so2`` (:class:`~liequiv.models.AffineCNN` on R² ⋊ GL+(2), R² ⋊ SL(2), R² ⋊ SO(2),
the last the rotation-only baseline; the samples are ``rotations`` angles times ``stretches`` Monte Carlo
stretches, a set closed under the rotations by 2π / ``rotations``, or with ``quadrature="grid"`` times the
``scales`` × (1 + ``shears``) stretches of :func:`~liequiv.nn.affine_conv.grid_group`), ``cnn``
(:class:`~liequiv.models.PlainCNN` with the parameter count of the GL+(2) model) and ``cnn-aug`` (the same CNN
trained on digits warped by fresh random maps of magnitude 1 in every batch).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from liequiv.train.loop import Batch, Metrics, TrainConfig, metric

__all__ = ["DigitsTask"]

MAGNITUDES = (0.0, 0.25, 0.5, 0.75, 1.0)
PROBES = ("rot22.5", "rot45", "scale0.8", "scale1.25", "stretch1.5", "stretch1.5@45")
"""Single maps applied to every test digit: a rotation by the angle, an isotropic scaling by the factor, a stretch
diag(√q, 1/√q) of ratio q along the x axis or, after ``@``, along the axis turned by that angle in degrees."""


def probe_map(name: str) -> Tensor:
    """The linear map ``[2, 2]`` float64 of a probe name (see ``PROBES``): ``rot<deg>``, ``scale<factor>``,
    ``stretch<ratio>[@<deg>]`` (factor and ratio > 0)."""
    kind = next((k for k in ("rot", "scale", "stretch") if name.startswith(k)), None)
    try:
        value, _, axis = name[len(kind or ""):].partition("@")
        value, axis = float(value), math.radians(float(axis or 0))
    except ValueError:
        kind = None
    if kind is None or (kind != "rot" and not 0 < value < math.inf):
        raise ValueError(f"probe must be rot<degrees>, scale<factor> or stretch<ratio>[@<degrees>], got {name!r}")

    from liequiv.groups.so2 import rotation_matrix, unit_complex

    if kind == "rot":
        return rotation_matrix(unit_complex(torch.tensor(math.radians(value), dtype=torch.float64)))
    if kind == "scale":
        return value * torch.eye(2, dtype=torch.float64)
    turn = rotation_matrix(unit_complex(torch.tensor(axis, dtype=torch.float64)))
    return turn @ torch.diag(torch.tensor([math.sqrt(value), 1 / math.sqrt(value)], dtype=torch.float64)) @ turn.T


class DigitsTask:
    """Classification of upright training digits, tested under affine maps (see the module docstring)."""

    name = "digits"
    models = ("glplus", "sl", "so2", "cnn", "cnn-aug")
    monitor = "error"

    def __init__(self) -> None:
        self.magnitudes, self.probes = MAGNITUDES, PROBES
        self.augment = False

    def defaults(self, model: str) -> dict[str, Any]:
        """A run of minutes on a 2-core CPU: widths (8, 16), group samples on 8 rotations (times 2 stretches for
        GL+(2) and SL(2): 16 samples), 30 epochs, batch 64, lr 1e-2 annealed by a cosine; ``resolution`` r renders
        the digits into 28r pixels and scales the kernels (radius 3r, CNN size 4r + 1) and the input blur (r)."""
        return {"epochs": 30, "batch_size": 64, "lr": 1e-2, "lr_schedule": "cosine", "weight_decay": 1e-5,
                "hidden": 8, "layers": 2, "threads": None,
                "extra": {"rotations": 8, "stretches": 2, "quadrature": "monte-carlo", "scales": 1, "shears": 0,
                          "max_log_scale": 0.5, "resolution": 1, "magnitudes": list(MAGNITUDES),
                          "probes": list(PROBES)}}

    def configure(self, config: TrainConfig) -> None:
        self.magnitudes = tuple(float(m) for m in config.extra.get("magnitudes", MAGNITUDES))
        if not self.magnitudes or not all(0 <= m <= 1 for m in self.magnitudes):
            raise ValueError(f"magnitudes must be numbers in [0, 1], got {self.magnitudes}")
        self.probes = tuple(config.extra.get("probes", PROBES))
        for name in self.probes:
            probe_map(name)
        self.augment = config.model == "cnn-aug"

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.digits import load_digits_split, moved_digits, perturbed_digits

        r = int(config.extra.get("resolution", 1))
        frame = {"size": 28 * r, "digit_size": 20 * r}
        train, valid = (TensorDataset(*load_digits_split(split, **frame)) for split in ("train", "valid"))
        swept = [perturbed_digits("test", m, seed=i, **frame) for i, m in enumerate(self.magnitudes)]
        labels = swept[0][1]
        images = [moved for moved, _, _ in swept]
        images += [moved_digits("test", probe_map(name), **frame)[0] for name in self.probes]
        level = torch.arange(len(images)).repeat_interleave(len(labels))
        test = TensorDataset(torch.cat(images), labels.repeat(len(images)), level)
        return train, valid, test

    def collate(self, samples: list[tuple[Tensor, ...]]) -> Batch:
        columns = [torch.stack(c) for c in zip(*samples, strict=True)]
        batch = {"images": columns[0], "labels": columns[1]}
        if len(columns) == 3:
            batch["level"] = columns[2]
        return batch

    def build_model(self, config: TrainConfig, train_set: Dataset | None) -> nn.Module:
        from liequiv.models.affine import AffineCNN, matching_plain_cnn

        channels = [config.hidden * 2**i for i in range(config.layers)]
        extra = config.extra
        rotations, stretches = int(extra.get("rotations", 8)), int(extra.get("stretches", 2))
        quadrature = extra.get("quadrature", "monte-carlo")
        scales, shears = int(extra.get("scales", 1)), int(extra.get("shears", 0))
        r = int(extra.get("resolution", 1))
        if config.model in ("glplus", "sl", "so2"):
            grid = {}
            if quadrature == "grid" and config.model != "so2":
                grid = {"quadrature": "grid", "scales": scales, "shears": shears}
                stretches = scales * (1 + shears)
            elif (scales, shears) != (1, 0):
                raise ValueError("scales and shears are options of --quadrature grid with --model glplus or sl")
            samples = rotations * (1 if config.model == "so2" else stretches)
            return AffineCNN(config.model, channels=channels, num_samples=samples, rotations=rotations,
                             kernel_radius=3.0 * r, blur=float(r), seed=config.seed,
                             max_log_scale=float(extra.get("max_log_scale", 0.5)), **grid)
        if config.model in ("cnn", "cnn-aug"):
            return matching_plain_cnn(AffineCNN("glplus", channels=channels), depth=config.layers,
                                      kernel_size=4 * r + 1, blur=float(r))
        raise ValueError(f"unknown model {config.model!r} for task 'digits'; choose from {', '.join(self.models)}")

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        images, labels = batch["images"], batch["labels"]
        if model.training and self.augment:
            from liequiv.data.digits import random_linear_maps, warp_images

            images = warp_images(images, random_linear_maps(len(labels), 1.0).to(images.dtype))
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        wrong = (logits.argmax(-1) != labels).double()
        if "level" not in batch:
            return loss, {"error": metric(wrong.sum(), len(labels))}
        sweep = batch["level"] < len(self.magnitudes)
        metrics = {"error": metric(wrong[sweep].sum(), sweep.sum())}
        names = [f"m{m:.2f}" for m in self.magnitudes] + list(self.probes)
        for i, name in enumerate(names):
            at = batch["level"] == i
            metrics[f"error_{name}"] = metric(wrong[at].sum(), at.sum())
        return loss, metrics
