"""SO(2), planar rotations as unit complex numbers ``(cos θ, sin θ)`` ``[..., 2]``; tangent θ ``[..., 1]``.

``random`` draws θ uniformly in [-π, π) (Haar). ``log`` returns θ in (-π, π] (atan2, exact at 0 and ±π).
The complex-number helpers here are shared with SE(2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups.base import LieGroup
from liequiv.validation import check_rotation_matrix, check_tensor


def complex_multiply(a: Tensor, b: Tensor) -> Tensor:
    """(a0 + i a1)(b0 + i b1) for ``[..., 2]`` pairs."""
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    return torch.stack([a0 * b0 - a1 * b1, a0 * b1 + a1 * b0], -1)


def rotation_matrix(cs: Tensor) -> Tensor:
    """(cos θ, sin θ) ``[..., 2]`` -> [[cos θ, -sin θ], [sin θ, cos θ]] ``[..., 2, 2]``."""
    c, s = cs.unbind(-1)
    return torch.stack([c, -s, s, c], -1).unflatten(-1, (2, 2))


def perp(v: Tensor) -> Tensor:
    """[1]^ v = (-v_y, v_x): the planar cross-product matrix applied to v ``[..., 2]``."""
    return torch.stack([-v[..., 1], v[..., 0]], -1)


def unit_complex(theta: Tensor) -> Tensor:
    """Angles ``[...]`` -> (cos θ, sin θ) ``[..., 2]``."""
    return torch.stack([torch.cos(theta), torch.sin(theta)], -1)


def matrix_to_complex(rot: Tensor, project: bool) -> Tensor:
    """The (cos, sin) of a 2×2 rotation block; with ``project`` the nearest rotation's."""
    if not project:
        check_rotation_matrix(rot, "matrix", 2, hint="; pass project=True to project it")
    cs = torch.stack([rot[..., 0, 0] + rot[..., 1, 1], rot[..., 1, 0] - rot[..., 0, 1]], -1)
    return cs / torch.linalg.vector_norm(cs, dim=-1, keepdim=True)


class SO2(LieGroup):
    """Planar rotations as unit complex numbers ``(cos θ, sin θ)`` ``[..., 2]``; tangent θ ``[..., 1]``."""

    param_dim = 2
    tangent_dim = 1
    matrix_dim = 2
    point_dim = 2

    @classmethod
    def identity(cls, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> SO2:
        p = torch.tensor([1.0, 0.0], dtype=dtype or torch.get_default_dtype(), device=device)
        return cls._wrap(p.expand(*batch_shape, 2).clone())

    @classmethod
    def random(cls, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> SO2:
        u = torch.rand(tuple(batch_shape), generator=generator, dtype=dtype, device=device)
        return cls._wrap(unit_complex((2 * u - 1) * math.pi))

    @classmethod
    def from_angle(cls, angle: Tensor) -> SO2:
        """From angles ``[...]`` in radians."""
        return cls._wrap(unit_complex(check_tensor(angle, "angle", ())))

    def angle(self) -> Tensor:
        """Angles ``[...]`` in (-π, π]."""
        return torch.atan2(self.params[..., 1], self.params[..., 0])

    @classmethod
    def _exp(cls, tangent: Tensor) -> SO2:
        return cls._wrap(unit_complex(tangent[..., 0]))

    def log(self) -> Tensor:
        return self.angle()[..., None]

    def _compose(self, other: SO2) -> SO2:
        return self._wrap(complex_multiply(self.params, other.params))

    def inverse(self) -> SO2:
        return self._wrap(self.params * self.params.new_tensor([1.0, -1.0]))

    def _act(self, points: Tensor) -> Tensor:
        return (rotation_matrix(self.params) @ points[..., None])[..., 0]

    def as_matrix(self) -> Tensor:
        return rotation_matrix(self.params)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> SO2:
        return cls._wrap(matrix_to_complex(check_tensor(matrix, "matrix", (2, 2)), project))

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        theta = check_tensor(tangent, "tangent", (1,))[..., 0]
        zero = torch.zeros_like(theta)
        return torch.stack([zero, -theta, theta, zero], -1).unflatten(-1, (2, 2))

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        algebra = check_tensor(algebra, "algebra", (2, 2))
        return (0.5 * (algebra[..., 1, 0] - algebra[..., 0, 1]))[..., None]

    def adjoint(self) -> Tensor:
        return torch.ones(*self.shape, 1, 1, dtype=self.dtype, device=self.device)

    def normalize(self) -> SO2:
        return self._wrap(self.params / torch.linalg.vector_norm(self.params, dim=-1, keepdim=True))

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        """Jr = 1: SO(2) is commutative."""
        return torch.ones_like(check_tensor(tangent, "tangent", (1,)))[..., None]

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        return cls.jr(tangent)

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        rot = rotation_matrix(self.params)
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        return (rot @ perp(points)[..., None]).expand(*shape, 2, 1), rot.expand(*shape, 2, 2)
