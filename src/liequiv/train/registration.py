"""The registration task, ``liequiv train registration``: the rigid motion mapping one view of a procedural shape
onto another (:class:`~liequiv.data.shapes.RegistrationDataset`; by default 128 points a cloud, both views cut
from one draw of surface points and listed in independent orders (DCP's protocol), rotations up to 45°,
translations up to 0.5 per axis, noise 0.01; 2,000 / 200 / 200 pairs). ``--view halfspace --visible 0.7``
(RPM-Net's partial views), ``--sampling independent`` (two draws of surface points) and ``--max-angle`` make it
harder.

Models: ``diffusion`` (:class:`~liequiv.generative.registration.RegistrationDiffusion`, SE(3) diffusion over the
pose with :class:`~liequiv.models.registration_egnn.RegistrationEGNN` as denoiser, trained (``diffusion_loss``) on
the squared distance between the source's inlier points moved by the denoised and by the true pose at random noise
levels (``objective="pose"``) or on denoising score matching (``"dsm"``); evaluated on one pose a pair, drawn in
``sample_steps`` steps of ``sampler`` from a fixed seed per batch), ``regressor`` (the same network once, at t = 0
from the identity pose, trained on that squared distance for its estimate, ``pose_mse``) and ``icp`` (trimmed ICP
from ``n_starts`` rotations, :func:`~liequiv.models.registration.icp_with_restarts`; nothing to train: run it with
``--epochs 0``, its default). Metrics: the rotation error in degrees (the monitor), the translation error, and the
success rate at 5° and 0.1 (``failure``, one minus it, so that lower is better).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from liequiv.generative.registration import pose_error, rigid_step
from liequiv.groups import SE3
from liequiv.models.registration_egnn import RegistrationEGNN
from liequiv.train.loop import Batch, Metrics, TrainConfig, metric
from liequiv.train.registration_metrics import rotation_error, success, translation_error

__all__ = ["ICPRegistration", "RegistrationRegressor", "RegistrationTask", "registration_metrics"]

_DATA = {"n_points": 128, "max_angle": 45.0, "view": "full", "visible": 0.7, "sampling": "shared",
         "train_samples": 2000, "valid_samples": 200, "test_samples": 200}


def registration_metrics(estimate: SE3, truth: SE3) -> Metrics:
    """``rotation_error`` (degrees), ``translation_error`` and ``failure`` (1 - success at 5° and 0.1) as
    ``(sum, count)`` pairs over the batch (float64)."""
    values = {"rotation_error": rotation_error(estimate, truth),
              "translation_error": translation_error(estimate, truth),
              "failure": (~success(estimate, truth)).to(torch.float64)}
    return {name: metric(value.double().sum(), truth.shape[0]) for name, value in values.items()}


class RegistrationRegressor(nn.Module):
    """``(source [B, n, 3], target [B, m, 3]) -> SE3 [B]``: one step of the network from the identity pose, t = 0."""

    def __init__(self, hidden: int = 64, layers: int = 4, k: int = 8) -> None:
        super().__init__()
        self.network = RegistrationEGNN(hidden, layers, k)

    def forward(self, source: Tensor, target: Tensor) -> SE3:
        return rigid_step(self.network, source, target)


class ICPRegistration(nn.Module):
    """Trimmed ICP with restarts, no parameters: ``(source, target) -> SE3 [B]``."""

    def __init__(self, n_starts: int = 16, overlap: float = 0.7) -> None:
        super().__init__()
        self.n_starts, self.overlap = n_starts, overlap

    def forward(self, source: Tensor, target: Tensor) -> SE3:
        from liequiv.models.registration import icp_with_restarts

        generator = torch.Generator(source.device).manual_seed(0)
        return icp_with_restarts(source, target, self.n_starts, generator=generator, overlap=self.overlap).motion


class RegistrationTask:
    """Rigid registration of partial views (see the module docstring)."""

    name = "registration"
    models = ("diffusion", "regressor", "icp")
    monitor = "rotation_error"
    display = ("translation_error", "failure")

    def __init__(self, cache_dir: str | None = None) -> None:
        """``cache_dir``: where the generated pairs are cached (default: the library's data cache)."""
        self.cache_dir = cache_dir
        self.data = dict(_DATA)
        self.sampling: dict[str, Any] | None = None  # how diffusion draws poses; None for the other models

    def defaults(self, model: str) -> dict[str, Any]:
        """Configurations that train in a few minutes on 2 CPU cores, one intra-op thread (128-point clouds)."""
        if model == "icp":
            return {"epochs": 0, "batch_size": 50, "threads": 1, "extra": {**_DATA, "n_starts": 16, "overlap": 0.7}}
        common = {"batch_size": 25, "lr": 1e-3, "weight_decay": 1e-12, "hidden": 32, "layers": 3, "clip_grad": 1.0,
                  "threads": 1}
        if model == "diffusion":
            return {**common, "epochs": 10, "extra": {**_DATA, "k": 16, "objective": "pose", "sample_steps": 20,
                                                                 "sampler": "sde"}}
        return {**common, "epochs": 10, "extra": {**_DATA, "k": 16}}

    def configure(self, config: TrainConfig) -> None:
        """This run's data sizes and sampler (the loop calls this before it asks for the data)."""
        self.data = {key: config.extra.get(key, default) for key, default in _DATA.items()}
        self.sampling = None
        if config.model == "diffusion":
            self.sampling = {"steps": int(config.extra.get("sample_steps", 20)),
                             "sampler": str(config.extra.get("sampler", "sde"))}

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset, Dataset]:
        from liequiv.data.shapes import RegistrationDataset

        data = self.data
        return tuple(RegistrationDataset(split, int(data[f"{split}_samples"]), n_points=int(data["n_points"]),
                                         max_angle=data["max_angle"], view=str(data["view"]),
                                         visible=float(data["visible"]), shared_points=data["sampling"] == "shared",
                                         cache_dir=self.cache_dir)
                     for split in ("train", "valid", "test"))

    def collate(self, samples: list[Any]) -> Batch:
        from liequiv.data.shapes import collate_registration

        return collate_registration(samples)

    def build_model(self, config: TrainConfig, train_set: Dataset) -> nn.Module:
        k = int(config.extra.get("k", 16))
        if config.model == "diffusion":
            from liequiv.generative.registration import RegistrationDiffusion

            return RegistrationDiffusion(config.hidden, config.layers, k,
                                         objective=str(config.extra.get("objective", "pose")))
        if config.model == "regressor":
            return RegistrationRegressor(config.hidden, config.layers, k)
        if config.model == "icp":
            return ICPRegistration(int(config.extra.get("n_starts", 16)), float(config.extra.get("overlap", 0.7)))
        raise ValueError(f"unknown model {config.model!r} for task 'registration'; choose from "
                         f"{', '.join(self.models)}")

    def predict(self, model: nn.Module, batch: Batch) -> SE3:
        """Estimated motions ``[B]`` (for ``diffusion``: one drawn pose a pair, from a fixed seed)."""
        if self.sampling is not None:
            generator = torch.Generator(batch["source"].device).manual_seed(0)
            return model.sample(batch["source"], batch["target"], generator=generator, **self.sampling)
        return model(batch["source"], batch["target"])

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Metrics]:
        """Training: the diffusion loss (``dsm``) or the pose loss (``pose_mse``). Evaluation: the pose metrics."""
        source, target, truth = batch["source"], batch["target"], SE3(batch["motion"])
        if not model.training:
            return torch.zeros(()), registration_metrics(self.predict(model, batch), truth)
        count = source.shape[0]
        if self.sampling is not None:
            loss = model(source, target, batch["motion"], batch["source_inlier"])
            return loss, {"diffusion_loss": metric(loss * count, count)}
        loss = pose_error(model(source, target), truth, source, batch["source_inlier"]).mean()
        return loss, {"pose_mse": metric(loss * count, count)}
