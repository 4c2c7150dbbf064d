"""SO(3), the rotations of R³, as unit quaternions ``(x, y, z, w)`` (scalar last, as scipy and pypose).

``q`` and ``-q`` are the same rotation; ``log`` returns rotation vectors with angle in ``[0, π]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.base import LieGroup
from liequiv.validation import check_rotation_matrix, check_tensor, membership_tolerance

QuaternionOrder = Literal["xyzw", "wxyz"]

# ------------------------------------------------------------------ quaternion and skew helpers


def skew(v: Tensor) -> Tensor:
    """[..., 3] -> the cross-product matrix v^ ``[..., 3, 3]`` (v^ p = v × p)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).unflatten(-1, (3, 3))


def unskew(m: Tensor) -> Tensor:
    """[..., 3, 3] skew matrix -> [..., 3] (the antisymmetric part's vector)."""
    return 0.5 * torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                              m[..., 1, 0] - m[..., 0, 1]], dim=-1)


# The kernels below are written for the CPU's eager mode, where every op is a pass over memory: torch.linalg.cross
# on [..., 3] is one pass; a sum or cat over a last dimension of 3 or 4 costs several, and so does every fresh
# temporary (page faults). So: in-place updates of fresh temporaries autograd has not saved, addcmul, and one cat.


def sum_of_squares(components: Sequence[Tensor]) -> Tensor:
    """Σ c² of components ``[...]`` (e.g. ``v.unbind(-1)``: cheaper than ``(v * v).sum(-1)``)."""
    first, *rest = components
    out = first * first
    for c in rest:
        out.addcmul_(c, c)
    return out


def cross(a: Tensor, b: Tensor) -> Tensor:
    """a × b over the last dimension, batch shapes broadcast (also across ranks, unlike ``torch.linalg.cross``)."""
    if a.dim() != b.dim():
        a, b = a[(None,) * (b.dim() - a.dim())], b[(None,) * (a.dim() - b.dim())]
    return torch.linalg.cross(a, b)


def quaternion_multiply_parts(q1: Tensor, q2: Tensor) -> tuple[Tensor, Tensor]:
    """The Hamilton product as (vector part ``[..., 3]``, scalar part ``[..., 1]``), batch shapes broadcast."""
    v1, w1 = q1[..., :3], q1[..., 3:]
    v2, w2 = q2[..., :3], q2[..., 3:]
    v = cross(v1, v2).addcmul_(w1, v2).addcmul_(v1, w2)
    w = (w1 * w2).sub_((v1 * v2).sum(-1, keepdim=True))
    return v, w


def quaternion_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product of xyzw quaternions ``[..., 4]`` (batch shapes broadcast)."""
    return torch.cat(quaternion_multiply_parts(q1, q2), -1)


def quaternion_rotate(q: Tensor, p: Tensor) -> Tensor:
    """Rotate points ``p [..., 3]`` by unit xyzw quaternions ``q [..., 4]``: p + 2w(v×p) + 2v×(v×p)."""
    v, w = q[..., :3], q[..., 3:]
    t = cross(v, p).mul_(2)
    return cross(v, t).addcmul_(w, t).add_(p)


_LOG_SERIES_THRESHOLD = 1e-2  # on |v|² = sin²(θ/2), so x² = tan²(θ/2) < 0.0102 on the series branch
# Terms of the atan(x)/x series whose truncation, x^(2K) / (2K + 1), is below the dtype's epsilon there.
_LOG_SERIES_TERMS = {dtype: math.ceil(math.log(torch.finfo(dtype).eps) / math.log(0.0102))
                     for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}
_ATAN_COEFFICIENTS = [1.0 / (2 * k + 1) for k in range(max(_LOG_SERIES_TERMS.values()))]


def quaternion_exp_parts(rotvec: Tensor, theta_sq: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Exp of rotation vectors ``[..., 3]`` as (vector part ``[..., 3]``, scalar part ``[..., 1]``);
    ``theta_sq``: |rotvec|² ``[...]`` where the caller has it."""
    half_sq = (sum_of_squares(rotvec.unbind(-1)) if theta_sq is None else theta_sq) * 0.25  # (θ/2)²
    scale = series.sinc(half_sq).mul_(0.5)  # sin(θ/2)/θ
    return rotvec * scale[..., None], series.cos_sqrt(half_sq)[..., None]


def quaternion_exp(rotvec: Tensor) -> Tensor:
    """Rotation vector ``[..., 3]`` -> unit xyzw quaternion ``[..., 4]`` (finite gradient at 0)."""
    return torch.cat(quaternion_exp_parts(rotvec), -1)


def quaternion_log_factor(x: Tensor, y: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """The factor f ``[...]`` with Log(q) = f (x, y, z) for quaternion components (x, y, z, w)."""
    sign = w.detach().sign().add_(0.5).sign_()  # -1 where w < 0, else 1: q and -q, take the one with w ≥ 0
    w = w * sign
    if not (torch.is_grad_enabled() and any(c.requires_grad for c in (x, y, z, w))):
        # Without autograd, the closed form alone: accurate in value for every n ≥ 0 (atan2(n, w)/n → 1/w);
        # the series branch below is there for the gradient, whose closed form cancels near n = 0.
        n = sum_of_squares((x, y, z)).clamp_(min=torch.finfo(w.dtype).tiny).sqrt_()
        return torch.atan2(n, w).div_(n).mul_(sign.mul_(2))
    # 2 atan2(n, w) / n, with n = |v|. Near n = 0 (so w ≈ 1): (2/w) atan(x)/x with x = n/w, as a series.
    n_sq_small, n_sq_large, large = series.split(sum_of_squares((x, y, z)), _LOG_SERIES_THRESHOLD)
    n = series.sqrt_fresh(n_sq_large)
    exact = torch.atan2(n, w) / n
    w_safe = w + large  # w on the series branch, ≥ 1 off it
    minus_x_sq = (n_sq_small / (w_safe * w_safe)).neg_()
    atan_series = series.horner(minus_x_sq, _ATAN_COEFFICIENTS[: _LOG_SERIES_TERMS[w.dtype]])  # Σ (-x²)^k / (2k+1)
    return (atan_series / w_safe).lerp_(exact, large).mul_(2 * sign)


def quaternion_log(q: Tensor) -> Tensor:
    """Unit xyzw quaternion -> rotation vector with angle in [0, π] (atan2 form, stable at 0 and π)."""
    return q[..., :3] * quaternion_log_factor(*q.unbind(-1))[..., None]


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit xyzw quaternion ``[..., 4]`` -> rotation matrix ``[..., 3, 3]``."""
    x, y, z, w = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    rows = [1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def matrix_to_quaternion(m: Tensor) -> Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> unit xyzw quaternion with w ≥ 0.

    All four Shepperd candidates are formed and the best conditioned one is gathered (no
    data-dependent control flow), so every input gets a candidate with a divisor ≥ 1/2.
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    four_sq = torch.stack([1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1)
    candidates = torch.stack([
        torch.stack([four_sq[..., 0], s01, s02, d21], -1),
        torch.stack([s01, four_sq[..., 1], s12, d02], -1),
        torch.stack([s02, s12, four_sq[..., 2], d10], -1),
        torch.stack([d21, d02, d10, four_sq[..., 3]], -1),
    ], dim=-2)  # row i is 4 q_i q, so its i-th entry is 4 q_i²
    best = four_sq.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., 3:] < 0, -q, q)


def convert_quaternion(q: Tensor, source: QuaternionOrder, target: QuaternionOrder) -> Tensor:
    """Reorder quaternions ``[..., 4]`` between scalar-last ``"xyzw"`` and scalar-first ``"wxyz"``."""
    for name, order in (("source", source), ("target", target)):
        if order not in ("xyzw", "wxyz"):
            raise ValueError(f"{name} order must be 'xyzw' or 'wxyz', got {order!r}")
    if source == target:
        return q
    return q.roll(1, -1) if source == "xyzw" else q.roll(-1, -1)


def _parse_euler(convention: str) -> tuple[list[int], bool]:
    if not isinstance(convention, str) or len(convention) != 3 or not (
        set(convention) <= set("xyz") or set(convention) <= set("XYZ")
    ) or convention[0].lower() == convention[1].lower() or convention[1].lower() == convention[2].lower():
        raise ValueError(
            f"Euler convention must be 3 axes, all lowercase (extrinsic) or all uppercase (intrinsic), with no "
            f"axis repeated consecutively, such as 'xyz' or 'ZYX', got {convention!r}"
        )
    return ["xyz".index(c) for c in convention.lower()], convention.isupper()


# ------------------------------------------------------------------ the group


class SO3(LieGroup):
    """Rotations of R³ as unit quaternions ``(x, y, z, w)`` ``[..., 4]``; tangent θ ``[..., 3]``.

    ``random`` is Haar-uniform (normalized Gaussian 4-vectors). Example::

        >>> R = SO3.exp(torch.tensor([0.0, 0.0, math.pi / 2]))
        >>> R.act(torch.tensor([1.0, 0.0, 0.0]))  # ≈ (0, 1, 0)
    """

    param_dim = 4
    tangent_dim = 3
    matrix_dim = 3
    point_dim = 3

    @classmethod
    def identity(cls, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> SO3:
        q = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype or torch.get_default_dtype(), device=device)
        return cls._wrap(q.expand(*batch_shape, 4).clone())

    @classmethod
    def random(cls, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> SO3:
        q = torch.randn(*batch_shape, 4, generator=generator, dtype=dtype, device=device)
        return cls._wrap(q / torch.linalg.vector_norm(q, dim=-1, keepdim=True))

    @classmethod
    def _exp(cls, tangent: Tensor) -> SO3:
        return cls._wrap(quaternion_exp(tangent))

    def log(self) -> Tensor:
        return quaternion_log(self.params)

    def _compose(self, other: SO3) -> SO3:
        return self._wrap(quaternion_multiply(self.params, other.params))

    def inverse(self) -> SO3:
        return self._wrap(self.params * self.params.new_tensor([-1.0, -1.0, -1.0, 1.0]))

    def _act(self, points: Tensor) -> Tensor:
        return quaternion_rotate(self.params, points)

    def as_matrix(self) -> Tensor:
        return quaternion_to_matrix(self.params)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> SO3:
        """From rotation matrices ``[..., 3, 3]``; ``project=True`` maps any matrix to the nearest rotation."""
        matrix = check_tensor(matrix, "matrix", (3, 3))
        if project:
            matrix = project_to_rotation(matrix)
        else:
            check_rotation_matrix(matrix, "matrix", 3, hint="; pass project=True to project it")
        return cls._wrap(matrix_to_quaternion(matrix))

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        return skew(check_tensor(tangent, "tangent", (3,)))

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        return unskew(check_tensor(algebra, "algebra", (3, 3)))

    def adjoint(self) -> Tensor:
        return self.as_matrix()

    def normalize(self) -> SO3:
        return self._wrap(self.params / torch.linalg.vector_norm(self.params, dim=-1, keepdim=True))

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        """Jr(θ) = I - (1 - cos θ)/θ² θ^ + (θ - sin θ)/θ³ θ^²."""
        tangent = check_tensor(tangent, "tangent", (3,))
        theta_sq = (tangent * tangent).sum(-1)
        return so3_jacobian(tangent, -series.cosc(theta_sq), series.sinc_sq_tail3(theta_sq))

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        """Jr⁻¹(θ) = I + θ^/2 + (1/θ² - (1 + cos θ)/(2θ sin θ)) θ^²; singular at |θ| = 2π."""
        tangent = check_tensor(tangent, "tangent", (3,))
        return so3_jacobian(tangent, 0.5, series.inverse_jacobian_coefficient((tangent * tangent).sum(-1)))

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        rot = self.as_matrix()
        return -rot @ skew(points), rot.expand(*torch.broadcast_shapes(self.shape, points.shape[:-1]), 3, 3)

    # ----------------------------------------------------------------- conversions
    @classmethod
    def from_quaternion(cls, quaternion: Tensor, order: QuaternionOrder = "xyzw", *, normalize: bool = True) -> SO3:
        """From quaternions ``[..., 4]`` in ``order``; ``normalize=False`` requires unit norm (to
        ``liequiv.validation.membership_tolerance``: 1e-4 in float32, 1e-9 in float64)."""
        q = convert_quaternion(check_tensor(quaternion, "quaternion", (4,)), order, "xyzw")
        norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
        if normalize:
            if not torch.compiler.is_compiling() and bool((norm == 0).any()):
                raise ValueError("quaternion must be non-zero to be normalized")
            return cls._wrap(q / norm)
        tol = membership_tolerance(q.dtype)
        if not torch.compiler.is_compiling() and bool(((norm - 1).abs() > tol).any()):
            raise ValueError(f"quaternion must have unit norm (to {tol:g}; pass normalize=True to normalize it)")
        return cls._wrap(q)

    def as_quaternion(self, order: QuaternionOrder = "xyzw") -> Tensor:
        """Quaternions ``[..., 4]`` in ``order``."""
        return convert_quaternion(self.params, "xyzw", order)

    @classmethod
    def from_axis_angle(cls, axis: Tensor, angle: Tensor) -> SO3:
        """From unit (or any non-zero) axes ``[..., 3]`` and angles ``[...]`` in radians."""
        axis = check_tensor(axis, "axis", (3,))
        angle = check_tensor(angle, "angle", ())
        axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
        return cls._exp(axis * angle[..., None])

    def as_axis_angle(self) -> tuple[Tensor, Tensor]:
        """(unit axes ``[..., 3]``, angles in [0, π] ``[...]``); the axis is (1, 0, 0) at the identity."""
        rotvec = self.log()
        angle = torch.linalg.vector_norm(rotvec, dim=-1)
        safe = torch.where(angle > 0, angle, torch.ones_like(angle))
        fallback = torch.zeros_like(rotvec)
        fallback[..., 0] = 1
        return torch.where(angle[..., None] > 0, rotvec / safe[..., None], fallback), angle

    @classmethod
    def from_euler(cls, angles: Tensor, convention: str = "xyz") -> SO3:
        """From Euler angles ``[..., 3]`` (radians) in scipy's convention: lowercase extrinsic, uppercase intrinsic."""
        angles = check_tensor(angles, "angles", (3,))
        axes, intrinsic = _parse_euler(convention)
        eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
        elementary = [cls._exp(eye[a] * angles[..., i, None]) for i, a in enumerate(axes)]
        first, second, third = elementary
        return first._compose(second)._compose(third) if intrinsic else third._compose(second)._compose(first)

    def as_euler(self, convention: str = "xyz") -> Tensor:
        """Euler angles ``[..., 3]`` in scipy's convention (quaternion method of Bernardes & Viollet, 2022).

        At gimbal lock the third angle is set to 0, as scipy does.
        """
        axes, intrinsic = _parse_euler(convention)
        if intrinsic:  # an intrinsic sequence is the reversed extrinsic one
            axes = axes[::-1]
        i, j, k = axes
        proper = i == k
        if proper:
            k = 3 - i - j
        sign = (i - j) * (j - k) * (k - i) / 2
        q = self.params
        w, qi, qj, qk = q[..., 3], q[..., i], q[..., j], q[..., k] * sign
        a, b, c, d = (w, qi, qj, qk) if proper else (w - qj, qi + qk, qj + w, qk - qi)
        middle = 2 * torch.atan2(torch.hypot(c, d), torch.hypot(a, b))
        half_sum, half_diff = torch.atan2(b, a), torch.atan2(d, c)
        eps = membership_tolerance(q.dtype)
        lock_zero, lock_pi = middle.abs() <= eps, (middle - math.pi).abs() <= eps
        first = torch.where(lock_zero, 2 * half_sum, torch.where(lock_pi, -2 * half_diff, half_sum - half_diff))
        third = torch.where(lock_zero | lock_pi, torch.zeros_like(middle), half_sum + half_diff)
        if not proper:
            third = third * sign
            middle = middle - math.pi / 2
        first, third = _wrap_angle(first), _wrap_angle(third)
        return torch.stack([third, middle, first] if intrinsic else [first, middle, third], dim=-1)

    @classmethod
    def from_6d(cls, sixd: Tensor) -> SO3:
        """From the continuous 6D representation of Zhou et al. (2019) ``[..., 6]``: the first two columns
        of the rotation matrix, stacked (a1, a2), orthonormalized by Gram-Schmidt."""
        sixd = check_tensor(sixd, "sixd", (6,))
        a1, a2 = sixd[..., :3], sixd[..., 3:]
        b1 = a1 / torch.linalg.vector_norm(a1, dim=-1, keepdim=True)
        b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
        b2 = b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True)
        b3 = torch.linalg.cross(b1, b2)
        return cls._wrap(matrix_to_quaternion(torch.stack([b1, b2, b3], dim=-1)))

    def as_6d(self) -> Tensor:
        """The 6D representation ``[..., 6]``: the first two matrix columns, stacked."""
        m = self.as_matrix()
        return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def _wrap_angle(angle: Tensor) -> Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def so3_jacobian(tangent: Tensor, linear: Tensor | float, quadratic: Tensor) -> Tensor:
    """I + a θ^ + b θ^² ``[..., 3, 3]``: the common shape of Jr, Jl and their inverses (a, b ``[...]``)."""
    s = skew(tangent)
    a = linear[..., None, None] if isinstance(linear, Tensor) else linear
    return torch.eye(3, dtype=tangent.dtype, device=tangent.device) + a * s + quadratic[..., None, None] * (s @ s)


def project_to_rotation(matrix: Tensor) -> Tensor:
    """The nearest rotation ``[..., 3, 3]`` in Frobenius norm (SVD with the determinant fixed)."""
    u, _, vh = torch.linalg.svd(matrix)
    det = torch.det(u @ vh)
    u = torch.cat([u[..., :2], u[..., 2:] * det[..., None, None]], dim=-1)
    return u @ vh
