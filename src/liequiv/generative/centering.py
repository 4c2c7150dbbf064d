"""Zero centre of mass: point clouds in the subspace where the mean of each sample's rows vanishes.

Data are tensors ``[N, *shape]`` (points ``[N, 3]``, trajectories ``[N, T, 3]``) whose rows are grouped into
samples by ``batch [N]`` (int64, the PyTorch Geometric convention: ``0 ≤ batch < B``, one sample a graph). The
mean is taken over the rows of each sample, separately for every trailing index. A sample of ``n`` rows then has
``(n - 1) · prod(shape)`` degrees of freedom, and the isotropic Gaussian restricted to the subspace (Hoogeboom et
al.'s E(n) equivariant diffusion, EDM) is invariant under rotations of the trailing vectors, translations (which
centering removes) and permutations of the rows of a sample.

``batch=None`` means that every row is a sample of its own (``batch = arange(N)``); centering such data leaves
zeros, so the generative models refuse ``center=True`` without a ``batch``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "centered_gaussian_log_density",
    "centered_noise",
    "check_batch",
    "remove_mean",
    "sample_dims",
    "sample_sq_norm",
    "standard_noise",
]


def check_batch(batch: Tensor | None, num_rows: int, *, device: torch.device | None = None) -> tuple[Tensor, int]:
    """``batch [N]`` validated (``arange(num_rows)`` when ``None``) and the number of samples ``B = max + 1``."""
    if batch is None:
        return torch.arange(num_rows, device=device), num_rows
    if not isinstance(batch, Tensor) or batch.dtype != torch.int64:
        raise TypeError(f"batch must be an int64 tensor [N] or None, got {getattr(batch, 'dtype', type(batch))}")
    if batch.shape != (num_rows,):
        raise ValueError(f"batch must have shape [N] = [{num_rows}] (one entry per row of the data), "
                         f"got {list(batch.shape)}")
    if num_rows == 0:
        return batch, 0
    if int(batch.min()) < 0:
        raise ValueError(f"batch entries must be ≥ 0, got {int(batch.min())}")
    return batch, int(batch.max()) + 1


def _row_counts(batch: Tensor, num_samples: int) -> Tensor:
    return torch.bincount(batch, minlength=num_samples)


def remove_mean(x: Tensor, batch: Tensor) -> Tensor:
    """``x [N, *shape]`` minus the mean of its sample's rows (per trailing index): the projection onto the
    zero-centre-of-mass subspace."""
    batch, num_samples = check_batch(batch, x.shape[0], device=x.device)
    total = x.new_zeros(num_samples, *x.shape[1:]).index_add_(0, batch, x)
    counts = _row_counts(batch, num_samples).clamp_min(1).to(x.dtype)
    mean = total / counts.view(-1, *([1] * (x.dim() - 1)))
    return x - mean[batch]


def standard_noise(shape: Sequence[int], batch: Tensor | None, *, center: bool, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None, generator: torch.Generator | None = None) -> Tensor:
    """``N(0, I)`` noise ``[N, *shape]``, projected onto the zero-centre-of-mass subspace when ``center``."""
    noise = torch.randn(*shape, dtype=dtype, device=device, generator=generator)
    return remove_mean(noise, batch) if center else noise


def centered_noise(shape: Sequence[int], batch: Tensor, *, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The standard Gaussian of the zero-centre-of-mass subspace, ``[N, *shape]``: ``N(0, I)`` projected, so that
    each trailing index has covariance ``I - 1 1ᵀ / n`` over the ``n`` rows of a sample."""
    return standard_noise(shape, batch, center=True, dtype=dtype, device=device, generator=generator)


def sample_dims(shape: Sequence[int], batch: Tensor | None, *, center: bool) -> Tensor:
    """Degrees of freedom ``[B]`` of the samples of data shaped ``[N, *shape[1:]]``: ``n_b · prod(shape[1:])``, or
    ``(n_b - 1) · prod(shape[1:])`` in the zero-centre-of-mass subspace (``center=True``)."""
    batch, num_samples = check_batch(batch, shape[0])
    return (_row_counts(batch, num_samples) - int(center)).clamp_min(0) * math.prod(shape[1:])


def sample_sq_norm(x: Tensor, batch: Tensor | None) -> Tensor:
    """``|x_b|² [B]``: the sum of the squares of the entries of each sample's rows of ``x [N, *shape]``."""
    batch, num_samples = check_batch(batch, x.shape[0], device=x.device)
    per_row = x.square().reshape(x.shape[0], math.prod(x.shape[1:])).sum(1)
    return x.new_zeros(num_samples).index_add_(0, batch, per_row)


def centered_gaussian_log_density(x: Tensor, batch: Tensor) -> Tensor:
    """Log-density ``[B]`` of each sample of ``x [N, *shape]`` under the standard Gaussian of the
    zero-centre-of-mass subspace: ``-|P x|² / 2 - (n_b - 1) · prod(shape) / 2 · log 2π``, with ``P x`` the
    centered ``x`` (``x`` is projected first, so translations do not change it)."""
    batch, _ = check_batch(batch, x.shape[0], device=x.device)
    sq_norm = sample_sq_norm(remove_mean(x, batch), batch)
    dims = sample_dims(x.shape, batch, center=True).to(x.dtype)
    return -0.5 * sq_norm - 0.5 * dims * math.log(2 * math.pi)
