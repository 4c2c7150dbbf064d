"""Shared machinery for the group tests: every registered group gets the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

import liequiv.groups as groups
from liequiv.groups.base import LieGroup


def registered_groups() -> list[type[LieGroup]]:
    """Every concrete LieGroup exported by liequiv.groups."""
    found = [getattr(groups, name) for name in groups.__all__]
    found = [groups.Rn.of(3) if g is groups.Rn else g for g in found]  # Rn is a family: test R³
    return [g for g in found if isinstance(g, type) and issubclass(g, LieGroup) and g is not LieGroup]


def homogeneous_action(matrix: Tensor, points: Tensor) -> Tensor:
    """Apply a group matrix to points, padding [p, 0, ..., 0, 1] when the matrix is larger."""
    n, m = points.shape[-1], matrix.shape[-1]
    if m == n:
        return (matrix @ points[..., None])[..., 0]
    pad = torch.zeros(*points.shape[:-1], m - n, dtype=points.dtype)
    pad[..., -1] = 1
    return (matrix @ torch.cat([points, pad], -1)[..., None])[..., :n, 0]


Input = LieGroup | Tensor


def _perturb(x: Input, delta: Tensor, frame: str) -> Input:
    if isinstance(x, LieGroup):
        return x.plus(delta) if frame == "right" else x.lplus(delta)
    return x + delta


def _difference(y: Input, y0: Input, frame: str) -> Tensor:
    if isinstance(y, LieGroup):
        return y.minus(y0) if frame == "right" else y.lminus(y0)
    return y - y0


def _dim(x: Input) -> int:
    return x.tangent_dim if isinstance(x, LieGroup) else x.shape[-1]


def _batch_diagonal(jac: Tensor) -> Tensor:
    """[B, n, B, d] -> [B, n, d] (outputs of element b depend only on inputs of element b)."""
    return torch.diagonal(jac, dim1=0, dim2=2).permute(2, 0, 1)


def reference_jacobians(
    fn: Callable[..., Input], inputs: Sequence[Input], frame: str, step: float = 1e-6
) -> list[tuple[Tensor, Tensor]]:
    """Per input: (autograd Jacobian, central finite-difference Jacobian) of fn at inputs, on Lie perturbations.

    Inputs are batches of one dimension B; each Jacobian is [B, out_dim, in_dim].
    """
    y0 = fn(*inputs)
    out = []
    for i, x in enumerate(inputs):
        batch, d = x.shape[0], _dim(x)
        dtype = x.dtype

        def local(delta: Tensor, i: int = i, x: Input = x) -> Tensor:
            args = list(inputs)
            args[i] = _perturb(x, delta, frame)
            return _difference(fn(*args), y0, frame)

        zero = torch.zeros(batch, d, dtype=dtype)
        auto = _batch_diagonal(torch.autograd.functional.jacobian(local, zero))
        columns = []
        for k in range(d):
            e = torch.zeros(batch, d, dtype=dtype)
            e[:, k] = step
            columns.append((local(e) - local(-e)) / (2 * step))
        out.append((auto, torch.stack(columns, -1)))
    return out
