"""Rⁿ under addition: the trivial Lie group, for composites. ``Rn.of(3)`` is the class of R³.

LieGroup's dimensions are class attributes, so each n is its own class. ``Rn.of(n)`` makes it once (cached) rather
than a fixed set R1, R2, R3 of subclasses: every n works, ``isinstance(x, Rn)`` holds for all of them, and the
classes are reachable as ``liequiv.groups.rn.R3`` etc. (a module ``__getattr__``), so elements pickle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import ClassVar

import torch
from torch import Tensor

from liequiv.groups.base import LieGroup
from liequiv.validation import check_positive_int, check_tensor, membership_tolerance


class Rn(LieGroup):
    """Vectors under addition: parameters = tangent = points ``[..., n]``; matrix ``[[I, t], [0, 1]]``.

    Get the class of one dimension with ``Rn.of(n)`` (cached, so ``Rn.of(3) is Rn.of(3)``).
    ``random`` draws standard-normal vectors.
    """

    n: ClassVar[int]
    __slots__ = ()

    @staticmethod
    @cache
    def of(n: int) -> type[Rn]:
        """The class of Rⁿ (the same class on every call)."""
        check_positive_int(n, "n")
        return type(f"R{n}", (Rn,), {"n": n, "param_dim": n, "tangent_dim": n, "matrix_dim": n + 1, "point_dim": n,
                                     "__module__": __name__, "__qualname__": f"R{n}", "__slots__": ()})

    def __init__(self, params: Tensor) -> None:
        _check_concrete(type(self))
        super().__init__(params)

    @classmethod
    def identity(cls, batch_shape: Sequence[int] = (), *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> Rn:
        _check_concrete(cls)
        return cls._wrap(torch.zeros(*batch_shape, cls.n, dtype=dtype or torch.get_default_dtype(), device=device))

    @classmethod
    def random(cls, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Rn:
        _check_concrete(cls)
        return cls._wrap(torch.randn(*batch_shape, cls.n, generator=generator, dtype=dtype, device=device))

    @classmethod
    def _exp(cls, tangent: Tensor) -> Rn:
        return cls._wrap(tangent)

    def log(self) -> Tensor:
        return self.params

    def _compose(self, other: Rn) -> Rn:
        return self._wrap(self.params + other.params)

    def inverse(self) -> Rn:
        return self._wrap(-self.params)

    def _act(self, points: Tensor) -> Tensor:
        return points + self.params

    def as_matrix(self) -> Tensor:
        return self.hat(self.params) + torch.eye(self.n + 1, dtype=self.dtype, device=self.device)

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, project: bool = False) -> Rn:
        n = cls.n
        matrix = check_tensor(matrix, "matrix", (n + 1, n + 1))
        if not project and not torch.compiler.is_compiling():
            off = matrix - torch.eye(n + 1, dtype=matrix.dtype, device=matrix.device)
            off[..., :n, n] = 0  # the translation column is free
            tol = membership_tolerance(matrix.dtype)
            if bool((off.abs() > tol).any()):
                raise ValueError(f"matrix must be [[I, t], [0, 1]] of size {n + 1} (to {tol:g}); pass project=True to "
                                 "ignore the rest")
        return cls._wrap(matrix[..., :n, n])

    @classmethod
    def hat(cls, tangent: Tensor) -> Tensor:
        tangent = check_tensor(tangent, "tangent", (cls.n,))
        top = torch.cat([torch.zeros(*tangent.shape, cls.n, dtype=tangent.dtype, device=tangent.device),
                         tangent[..., None]], -1)
        return torch.cat([top, torch.zeros_like(top[..., :1, :])], -2)

    @classmethod
    def vee(cls, algebra: Tensor) -> Tensor:
        return check_tensor(algebra, "algebra", (cls.n + 1, cls.n + 1))[..., : cls.n, cls.n]

    def adjoint(self) -> Tensor:
        return torch.eye(self.n, dtype=self.dtype, device=self.device).expand(*self.shape, self.n, self.n)

    def normalize(self) -> Rn:
        return self

    @classmethod
    def jr(cls, tangent: Tensor) -> Tensor:
        tangent = check_tensor(tangent, "tangent", (cls.n,))
        return torch.eye(cls.n, dtype=tangent.dtype, device=tangent.device).expand(*tangent.shape, cls.n)

    @classmethod
    def jr_inv(cls, tangent: Tensor) -> Tensor:
        return cls.jr(tangent)

    def _jac_act(self, points: Tensor) -> tuple[Tensor, Tensor]:
        shape = torch.broadcast_shapes(self.shape, points.shape[:-1])
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device).expand(*shape, self.n, self.n)
        return eye, eye


def _check_concrete(cls: type[Rn]) -> None:
    if cls is Rn:
        raise TypeError("Rn is a family of groups: pick one with Rn.of(n), e.g. Rn.of(3)(params)")


def __getattr__(name: str) -> type[Rn]:
    """``R1``, ``R2``, … are ``Rn.of(1)``, ``Rn.of(2)``, … (so that pickle finds the classes by name)."""
    match = re.fullmatch(r"R([1-9][0-9]*)", name)
    if match is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return Rn.of(int(match[1]))
