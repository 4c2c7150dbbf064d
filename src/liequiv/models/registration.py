"""Rigid registration without learning: weighted Kabsch alignment and (trimmed) point-to-point ICP, batched.

Here, next to the learned models, because both are what a registration model is built from and compared
with: Kabsch is the closed-form solver at the end of correspondence-based networks (DCP, RPM-Net, the
SE(3)-diffusion model's refinement), ICP the classical baseline. Neither has parameters.

Motions are :class:`~liequiv.groups.SE3` elements ``T = (t, q)`` mapping source points to target points,
``y ≈ R x + t`` (the convention of :mod:`liequiv.data.shapes`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from liequiv.groups import SE3, SO3
from liequiv.groups.so3 import matrix_to_quaternion
from liequiv.validation import check_tensor


def _check_clouds(source: Tensor, target: Tensor, same_count: bool) -> tuple[Tensor, Tensor]:
    source = check_tensor(source, "source", (3,))
    target = check_tensor(target, "target", (3,))
    if source.dim() < 2 or target.dim() < 2:
        raise ValueError(f"source and target must be point clouds [..., n, 3], got {list(source.shape)} and "
                         f"{list(target.shape)}")
    if same_count and source.shape != target.shape:
        raise ValueError(f"source and target must have the same shape [..., n, 3] (corresponding points), got "
                         f"{list(source.shape)} and {list(target.shape)}")
    if not same_count and source.shape[:-2] != target.shape[:-2]:
        raise ValueError(f"source and target must have the same batch shape, got {list(source.shape[:-2])} and "
                         f"{list(target.shape[:-2])}")
    if source.shape[-2] < 3 or target.shape[-2] < 3:
        raise ValueError(f"source and target need at least 3 points, got {source.shape[-2]} and {target.shape[-2]}")
    if source.dtype != target.dtype or source.device != target.device:
        raise ValueError(f"target must be {source.dtype} on {source.device} like source, got {target.dtype} on "
                         f"{target.device}")
    return source, target


def kabsch(source: Tensor, target: Tensor, weights: Tensor | None = None) -> SE3:
    """The rigid motion ``T`` (shape ``[...]``) minimizing ``Σ_i w_i |R x_i + t - y_i|²`` over proper rotations.

    ``source``, ``target [..., n, 3]`` are corresponding points ``x_i``, ``y_i``; ``weights [..., n]`` ≥ 0 (default
    all 1) need a positive sum. Kabsch/Umeyama without scale: with weighted centroids ``x̄, ȳ`` and
    ``H = Σ w_i (x_i - x̄)(y_i - ȳ)ᵀ = U S Vᵀ``, ``R = V diag(1, 1, det(V Uᵀ)) Uᵀ`` (the determinant fixes the
    reflection the plain SVD solution gives for mirrored or noisy data) and ``t = ȳ - R x̄``.

    Exact for noiseless correspondences when the points span a plane or more (a planar set works: the normal is
    the third singular vector on both sides); collinear points leave the rotation about their line undetermined.
    Gradients flow through ``torch.linalg.svd``: finite where the singular values of ``H`` are distinct, which
    generic point sets satisfy, and infinite where two coincide (e.g. a set with a rotational symmetry).
    """
    source, target = _check_clouds(source, target, same_count=True)
    if weights is None:
        weights = torch.ones(source.shape[:-1], dtype=source.dtype, device=source.device)
    else:
        weights = check_tensor(weights, "weights", ())
        if weights.shape != source.shape[:-1]:
            raise ValueError(f"weights must have shape {list(source.shape[:-1])} (one per point), got "
                             f"{list(weights.shape)}")
        if bool((weights < 0).any()) or bool((weights.sum(-1) <= 0).any()):
            raise ValueError("weights must be >= 0 with a positive sum per cloud")
    w = (weights / weights.sum(-1, keepdim=True))[..., None]
    source_mean, target_mean = (w * source).sum(-2), (w * target).sum(-2)
    h = (w * (source - source_mean[..., None, :])).mT @ (target - target_mean[..., None, :])
    u, _, vh = torch.linalg.svd(h)
    v = vh.mT
    det = torch.linalg.det(v @ u.mT)
    v = torch.cat([v[..., :2], v[..., 2:] * det[..., None, None]], -1)
    rotation = v @ u.mT
    translation = target_mean - (rotation @ source_mean[..., None])[..., 0]
    return SE3._wrap(torch.cat([translation, matrix_to_quaternion(rotation)], -1))


class ICPResult(NamedTuple):
    """What :func:`icp` returns: the ``motion`` (SE3 ``[...]``), the root-mean-square distance of the kept pairs
    ``rmse [...]``, the ``iterations [...]`` each cloud took and whether it ``converged [...]``."""

    motion: SE3
    rmse: Tensor
    iterations: Tensor
    converged: Tensor


@torch.no_grad()
def icp(source: Tensor, target: Tensor, init: SE3 | None = None, *, max_iterations: int = 50,
        tolerance: float = 1e-6, overlap: float = 1.0) -> ICPResult:
    """Point-to-point ICP (Besl and McKay 1992), trimmed (Chetverikov et al. 2002), batched; no gradients.

    ``source [..., n, 3]``, ``target [..., m, 3]``; ``init`` (SE3 ``[...]``, default the identity) is the starting
    motion. Each iteration pairs every moved source point with its nearest target point (``torch.cdist``),
    keeps the ``ceil(overlap · n)`` pairs with the smallest distances (``overlap = 1``: plain ICP; below 1 it
    discards outliers and the parts the clouds do not share) and solves :func:`kabsch` on them for the whole
    motion. A cloud stops when the update moves its motion by less than ``tolerance`` (``|ΔR|_F + |Δt|``),
    or after ``max_iterations``; stopped clouds are frozen while the others go on.

    Equivariant: ``icp(source, target, init)`` gives ``T`` exactly when ``icp(R · source, target, init · R⁻¹)``
    gives ``T · R⁻¹`` (and likewise ``S · T`` for ``S · target`` from ``S · init``), up to ties of distances.
    """
    source, target = _check_clouds(source, target, same_count=False)
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    if not 0 < overlap <= 1:
        raise ValueError(f"overlap must lie in (0, 1], got {overlap!r}")
    batch = source.shape[:-2]
    if init is None:
        init = SE3.identity(batch, dtype=source.dtype, device=source.device)
    elif not isinstance(init, SE3) or init.shape != batch:
        raise ValueError(f"init must be an SE3 of shape {list(batch)}, got {init!r}")
    keep = math.ceil(overlap * source.shape[-2])
    params = init.params.clone()
    iterations = torch.zeros(batch, dtype=torch.long, device=source.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=source.device)
    for _ in range(max_iterations):
        matched, distance = _nearest(SE3._wrap(params[..., None, :]).act(source), target)
        weights = torch.zeros_like(distance)
        weights.scatter_(-1, distance.topk(keep, -1, largest=False).indices, 1.0)
        update = kabsch(source, matched, weights).params
        step = (_matrix(update) - _matrix(params)).flatten(-2).norm(dim=-1)
        params = torch.where(converged[..., None], params, update)
        iterations += ~converged
        converged |= step < tolerance
        if bool(converged.all()):
            break
    distance = _nearest(SE3._wrap(params[..., None, :]).act(source), target)[1]
    rmse = distance.topk(keep, -1, largest=False).values.square().mean(-1).sqrt()
    return ICPResult(SE3._wrap(params), rmse, iterations, converged)


def _nearest(points: Tensor, cloud: Tensor) -> tuple[Tensor, Tensor]:
    """For each of ``points [..., n, 3]`` its nearest point of ``cloud [..., m, 3]`` ``[..., n, 3]`` and the distance
    ``[..., n]``, recomputed from the pair (``torch.cdist``'s fast path loses digits near zero)."""
    nearest = torch.cdist(points, cloud).argmin(-1)
    matched = torch.gather(cloud, -2, nearest[..., None].expand(*nearest.shape, 3))
    return matched, (points - matched).norm(dim=-1)


def _matrix(params: Tensor) -> Tensor:
    """``[R | t]`` ``[..., 3, 4]`` of SE3 parameters ``[..., 7]``."""
    return SE3._wrap(params).as_matrix()[..., :3, :]


def icp_with_restarts(source: Tensor, target: Tensor, n_starts: int = 16, *,
                      generator: torch.Generator | None = None, **options: object) -> ICPResult:
    """:func:`icp` from ``n_starts`` random rotations (Haar-uniform, the first the identity), each with the
    translation that aligns the centroids; per cloud the run with the smallest ``rmse`` is returned. A global
    baseline for rotations far from the identity, where plain ICP falls into local minima. Between partial views
    the smallest trimmed ``rmse`` can belong to a wrong pose (a wrong overlap can fit as well), so restarts help
    most where the clouds overlap fully. ``options`` go to :func:`icp`."""
    source, target = _check_clouds(source, target, same_count=False)
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1, got {n_starts!r}")
    batch = source.shape[:-2]
    rotations = SO3.random((n_starts, *batch), generator=generator, dtype=source.dtype, device=source.device).params
    rotations[0] = SO3.identity(batch, dtype=source.dtype, device=source.device).params
    centre = SO3._wrap(rotations).act(source.mean(-2).expand(n_starts, *batch, 3))
    starts = SE3._wrap(torch.cat([target.mean(-2) - centre, rotations], -1))
    runs = icp(source.expand(n_starts, *source.shape), target.expand(n_starts, *target.shape), starts, **options)
    best = runs.rmse.argmin(0)

    def pick(x: Tensor) -> Tensor:
        index = best[None, ..., None] if x.dim() > best.dim() + 1 else best[None]
        return torch.gather(x, 0, index.expand(1, *x.shape[1:]))[0]

    return ICPResult(SE3._wrap(pick(runs.motion.params)), pick(runs.rmse), pick(runs.iterations),
                     pick(runs.converged))
