"""Rigid registration as SE(3) diffusion over the pose, after Jiang et al. ("SE(3) diffusion model-based point cloud
registration for robust 6D object pose estimation", 2023), with the network of
:class:`~liequiv.models.registration_egnn.RegistrationEGNN` as the denoiser.

A pose ``x`` is an :class:`~liequiv.groups.SE3` element mapping the source onto the target (``target ≈ x · source``).
The denoiser moves the source by the noisy pose ``x_t``, lets the network displace the moved points towards the
target, fits the rigid increment ``Δ`` of that displacement by weighted least squares (:func:`rigid_step`, the
Kabsch problem) and predicts the clean pose ``x̂_0 = Δ · x_t``. The score that
:class:`~liequiv.generative.SE3Diffusion` asks for is then the score of ``p(x_t | x_0 = x̂_0)``
(:func:`conditional_score`), which the samplers integrate; training is its denoising score matching or a pose loss
on ``x̂_0``.

Equivariance: the network sees the source only through ``x_t · source``, so changing the source's frame by ``S``
(source ``S · source``, pose ``x_t · S⁻¹``) gives ``x̂_0 · S⁻¹``; moving the target by ``W`` (pose ``W · x_t``) gives
``W · x̂_0``, since the network is E(3)-equivariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.generative.igso3 import igso3_score
from liequiv.generative.lie_diffusion import SE3Diffusion
from liequiv.groups import SE3, SO3
from liequiv.models.registration_egnn import RegistrationEGNN

__all__ = ["OBJECTIVES", "RegistrationDiffusion", "conditional_score", "pose_error", "quaternion_fit",
           "rigid_step"]

OBJECTIVES = ("pose", "dsm")
WEIGHT_FLOOR = 1e-4


def quaternion_fit(source: Tensor, target: Tensor, weights: Tensor) -> SE3:
    """The rigid motion ``[...]`` minimizing ``Σ_i w_i |R x_i + t - y_i|²``: the problem of
    :func:`~liequiv.models.registration.kabsch`, solved by Horn's quaternion method (1987) for stable gradients.

    ``source``, ``target [..., n, 3]``, ``weights [..., n]`` > 0. The rotation's quaternion is the eigenvector of the
    largest eigenvalue of a symmetric 4×4 matrix built from the weighted cross-covariance ``H``; that eigenvalue is
    ``s₁ + s₂ ± s₃`` of ``H``'s singular values, its gap to the next ``2 s₃`` for proper fits. The gradient is that
    of first-order perturbation theory for this one eigenvector, ``dq = Σ_i q_i q_iᵀ dN q / (λ_max - λ_i)``, so it
    involves only that gap and stays finite where two singular values of ``H`` tie (a cloud with two equal
    principal moments), where the SVD's gradient, and that of ``eigh`` through all its eigenvectors, is not.
    """
    w = (weights / weights.sum(-1, keepdim=True))[..., None]
    source_mean, target_mean = (w * source).sum(-2), (w * target).sum(-2)
    h = (w * (source - source_mean[..., None, :])).mT @ (target - target_mean[..., None, :])
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = (h[..., i, :].unbind(-1) for i in range(3))
    n = torch.stack([torch.stack(row, -1) for row in (
        (sxx + syy + szz, syz - szy, szx - sxz, sxy - syx),
        (syz - szy, sxx - syy - szz, sxy + syx, szx + sxz),
        (szx - sxz, sxy + syx, syy - sxx - szz, syz + szy),
        (sxy - syx, szx + sxz, syz + szy, szz - sxx - syy))], -2)
    values, vectors = torch.linalg.eigh(n.detach())
    top = vectors[..., -1]  # (w, x, y, z), the eigenvector of the largest eigenvalue
    others = vectors[..., :-1]
    resolvent = (others / (values[..., -1:] - values[..., :-1])[..., None, :]) @ others.mT
    # first-order perturbation of the top eigenvector: its value is ``top``, its gradient sees the top gap alone
    quaternion = top + (resolvent @ ((n - n.detach()) @ top[..., None]))[..., 0]
    rotation = SO3(torch.cat([quaternion[..., 1:], quaternion[..., :1]], -1))
    return SE3.from_rotation_translation(rotation, target_mean - rotation.act(source_mean))


def rigid_step(network: RegistrationEGNN, points: Tensor, target: Tensor, t: Tensor | None = None,
               descriptors: tuple[Tensor, Tensor] | None = None) -> SE3:
    """The rigid motion ``Δ`` (SE3 ``[B]``) the network proposes for ``points [B, n, 3]`` towards ``target [B, m, 3]``:
    the weighted fit (:func:`quaternion_fit`) of ``points`` to ``points + displacement`` with the network's
    weights plus ``WEIGHT_FLOOR`` (the network's softplus weights can underflow to zero for every point of a cloud,
    where the fit and its gradient would be undefined). ``descriptors``: as in the network's ``forward``."""
    displacement, weight = network(points, target, t, descriptors)
    return quaternion_fit(points, points + displacement, weight + WEIGHT_FLOOR)


def conditional_score(diffusion: SE3Diffusion, x0: SE3, xt: SE3, t: Tensor) -> Tensor:
    """The score of ``p(x_t | x_0)`` at ``xt`` ``[..., 6]`` in the layout of ``diffusion``'s score models: the
    world-frame translation score ``-(x_t - α x_0)/σ²`` and the rotation score
    ``igso3_score(Log(R_0⁻¹ R_t), σ_rot(t))``."""
    schedule = diffusion.translation.schedule
    alpha, sigma = schedule.alpha(t)[..., None], schedule.sigma(t)[..., None]
    translation = -(xt.translation() - alpha * x0.translation()) / sigma**2
    rotation = igso3_score((x0.rotation().inverse() @ xt.rotation()).log(), diffusion.rotation.sigma(t))
    return torch.cat([translation, rotation], -1)


def pose_error(estimate: SE3, truth: SE3, points: Tensor, mask: Tensor | None = None) -> Tensor:
    """The mean squared distance ``[B]`` between ``estimate · p`` and ``truth · p`` over the ``points [B, n, 3]``
    (those where ``mask [B, n]`` holds, if given)."""
    squared = (estimate[:, None].act(points) - truth[:, None].act(points)).square().sum(-1)
    if mask is None:
        return squared.mean(-1)
    mask = mask.to(squared.dtype)
    return (squared * mask).sum(-1) / mask.sum(-1).clamp_min(1)


class RegistrationDiffusion(nn.Module):
    """Denoiser network + :class:`~liequiv.generative.SE3Diffusion` over the pose ``[B]`` of ``source [B, n, 3]``
    relative to ``target [B, m, 3]``.

    ``forward(source, target, motion [B, 7], inlier [B, n] | None)``: the training loss (a scalar), by ``objective``:
    ``"pose"``, :func:`pose_error` of ``x̂_0`` at ``t ~ U[min_t, 1]`` (the registration loss on the denoised pose, as
    Jiang et al. train their surrogate model), or ``"dsm"``, the diffusion's denoising score matching (weighted by
    the signal-to-noise ratio through the score at small t). ``sample``: poses.
    """

    def __init__(self, hidden: int = 64, layers: int = 4, k: int = 8, diffusion: SE3Diffusion | None = None,
                 objective: str = "pose") -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.network = RegistrationEGNN(hidden, layers, k)
        self.diffusion = diffusion if diffusion is not None else SE3Diffusion()
        self.objective = objective

    def denoise(self, xt: SE3, t: Tensor, source: Tensor, target: Tensor,
                descriptors: tuple[Tensor, Tensor] | None = None) -> SE3:
        """The predicted clean pose ``x̂_0 = Δ · x_t`` (SE3 ``[B]``) at noisy poses ``xt [B]`` and times ``t [B]``
        (``descriptors``: the network's descriptors of source and target, which no pose changes)."""
        moved = xt[:, None].act(source)
        return rigid_step(self.network, moved, target, t, descriptors) @ xt

    def score(self, xt: SE3, t: Tensor, source: Tensor, target: Tensor,
              descriptors: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """The score ``[B, 6]`` of ``p(x_t | x_0 = x̂_0)``: the score model of the diffusion."""
        return conditional_score(self.diffusion, self.denoise(xt, t, source, target, descriptors), xt, t)

    def forward(self, source: Tensor, target: Tensor, motion: Tensor, inlier: Tensor | None = None) -> Tensor:
        x0 = SE3(motion)
        if self.objective == "dsm":
            return self.diffusion.loss(self.score, x0, source=source, target=target)
        min_t = self.diffusion.min_t
        t = min_t + (1 - min_t) * torch.rand(x0.shape, dtype=x0.dtype, device=x0.device)
        xt, _ = self.diffusion.add_noise(x0, t)
        return pose_error(self.denoise(xt, t, source, target), x0, source, inlier).mean()

    @torch.no_grad()
    def sample(self, source: Tensor, target: Tensor, *, steps: int = 30, sampler: str = "sde",
               generator: torch.Generator | None = None) -> SE3:
        """Poses ``[B]`` drawn from the prior and integrated to ``min_t`` in ``steps`` steps, then denoised once
        (``x̂_0`` at ``min_t``: the rotation factor keeps a blur of ``σ_min`` at the end of the chain). The clouds'
        descriptors are computed once for the whole chain."""
        batch = (source.shape[0],)
        descriptors = (self.network.descriptors(source), self.network.descriptors(target))
        x = self.diffusion.sample(self.score, batch, steps=steps, sampler=sampler, generator=generator,
                                  dtype=source.dtype, device=source.device, source=source, target=target,
                                  descriptors=descriptors)
        t = torch.full(batch, self.diffusion.min_t, dtype=source.dtype, device=source.device)
        return self.denoise(x, t, source, target, descriptors)
