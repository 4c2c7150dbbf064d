"""The affine groups R^n ⋊ GL+(n) and R^n ⋊ SL(n), x ↦ A x + b, and Haar-weighted sampling of them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from liequiv.groups.linear.algebra import group_dim
from liequiv.groups.linear.coordinates import from_coordinates, to_coordinates
from liequiv.groups.linear.haar import sample_glplus, sample_sl
from liequiv.groups.linear.polar import polar_decompose
from liequiv.validation import (
    check_homogeneous_rows,
    check_like,
    check_positive_det,
    check_positive_int,
    check_square,
    check_tensor,
    check_unit_det,
)

__all__ = ["AffineGLPlus", "AffineSL", "sample_affine"]


F = TypeVar("F", bound="_Affine")


class _Affine:
    """Elements (A, b) of R^n ⋊ G, acting on points by x ↦ A x + b; matrix [[A, b], [0, 1]] ``[..., n+1, n+1]``.

    Product (A₁, b₁)(A₂, b₂) = (A₁A₂, A₁b₂ + b₁), inverse (A⁻¹, -A⁻¹b). Any n; batch dimensions lead
    and broadcast like torch.
    """

    special: ClassVar[bool]
    __slots__ = ("_linear", "_translation")

    def __init__(self, linear: Tensor, translation: Tensor) -> None:
        linear = check_square(linear, "linear")
        translation = check_tensor(translation, "translation", (linear.shape[-1],))
        check_like(translation, linear, "translation")
        if self.special:
            check_unit_det(linear, "linear")
        else:
            check_positive_det(linear, "linear")
        try:
            shape = torch.broadcast_shapes(linear.shape[:-2], translation.shape[:-1])
        except RuntimeError as err:
            raise ValueError(f"linear and translation batch shapes do not broadcast: {err}") from None
        n = linear.shape[-1]
        self._linear, self._translation = linear.expand(*shape, n, n), translation.expand(*shape, n)

    @classmethod
    def _wrap(cls: type[F], linear: Tensor, translation: Tensor) -> F:
        out = object.__new__(cls)
        shape = torch.broadcast_shapes(linear.shape[:-2], translation.shape[:-1])
        n = linear.shape[-1]
        out._linear, out._translation = linear.expand(*shape, n, n), translation.expand(*shape, n)
        return out

    # ----------------------------------------------------------------- tensor-like plumbing
    @property
    def linear(self) -> Tensor:
        """A ``[..., n, n]``."""
        return self._linear

    @property
    def translation(self) -> Tensor:
        """b ``[..., n]``."""
        return self._translation

    @property
    def n(self) -> int:
        return self._translation.shape[-1]

    @property
    def shape(self) -> torch.Size:
        return self._translation.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self._translation.dtype

    @property
    def device(self) -> torch.device:
        return self._translation.device

    @classmethod
    def dim(cls, n: int) -> int:
        """n + dim G: n² + n for GL+(n), n² + n - 1 for SL(n)."""
        return n + group_dim(n, cls.special)

    def __getitem__(self: F, index: object) -> F:
        if not isinstance(index, tuple):
            index = (index,)
        return self._wrap(self._linear[(*index, slice(None), slice(None))], self._translation[(*index, slice(None))])

    def __len__(self) -> int:
        return self.shape[0]

    def to(self: F, *args: object, **kwargs: object) -> F:
        return self._wrap(self._linear.to(*args, **kwargs), self._translation.to(*args, **kwargs))

    def detach(self: F) -> F:
        return self._wrap(self._linear.detach(), self._translation.detach())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, shape={tuple(self.shape)})"

    def _check_other(self, other: _Affine) -> None:
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {type(other).__name__}")
        if other.n != self.n:
            raise ValueError(f"other acts on R^{other.n} but this element acts on R^{self.n}")
        check_like(other.translation, self.translation, "other")

    # ----------------------------------------------------------------- construction
    @classmethod
    def identity(cls: type[F], n: int, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> F:
        n = check_positive_int(n, "n")
        eye = torch.eye(n, dtype=dtype, device=device).expand(*batch_shape, n, n).clone()
        return cls._wrap(eye, eye.new_zeros(*batch_shape, n))

    @classmethod
    def random(cls: type[F], n: int, batch_shape: Sequence[int] = (), *, scale: float = 1.0,
               translation_scale: float = 1.0, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> F:
        """Draws of ``sample_affine`` (R Haar, s ~ N(0, scale²), b ~ N(0, translation_scale²)), without weights."""
        return sample_affine(n, batch_shape, special=cls.special, scale=scale, translation_scale=translation_scale,
                             generator=generator, dtype=dtype, device=device)[0]

    @classmethod
    def from_matrix(cls: type[F], matrix: Tensor, *, project: bool = False) -> F:
        """From homogeneous matrices ``[..., n+1, n+1]``; raises ``ValueError`` outside the group.

        ``project=True`` sets the last row to (0, …, 0, 1) and, for SL(n), rescales A to det 1 (det A
        must still be > 0).
        """
        matrix = check_square(matrix, "matrix")
        n = matrix.shape[-1] - 1
        if n < 1:
            raise ValueError(f"matrix must have shape [..., n+1, n+1] with n ≥ 1, got {list(matrix.shape)}")
        if not project:
            check_homogeneous_rows(matrix, "matrix", hint="; pass project=True to project it")
        linear, translation = matrix[..., :n, :n], matrix[..., :n, n]
        if cls.special and project:
            check_positive_det(linear, "matrix")
            linear = linear * torch.linalg.det(linear).pow(-1 / n)[..., None, None]
        return cls(linear, translation)

    @classmethod
    def from_coordinates(cls: type[F], coords: Tensor, n: int) -> F:
        """(b, ω, s) ``[..., dim(n)]`` -> (from_coordinates(ω, s), b); see the package notes."""
        n = check_positive_int(n, "n")
        coords = check_tensor(coords, "coords", (cls.dim(n),))
        return cls._wrap(from_coordinates(coords[..., n:], n, special=cls.special), coords[..., :n])

    # ----------------------------------------------------------------- the group
    def compose(self: F, other: F) -> F:
        """(A₁A₂, A₁b₂ + b₁) = self · other (also ``self @ other``)."""
        self._check_other(other)
        return self._wrap(self._linear @ other.linear,
                          (self._linear @ other.translation[..., None])[..., 0] + self._translation)

    def __matmul__(self: F, other: F) -> F:
        return self.compose(other)

    def inverse(self: F) -> F:
        """(A⁻¹, -A⁻¹ b)."""
        inv = torch.linalg.inv(self._linear)
        return self._wrap(inv, -(inv @ self._translation[..., None])[..., 0])

    def act(self, points: Tensor) -> Tensor:
        """x ↦ A x + b on points ``[..., n]``."""
        points = check_tensor(points, "points", (self.n,))
        check_like(points, self.translation, "points")
        return (self._linear @ points[..., None])[..., 0] + self._translation

    def as_matrix(self) -> Tensor:
        """[[A, b], [0, 1]] ``[..., n+1, n+1]``."""
        top = torch.cat([self._linear, self._translation[..., None]], dim=-1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, -1] = 1
        return torch.cat([top, bottom], dim=-2)

    def polar(self) -> tuple[Tensor, Tensor]:
        """``polar_decompose`` of the linear part: (R, S) with A = R · Exp(S)."""
        return polar_decompose(self._linear)

    def coordinates(self) -> Tensor:
        """(b, ω, s) ``[..., dim(n)]``, the inverse of ``from_coordinates`` on its fundamental domain."""
        return torch.cat([self._translation, to_coordinates(self._linear, special=self.special)], dim=-1)


class AffineGLPlus(_Affine):
    """R^n ⋊ GL+(n): x ↦ A x + b with det A > 0. Left Haar measure db dμ(A) / det A (not unimodular)."""

    special = False


class AffineSL(_Affine):
    """R^n ⋊ SL(n): x ↦ A x + b with det A = 1 (within 1e-8 in float64, 1e-3 in float32). Haar: db dμ(A)."""

    special = True

    def normalize(self) -> AffineSL:
        """Rescale A to det 1 exactly (up to round-off), after drift from many compositions."""
        det = torch.linalg.det(self._linear)
        return self._wrap(self._linear * det.pow(-1 / self.n)[..., None, None], self._translation)


def sample_affine(n: int, batch_shape: Sequence[int] = (), *, special: bool = False, scale: float = 1.0,
                  translation_scale: float = 1.0, generator: torch.Generator | None = None,
                  dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  ) -> tuple[_Affine, Tensor]:
    """Draws (A, b) of R^n ⋊ GL+(n) (or SL(n)) and log weights for the left Haar measure db dμ(A) / det A.

    A as in ``sample_glplus``/``sample_sl``; b ~ N(0, translation_scale² I). Returns (element, log_weight
    ``[...]``) with log_weight = log h(S) - log q(s) - tr S - log q(b) (tr S = log det A, 0 for SL).
    """
    if not (isinstance(translation_scale, (int, float)) and math.isfinite(translation_scale)
            and translation_scale > 0):
        raise ValueError(f"translation_scale must be a finite number > 0, got {translation_scale!r}")
    draw = (sample_sl if special else sample_glplus)(n, batch_shape, scale=scale, generator=generator, dtype=dtype,
                                                     device=device)
    b = translation_scale * torch.randn(*batch_shape, n, generator=generator, dtype=draw.matrix.dtype,
                                        device=draw.matrix.device)
    log_q_b = -0.5 * (b * b).sum(-1) / translation_scale**2 - 0.5 * n * math.log(2 * math.pi * translation_scale**2)
    log_det = torch.diagonal(draw.log_spd, dim1=-2, dim2=-1).sum(-1)
    cls = AffineSL if special else AffineGLPlus
    return cls._wrap(draw.matrix, b), draw.log_weight - log_det - log_q_b
