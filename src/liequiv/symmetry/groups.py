"""Symmetry groups of the checker: rotations of a kind, translations of R³, node permutations, and products.

Built from strings with :func:`as_group`: ``"SO(3)"``, ``"O(3)"``, ``"SE(3)"``, ``"E(3)"``, ``"SO(2)"``/``"O(2)"``
(about the z axis; any axis with :func:`rotations_about`), ``"T(3)"``, ``"S_n"``, and direct products joined by
``" x "``: ``"E(3) x S_n"``, ``"SO(2) x T(3)"``. :meth:`Group.sample` draws :class:`GroupElement` s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from liequiv.groups import SO3
from liequiv.symmetry.elements import GroupElement

ROTATION_KINDS = ("trivial", "SO(3)", "O(3)", "SO(2)", "O(2)")
_GROUP_FACTORS = {
    "so(3)": ("SO(3)", False, False), "o(3)": ("O(3)", False, False), "se(3)": ("SO(3)", True, False),
    "e(3)": ("O(3)", True, False), "so(2)": ("SO(2)", False, False), "o(2)": ("O(2)", False, False),
    "t(3)": ("trivial", True, False), "s_n": ("trivial", False, True), "s(n)": ("trivial", False, True),
    "sn": ("trivial", False, True), "perm": ("trivial", False, True),
}


@dataclass(frozen=True)
class Group:
    """A symmetry group: a rotation part (``"trivial"``, ``"SO(3)"``, ``"O(3)"``, ``"SO(2)"`` or ``"O(2)"`` about
    ``axis``), translations of R³ or not, node permutations or not. Products with ``*``."""

    rotations: str = "trivial"
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    translations: bool = False
    permutations: bool = False

    def __post_init__(self) -> None:
        if self.rotations not in ROTATION_KINDS:
            raise ValueError(f"rotations must be one of {ROTATION_KINDS}, got {self.rotations!r}")
        axis = tuple(float(a) for a in self.axis)
        if len(axis) != 3 or math.hypot(*axis) == 0:
            raise ValueError(f"axis must be a non-zero 3-vector, got {self.axis!r}")
        object.__setattr__(self, "axis", axis)

    def __mul__(self, other: Group | str) -> Group:
        other = as_group(other)
        if self.rotations != "trivial" and other.rotations != "trivial":
            raise ValueError(f"cannot take the product of two rotation groups ({self.rotations}, {other.rotations})")
        rot = self if self.rotations != "trivial" else other
        return Group(rot.rotations, rot.axis, self.translations or other.translations,
                     self.permutations or other.permutations)

    @property
    def has_reflections(self) -> bool:
        return self.rotations in ("O(3)", "O(2)")

    def __str__(self) -> str:
        factors = []
        if self.rotations in ("SO(3)", "O(3)") and self.translations:
            factors.append("SE(3)" if self.rotations == "SO(3)" else "E(3)")
        else:
            if self.rotations != "trivial":
                planar = self.rotations in ("SO(2)", "O(2)")
                factors.append(self.rotations + (f" about {self.axis}" if planar else ""))
            if self.translations:
                factors.append("T(3)")
        if self.permutations:
            factors.append("S_n")
        return " x ".join(factors) or "trivial"

    def sample(self, n: int, *, num_nodes: int | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None, generator: torch.Generator | None = None) -> GroupElement:
        """``n`` elements (batch dims ``[n]``; the permutation, one for all, needs ``num_nodes``).

        O(3)/O(2): samples alternate proper/improper (odd indices improper), so two samples test both.
        Rotations are Haar-uniform, translations standard normal.
        """
        dtype = dtype or torch.get_default_dtype()
        if self.rotations in ("SO(3)", "O(3)"):
            rot = SO3.random((n,), generator=generator, dtype=dtype, device=device).as_matrix()
        elif self.rotations in ("SO(2)", "O(2)"):
            axis = torch.tensor(self.axis, dtype=dtype, device=device).expand(n, 3)
            angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=dtype, device=device)
            rot = SO3.from_axis_angle(axis, angle).as_matrix()
        else:
            rot = torch.eye(3, dtype=dtype, device=device).expand(n, 3, 3)
        if self.has_reflections:
            improper = torch.arange(n, device=device) % 2 == 1
            reflection = -torch.eye(3, dtype=dtype, device=device)  # inversion; for O(2) a mirror through the axis
            if self.rotations == "O(2)":
                normal = _perpendicular(torch.tensor(self.axis, dtype=dtype, device=device))
                reflection = torch.eye(3, dtype=dtype, device=device) - 2 * torch.outer(normal, normal)
            rot = torch.where(improper[:, None, None], rot @ reflection, rot)
        shift = torch.zeros(n, 3, dtype=dtype, device=device)
        if self.translations:
            shift = torch.randn(n, 3, generator=generator, dtype=dtype, device=device)
        perm = None
        if self.permutations:
            if num_nodes is None:
                raise ValueError("a group with permutations needs num_nodes (declare a node dimension: 'perm(d)')")
            perm = torch.randperm(num_nodes, generator=generator, device=device)
        return GroupElement(rot, shift, perm)


def _perpendicular(axis: Tensor) -> Tensor:
    """A unit vector perpendicular to ``axis [3]``."""
    trial = torch.zeros_like(axis)
    trial[int(axis.abs().argmin())] = 1
    normal = torch.linalg.cross(axis, trial)
    return normal / torch.linalg.vector_norm(normal)


def rotations_about(axis: Sequence[float], *, reflections: bool = False) -> Group:
    """SO(2) (or O(2), with mirrors through planes containing the axis) about ``axis``: subequivariance."""
    return Group("O(2)" if reflections else "SO(2)", tuple(axis))  # type: ignore[arg-type]


def as_group(spec: Group | str) -> Group:
    """A :class:`Group` from itself or a name such as ``"E(3) x S_n"`` (see the module docstring)."""
    if isinstance(spec, Group):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"group must be a Group or a string such as 'E(3) x S_n', got {type(spec).__name__}")
    group = Group()
    for factor in re.split(r"\s+x\s+|×|\*", spec.strip()):
        key = factor.replace(" ", "").lower()
        if key not in _GROUP_FACTORS:
            raise ValueError(f"unknown group {factor!r} in {spec!r}; known: SO(3), O(3), SE(3), E(3), SO(2), O(2), "
                             "T(3), S_n, and products joined by ' x '")
        rotations, translations, permutations = _GROUP_FACTORS[key]
        group = group * Group(rotations, translations=translations, permutations=permutations)
    return group
