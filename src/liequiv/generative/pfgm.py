"""The perturbation kernel of PFGM++ (Xu et al. 2023, Poisson flow generative models with ``D`` augmented
dimensions).

A sample ``y`` with ``N`` degrees of freedom is perturbed to ``x`` with density
``p_r(x | y) ∝ (|x - y|² + r²)^(-(N + D) / 2)``, and Xu et al. tie ``r = σ √D`` to a Gaussian noise level ``σ``.
The kernel is radially symmetric: ``x - y = R u`` with ``u`` uniform on the unit sphere and
``R = r √(b / (1 - b))``, ``b ~ Beta(N/2, D/2)``. It is the multivariate Student t with ``D`` degrees of
freedom and scale ``σ``: ``E|x - y|² = N σ² D / (D - 2)`` for ``D > 2``, and ``D → ∞`` gives ``N(y, σ² I)``.

Choices where PFGM++ leaves freedom: ``N`` is the number of degrees of freedom of one sample, ``n_b · prod(shape)``
for a sample of ``n_b`` rows ``[*shape]``, or ``(n_b - 1) · prod(shape)`` in the zero-centre-of-mass subspace, where
``u`` then lies. :mod:`liequiv.generative.diffusion` draws the kernel at unit scale (``r = √D``) in place of
``ε``; see there for how it combines with the variance-preserving scaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.generative.centering import check_batch, sample_dims, sample_sq_norm, standard_noise
from liequiv.generative.contract import per_row
from liequiv.validation import check_positive_int

__all__ = ["pfgm_noise", "pfgm_radius"]


def pfgm_radius(dims: Tensor, aug_dim: int, *, dtype: torch.dtype | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Radii ``R [B]`` of the kernel at ``r = √D`` (``D = aug_dim``) for samples of ``dims [B]`` degrees of
    freedom: ``R = √(D b / (1 - b))`` with ``b ~ Beta(dims/2, D/2)``, drawn by inverting its distribution function
    (scipy's ``betaincinv``) at uniforms of ``generator``; 0 where ``dims`` is 0."""
    from scipy.special import betaincinv

    check_positive_int(aug_dim, "pfgm_dim")
    device = generator.device if generator is not None else dims.device
    uniform = torch.rand(dims.shape, dtype=torch.float64, device=device, generator=generator).cpu()
    shape_a = dims.detach().cpu().double().clamp_min(1).numpy() / 2
    b = torch.as_tensor(betaincinv(shape_a, aug_dim / 2, uniform.numpy()))
    radius = (aug_dim * b / (1 - b)).sqrt().where(dims.cpu() > 0, 0.0)
    return radius.to(dtype=dtype or torch.get_default_dtype(), device=dims.device)


def pfgm_noise(shape: Sequence[int], batch: Tensor | None, aug_dim: int, *, center: bool,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """The PFGM++ perturbation ``[N, *shape]`` at ``r = √D`` of every sample (``batch [N]``; ``None``: every row a
    sample): a uniform direction of the sample's space (the zero-centre-of-mass subspace when ``center``) times a
    radius of :func:`pfgm_radius`."""
    batch, _ = check_batch(batch, shape[0], device=device)
    direction = standard_noise(shape, batch, center=center, dtype=dtype, device=device, generator=generator)
    radius = pfgm_radius(sample_dims(shape, batch, center=center), aug_dim, dtype=direction.dtype,
                         generator=generator).to(direction.device)
    scale = radius / sample_sq_norm(direction, batch).sqrt().clamp_min(torch.finfo(direction.dtype).tiny)
    return direction * per_row(scale[batch], direction)
