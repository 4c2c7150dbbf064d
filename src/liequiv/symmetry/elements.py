"""Group elements of the checker: ``x ↦ R x + t`` with an optional node permutation, and how their batch
dimensions meet a field's.

The rotation/translation of a :class:`GroupElement` may carry batch dimensions; these index the *leading*
dimensions of a field (one element per node or per graph), unlike torch's right-aligned broadcasting:
:func:`left_align` reshapes them so, and :func:`apply_matrix` applies a matrix on the last dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class GroupElement:
    """``x ↦ R x + t`` with ``rotation [..., 3, 3]`` (orthogonal, det ±1), ``translation [..., 3]``, and an
    optional node ``permutation [n]`` (new node ``i`` is old node ``permutation[i]``)."""

    rotation: Tensor
    translation: Tensor
    permutation: Tensor | None = None

    @classmethod
    def identity(cls, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupElement:
        eye = torch.eye(3, dtype=dtype or torch.get_default_dtype(), device=device)
        return cls(eye, eye.new_zeros(3))

    @property
    def determinant(self) -> Tensor:
        """det R ``[...]`` (±1)."""
        return torch.linalg.det(self.rotation)

    def inverse(self) -> GroupElement:
        """``x ↦ Rᵀ (x - t)`` and the inverse permutation."""
        rot_t = self.rotation.mT
        return GroupElement(rot_t, -(rot_t @ self.translation[..., None])[..., 0], self.inverse_permutation())

    def inverse_permutation(self) -> Tensor | None:
        if self.permutation is None:
            return None
        return torch.argsort(self.permutation)

    def homogeneous(self) -> Tensor:
        """The 4×4 matrix ``[[R, t], [0, 1]]`` ``[..., 4, 4]``."""
        top = torch.cat([self.rotation, self.translation[..., None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1
        return torch.cat([top, bottom], -2)


def left_align(m: Tensor, trailing: int, batch_ndim: int, name: str = "group element") -> Tensor:
    """Reshape ``m [*eb, *trail]`` to ``[*eb, 1, ..., 1, *trail]`` with ``batch_ndim`` batch dimensions."""
    extra = batch_ndim - (m.dim() - trailing)
    if extra < 0:
        raise ValueError(f"the {name} has {m.dim() - trailing} batch dimensions but the field only {batch_ndim}")
    return m.reshape(*m.shape[: m.dim() - trailing], *([1] * extra), *m.shape[m.dim() - trailing :])


def apply_matrix(matrix: Tensor, x: Tensor) -> Tensor:
    """``M x`` on the last dimension: ``matrix [..., k, k]`` (batch dims left-aligned to x's) and ``x [..., k]``."""
    return (left_align(matrix, 2, x.dim() - 1) @ x[..., None])[..., 0]
