"""Field types: how a value transforms under a :class:`~liequiv.symmetry.GroupElement`.

Built from strings with :func:`as_field_type`:

============================  =======================================================
``"scalar"`` / ``"0e"``        invariant (any object; non-tensors are passed through)
``"pseudoscalar"`` / ``"0o"``  multiplied by det R
``"vector"`` / ``"1o"``        ``[..., 3]`` ↦ R v
``"pseudovector"`` / ``"1e"``  ``[..., 3]`` ↦ det(R) R v (does not flip under inversion)
``"pos"`` / ``"position"``     ``[..., 3]`` ↦ R x + t (the only type translations move)
``"index"``                    integer node indices (``edge_index``): relabelled by permutations
``"element"``                  group elements, left action X ↦ g X: matrices ``[..., 3, 3]``,
                               homogeneous ``[..., 4, 4]`` or ``SO3``/``SE3`` objects (proper only)
``"element_right"``            group elements, X ↦ X g⁻¹
any other string               an Irreps string (``"8x0e + 4x1o"``), via ``liequiv.o3.irreps``
============================  =======================================================

Any object with ``.dim`` and ``.D_from_matrix(R)`` (an Irreps of liequiv or e3nn) is an irreps type acting on
the last dimension. Append ``", perm(d)"`` to say dimension ``d`` indexes nodes (``"pos, perm(0)"``);
``"perm(0)"`` alone is an invariant node field (features, ``batch``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from liequiv.groups import SE3, SO3
from liequiv.groups.base import LieGroup
from liequiv.symmetry.elements import GroupElement, apply_matrix, left_align

FIELD_KINDS = ("scalar", "pseudoscalar", "vector", "pseudovector", "pos", "index", "element", "element_right",
               "irreps")
_KIND_ALIASES = {
    "scalar": "scalar", "invariant": "scalar", "0e": "scalar", "pseudoscalar": "pseudoscalar", "0o": "pseudoscalar",
    "vector": "vector", "1o": "vector", "pseudovector": "pseudovector", "1e": "pseudovector", "axial": "pseudovector",
    "pos": "pos", "position": "pos", "positions": "pos", "index": "index", "element": "element",
    "element_right": "element_right",
}


def _is_irreps(obj: object) -> bool:
    return hasattr(obj, "dim") and callable(getattr(obj, "D_from_matrix", None))


@dataclass(frozen=True)
class FieldType:
    """How a value transforms: a ``kind`` (see the module docstring), ``irreps`` for the ``"irreps"`` kind, and
    ``node_dim``, the dimension permutations act on (``None``: not a node field)."""

    kind: str
    node_dim: int | None = None
    irreps: Any = None

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"kind must be one of {FIELD_KINDS}, got {self.kind!r}")
        if (self.kind == "irreps") != (self.irreps is not None):
            raise ValueError("irreps must be given exactly when kind is 'irreps'")
        if self.irreps is not None and not _is_irreps(self.irreps):
            raise TypeError(f"irreps must have .dim and .D_from_matrix(R), got {type(self.irreps).__name__}")

    def on_nodes(self, dim: int) -> FieldType:
        """The same type with dimension ``dim`` indexing nodes."""
        return replace(self, node_dim=dim)

    def __str__(self) -> str:
        name = str(self.irreps) if self.kind == "irreps" else self.kind
        return name + (f", perm({self.node_dim})" if self.node_dim is not None else "")

    def transform(self, value: Any, g: GroupElement) -> Any:
        """``g · value``: the geometric action, then the node permutation along ``node_dim``."""
        value = self._act(value, g)
        if self.node_dim is None or g.permutation is None:
            return value
        if isinstance(value, LieGroup):
            return type(value)._wrap(value.params.index_select(self.node_dim % value.params.dim(), g.permutation))
        if not isinstance(value, Tensor):
            raise TypeError(f"a field of type {self} must be a tensor to be permuted, got {type(value).__name__}")
        return value.index_select(self.node_dim, g.permutation)

    def _act(self, value: Any, g: GroupElement) -> Any:
        kind = self.kind
        if kind == "scalar":
            return value
        if kind == "index":
            inverse = g.inverse_permutation()
            return value if inverse is None else inverse[value]
        if kind in ("element", "element_right"):
            return _act_on_element(value, g, right=kind == "element_right")
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"a field of type {self} must be a floating tensor, got {type(value).__name__}")
        if kind == "pseudoscalar":
            return value * left_align(g.determinant, 0, value.dim() - 1)[..., None]
        if kind == "irreps":
            if value.shape[-1] != self.irreps.dim:
                raise ValueError(f"a field of type {self} must have last dimension {self.irreps.dim}, "
                                 f"got shape {list(value.shape)}")
            return apply_matrix(self.irreps.D_from_matrix(g.rotation), value)
        if value.shape[-1] != 3:
            raise ValueError(f"a field of type {self} must have shape [..., 3], got {list(value.shape)}")
        out = apply_matrix(g.rotation, value)
        if kind == "pseudovector":
            return out * left_align(g.determinant, 0, value.dim() - 1)[..., None]
        if kind == "pos":
            return out + left_align(g.translation, 1, value.dim() - 1)
        return out


def _act_on_element(value: Any, g: GroupElement, *, right: bool) -> Any:
    """X ↦ g X (left) or X g⁻¹ (right) for matrices ``[..., 3, 3]``/``[..., 4, 4]`` or SO3/SE3 objects."""
    if isinstance(value, (SO3, SE3)):
        if not torch.compiler.is_compiling() and bool((g.determinant < 0).any()):
            raise ValueError("group elements given as SO3/SE3 objects cannot be reflected; pass matrices instead")
        batch_ndim = value.params.dim() - 1
        rotation = left_align(g.rotation, 2, batch_ndim)
        rotation = rotation.expand(*torch.broadcast_shapes(rotation.shape[:-2], value.shape), 3, 3)
        rot = SO3.from_matrix(rotation, project=True)
        elem = rot if isinstance(value, SO3) else SE3.from_rotation_translation(
            rot, left_align(g.translation, 1, batch_ndim))
        return value.compose(elem.inverse()) if right else elem.compose(value)
    if not isinstance(value, Tensor) or value.dim() < 2 or value.shape[-1] != value.shape[-2] \
            or value.shape[-1] not in (3, 4):
        raise TypeError("an 'element' field must be an SO3/SE3 object or matrices [..., 3, 3] or [..., 4, 4], "
                        f"got {type(value).__name__} {list(getattr(value, 'shape', []))}")
    acting = g.inverse() if right else g
    matrix = left_align(acting.rotation if value.shape[-1] == 3 else acting.homogeneous(), 2, value.dim() - 2)
    return value @ matrix if right else matrix @ value


def as_field_type(spec: FieldType | str | Any) -> FieldType:
    """A :class:`FieldType` from itself, an irreps-like object, or a string (see the module docstring)."""
    if isinstance(spec, FieldType):
        return spec
    if _is_irreps(spec):
        return FieldType("irreps", irreps=spec)
    if not isinstance(spec, str):
        raise TypeError(f"a field type must be a FieldType, an Irreps or a string such as '1o', got {spec!r}")
    parts = [p.strip() for p in spec.split(",")]
    node_dim = None
    if parts and (match := re.fullmatch(r"perm\((-?\d+)\)", parts[-1].replace(" ", ""))):
        node_dim = int(match.group(1))
        parts = parts[:-1] or ["scalar"]
    if len(parts) != 1 or not parts[0]:
        raise ValueError(f"a field type must be '<type>' or '<type>, perm(<dim>)', got {spec!r}")
    name = parts[0]
    if name.lower() in _KIND_ALIASES:
        return FieldType(_KIND_ALIASES[name.lower()], node_dim)
    return FieldType("irreps", node_dim, _parse_irreps(name, spec))


def _parse_irreps(name: str, spec: str) -> Any:
    try:
        from liequiv.o3.irreps import Irreps  # another layer; optional until it lands
    except ImportError as err:
        raise ValueError(f"unknown field type {spec!r}: not a basic type and liequiv.o3.irreps is unavailable "
                         "to read it as irreps (pass an Irreps object instead)") from err
    try:
        return Irreps(name)
    except (ValueError, TypeError) as err:
        raise ValueError(f"unknown field type {spec!r}: known are {sorted(_KIND_ALIASES)}, irreps strings such as "
                         "'8x0e + 4x1o', optionally followed by ', perm(<dim>)'") from err


def _single_type(spec: Any) -> bool:
    return isinstance(spec, (str, FieldType)) or _is_irreps(spec)


def as_field_types(specs: Any, count: int, name: str) -> list[FieldType]:
    """One spec or a sequence of specs -> ``count`` field types (ValueError naming ``name`` otherwise)."""
    types = [as_field_type(s) for s in ([specs] if _single_type(specs) else specs)]
    if len(types) != count:
        raise ValueError(f"{name} must declare one type per value: got {len(types)} types for {count} values")
    return types
