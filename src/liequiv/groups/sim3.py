"""Sim(3), similarity transforms x ↦ s R x + t: parameters ``(t, q, s)`` ``[..., 8]`` (xyzw, s > 0),
tangent ``(ρ, θ, σ)`` ``[..., 7]`` with s = exp(σ), matrix ``[[s R, t], [0, 1]]``.

The translation coupling W(θ, σ) = ∫₀¹ e^{σu} exp(u θ^) du of the exponential, and Jr, are evaluated
exactly through matrix exponentials of small block matrices: the closed forms have removable
singularities in both θ and σ (and their product) where a branchy formula loses digits or gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups.base import LieGroup, check_tensor, jr_from_ad
from liequiv.groups.so3 import (
    SO3,
    quaternion_exp,
    quaternion_log,
    quaternion_multiply,
    quaternion_rotate,
    quaternion_to_matrix,
    skew,
    unskew,
)


def _coupling(theta: Tensor, sigma: Tensor) -> Tensor:
    """W(θ, σ) ``[..., 3, 3]``: the top-right block of expm([[σI + θ^, I], [0, 0]])."""
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    top = torch.cat([skew(theta) + sigma[..., None, None] * eye, eye.expand(*theta.shape[:-1], 3, 3)], -1)
    return torch.linalg.matrix_exp(torch.cat([top, torch.zeros_like(top)], -2))[..., :3, 3:]


class Sim3(LieGroup):
    """Similarity transforms ``(t, q, s)`` ``[..., 8]``; ``random``: Haar rotation, standard-normal t,
    log-normal scale (log s ~ N(0, 1))."""

    param_dim = 8
    tangent_dim = 7
    matrix_dim = 4
    point_dim = 3

    @classmethod
    def identity(cls, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> Sim3:
        p = torch.tensor([0.0] * 6 + [1.0, 1.0], dtype=dtype or torch.get_default_dtype(), device=device)
        return cls._wrap(p.expand(*batch_shape, 8).clone())

    @classmethod
    def random(cls, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Sim3:
        rot = SO3.random(batch_shape, generator=generator, dtype=dtype, device=device)
        ts = torch.randn(*batch_shape, 4, generator=generator, dtype=rot.dtype, device=device)
        return cls._wrap(torch.cat([ts[..., :3], rot.params, ts[..., 3:].exp()], -1))

    def rotation(self) -> SO3:
        return SO3._wrap(self.params[..., 3:7])

    def translation(self) -> Tensor:
        return self.params[..., :3]

    def scale(self) -> Tensor:
        return self.params[..., 7]

    @classmethod
    def _exp(cls, tangent: Tensor) -> Sim3:
        rho, theta, sigma = tangent[..., :3], tangent[..., 3:6], tangent[..., 6]
        t = (_coupling(theta, sigma) @ rho[..., None])[..., 0]
        return cls._wrap(torch.cat([t, quaternion_exp(theta), sigma.exp()[..., None]], -1))

    def log(self) -> Tensor:
        theta, sigma = quaternion_log(self.params[..., 3:7]), self.scale().log()
        rho = torch.linalg.solve(_coupling(theta, sigma), self.translation()[..., None])[..., 0]
        return torch.cat([rho, theta, sigma[..., None]], -1)

    def _compose(self, other: Sim3) -> Sim3:
        q, s = self.params[..., 3:7], self.params[..., 7:]
        t = self.translation() + s * quaternion_rotate(q, other.translation())
        q_out = quaternion_multiply(q, other.params[..., 3:7])
        shape = q_out.shape[:-1]
        return self._wrap(torch.cat([t.expand(*shape, 3), q_out, (s * other.params[..., 7:]).expand(*shape, 1)], -1))

    def inverse(self) -> Sim3:
        q_inv = self.params[..., 3:7] * self.params.new_tensor([-1.0, -1.0, -1.0, 1.0])
        s_inv = 1 / self.params[..., 7:]
        return self._wrap(torch.cat([-s_inv * quaternion_rotate(q_inv, self.translation()), q_inv, s_inv], -1))

    def _act(self, points: Tensor) -> Tensor:
        return self.params[..., 7:] * quaternion_rotate(self.params[..., 3:7], points) + self.translation()

    def as_matrix(self) -> Tensor:
        top = torch.cat([self.params[..., 7:, None] * quaternion_to_matrix(self.params[..., 3:7]),
                         self.translation()[..., None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1
        return torch.cat([top, bottom], -2)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> Sim3:
        """From ``[[s R, t], [0, 1]]`` ``[..., 4, 4]`` (det of the 3×3 block > 0)."""
        matrix = check_tensor(matrix, "matrix", (4, 4))
        block = matrix[..., :3, :3]
        det = torch.det(block)
        if not torch.compiler.is_compiling():
            if bool((det <= 0).any()):
                raise ValueError("matrix must have a 3x3 block s R with s > 0 (positive determinant)")
            bottom = matrix.new_tensor([0.0, 0.0, 0.0, 1.0])
            if not project and bool(((matrix[..., 3, :] - bottom).abs() > 1e-6).any()):
                raise ValueError("matrix must have bottom row (0, 0, 0, 1); pass project=True to ignore it")
        s = det.pow(1 / 3)
        rot = SO3.from_matrix(block / s[..., None, None], project=project)
        return cls._wrap(torch.cat([matrix[..., :3, 3], rot.params, s[..., None]], -1))

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        tangent = check_tensor(tangent, "tangent", (7,))
        eye = torch.eye(3, dtype=tangent.dtype, device=tangent.device)
        top = torch.cat([skew(tangent[..., 3:6]) + tangent[..., 6, None, None] * eye, tangent[..., :3, None]], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        algebra = check_tensor(algebra, "algebra", (4, 4))
        sigma = torch.diagonal(algebra[..., :3, :3], dim1=-2, dim2=-1).mean(-1, keepdim=True)
        return torch.cat([algebra[..., :3, 3], unskew(algebra[..., :3, :3]), sigma], -1)

    def adjoint(self) -> Tensor:
        """[[s R, t^ R, -t], [0, R, 0], [0, 0, 1]]."""
        rot, t = quaternion_to_matrix(self.params[..., 3:7]), self.translation()
        zero = torch.zeros_like(rot)
        zcol = torch.zeros_like(t[..., None])
        rows = [[self.params[..., 7:, None] * rot, skew(t) @ rot, -t[..., None]],
                [zero, rot, zcol],
                [zcol.mT.expand(*rot.shape[:-2], 1, 3), zcol.mT, torch.ones_like(zcol[..., :1, :])]]
        return torch.cat([torch.cat(r, -1) for r in rows], -2)

    def normalize(self) -> Sim3:
        q = self.params[..., 3:7]
        q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
        return self._wrap(torch.cat([self.translation(), q, self.params[..., 7:]], -1))

    @classmethod
    def ad(cls, tangent: Tensor) -> Tensor:
        """ad_τ ``[..., 7, 7]`` with ad_τ τ' = [τ^, τ'^]^∨: [[θ^ + σI, ρ^, -ρ], [0, θ^, 0], [0, 0, 0]]."""
        tangent = check_tensor(tangent, "tangent", (7,))
        rho, theta, sigma = tangent[..., :3], tangent[..., 3:6], tangent[..., 6]
        eye = torch.eye(3, dtype=tangent.dtype, device=tangent.device)
        w = skew(theta)
        zero, zcol = torch.zeros_like(w), torch.zeros_like(rho[..., None])
        rows = [[w + sigma[..., None, None] * eye, skew(rho), -rho[..., None]], [zero, w, zcol],
                [torch.zeros_like(tangent[..., None, :])]]
        return torch.cat([torch.cat(r, -1) for r in rows], -2)

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        """Jr(τ) = ∫₀¹ exp(-s ad_τ) ds, exactly (via a 14×14 matrix exponential)."""
        return jr_from_ad(cls.ad(tangent))

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        return torch.linalg.inv(cls.jr(tangent))

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        s_rot = (self.params[..., 7:, None] * quaternion_to_matrix(self.params[..., 3:7])).expand(*shape, 3, 3)
        return torch.cat([s_rot, -s_rot @ skew(points), s_rot @ points[..., None]], -1), s_rot
