"""SE(2), planar rigid motions x ↦ R x + t: parameters ``(x, y, cos θ, sin θ)`` ``[..., 4]``, tangent
``(ρ_x, ρ_y, θ)`` ``[..., 3]``, matrix ``[[R, t], [0, 1]]``.

``random`` draws θ uniformly in [-π, π) (Haar) and a standard-normal translation. Exp, Log and the
Jacobians are the closed forms of Solà et al. (appendix), written with ``series`` so that they are
exact, with exact gradients, at θ = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.base import LieGroup
from liequiv.groups.so2 import SO2, complex_multiply, matrix_to_complex, perp, rotation_matrix, unit_complex
from liequiv.validation import check_homogeneous_rows, check_tensor


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
        return cls._wrap(torch.cat([xy_theta[..., :2], unit_complex(xy_theta[..., 2])], -1))

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
        t = a[..., None] * rho + b[..., None] * perp(rho)
        return cls._wrap(torch.cat([t, unit_complex(theta)], -1))

    def log(self) -> Tensor:
        theta = torch.atan2(self.params[..., 3], self.params[..., 2])
        a, b, _ = self._coefficients(theta)
        t = self.params[..., :2]
        # V⁻¹ = [[a, b], [-b, a]] / (a² + b²), and a² + b² = 2 (1 - cos θ)/θ²
        rho = (a[..., None] * t - b[..., None] * perp(t)) / (2 * series.cosc(theta * theta))[..., None]
        return torch.cat([rho, theta[..., None]], -1)

    def _compose(self, other: SE2) -> SE2:
        rot = self.params[..., 2:]
        t = self.params[..., :2] + (rotation_matrix(rot) @ other.params[..., :2, None])[..., 0]
        cs = complex_multiply(rot, other.params[..., 2:])
        return self._wrap(torch.cat([t.expand(*cs.shape[:-1], 2), cs], -1))

    def inverse(self) -> SE2:
        cs = self.params[..., 2:] * self.params.new_tensor([1.0, -1.0])
        t = -(rotation_matrix(cs) @ self.params[..., :2, None])[..., 0]
        return self._wrap(torch.cat([t, cs], -1))

    def _act(self, points: Tensor) -> Tensor:
        return (rotation_matrix(self.params[..., 2:]) @ points[..., None])[..., 0] + self.params[..., :2]

    def as_matrix(self) -> Tensor:
        top = torch.cat([rotation_matrix(self.params[..., 2:]), self.params[..., :2, None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 2] = 1
        return torch.cat([top, bottom], -2)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> SE2:
        matrix = check_tensor(matrix, "matrix", (3, 3))
        if not project:
            check_homogeneous_rows(matrix, "matrix", hint="; pass project=True to ignore it")
        cs = matrix_to_complex(matrix[..., :2, :2], project)
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
        top = torch.cat([rotation_matrix(self.params[..., 2:]), -perp(self.params[..., :2])[..., None]], -1)
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
        rot = rotation_matrix(self.params[..., 2:])
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        rot = rot.expand(*shape, 2, 2)
        return torch.cat([rot, rot @ perp(points)[..., None]], -1), rot
