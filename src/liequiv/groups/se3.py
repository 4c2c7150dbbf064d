"""SE(3), rigid motions of R³: parameters ``(t, q)`` ``[..., 7]`` (quaternion xyzw), tangent ``(ρ, θ)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.base import LieGroup, check_tensor
from liequiv.groups.so3 import (
    SO3,
    quaternion_exp,
    quaternion_log,
    quaternion_multiply,
    quaternion_rotate,
    quaternion_to_matrix,
    skew,
    so3_jacobian,
    unskew,
)


def _sq(v: Tensor) -> Tensor:
    return (v * v).sum(-1)


def translation_coupling(rho: Tensor, theta: Tensor) -> Tensor:
    """Barfoot's Q(ρ, θ) ``[..., 3, 3]``, the off-diagonal block of the left Jacobian of SE(3) (and SE_2(3))."""
    theta_sq = _sq(theta)[..., None, None]
    p, t = skew(rho), skew(theta)
    tp, pt, tpt = t @ p, p @ t, t @ p @ t
    c2 = series.cosc_tail4(theta_sq)
    c3 = 0.5 * (c2 + 3 * series.sinc_tail5(theta_sq))
    return (0.5 * p + series.sinc_sq_tail3(theta_sq) * (tp + pt + tpt)
            + c2 * (t @ tp + pt @ t - 3 * tpt) + c3 * (tpt @ t + t @ tpt))


class SE3(LieGroup):
    """Rigid motions x ↦ R x + t, parameters ``(t, q)`` ``[..., 7]``; tangent ``(ρ, θ)`` ``[..., 6]``.

    ``random``: Haar-uniform rotation and standard-normal translation.
    """

    param_dim = 7
    tangent_dim = 6
    matrix_dim = 4
    point_dim = 3

    @classmethod
    def identity(cls, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> SE3:
        p = torch.tensor([0.0] * 6 + [1.0], dtype=dtype or torch.get_default_dtype(), device=device)
        return cls._wrap(p.expand(*batch_shape, 7).clone())

    @classmethod
    def random(cls, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> SE3:
        rot = SO3.random(batch_shape, generator=generator, dtype=dtype, device=device)
        t = torch.randn(*batch_shape, 3, generator=generator, dtype=rot.dtype, device=device)
        return cls._wrap(torch.cat([t, rot.params], -1))

    @classmethod
    def from_rotation_translation(cls, rotation: SO3, translation: Tensor) -> SE3:
        """From an ``SO3`` and translations ``[..., 3]`` (broadcast together)."""
        translation = check_tensor(translation, "translation", (3,))
        shape = torch.broadcast_shapes(rotation.shape, translation.shape[:-1])
        return cls._wrap(torch.cat([translation.expand(*shape, 3), rotation.params.expand(*shape, 4)], -1))

    def rotation(self) -> SO3:
        return SO3._wrap(self.params[..., 3:])

    def translation(self) -> Tensor:
        return self.params[..., :3]

    @classmethod
    def _exp(cls, tangent: Tensor) -> SE3:
        rho, theta = tangent[..., :3], tangent[..., 3:]
        theta_sq = _sq(theta)[..., None]
        cross = torch.linalg.cross(theta, rho)
        t = rho + series.cosc(theta_sq) * cross + series.sinc_sq_tail3(theta_sq) * torch.linalg.cross(theta, cross)
        return cls._wrap(torch.cat([t, quaternion_exp(theta)], -1))

    def log(self) -> Tensor:
        t, theta = self.params[..., :3], quaternion_log(self.params[..., 3:])
        cross = torch.linalg.cross(theta, t)
        coefficient = series.inverse_jacobian_coefficient(_sq(theta)[..., None])
        rho = t - 0.5 * cross + coefficient * torch.linalg.cross(theta, cross)
        return torch.cat([rho, theta], -1)

    def _compose(self, other: SE3) -> SE3:
        t = self.params[..., :3] + quaternion_rotate(self.params[..., 3:], other.params[..., :3])
        q = quaternion_multiply(self.params[..., 3:], other.params[..., 3:])
        return self._wrap(torch.cat([t.expand(*q.shape[:-1], 3), q], -1))

    def inverse(self) -> SE3:
        q_inv = self.params[..., 3:] * self.params.new_tensor([-1.0, -1.0, -1.0, 1.0])
        return self._wrap(torch.cat([-quaternion_rotate(q_inv, self.params[..., :3]), q_inv], -1))

    def _act(self, points: Tensor) -> Tensor:
        return quaternion_rotate(self.params[..., 3:], points) + self.params[..., :3]

    def as_matrix(self) -> Tensor:
        rot = quaternion_to_matrix(self.params[..., 3:])
        top = torch.cat([rot, self.params[..., :3, None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1
        return torch.cat([top, bottom], -2)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> SE3:
        """From homogeneous matrices ``[..., 4, 4]``; ``project=True`` projects the rotation block."""
        matrix = check_tensor(matrix, "matrix", (4, 4))
        if not torch.compiler.is_compiling():
            bottom = matrix.new_tensor([0.0, 0.0, 0.0, 1.0])
            if not project and bool(((matrix[..., 3, :] - bottom).abs() > 1e-6).any()):
                raise ValueError("matrix must have last row (0, 0, 0, 1); pass project=True to ignore it")
        rot = SO3.from_matrix(matrix[..., :3, :3], project=project)
        return cls._wrap(torch.cat([matrix[..., :3, 3], rot.params], -1))

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        tangent = check_tensor(tangent, "tangent", (6,))
        top = torch.cat([skew(tangent[..., 3:]), tangent[..., :3, None]], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        algebra = check_tensor(algebra, "algebra", (4, 4))
        return torch.cat([algebra[..., :3, 3], unskew(algebra[..., :3, :3])], -1)

    def adjoint(self) -> Tensor:
        rot = quaternion_to_matrix(self.params[..., 3:])
        top = torch.cat([rot, skew(self.params[..., :3]) @ rot], -1)
        return torch.cat([top, torch.cat([torch.zeros_like(rot), rot], -1)], -2)

    def normalize(self) -> SE3:
        q = self.params[..., 3:]
        return self._wrap(torch.cat([self.params[..., :3], q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)], -1))

    @classmethod
    def jl(cls, tangent: Tensor) -> Tensor:
        """Jl(ρ, θ) = [[Jl(θ), Q(ρ, θ)], [0, Jl(θ)]] (Barfoot's Q)."""
        tangent = check_tensor(tangent, "tangent", (6,))
        rho, theta = tangent[..., :3], tangent[..., 3:]
        theta_sq = _sq(theta)
        jl = so3_jacobian(theta, series.cosc(theta_sq), series.sinc_sq_tail3(theta_sq))
        return _block_upper(jl, translation_coupling(rho, theta))

    @classmethod
    def jl_inv(cls, tangent: Tensor) -> Tensor:
        """Jl⁻¹(ρ, θ) = [[Jl⁻¹(θ), -Jl⁻¹ Q Jl⁻¹], [0, Jl⁻¹(θ)]]."""
        tangent = check_tensor(tangent, "tangent", (6,))
        rho, theta = tangent[..., :3], tangent[..., 3:]
        jl_inv = so3_jacobian(theta, -0.5, series.inverse_jacobian_coefficient(_sq(theta)))
        return _block_upper(jl_inv, -jl_inv @ translation_coupling(rho, theta) @ jl_inv)

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        """Jr(τ) = Jl(-τ)."""
        return cls.jl(-tangent)

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        """Jr⁻¹(τ) = Jl⁻¹(-τ)."""
        return cls.jl_inv(-tangent)

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        rot = quaternion_to_matrix(self.params[..., 3:])
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        rot = rot.expand(*shape, 3, 3)
        return torch.cat([rot, -rot @ skew(points)], -1), rot


def _block_upper(diagonal: Tensor, corner: Tensor) -> Tensor:
    """[[D, C], [0, D]] from 3×3 blocks."""
    top = torch.cat([diagonal, corner], -1)
    return torch.cat([top, torch.cat([torch.zeros_like(diagonal), diagonal], -1)], -2)
