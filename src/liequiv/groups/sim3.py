"""Sim(3), similarity transforms x ↦ s R x + t: parameters ``(t, q, s)`` ``[..., 8]`` (xyzw, s > 0),
tangent ``(ρ, θ, σ)`` ``[..., 7]`` with s = exp(σ), matrix ``[[s R, t], [0, 1]]``.

The scale is stored as s (not log s): composition multiplies it, and ``as_matrix``/``act`` use it as is.

Exp and Log are closed forms. Exp(ρ, θ, σ) = (W(θ, σ) ρ, Exp(θ), e^σ), with the translation coupling
W(θ, σ) = ∫₀¹ e^{σu} exp(u θ^) du = A I + B θ^ + C θ^² (see ``coupling_coefficients``), whose
coefficients have removable singularities at σ = 0, at θ = 0 and at both; Log inverts W in closed form.

Jr has no short closed form here (its ρ-θ block couples θ^ + σI with θ^): it is computed exactly as
∫₀¹ exp(-u ad_τ) du, the top-right block of a 14×14 matrix exponential (``base.jr_from_ad``), and Jr⁻¹
by inverting it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.base import LieGroup, jr_from_ad
from liequiv.groups.so3 import (
    SO3,
    quaternion_exp,
    quaternion_log,
    quaternion_multiply,
    quaternion_rotate,
    quaternion_to_matrix,
    skew,
    sum_of_squares,
    unskew,
)
from liequiv.validation import check_homogeneous_rows, check_tensor, checking_values

_COUPLING_THRESHOLD = 2.0  # on |z|² = σ² + θ²: the bivariate series below, the closed forms at or above


def _coupling_terms(dtype: torch.dtype) -> int:
    """Series terms n < N for |z|² < threshold: the n-th terms of B and C are at most n² |z|^(n-2) / (n+1)!, and
    their derivatives a factor n more; stop where that is below the dtype's epsilon."""
    eps = torch.finfo(dtype).eps
    n = 2
    while n**3 * _COUPLING_THRESHOLD ** (n / 2 - 1) / math.factorial(n + 1) >= eps:
        n += 1
    return n


_COUPLING_TERMS = {dtype: _coupling_terms(dtype)
                   for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def coupling_coefficients(theta_sq: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(A, B, C) ``[...]`` with W(θ, σ) = ∫₀¹ e^{σu} exp(u θ^) du = A I + B θ^ + C θ^², from θ² and σ.

    With φ(z) = (e^z - 1)/z and z = σ + iθ: A = φ(σ), B = Im φ(z)/θ, C = (φ(σ) - Re φ(z))/θ², that is
    A = (e^σ - 1)/σ, B = (e^σ (σ sinc θ + θ² cosc θ) - (e^σ - 1))/|z|², C = (A + e^σ (σ cosc θ - sinc θ))/|z|²
    (sinc θ = sin θ/θ, cosc θ = (1 - cos θ)/θ²), which cancel only where |z| is small. A = e^{σ/2} sinhc(σ²/4)
    is exact everywhere. Below |z|² = 2, B and C are their Taylor series Σ_n b_n / (n+1)!, Σ_n c_n / (n+1)!
    (polynomials in σ and θ², from z^n = a_n + iθ b_n and σ^n - a_n = θ² c_n), and both branches get safe
    inputs (the double where), so values and gradients are finite and exact at σ = 0, θ = 0 and both.
    """
    r = sigma * sigma + theta_sq
    above = series.split(r, _COUPLING_THRESHOLD)[2]
    below = 1 - above
    a = torch.exp(sigma * 0.5) * series.sinhc(sigma * sigma * 0.25)
    # series branch, at (σ, θ²) below the threshold and (0, 0) elsewhere. From n = 1 (a_1 = σ, b_1 = 1, c_1 = 0):
    # z^(n+1) = z^n (σ + iθ) gives a_(n+1) = σ a_n - θ² b_n, b_(n+1) = a_n + σ b_n, c_(n+1) = σ c_n + b_n.
    s_small, x_small = sigma * below, theta_sq * below
    a_n, b_n, c_n = s_small, torch.ones_like(s_small), torch.zeros_like(s_small)
    b_series, c_series = torch.full_like(s_small, 0.5), torch.zeros_like(s_small)
    factor = 0.5
    for n in range(2, _COUPLING_TERMS[sigma.dtype]):
        factor /= n + 1
        a_n, b_n, c_n = (s_small * a_n - x_small * b_n, torch.addcmul(a_n, s_small, b_n),
                         torch.addcmul(b_n, s_small, c_n))
        b_series.add_(b_n, alpha=factor)
        c_series.add_(c_n, alpha=factor)
    # closed-form branch, at (σ, θ²) above the threshold and (0, threshold) elsewhere (where A(σ) is finite too)
    s_large, x_large = sigma * above, torch.lerp(theta_sq, theta_sq.new_tensor(_COUPLING_THRESHOLD), below)
    sinc, cosc = series.sinc(x_large), series.cosc(x_large)
    e, inv_r = torch.exp(s_large), 1 / (s_large * s_large + x_large)
    b_large = (e * (s_large * sinc + x_large * cosc) - torch.expm1(s_large)) * inv_r
    c_large = (a + e * (s_large * cosc - sinc)) * inv_r
    return a, b_series.lerp_(b_large, above), c_series.lerp_(c_large, above)


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
        a, b, c = (k[..., None] for k in coupling_coefficients(sum_of_squares(theta.unbind(-1)), sigma))
        cross = torch.linalg.cross(theta, rho)
        t = torch.linalg.cross(theta, cross).mul_(c).addcmul_(b, cross).addcmul_(a, rho)  # W ρ
        return cls._wrap(torch.cat([t, quaternion_exp(theta), sigma.exp()[..., None]], -1))

    def log(self) -> Tensor:
        """(W⁻¹ t, Log q, log s), with W⁻¹ = I/A - B/|φ|² θ^ + (B² - C D)/(A |φ|²) θ^², D = A - θ² C = Re φ and
        |φ|² = D² + θ² B² (> 0 for θ in [0, π])."""
        t, theta, sigma = self.translation(), quaternion_log(self.params[..., 3:7]), self.scale().log()
        theta_sq = sum_of_squares(theta.unbind(-1))
        a, b, c = coupling_coefficients(theta_sq, sigma)
        re = a - theta_sq * c
        inv_norm_sq = 1 / (re * re + theta_sq * b * b)
        inv_b = (-b * inv_norm_sq)[..., None]
        inv_c = ((b * b - c * re) * inv_norm_sq / a)[..., None]
        cross = torch.linalg.cross(theta, t)
        rho = torch.linalg.cross(theta, cross).mul_(inv_c).addcmul_(inv_b, cross).addcmul_(1 / a[..., None], t)
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
        if checking_values() and bool((det <= 0).any()):
            raise ValueError("matrix must have a 3x3 block s R with s > 0 (positive determinant)")
        if not project:
            check_homogeneous_rows(matrix, "matrix", hint="; pass project=True to ignore it")
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
        """Jr(τ)⁻¹, by inverting Jr (singular where |θ| is a non-zero multiple of 2π)."""
        return torch.linalg.inv(cls.jr(tangent))

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        s_rot = (self.params[..., 7:, None] * quaternion_to_matrix(self.params[..., 3:7])).expand(*shape, 3, 3)
        return torch.cat([s_rot, -s_rot @ skew(points), s_rot @ points[..., None]], -1), s_rot
