"""Symmetry groups, field types and the equivariance checker.

Three small value objects describe a symmetry, and every part of :mod:`liequiv.symmetry` shares them:

- :class:`Group`: which transformations (rotations of a kind, translations, node permutations).
  Built from strings with :func:`as_group`: ``"SO(3)"``, ``"O(3)"``, ``"SE(3)"``, ``"E(3)"``,
  ``"SO(2)"``/``"O(2)"`` (about the z axis; any axis with :func:`rotations_about`), ``"T(3)"``,
  ``"S_n"``, and direct products joined by ``" x "``: ``"E(3) x S_n"``, ``"SO(2) x T(3)"``.
- :class:`GroupElement`: one transformation ``x ↦ R x + t`` (R orthogonal, possibly improper) and a
  node permutation. Its rotation/translation may carry batch dimensions; these index the *leading*
  dimensions of a field (one element per node or per graph), unlike torch's right-aligned broadcasting.
- :class:`FieldType`: how a value transforms. Built from strings with :func:`as_field_type`:

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

  Any object with ``.dim`` and ``.D_from_matrix(R)`` (an Irreps of liequiv or e3nn) is an irreps
  type acting on the last dimension. Append ``", perm(d)"`` to say dimension ``d`` indexes nodes
  (``"pos, perm(0)"``); ``"perm(0)"`` alone is an invariant node field (features, ``batch``).

Example::

    >>> report = check_equivariance(model, (pos, vel, h, edge_index), "E(3) x S_n",
    ...                             ["pos, perm(0)", "1o, perm(0)", "perm(0)", "index"], "pos, perm(0)")
    >>> print(report)          # the worst absolute and relative error per output
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from liequiv.groups import SE3, SO3
from liequiv.groups.base import LieGroup

ROTATION_KINDS = ("trivial", "SO(3)", "O(3)", "SO(2)", "O(2)")
FIELD_KINDS = ("scalar", "pseudoscalar", "vector", "pseudovector", "pos", "index", "element", "element_right",
               "irreps")
_KIND_ALIASES = {
    "scalar": "scalar", "invariant": "scalar", "0e": "scalar", "pseudoscalar": "pseudoscalar", "0o": "pseudoscalar",
    "vector": "vector", "1o": "vector", "pseudovector": "pseudovector", "1e": "pseudovector", "axial": "pseudovector",
    "pos": "pos", "position": "pos", "positions": "pos", "index": "index", "element": "element",
    "element_right": "element_right",
}
_GROUP_FACTORS = {
    "so(3)": ("SO(3)", False, False), "o(3)": ("O(3)", False, False), "se(3)": ("SO(3)", True, False),
    "e(3)": ("O(3)", True, False), "so(2)": ("SO(2)", False, False), "o(2)": ("O(2)", False, False),
    "t(3)": ("trivial", True, False), "s_n": ("trivial", False, True), "s(n)": ("trivial", False, True),
    "sn": ("trivial", False, True), "perm": ("trivial", False, True),
}


def default_tolerance(dtype: torch.dtype) -> float:
    """The equivariance tolerance of the library: 1e-10 in float64, 1e-5 in float32 and below."""
    return 1e-10 if dtype == torch.float64 else 1e-5


# ------------------------------------------------------------------ group elements


@dataclass(frozen=True, eq=False)
class GroupElement:
    """``x ↦ R x + t`` with ``rotation [..., 3, 3]`` (orthogonal, det ±1), ``translation [..., 3]``, and an
    optional node ``permutation [n]`` (new node ``i`` is old node ``permutation[i]``)."""

    rotation: Tensor
    translation: Tensor
    permutation: Tensor | None = None

    @classmethod
    def identity(cls, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupElement:
        eye = torch.eye(3, dtype=dtype or torch.get_default_dtype(), device=device)
        return cls(eye, eye.new_zeros(3))

    @property
    def determinant(self) -> Tensor:
        """det R ``[...]`` (±1)."""
        return torch.linalg.det(self.rotation)

    def inverse(self) -> GroupElement:
        """``x ↦ Rᵀ (x - t)`` and the inverse permutation."""
        rot_t = self.rotation.mT
        return GroupElement(rot_t, -(rot_t @ self.translation[..., None])[..., 0], self.inverse_permutation())

    def inverse_permutation(self) -> Tensor | None:
        if self.permutation is None:
            return None
        return torch.argsort(self.permutation)

    def homogeneous(self) -> Tensor:
        """The 4×4 matrix ``[[R, t], [0, 1]]`` ``[..., 4, 4]``."""
        top = torch.cat([self.rotation, self.translation[..., None]], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1
        return torch.cat([top, bottom], -2)


def _left_align(m: Tensor, trailing: int, batch_ndim: int, name: str = "group element") -> Tensor:
    """Reshape ``m [*eb, *trail]`` to ``[*eb, 1, ..., 1, *trail]`` with ``batch_ndim`` batch dimensions."""
    extra = batch_ndim - (m.dim() - trailing)
    if extra < 0:
        raise ValueError(f"the {name} has {m.dim() - trailing} batch dimensions but the field only {batch_ndim}")
    return m.reshape(*m.shape[: m.dim() - trailing], *([1] * extra), *m.shape[m.dim() - trailing :])


def apply_matrix(matrix: Tensor, x: Tensor) -> Tensor:
    """``M x`` on the last dimension: ``matrix [..., k, k]`` (batch dims left-aligned to x's) and ``x [..., k]``."""
    return (_left_align(matrix, 2, x.dim() - 1) @ x[..., None])[..., 0]


# ------------------------------------------------------------------ groups


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


# ------------------------------------------------------------------ field types


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
            return value * _left_align(g.determinant, 0, value.dim() - 1)[..., None]
        if kind == "irreps":
            if value.shape[-1] != self.irreps.dim:
                raise ValueError(f"a field of type {self} must have last dimension {self.irreps.dim}, "
                                 f"got shape {list(value.shape)}")
            return apply_matrix(self.irreps.D_from_matrix(g.rotation), value)
        if value.shape[-1] != 3:
            raise ValueError(f"a field of type {self} must have shape [..., 3], got {list(value.shape)}")
        out = apply_matrix(g.rotation, value)
        if kind == "pseudovector":
            return out * _left_align(g.determinant, 0, value.dim() - 1)[..., None]
        if kind == "pos":
            return out + _left_align(g.translation, 1, value.dim() - 1)
        return out


def _act_on_element(value: Any, g: GroupElement, *, right: bool) -> Any:
    """X ↦ g X (left) or X g⁻¹ (right) for matrices ``[..., 3, 3]``/``[..., 4, 4]`` or SO3/SE3 objects."""
    if isinstance(value, (SO3, SE3)):
        if not torch.compiler.is_compiling() and bool((g.determinant < 0).any()):
            raise ValueError("group elements given as SO3/SE3 objects cannot be reflected; pass matrices instead")
        batch_ndim = value.params.dim() - 1
        rotation = _left_align(g.rotation, 2, batch_ndim)
        rotation = rotation.expand(*torch.broadcast_shapes(rotation.shape[:-2], value.shape), 3, 3)
        rot = SO3.from_matrix(rotation, project=True)
        elem = rot if isinstance(value, SO3) else SE3.from_rotation_translation(
            rot, _left_align(g.translation, 1, batch_ndim))
        return value.compose(elem.inverse()) if right else elem.compose(value)
    if not isinstance(value, Tensor) or value.dim() < 2 or value.shape[-1] != value.shape[-2] \
            or value.shape[-1] not in (3, 4):
        raise TypeError("an 'element' field must be an SO3/SE3 object or matrices [..., 3, 3] or [..., 4, 4], "
                        f"got {type(value).__name__} {list(getattr(value, 'shape', []))}")
    acting = g.inverse() if right else g
    matrix = _left_align(acting.rotation if value.shape[-1] == 3 else acting.homogeneous(), 2, value.dim() - 2)
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


def _as_list(values: Any, is_single: Callable[[Any], bool]) -> list[Any]:
    return [values] if is_single(values) else list(values)


def _single_type(spec: Any) -> bool:
    return isinstance(spec, (str, FieldType)) or _is_irreps(spec)


def as_field_types(specs: Any, count: int, name: str) -> list[FieldType]:
    """One spec or a sequence of specs -> ``count`` field types (ValueError naming ``name`` otherwise)."""
    types = [as_field_type(s) for s in _as_list(specs, _single_type)]
    if len(types) != count:
        raise ValueError(f"{name} must declare one type per value: got {len(types)} types for {count} values")
    return types


# ------------------------------------------------------------------ the checker


def _as_tensor(value: Any) -> Tensor:
    return value.as_matrix() if isinstance(value, LieGroup) else value


def _infer_dtype(inputs: Sequence[Any]) -> torch.dtype:
    for x in inputs:
        if isinstance(x, Tensor) and x.is_floating_point():
            return x.dtype
        if isinstance(x, LieGroup):
            return x.dtype
    return torch.get_default_dtype()


def _num_nodes(inputs: Sequence[Any], types: Sequence[FieldType]) -> int | None:
    sizes = {}
    for i, (x, t) in enumerate(zip(inputs, types)):
        if t.node_dim is not None:
            shape = x.shape if isinstance(x, (Tensor, LieGroup)) else None
            if shape is None or not -len(shape) <= t.node_dim < len(shape):
                raise ValueError(f"input {i} declares node dimension {t.node_dim} but has shape {shape}")
            sizes[i] = shape[t.node_dim]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs disagree on the number of nodes along their perm dimensions: {sizes}")
    return next(iter(sizes.values()), None)


def _device(inputs: Sequence[Any]) -> torch.device | None:
    return next((x.device for x in inputs if isinstance(x, (Tensor, LieGroup))), None)


def equivariance_pairs(fn: Callable[..., Any], inputs: Any, group: Group | str, in_types: Any, out_types: Any, *,
                       n_samples: int = 4, dtype: torch.dtype | None = None,
                       generator: torch.Generator | None = None) -> list[list[tuple[Tensor, Tensor]]]:
    """For ``n_samples`` random elements g: per output, the pair ``(fn(g·x), g·fn(x))`` (as tensors).

    The shared core of :func:`check_equivariance` and the soft-equivariance regularizers; it keeps autograd.
    ``inputs``: one value or a tuple of positional arguments; floating tensors are cast to ``dtype``.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    group = as_group(group)
    inputs = _as_list(inputs, lambda v: not isinstance(v, (tuple, list)))
    types_in = as_field_types(in_types, len(inputs), "in_types")
    dtype = dtype or _infer_dtype(inputs)
    inputs = [x.to(dtype) if isinstance(x, Tensor) and x.is_floating_point() else x for x in inputs]
    num_nodes = _num_nodes(inputs, types_in) if group.permutations else None
    if group.permutations and num_nodes is None:
        raise ValueError(f"group {group} permutes nodes but no in_type declares a node dimension ('..., perm(d)')")
    outputs = _as_list(fn(*inputs), lambda v: not isinstance(v, (tuple, list)))
    types_out = as_field_types(out_types, len(outputs), "out_types")
    elements = group.sample(n_samples, num_nodes=num_nodes, dtype=dtype, device=_device(inputs), generator=generator)
    pairs = []
    for k in range(n_samples):
        g = GroupElement(elements.rotation[k], elements.translation[k], elements.permutation)
        moved = _as_list(fn(*(t.transform(x, g) for x, t in zip(inputs, types_in))),
                         lambda v: not isinstance(v, (tuple, list)))
        if len(moved) != len(outputs):
            raise ValueError(f"fn returned {len(moved)} outputs on transformed inputs but {len(outputs)} before")
        pairs.append([(_as_tensor(m), _as_tensor(t.transform(y, g))) for m, y, t in zip(moved, outputs, types_out)])
    return pairs


@dataclass(frozen=True)
class OutputError:
    """The worst error of one output over the samples: ``max |fn(g·x) - g·fn(x)|`` and that over ``max |g·fn(x)|``."""

    index: int
    field_type: str
    abs_error: float
    rel_error: float
    scale: float


@dataclass(frozen=True)
class EquivarianceReport:
    """The checker's result. ``passed``: every output's ``abs_error <= tolerance * max(1, scale)``."""

    group: str
    dtype: torch.dtype
    n_samples: int
    tolerance: float
    outputs: tuple[OutputError, ...]

    @property
    def max_abs_error(self) -> float:
        return max(o.abs_error for o in self.outputs)

    @property
    def max_rel_error(self) -> float:
        return max(o.rel_error for o in self.outputs)

    @property
    def passed(self) -> bool:
        return all(o.abs_error <= self.tolerance * max(1.0, o.scale) for o in self.outputs)

    def __str__(self) -> str:
        verdict = "equivariant" if self.passed else "NOT equivariant"
        lines = [f"{verdict} under {self.group} ({self.n_samples} samples, {self.dtype}, tolerance {self.tolerance:g})",
                 f"  {'output':>6}  {'type':<24} {'abs error':>11} {'rel error':>11} {'scale':>11}"]
        lines += [f"  {o.index:>6}  {o.field_type:<24} {o.abs_error:11.3e} {o.rel_error:11.3e} {o.scale:11.3e}"
                  for o in self.outputs]
        return "\n".join(lines)


def check_equivariance(fn: Callable[..., Any], inputs: Any, group: Group | str, in_types: Any, out_types: Any, *,
                       n_samples: int = 4, dtype: torch.dtype | None = None, generator: torch.Generator | None = None,
                       tolerance: float | None = None) -> EquivarianceReport:
    """Compare ``fn(g·x)`` with ``g·fn(x)`` for ``n_samples`` random ``g`` in ``group``; no gradients.

    ``fn``: any callable (put modules with dropout in eval mode). ``inputs``: a value or a tuple of positional
    arguments, with ``in_types`` one type each; ``out_types`` one type per output (a tuple output has several).
    ``dtype`` casts floating inputs and the group elements (default: the inputs' dtype). ``tolerance`` defaults
    to :func:`default_tolerance` of the dtype.
    """
    with torch.no_grad():
        pairs = equivariance_pairs(fn, inputs, group, in_types, out_types, n_samples=n_samples, dtype=dtype,
                                   generator=generator)
    types = as_field_types(out_types, len(pairs[0]), "out_types")
    dtype = dtype or _infer_dtype(_as_list(inputs, lambda v: not isinstance(v, (tuple, list))))
    results = []
    for i, t in enumerate(types):
        err = max(float((a - b).abs().max()) if a.numel() else 0.0 for a, b in (p[i] for p in pairs))
        scale = max(float(b.abs().max()) if b.numel() else 0.0 for b in (p[i][1] for p in pairs))
        results.append(OutputError(i, str(t), err, err / scale if scale > 0 else err, scale))
    tol = default_tolerance(dtype) if tolerance is None else tolerance
    return EquivarianceReport(str(as_group(group)), dtype, n_samples, tol, tuple(results))


def assert_equivariant(fn: Callable[..., Any], inputs: Any, group: Group | str, in_types: Any, out_types: Any, *,
                       n_samples: int = 4, dtype: torch.dtype | None = None, generator: torch.Generator | None = None,
                       tolerance: float | None = None) -> EquivarianceReport:
    """:func:`check_equivariance`, raising AssertionError with the report when it does not pass; returns it."""
    report = check_equivariance(fn, inputs, group, in_types, out_types, n_samples=n_samples, dtype=dtype,
                                generator=generator, tolerance=tolerance)
    if not report.passed:
        raise AssertionError(str(report))
    return report
