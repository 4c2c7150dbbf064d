"""SE(3) and SE_2(3): a rotation with k translation-like vectors, written once for both.

An element is ``(R, t_1, ..., t_k)`` with matrix ``[[R, t_1 … t_k], [0, I_k]]``; the group acts on points
by ``R x + t_k``. ``SE3`` is k = 1, parameters ``(t, q)`` ``[..., 7]`` and tangent ``(ρ, θ)`` ``[..., 6]``;
``SE23`` (extended poses of IMU preintegration) is k = 2, parameters ``(v, p, q)`` ``[..., 10]``, tangent
``(ρ_v, ρ_p, θ)`` ``[..., 9]``, matrix ``[[R, v, p], [0, 1, 0], [0, 0, 1]]``. Quaternions are xyzw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.base import LieGroup
from liequiv.groups.so3 import (
    SO3,
    quaternion_exp_parts,
    quaternion_log_factor,
    quaternion_multiply_parts,
    quaternion_rotate,
    quaternion_to_matrix,
    skew,
    so3_jacobian,
    sum_of_squares,
    unskew,
)
from liequiv.validation import check_homogeneous_rows, check_tensor

P = TypeVar("P", bound="ExtendedPose")


def _sq(v: Tensor) -> Tensor:
    return (v * v).sum(-1)


def translation_coupling(rho: Tensor, theta: Tensor) -> Tensor:
    """Barfoot's Q(ρ, θ) ``[..., 3, 3]``: the off-diagonal block of the left Jacobian of SE(3)."""
    theta_sq = _sq(theta)[..., None, None]
    p, t = skew(rho), skew(theta)
    tp, pt, tpt = t @ p, p @ t, t @ p @ t
    c2 = series.cosc_tail4(theta_sq)
    c3 = 0.5 * (c2 + 3 * series.sinc_tail5(theta_sq))
    return (0.5 * p + series.sinc_sq_tail3(theta_sq) * (tp + pt + tpt)
            + c2 * (t @ tp + pt @ t - 3 * tpt) + c3 * (tpt @ t + t @ tpt))


def _blocks(rows: list[list[Tensor]]) -> Tensor:
    return torch.cat([torch.cat(row, -1) for row in rows], -2)


class ExtendedPose(LieGroup):
    """Shared implementation of SE(3) (k = 1) and SE_2(3) (k = 2); ``random`` draws a Haar rotation and
    standard-normal translation-like vectors."""

    k: ClassVar[int]
    point_dim = 3

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.param_dim, cls.tangent_dim, cls.matrix_dim = 3 * cls.k + 4, 3 * cls.k + 3, 3 + cls.k

    # translation-like vectors [..., k, 3] and the quaternion [..., 4]
    def _vectors(self) -> Tensor:
        return self.params[..., : 3 * self.k].unflatten(-1, (self.k, 3))

    def _quaternion(self) -> Tensor:
        return self.params[..., 3 * self.k :]

    @classmethod
    def _pack(cls: type[P], vectors: Tensor, q: Tensor) -> P:
        shape = torch.broadcast_shapes(vectors.shape[:-2], q.shape[:-1])
        return cls._wrap(torch.cat([vectors.expand(*shape, cls.k, 3).flatten(-2), q.expand(*shape, 4)], -1))

    def rotation(self) -> SO3:
        return SO3._wrap(self._quaternion())

    @classmethod
    def identity(cls: type[P], batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> P:
        p = torch.zeros(cls.param_dim, dtype=dtype or torch.get_default_dtype(), device=device)
        p[-1] = 1
        return cls._wrap(p.expand(*batch_shape, cls.param_dim).clone())

    @classmethod
    def random(cls: type[P], batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> P:
        rot = SO3.random(batch_shape, generator=generator, dtype=dtype, device=device)
        vectors = torch.randn(*batch_shape, cls.k, 3, generator=generator, dtype=rot.dtype, device=device)
        return cls._pack(vectors, rot.params)

    @classmethod
    def _exp(cls: type[P], tangent: Tensor) -> P:
        rho, theta = tangent[..., :-3].unflatten(-1, (cls.k, 3)), tangent[..., -3:]
        theta_sq = sum_of_squares(theta.unbind(-1))
        a, b = series.cosc(theta_sq)[..., None, None], series.sinc_sq_tail3(theta_sq)[..., None, None]
        theta_k = theta[..., None, :]
        cross = torch.linalg.cross(theta_k, rho)
        vectors = torch.addcmul(rho, a, cross).addcmul_(b, torch.linalg.cross(theta_k, cross))
        return cls._wrap(torch.cat([vectors.flatten(-2), *quaternion_exp_parts(theta, theta_sq)], -1))

    def log(self) -> Tensor:
        vectors, q = self._vectors(), self._quaternion()
        theta = q[..., :3] * quaternion_log_factor(*q.unbind(-1))[..., None]
        coefficient = series.inverse_jacobian_coefficient(sum_of_squares(theta.unbind(-1)))[..., None, None]
        theta_k = theta[..., None, :]
        cross = torch.linalg.cross(theta_k, vectors)
        rho = torch.add(vectors, cross, alpha=-0.5).addcmul_(coefficient, torch.linalg.cross(theta_k, cross))
        return torch.cat([rho.flatten(-2), theta], -1)

    def _compose(self: P, other: P) -> P:
        q1 = self._quaternion()
        vectors = quaternion_rotate(q1[..., None, :], other._vectors()).add_(self._vectors())
        return self._wrap(torch.cat([vectors.flatten(-2), *quaternion_multiply_parts(q1, other._quaternion())], -1))

    def inverse(self: P) -> P:
        q_inv = self._quaternion() * self.params.new_tensor([-1.0, -1.0, -1.0, 1.0])
        return self._pack(-quaternion_rotate(q_inv[..., None, :], self._vectors()), q_inv)

    def _act(self, points: Tensor) -> Tensor:
        return quaternion_rotate(self._quaternion(), points).add_(self._vectors()[..., -1, :])

    def as_matrix(self) -> Tensor:
        rot = quaternion_to_matrix(self._quaternion())
        top = torch.cat([rot, self._vectors().mT], -1)
        bottom = torch.zeros(*top.shape[:-2], self.k, 3 + self.k, dtype=self.dtype, device=self.device)
        bottom[..., :, 3:] = torch.eye(self.k, dtype=self.dtype, device=self.device)
        return torch.cat([top, bottom], -2)

    @classmethod
    def from_matrix(cls: type[P], matrix: Tensor, *, project: bool = False) -> P:
        """From matrices ``[..., 3+k, 3+k]``; ``project=True`` projects the rotation block and ignores the bottom."""
        n = cls.matrix_dim
        matrix = check_tensor(matrix, "matrix", (n, n))
        if not project:
            check_homogeneous_rows(matrix, "matrix", cls.k, hint="; pass project=True to ignore them")
        rot = SO3.from_matrix(matrix[..., :3, :3], project=project)
        return cls._pack(matrix[..., :3, 3:].mT, rot.params)

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        tangent = check_tensor(tangent, "tangent", (cls.tangent_dim,))
        top = torch.cat([skew(tangent[..., -3:]), tangent[..., :-3].unflatten(-1, (cls.k, 3)).mT], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :]).expand(*top.shape[:-2], cls.k, -1)], -2)

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        algebra = check_tensor(algebra, "algebra", (cls.matrix_dim, cls.matrix_dim))
        return torch.cat([algebra[..., :3, 3:].mT.flatten(-2), unskew(algebra[..., :3, :3])], -1)

    @classmethod
    def _upper(cls, diagonal: Tensor, corners: list[Tensor]) -> Tensor:
        """[[D, 0, C_1], [0, D, C_2], …, [0, 0, D]] with 3×3 blocks."""
        shape = torch.broadcast_shapes(diagonal.shape, *(c.shape for c in corners))
        diagonal, zero = diagonal.expand(shape), diagonal.new_zeros(shape)
        rows = [[diagonal if j == i else zero for j in range(cls.k)] + [corners[i].expand(shape)]
                for i in range(cls.k)]
        return _blocks([*rows, [zero] * cls.k + [diagonal]])

    def adjoint(self) -> Tensor:
        rot = quaternion_to_matrix(self._quaternion())
        return self._upper(rot, [skew(t) @ rot for t in self._vectors().unbind(-2)])

    def normalize(self: P) -> P:
        q = self._quaternion()
        return self._pack(self._vectors(), q / torch.linalg.vector_norm(q, dim=-1, keepdim=True))

    @classmethod
    def _split(cls, tangent: Tensor) -> tuple[list[Tensor], Tensor]:
        tangent = check_tensor(tangent, "tangent", (cls.tangent_dim,))
        return list(tangent[..., :-3].unflatten(-1, (cls.k, 3)).unbind(-2)), tangent[..., -3:]

    @classmethod
    def jl(cls, tangent: Tensor) -> Tensor:
        """Jl(ρ, θ): Jl(θ) of SO(3) on the diagonal, Barfoot's Q(ρ_i, θ) in the last block column."""
        rhos, theta = cls._split(tangent)
        theta_sq = _sq(theta)
        jl = so3_jacobian(theta, series.cosc(theta_sq), series.sinc_sq_tail3(theta_sq))
        return cls._upper(jl, [translation_coupling(rho, theta) for rho in rhos])

    @classmethod
    def jl_inv(cls, tangent: Tensor) -> Tensor:
        """Jl⁻¹(ρ, θ): Jl⁻¹(θ) on the diagonal, -Jl⁻¹ Q(ρ_i, θ) Jl⁻¹ in the last block column."""
        rhos, theta = cls._split(tangent)
        jl_inv = so3_jacobian(theta, -0.5, series.inverse_jacobian_coefficient(_sq(theta)))
        return cls._upper(jl_inv, [-jl_inv @ translation_coupling(rho, theta) @ jl_inv for rho in rhos])

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        """Jr(τ) = Jl(-τ)."""
        return cls.jl(-tangent)

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        """Jr⁻¹(τ) = Jl⁻¹(-τ)."""
        return cls.jl_inv(-tangent)

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        rot = quaternion_to_matrix(self._quaternion())
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        rot = rot.expand(*shape, 3, 3)
        zeros = [torch.zeros_like(rot)] * (self.k - 1)
        return torch.cat([*zeros, rot, -rot @ skew(points)], -1), rot


class SE3(ExtendedPose):
    """Rigid motions x ↦ R x + t: parameters ``(t, q)`` ``[..., 7]``, tangent ``(ρ, θ)`` ``[..., 6]``."""

    k = 1

    @classmethod
    def from_rotation_translation(cls, rotation: SO3, translation: Tensor) -> SE3:
        """From an ``SO3`` and translations ``[..., 3]`` (broadcast together)."""
        translation = check_tensor(translation, "translation", (3,))
        return cls._pack(translation[..., None, :], rotation.params)

    def translation(self) -> Tensor:
        return self.params[..., :3]


class SE23(ExtendedPose):
    """Extended poses (R, v, p) of inertial navigation: parameters ``(v, p, q)`` ``[..., 10]``, tangent
    ``(ρ_v, ρ_p, θ)`` ``[..., 9]``, matrix ``[[R, v, p], [0, 1, 0], [0, 0, 1]]``; acts on points as R x + p."""

    k = 2

    def velocity(self) -> Tensor:
        return self.params[..., :3]

    def position(self) -> Tensor:
        return self.params[..., 3:6]
