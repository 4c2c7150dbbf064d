"""SO(2) and SE(2): planar rotations as unit complex numbers ``(cos θ, sin θ)``, and rigid motions.

SO(2): parameters ``(cos θ, sin θ)`` ``[..., 2]``, tangent θ ``[..., 1]``.
SE(2): parameters ``(x, y, cos θ, sin θ)`` ``[..., 4]``, tangent ``(ρ_x, ρ_y, θ)`` ``[..., 3]``.
``random`` draws θ uniformly in [-π, π) (Haar) and, for SE(2), a standard-normal translation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.base import LieGroup, check_tensor


def complex_multiply(a: Tensor, b: Tensor) -> Tensor:
    """(a0 + i a1)(b0 + i b1) for ``[..., 2]`` pairs."""
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    return torch.stack([a0 * b0 - a1 * b1, a0 * b1 + a1 * b0], -1)


def _rotation_matrix(cs: Tensor) -> Tensor:
    c, s = cs.unbind(-1)
    return torch.stack([c, -s, s, c], -1).unflatten(-1, (2, 2))


def _perp(v: Tensor) -> Tensor:
    """[1]^ v = (-v_y, v_x): the planar cross-product matrix applied to v ``[..., 2]``."""
    return torch.stack([-v[..., 1], v[..., 0]], -1)


def _unit_complex(theta: Tensor) -> Tensor:
    return torch.stack([torch.cos(theta), torch.sin(theta)], -1)


def _check_rotation_2d(matrix: Tensor) -> None:
    if torch.compiler.is_compiling():
        return
    tol = 1e-4 if torch.finfo(matrix.dtype).bits <= 32 else 1e-9
    eye = torch.eye(2, dtype=matrix.dtype, device=matrix.device)
    if bool(((matrix.mT @ matrix - eye).abs() > tol).any()) or bool((torch.det(matrix) <= 0).any()):
        raise ValueError("matrix must hold a rotation (orthogonal, det +1); pass project=True to project it")


def _matrix_to_complex(rot: Tensor, project: bool) -> Tensor:
    """The (cos, sin) of a 2×2 rotation block; with ``project`` the nearest rotation's."""
    if not project:
        _check_rotation_2d(rot)
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
        return cls._wrap(_unit_complex((2 * u - 1) * math.pi))

    @classmethod
    def from_angle(cls, angle: Tensor) -> SO2:
        """From angles ``[...]`` in radians."""
        return cls._wrap(_unit_complex(check_tensor(angle, "angle", ())))

    def angle(self) -> Tensor:
        """Angles ``[...]`` in (-π, π]."""
        return torch.atan2(self.params[..., 1], self.params[..., 0])

    @classmethod
    def _exp(cls, tangent: Tensor) -> SO2:
        return cls._wrap(_unit_complex(tangent[..., 0]))

    def log(self) -> Tensor:
        return self.angle()[..., None]

    def _compose(self, other: SO2) -> SO2:
        return self._wrap(complex_multiply(self.params, other.params))

    def inverse(self) -> SO2:
        return self._wrap(self.params * self.params.new_tensor([1.0, -1.0]))

    def _act(self, points: Tensor) -> Tensor:
        return (_rotation_matrix(self.params) @ points[..., None])[..., 0]

    def as_matrix(self) -> Tensor:
        return _rotation_matrix(self.params)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> SO2:
        return cls._wrap(_matrix_to_complex(check_tensor(matrix, "matrix", (2, 2)), project))

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
        rot = _rotation_matrix(self.params)
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        return (rot @ _perp(points)[..., None]).expand(*shape, 2, 1), rot.expand(*shape, 2, 2)


class SE2(LieGroup):
    """Planar rigid motions: parameters ``(x, y, cos θ, sin θ)`` ``[..., 4]``, tangent ``(ρ_x, ρ_y, θ)``."""

    param_dim = 4
    tangent_dim = 3
    matrix_dim = 3
    point_dim = 2

    @classmethod
    def identity(cls, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> SE2:
        p = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=dtype or torch.get_default_dtype(), device=device)
        return cls._wrap(p.expand(*batch_shape, 4).clone())

    @classmethod
    def random(cls, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> SE2:
        rot = SO2.random(batch_shape, generator=generator, dtype=dtype, device=device)
        t = torch.randn(*batch_shape, 2, generator=generator, dtype=rot.dtype, device=device)
        return cls._wrap(torch.cat([t, rot.params], -1))

    @classmethod
    def from_xy_theta(cls, xy_theta: Tensor) -> SE2:
        """From ``(x, y, θ)`` ``[..., 3]``."""
        xy_theta = check_tensor(xy_theta, "xy_theta", (3,))
        return cls._wrap(torch.cat([xy_theta[..., :2], _unit_complex(xy_theta[..., 2])], -1))

    def rotation(self) -> SO2:
        return SO2._wrap(self.params[..., 2:])

    def translation(self) -> Tensor:
        return self.params[..., :2]

    @staticmethod
    def _coefficients(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(sin θ/θ, (1 - cos θ)/θ, (θ - sin θ)/θ²) ``[...]``, exact at θ = 0."""
        theta_sq = theta * theta
        return series.sinc(theta_sq), theta * series.cosc(theta_sq), theta * series.sinc_sq_tail3(theta_sq)

    @classmethod
    def _exp(cls, tangent: Tensor) -> SE2:
        rho, theta = tangent[..., :2], tangent[..., 2]
        a, b, _ = cls._coefficients(theta)
        # V(θ) ρ with V = [[a, -b], [b, a]]
        t = a[..., None] * rho + b[..., None] * _perp(rho)
        return cls._wrap(torch.cat([t, _unit_complex(theta)], -1))

    def log(self) -> Tensor:
        theta = torch.atan2(self.params[..., 3], self.params[..., 2])
        a, b, _ = self._coefficients(theta)
        t = self.params[..., :2]
        # V⁻¹ = [[a, b], [-b, a]] / (a² + b²), and a² + b² = 2 (1 - cos θ)/θ²
        rho = (a[..., None] * t - b[..., None] * _perp(t)) / (2 * series.cosc(theta * theta))[..., None]
        return torch.cat([rho, theta[..., None]], -1)

    def _compose(self, other: SE2) -> SE2:
        rot = self.params[..., 2:]
        t = self.params[..., :2] + (_rotation_matrix(rot) @ other.params[..., :2, None])[..., 0]
        cs = complex_multiply(rot, other.params[..., 2:])
        return self._wrap(torch.cat([t.expand(*cs.shape[:-1], 2), cs], -1))

    def inverse(self) -> SE2:
        cs = self.params[..., 2:] * self.params.new_tensor([1.0, -1.0])
        t = -(_rotation_matrix(cs) @ self.params[..., :2, None])[..., 0]
        return self._wrap(torch.cat([t, cs], -1))

    def _act(self, points: Tensor) -> Tensor:
        return (_rotation_matrix(self.params[..., 2:]) @ points[..., None])[..., 0] + self.params[..., :2]

    def as_matrix(self) -> Tensor:
        top = torch.cat([_rotation_matrix(self.params[..., 2:]), self.params[..., :2, None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 2] = 1
        return torch.cat([top, bottom], -2)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> SE2:
        matrix = check_tensor(matrix, "matrix", (3, 3))
        if not project and not torch.compiler.is_compiling():
            bottom = matrix.new_tensor([0.0, 0.0, 1.0])
            if bool(((matrix[..., 2, :] - bottom).abs() > 1e-6).any()):
                raise ValueError("matrix must have bottom row (0, 0, 1); pass project=True to ignore it")
        cs = _matrix_to_complex(matrix[..., :2, :2], project)
        return cls._wrap(torch.cat([matrix[..., :2, 2], cs], -1))

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        tangent = check_tensor(tangent, "tangent", (3,))
        top = torch.cat([SO2.hat(tangent[..., 2:]), tangent[..., :2, None]], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        algebra = check_tensor(algebra, "algebra", (3, 3))
        return torch.cat([algebra[..., :2, 2], SO2.vee(algebra[..., :2, :2])], -1)

    def adjoint(self) -> Tensor:
        """[[R, -[1]^ t], [0, 1]]."""
        top = torch.cat([_rotation_matrix(self.params[..., 2:]), -_perp(self.params[..., :2])[..., None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 2] = 1
        return torch.cat([top, bottom], -2)

    def normalize(self) -> SE2:
        cs = self.params[..., 2:]
        return self._wrap(torch.cat([self.params[..., :2], cs / torch.linalg.vector_norm(cs, dim=-1, keepdim=True)],
                                    -1))

    @classmethod
    def _jacobian(cls, tangent: Tensor, inverse: bool) -> Tensor:
        """Jr = [[a, b, c1], [-b, a, c2], [0, 0, 1]] (Solà et al., appendix), or its inverse."""
        tangent = check_tensor(tangent, "tangent", (3,))
        rho, theta = tangent[..., :2], tangent[..., 2]
        a, b, d = cls._coefficients(theta)
        theta_sq = theta * theta
        cosc = series.cosc(theta_sq)
        # c1 = ρ1 (θ - sin θ)/θ² - ρ2 (1 - cos θ)/θ²,  c2 = ρ1 (1 - cos θ)/θ² + ρ2 (θ - sin θ)/θ²
        corner = torch.stack([rho[..., 0] * d - rho[..., 1] * cosc, rho[..., 0] * cosc + rho[..., 1] * d], -1)
        block = torch.stack([a, b, -b, a], -1).unflatten(-1, (2, 2))
        if inverse:  # [[M, c], [0, 1]]⁻¹ = [[M⁻¹, -M⁻¹ c], [0, 1]], M⁻¹ = Mᵀ / (a² + b²)
            block = block.mT / (2 * cosc)[..., None, None]
            corner = -(block @ corner[..., None])[..., 0]
        top = torch.cat([block, corner[..., None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 2] = 1
        return torch.cat([top, bottom], -2)

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        return cls._jacobian(tangent, inverse=False)

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        return cls._jacobian(tangent, inverse=True)

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        rot = _rotation_matrix(self.params[..., 2:])
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        rot = rot.expand(*shape, 2, 2)
        return torch.cat([rot, rot @ _perp(points)[..., None]], -1), rot
