"""Transformation-invariant initial coordinates by classical multidimensional scaling (TinvNN: "Revisiting
Transformation Invariant Geometric Deep Learning: Are Initial Representations All You Need?").

From the squared distances ``D²`` of a cloud, the double-centred Gram matrix ``B = -½ J D² J`` (``J = I - 11ᵀ/n``)
has eigenpairs ``(λ_k, v_k)``; the coordinates ``√λ_k v_k`` of the ``dim`` largest reproduce every pairwise
distance when ``dim ≥ 3`` (the rank of B for points in R³). They depend on the cloud only through ``D²``, so
they are E(3)-invariant, up to the signs of the ``v_k``: each column's sign is fixed so that its third moment
``Σ_i c_ik³`` is non-negative. Any backbone fed these coordinates is then E(3)-invariant (and permutation
equivariant when the backbone is).

Limits, as for PCA frames: a repeated eigenvalue (a symmetric cloud) or a zero third moment leaves the
coordinates ambiguous; eigenvalues below ``tol · λ_max`` give zero columns. Gradients flow through ``B``
(coordinates ``B v_k / √λ_k``) but not through the eigenvectors, which avoids eigh's unstable backward at the
repeated zero eigenvalues that every cloud of more than 4 points has.
"""

from __future__ import annotations

import torch
from torch import Tensor

from liequiv.symmetry.frames import check_point_cloud, third_moment_signs
from liequiv.validation import check_positive_int


def mds_from_squared_distances(dist_sq: Tensor, dim: int = 3, *, mask: Tensor | None = None,
                               tol: float | None = None) -> Tensor:
    """Classical MDS of squared distances ``dist_sq [..., N, N]`` -> coordinates ``[..., N, dim]`` (sign rule
    applied); ``mask [..., N]`` marks real points (padding gets zero rows)."""
    if not isinstance(dist_sq, Tensor) or not dist_sq.is_floating_point():
        raise TypeError(f"dist_sq must be a floating tensor [..., N, N], got {type(dist_sq).__name__}")
    if dist_sq.dim() < 2 or dist_sq.shape[-1] != dist_sq.shape[-2]:
        raise ValueError(f"dist_sq must have shape [..., N, N], got {list(dist_sq.shape)}")
    check_positive_int(dim, "dim")
    n = dist_sq.shape[-1]
    valid = dist_sq.new_ones(dist_sq.shape[:-1]) if mask is None else mask.to(dist_sq.dtype)
    if valid.shape != dist_sq.shape[:-1]:
        raise ValueError(f"mask must have shape {list(dist_sq.shape[:-1])}, got {list(valid.shape)}")
    tiny = torch.finfo(dist_sq.dtype).tiny
    tol = 10 * n * torch.finfo(dist_sq.dtype).eps if tol is None else tol
    pair = valid[..., :, None] * valid[..., None, :]
    d2 = dist_sq * pair
    count = valid.sum(-1, keepdim=True).clamp_min(1)  # [..., 1]
    row_mean = d2.sum(-1) / count  # [..., N]
    total_mean = row_mean.mul(valid).sum(-1, keepdim=True) / count
    gram = -0.5 * (d2 - row_mean[..., :, None] - row_mean[..., None, :] + total_mean[..., None]) * pair
    eigenvalues, eigenvectors = torch.linalg.eigh(gram.detach())
    k = min(dim, n)
    top = eigenvectors[..., -k:].flip(-1)  # [..., N, k], largest first
    lam = torch.einsum("...ik,...ij,...jk->...k", top, gram, top)  # v_kᵀ B v_k, differentiable
    keep = lam.detach() > tol * eigenvalues[..., -1:].abs().clamp_min(tiny)
    safe = torch.where(keep, lam, torch.ones_like(lam))
    coords = torch.where(keep[..., None, :], (gram @ top) / safe.sqrt()[..., None, :], torch.zeros_like(top))
    flat = coords.detach().reshape(-1, n, k)
    index = torch.arange(flat.shape[0], device=coords.device).repeat_interleave(n)
    signs, _ = third_moment_signs(flat.reshape(-1, k), valid.reshape(-1), index, flat.shape[0])
    coords = coords * signs.reshape(*coords.shape[:-2], 1, k)
    if k < dim:
        coords = torch.cat([coords, coords.new_zeros(*coords.shape[:-1], dim - k)], -1)
    return coords


def squared_distances(pos: Tensor) -> Tensor:
    """``|x_i - x_j|²`` ``[..., N, N]`` of points ``[..., N, d]`` (from differences: exactly translation-invariant
    up to round-off)."""
    diff = pos[..., :, None, :] - pos[..., None, :, :]
    return (diff * diff).sum(-1)


def mds_embedding(pos: Tensor, dim: int = 3, *, batch: Tensor | None = None, mask: Tensor | None = None,
                  tol: float | None = None) -> Tensor:
    """E(n)-invariant, distance-preserving coordinates of clouds (see the module docstring).

    Dense: ``pos [..., N, d]`` with optional ``mask [..., N]`` -> ``[..., N, dim]``. PyG style: ``pos [N, 3]`` and
    ``batch [N]`` -> ``[N, dim]``, each cloud embedded on its own.
    """
    if batch is None:
        if not isinstance(pos, Tensor) or not pos.is_floating_point() or pos.dim() < 2:
            raise ValueError(f"pos must be a floating tensor [..., N, d], got {getattr(pos, 'shape', pos)}")
        return mds_from_squared_distances(squared_distances(pos), dim, mask=mask, tol=tol)
    if mask is not None:
        raise ValueError("pass either batch (PyG style) or mask (dense), not both")
    pos, batch, _, num_graphs = check_point_cloud(pos, batch)
    counts = torch.bincount(batch, minlength=num_graphs)
    order = torch.argsort(batch, stable=True)
    slot = torch.empty_like(batch)
    slot[order] = torch.arange(batch.shape[0], device=batch.device) - (torch.cumsum(counts, 0) - counts)[batch[order]]
    width = int(counts.max()) if batch.numel() else 0
    dense = pos.new_zeros(num_graphs, width, pos.shape[-1]).index_put((batch, slot), pos)
    dense_mask = torch.zeros(num_graphs, width, dtype=torch.bool, device=pos.device).index_put(
        (batch, slot), torch.ones_like(batch, dtype=torch.bool))
    return mds_from_squared_distances(squared_distances(dense), dim, mask=dense_mask, tol=tol)[batch, slot]
