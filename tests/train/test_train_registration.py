"""The registration task: the pose step of the denoiser, its equivariance, the diffusion's conditional score, and
each model through the training loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from liequiv.generative.lie_diffusion import SE3Diffusion
from liequiv.generative.registration import RegistrationDiffusion, conditional_score, quaternion_fit, rigid_step
from liequiv.groups import SE3
from liequiv.models.registration import kabsch
from liequiv.train.loop import TrainConfig, fit
from liequiv.train.registration import RegistrationTask


class RigidDisplacement(nn.Module):
    """A stand-in network: displaces the points by a fixed rigid motion ``motion [B]``, with random weights."""

    def __init__(self, motion: SE3) -> None:
        super().__init__()
        self.motion = motion

    def forward(self, points: Tensor, target: Tensor, t: Tensor | None = None,
                descriptors: object = None) -> tuple[Tensor, Tensor]:
        weight = torch.rand(points.shape[:-1], dtype=points.dtype) + 0.1
        return self.motion[:, None].act(points) - points, weight


class ToTarget(nn.Module):
    """A stand-in network: displaces each point onto its corresponding target point."""

    def forward(self, points: Tensor, target: Tensor, t: Tensor | None = None,
                descriptors: object = None) -> tuple[Tensor, Tensor]:
        return target - points, torch.ones(points.shape[:-1], dtype=points.dtype)


def _clouds(batch: int = 3, n: int = 24, seed: int = 0) -> tuple[Tensor, Tensor, SE3]:
    generator = torch.Generator().manual_seed(seed)
    source = torch.randn(batch, n, 3, generator=generator, dtype=torch.float64)
    motion = SE3.random((batch,), generator=generator, dtype=torch.float64)
    return source, motion[:, None].act(source), motion


def _close(a: SE3, b: SE3) -> float:
    return float((a.as_matrix() - b.as_matrix()).abs().max().detach())


def test_rigid_step_recovers_a_rigid_displacement() -> None:
    source, _, motion = _clouds()
    assert _close(rigid_step(RigidDisplacement(motion), source, source), motion) < 1e-10


def test_quaternion_fit_solves_the_kabsch_problem() -> None:
    """Horn's method against the SVD solution on noisy correspondences with random weights (and a reflected set,
    where both must return the best proper rotation)."""
    source, target, _ = _clouds(4, 30, seed=6)
    generator = torch.Generator().manual_seed(7)
    target = target + 0.1 * torch.randn(target.shape, generator=generator, dtype=torch.float64)
    weights = torch.rand(source.shape[:-1], generator=generator, dtype=torch.float64) + 0.1
    assert _close(quaternion_fit(source, target, weights), kabsch(source, target, weights)) < 1e-10
    mirrored = target * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert _close(quaternion_fit(source, mirrored, weights), kabsch(source, mirrored, weights)) < 1e-10


def test_quaternion_fit_gradient_matches_finite_differences() -> None:
    source, target, _ = _clouds(2, 8, seed=8)
    generator = torch.Generator().manual_seed(9)
    target = target + 0.1 * torch.randn(target.shape, generator=generator, dtype=torch.float64)
    weights = torch.rand(source.shape[:-1], generator=generator, dtype=torch.float64) + 0.1

    def fitted(points: Tensor, w: Tensor) -> Tensor:
        return quaternion_fit(source, points, w).as_matrix()

    assert torch.autograd.gradcheck(fitted, (target.requires_grad_(True), weights.requires_grad_(True)))


def test_quaternion_fit_has_finite_gradients_where_singular_values_tie() -> None:
    """A cloud with two equal principal moments (a square's corners, lifted): the fit to itself is the identity
    with a finite gradient with respect to the target points."""
    square = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 2], [0, 0, -2]],
                          dtype=torch.float64)
    target = square.clone().requires_grad_(True)
    fit_ = quaternion_fit(square, target, torch.ones(6, dtype=torch.float64))
    assert _close(fit_, SE3.identity(dtype=torch.float64)) < 1e-12
    (gradient,) = torch.autograd.grad(fit_.as_matrix().square().sum(), target)
    assert torch.isfinite(gradient).all()


def test_denoiser_predicts_the_pose_that_moves_source_onto_target() -> None:
    """x̂_0 = Δ · x_t: a network that sends the moved source onto the target gives the true motion from any x_t."""
    source, target, motion = _clouds()
    model = RegistrationDiffusion(hidden=8, layers=1).double()
    model.network = ToTarget()
    xt = SE3.random((3,), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.full((3,), 0.5, dtype=torch.float64)
    assert _close(model.denoise(xt, t, source, target), motion) < 1e-10


@pytest.mark.parametrize("objective", ["pose", "dsm"])
def test_training_objectives(objective: str) -> None:
    """A denoiser that always predicts the true pose has zero pose loss; DSM gives a finite positive scalar."""
    source, target, motion = _clouds()
    model = RegistrationDiffusion(hidden=8, layers=1, objective=objective).double()
    model.network = ToTarget()
    loss = model(source, target, motion.params)
    assert loss.shape == () and torch.isfinite(loss)
    assert (float(loss) < 1e-20) if objective == "pose" else (float(loss) > 0)


def test_unknown_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="objective"):
        RegistrationDiffusion(objective="elbo")


def test_conditional_score_is_the_score_of_add_noise() -> None:
    diffusion = SE3Diffusion()
    x0 = SE3.random((64,), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.linspace(0.01, 1.0, 64, dtype=torch.float64)
    xt, score = diffusion.add_noise(x0, t, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(conditional_score(diffusion, x0, xt, t), score, atol=1e-8, rtol=1e-8)


def test_denoiser_is_equivariant_to_source_and_world_frames() -> None:
    torch.manual_seed(0)
    model = RegistrationDiffusion(hidden=16, layers=2, k=4).double()
    generator = torch.Generator().manual_seed(4)
    source, target, _ = _clouds(2, 20, seed=5)
    target = target + 0.05 * torch.randn(target.shape, generator=generator, dtype=torch.float64)
    xt = SE3.random((2,), generator=generator, dtype=torch.float64)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    frame, world = (SE3.random((2,), generator=generator, dtype=torch.float64) for _ in range(2))
    x0 = model.denoise(xt, t, source, target)
    in_frame = model.denoise(xt @ frame.inverse(), t, frame[:, None].act(source), target)
    assert _close(in_frame, x0 @ frame.inverse()) < 1e-10
    in_world = model.denoise(world @ xt, t, source, world[:, None].act(target))
    assert _close(in_world, world @ x0) < 1e-10


def test_sampling_with_descriptors_computed_once_follows_the_recomputing_chain() -> None:
    """``sample`` computes the clouds' descriptors once; the chain that recomputes them at every step from the
    moved source (the score without ``descriptors``) reaches the same poses."""
    torch.manual_seed(0)
    model = RegistrationDiffusion(hidden=16, layers=2, k=4).double()
    source, target = _clouds(2, 20, seed=6)[0], _clouds(2, 20, seed=8)[1]  # two different shapes
    poses = model.sample(source, target, steps=4, generator=torch.Generator().manual_seed(7))
    chain = model.diffusion.sample(model.score, (2,), steps=4, generator=torch.Generator().manual_seed(7),
                                   dtype=torch.float64, source=source, target=target)
    recomputed = model.denoise(chain, torch.full((2,), model.diffusion.min_t, dtype=torch.float64), source, target)
    assert _close(poses, recomputed) < 1e-9
    assert _close(poses, SE3.identity((2,), dtype=torch.float64)) > 1e-3


def _tiny_config(task: RegistrationTask, model: str, tmp_path: Path) -> TrainConfig:
    defaults = task.defaults(model)
    defaults.update(batch_size=4, hidden=8, layers=1, epochs=min(defaults["epochs"], 1))
    defaults["extra"].update(n_points=32, train_samples=4, valid_samples=4, test_samples=4, k=4, sample_steps=3,
                             n_starts=2)
    return TrainConfig(task="registration", model=model, run_dir=str(tmp_path / model), plots=False, **defaults)


@pytest.mark.parametrize("model", ["diffusion", "regressor", "icp"])
def test_each_model_runs_through_the_task(model: str, tmp_path: Path) -> None:
    task = RegistrationTask(cache_dir=str(tmp_path / "cache"))
    metrics = fit(task, _tiny_config(task, model, tmp_path), log=lambda s: None)
    for name in ("rotation_error", "translation_error", "failure"):
        assert math.isfinite(metrics[f"test_{name}"])
    assert 0 <= metrics["test_rotation_error"] <= 180 and 0 <= metrics["test_failure"] <= 1


def test_icp_has_nothing_to_train(tmp_path: Path) -> None:
    task = RegistrationTask(cache_dir=str(tmp_path / "cache"))
    config = _tiny_config(task, "icp", tmp_path)
    config.epochs = 1
    with pytest.raises(ValueError, match="no parameters"):
        fit(task, config, log=lambda s: None)


def test_regressor_lowers_its_loss_on_identical_pairs(tmp_path: Path) -> None:
    task = RegistrationTask(cache_dir=str(tmp_path / "cache"))
    config = _tiny_config(task, "regressor", tmp_path)
    task.configure(config)
    train, _, _ = task.datasets(config)
    batch = task.collate([train[0]] * 4)
    torch.manual_seed(0)
    model = task.build_model(config, train)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss, _ = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_unknown_model_is_refused(tmp_path: Path) -> None:
    task = RegistrationTask(cache_dir=str(tmp_path / "cache"))
    config = _tiny_config(task, "regressor", tmp_path)
    config.model = "dcp"
    with pytest.raises(ValueError, match="unknown model 'dcp'"):
        task.build_model(config, [])


class Shifted(nn.Module):
    """A stand-in regressor: the true motion followed by the world translation ``shift``."""

    def __init__(self, motion: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.estimate = SE3.from_rotation_translation(SE3(motion).rotation(), motion[:, :3] + shift)

    def forward(self, source: Tensor, target: Tensor) -> SE3:
        return self.estimate


def test_pose_loss_is_the_squared_distance_of_the_moved_source() -> None:
    """An estimate off by a world translation d moves every source point by d: the loss is |d|² (batch mean)."""
    source, target, motion = _clouds()
    inlier = torch.ones(source.shape[:-1], dtype=torch.bool)
    inlier[:, :5] = False
    shift = torch.tensor([[0.1, 0.0, 0.0], [0.0, 0.2, 0.0], [0.3, 0.0, 0.4]], dtype=torch.float64)
    batch = {"source": source, "target": target, "motion": motion.params, "source_inlier": inlier}
    loss, metrics = RegistrationTask().loss(Shifted(motion.params, shift), batch)
    loss = loss.detach()
    assert abs(float(loss) - (0.01 + 0.04 + 0.25) / 3) < 1e-12
    assert torch.allclose(metrics["pose_mse"], torch.tensor([float(loss) * 3, 3.0], dtype=torch.float64))
