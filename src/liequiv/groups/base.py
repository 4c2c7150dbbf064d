"""The shared API of every Lie group, after Solà, Deray & Atchuthan, "A micro Lie theory" (2018).

A group defines a few primitives (``exp``, ``log``, ``compose``, ``inverse``, ``act``,
``as_matrix``/``from_matrix``, ``hat``, ``adjoint``, ``jr``/``jr_inv`` and the Jacobians of ``act``);
everything else (⊕/⊖ on both sides, ``between``, ``interpolate`` and the Jacobians of ``inverse``,
``compose``, ``exp``, ``log``, ``plus``, ``minus``, ``between``) is derived here once.

Conventions:
- Elements wrap a parameter tensor ``[..., param_dim]``; batch dimensions lead and broadcast like torch.
- Tangent vectors are ``[..., tangent_dim]``; ``exp``/``log`` map between them and the group
  (Solà's capitalized Exp/Log).
- Jacobians are the analytic ones of the paper, ``[..., out_dim, in_dim]``, on the right-plus
  convention ``X ⊕ τ = X · Exp(τ)`` by default; ``frame="left"`` gives the left (global-frame) ones.
- Autograd gives ordinary Euclidean gradients of the parameters; the Lie Jacobians are separate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal, TypeVar

import torch
from torch import Tensor

from liequiv.validation import check_tensor

G = TypeVar("G", bound="LieGroup")
Frame = Literal["right", "left"]


def _check_frame(frame: str) -> None:
    if frame not in ("right", "left"):
        raise ValueError(f"frame must be 'right' or 'left', got {frame!r}")


def jr_from_ad(ad: Tensor) -> Tensor:
    """Jr(τ) = ∫₀¹ exp(-s ad_τ) ds from ad_τ ``[..., d, d]``, exactly: the top-right block of
    expm([[-ad_τ, I], [0, 0]]). For groups whose closed form is long (Sim(3))."""
    d = ad.shape[-1]
    top = torch.cat([-ad, torch.eye(d, dtype=ad.dtype, device=ad.device).expand_as(ad)], -1)
    return torch.linalg.matrix_exp(torch.cat([top, torch.zeros_like(top)], -2))[..., :d, d:]


class LieGroup(ABC):
    """A batch of elements of a matrix Lie group, wrapping ``params [..., param_dim]``."""

    param_dim: ClassVar[int]
    tangent_dim: ClassVar[int]
    matrix_dim: ClassVar[int]
    point_dim: ClassVar[int]

    __slots__ = ("_params",)

    def __init__(self, params: Tensor) -> None:
        self._params = check_tensor(params, f"{type(self).__name__} params", (self.param_dim,))

    @classmethod
    def _wrap(cls: type[G], params: Tensor) -> G:
        """Wrap parameters produced by the library itself (no validation)."""
        out = object.__new__(cls)
        out._params = params
        return out

    # ----------------------------------------------------------------- tensor-like plumbing
    @property
    def params(self) -> Tensor:
        """The parameter tensor ``[..., param_dim]``."""
        return self._params

    @property
    def shape(self) -> torch.Size:
        """The batch shape."""
        return self._params.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self._params.dtype

    @property
    def device(self) -> torch.device:
        return self._params.device

    def __getitem__(self: G, index: object) -> G:
        if not isinstance(index, tuple):
            index = (index,)
        return self._wrap(self._params[(*index, slice(None))])

    def __len__(self) -> int:
        return self.shape[0]

    def to(self: G, *args: object, **kwargs: object) -> G:
        return self._wrap(self._params.to(*args, **kwargs))

    def detach(self: G) -> G:
        return self._wrap(self._params.detach())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.shape)}, params={self._params})"

    def _check_same(self, other: LieGroup, name: str) -> None:
        if type(other) is not type(self):
            raise TypeError(f"{name} must be a {type(self).__name__}, got {type(other).__name__}")
        if other.device != self.device:
            raise ValueError(f"{name} is on {other.device} but this element is on {self.device}")
        if other.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {other.dtype} but this element has {self.dtype}")

    def _check_tangent(self, tangent: Tensor, name: str = "tangent") -> Tensor:
        tangent = check_tensor(tangent, name, (self.tangent_dim,))
        if tangent.device != self.device or tangent.dtype != self.dtype:
            raise ValueError(f"{name} must be {self.dtype} on {self.device}, got {tangent.dtype} on {tangent.device}")
        return tangent

    def _check_points(self, points: Tensor) -> Tensor:
        points = check_tensor(points, "points", (self.point_dim,))
        if points.device != self.device or points.dtype != self.dtype:
            raise ValueError(f"points must be {self.dtype} on {self.device}, got {points.dtype} on {points.device}")
        return points

    # ----------------------------------------------------------------- primitives
    @classmethod
    @abstractmethod
    def identity(cls: type[G], batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> G:
        """The identity element, broadcast to ``batch_shape``."""

    @classmethod
    @abstractmethod
    def random(cls: type[G], batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> G:
        """Random elements (the distribution is documented per group)."""

    @classmethod
    @abstractmethod
    def _exp(cls: type[G], tangent: Tensor) -> G: ...

    @classmethod
    def exp(cls: type[G], tangent: Tensor) -> G:
        """Exp: tangent ``[..., tangent_dim]`` -> group element."""
        return cls._exp(check_tensor(tangent, "tangent", (cls.tangent_dim,)))

    @abstractmethod
    def log(self) -> Tensor:
        """Log: group element -> tangent ``[..., tangent_dim]``."""

    @abstractmethod
    def _compose(self: G, other: G) -> G: ...

    def compose(self: G, other: G) -> G:
        """The product ``self · other`` (also ``self @ other``)."""
        self._check_same(other, "other")
        return self._compose(other)

    def __matmul__(self: G, other: G) -> G:
        """``X @ Y`` = ``X.compose(Y)``; inside ``torch.compile`` call ``compose`` (dynamo does not trace ``@``)."""
        return self.compose(other)

    @abstractmethod
    def inverse(self: G) -> G:
        """The inverse element."""

    @abstractmethod
    def _act(self, points: Tensor) -> Tensor: ...

    def act(self, points: Tensor) -> Tensor:
        """The group action on points ``[..., point_dim]``."""
        return self._act(self._check_points(points))

    @abstractmethod
    def as_matrix(self) -> Tensor:
        """The matrix ``[..., matrix_dim, matrix_dim]``."""

    @classmethod
    @abstractmethod
    def from_matrix(cls: type[G], matrix: Tensor, *, project: bool = False) -> G:
        """From a matrix; raises ``ValueError`` if it is not in the group, unless ``project=True``."""

    @classmethod
    @abstractmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        """τ ``[..., tangent_dim]`` -> Lie algebra matrix τ^ ``[..., matrix_dim, matrix_dim]``."""

    @classmethod
    @abstractmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        """Lie algebra matrix ``[..., matrix_dim, matrix_dim]`` -> τ ``[..., tangent_dim]``."""

    @abstractmethod
    def adjoint(self) -> Tensor:
        """The adjoint matrix Ad_X ``[..., tangent_dim, tangent_dim]``: Ad_X τ = (X τ^ X⁻¹)^∨."""

    @abstractmethod
    def normalize(self: G) -> G:
        """Project parameters that drifted from the group back onto it."""

    @classmethod
    @abstractmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        """Right Jacobian Jr(τ) ``[..., d, d]``: Exp(τ + δ) ≈ Exp(τ) Exp(Jr(τ) δ)."""

    @classmethod
    @abstractmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        """Inverse right Jacobian Jr(τ)⁻¹ ``[..., d, d]``."""

    @classmethod
    def jl(cls, tangent: Tensor) -> Tensor:
        """Left Jacobian Jl(τ) = Jr(-τ): Exp(τ + δ) ≈ Exp(Jl(τ) δ) Exp(τ)."""
        return cls.jr(-tangent)

    @classmethod
    def jl_inv(cls, tangent: Tensor) -> Tensor:
        """Inverse left Jacobian Jl(τ)⁻¹ = Jr(-τ)⁻¹."""
        return cls.jr_inv(-tangent)

    @abstractmethod
    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]: ...

    # ----------------------------------------------------------------- derived operations
    def plus(self: G, tangent: Tensor) -> G:
        """Right plus X ⊕ τ = X · Exp(τ)."""
        return self._compose(self._exp(self._check_tangent(tangent)))

    def minus(self: G, other: G) -> Tensor:
        """Right minus Y ⊖ X = Log(X⁻¹ · Y) with Y = self, X = other."""
        self._check_same(other, "other")
        return other.inverse()._compose(self).log()

    def lplus(self: G, tangent: Tensor) -> G:
        """Left plus τ ⊕ X = Exp(τ) · X."""
        return self._exp(self._check_tangent(tangent))._compose(self)

    def lminus(self: G, other: G) -> Tensor:
        """Left minus Y ⊖ X = Log(Y · X⁻¹) with Y = self, X = other."""
        self._check_same(other, "other")
        return self._compose(other.inverse()).log()

    def between(self: G, other: G) -> G:
        """X⁻¹ · Y with X = self, Y = other."""
        self._check_same(other, "other")
        return self.inverse()._compose(other)

    def interpolate(self: G, other: G, t: Tensor | float) -> G:
        """Geodesic X · Exp(t · Log(X⁻¹ Y)); t = 0 gives X = self, t = 1 gives Y = other."""
        delta = self.between(other).log()
        if not isinstance(t, Tensor):
            t = torch.tensor(t, dtype=self.dtype, device=self.device)
        return self._compose(self._exp(t[..., None] * delta))

    # ----------------------------------------------------------------- Jacobians (Solà et al., Sec. IV)
    def _eye(self) -> Tensor:
        return torch.eye(self.tangent_dim, dtype=self.dtype, device=self.device)

    def _to_frame(self, jac: Tensor, output: LieGroup | None, frame: str) -> Tensor:
        """Right Jacobian of f at X=self -> left one: Ad_{f(X)} J Ad_X⁻¹ (no Ad_{f(X)} for vector outputs)."""
        _check_frame(frame)
        if frame == "right":
            return jac
        jac = jac @ self.inverse().adjoint()
        return jac if output is None else output.adjoint() @ jac

    def jac_inverse(self, *, frame: Frame = "right") -> Tensor:
        """d X⁻¹ / d X = -Ad_X (right); -Ad_{X⁻¹} (left)."""
        _check_frame(frame)
        return -(self.adjoint() if frame == "right" else self.inverse().adjoint())

    def jac_compose(self: G, other: G, *, frame: Frame = "right") -> tuple[Tensor, Tensor]:
        """(d XY/dX, d XY/dY) with X = self, Y = other: right (Ad_Y⁻¹, I); left (I, Ad_X)."""
        self._check_same(other, "other")
        _check_frame(frame)
        shape = (*torch.broadcast_shapes(self.shape, other.shape), self.tangent_dim, self.tangent_dim)
        eye = self._eye().expand(shape)
        if frame == "right":
            return other.inverse().adjoint().expand(shape), eye
        return eye, self.adjoint().expand(shape)

    @classmethod
    def jac_exp(cls, tangent: Tensor, *, frame: Frame = "right") -> Tensor:
        """d Exp(τ) / d τ: Jr(τ) (right) or Jl(τ) (left)."""
        _check_frame(frame)
        return cls.jr(tangent) if frame == "right" else cls.jl(tangent)

    def jac_log(self, *, frame: Frame = "right") -> Tensor:
        """d Log(X) / d X: Jr⁻¹(Log X) (right) or Jl⁻¹(Log X) (left)."""
        _check_frame(frame)
        tangent = self.log()
        return self.jr_inv(tangent) if frame == "right" else self.jl_inv(tangent)

    def jac_act(self, points: Tensor, *, frame: Frame = "right") -> tuple[Tensor, Tensor]:
        """(d X·p / d X ``[..., n, d]``, d X·p / d p ``[..., n, n]``)."""
        jac_x, jac_p = self._jac_act(self._check_points(points))
        return self._to_frame(jac_x, None, frame), jac_p

    def jac_plus(self, tangent: Tensor, *, frame: Frame = "right") -> tuple[Tensor, Tensor]:
        """(d (X ⊕ τ) / d X, d (X ⊕ τ) / d τ) = (Ad_{Exp τ}⁻¹, Jr(τ)) on the right."""
        tangent = self._check_tangent(tangent)
        step = self._exp(tangent)
        jac_x = step.inverse().adjoint()
        jac_t = self.jr(tangent)
        if frame == "right":
            return jac_x, jac_t
        out = self._compose(step)
        return self._to_frame(jac_x, out, frame), out.adjoint() @ jac_t

    def jac_minus(self: G, other: G, *, frame: Frame = "right") -> tuple[Tensor, Tensor]:
        """(d (Y ⊖ X)/d Y, d (Y ⊖ X)/d X) = (Jr⁻¹(τ), -Jl⁻¹(τ)), τ = Y ⊖ X, Y = self, X = other."""
        tangent = self.minus(other)
        jac_y, jac_x = self.jr_inv(tangent), -self.jl_inv(tangent)
        return self._to_frame(jac_y, None, frame), other._to_frame(jac_x, None, frame)

    def jac_between(self: G, other: G, *, frame: Frame = "right") -> tuple[Tensor, Tensor]:
        """(d X⁻¹Y / d X, d X⁻¹Y / d Y) = (-Ad_{Y⁻¹X}, I) on the right, X = self, Y = other."""
        out = self.between(other)
        jac_x = -out.inverse().adjoint()
        jac_y = self._eye().expand_as(jac_x)
        return self._to_frame(jac_x, out, frame), other._to_frame(jac_y, out, frame)
