"""The equivariance checker: compare ``fn(g·x)`` with ``g·fn(x)`` for random elements g of a group.

Three small value objects describe a symmetry, each in its own module and shared by all of
:mod:`liequiv.symmetry`: :class:`~liequiv.symmetry.groups.Group` (which transformations),
:class:`~liequiv.symmetry.elements.GroupElement` (one transformation ``x ↦ R x + t`` and a node permutation)
and :class:`~liequiv.symmetry.fields.FieldType` (how a value transforms). They are re-exported here.

Example::

    >>> report = check_equivariance(model, (pos, vel, h, edge_index), "E(3) x S_n",
    ...                             ["pos, perm(0)", "1o, perm(0)", "perm(0)", "index"], "pos, perm(0)")
    >>> print(report)          # the worst absolute and relative error per output
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from liequiv.groups.base import LieGroup
from liequiv.symmetry.elements import GroupElement, apply_matrix
from liequiv.symmetry.fields import FIELD_KINDS, FieldType, as_field_type, as_field_types
from liequiv.symmetry.groups import ROTATION_KINDS, Group, as_group, rotations_about
from liequiv.validation import check_positive_int

__all__ = [
    "FIELD_KINDS",
    "ROTATION_KINDS",
    "EquivarianceReport",
    "FieldType",
    "Group",
    "GroupElement",
    "OutputError",
    "apply_matrix",
    "as_field_type",
    "as_field_types",
    "as_group",
    "assert_equivariant",
    "check_equivariance",
    "default_tolerance",
    "equivariance_pairs",
    "rotations_about",
]


def default_tolerance(dtype: torch.dtype) -> float:
    """The equivariance tolerance of the library: 1e-10 in float64, 1e-5 in float32 and below."""
    return 1e-10 if dtype == torch.float64 else 1e-5


def _as_values(values: Any) -> list[Any]:
    """A tuple or list of values as a list; any other value as a list of one."""
    return list(values) if isinstance(values, (tuple, list)) else [values]


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
    check_positive_int(n_samples, "n_samples")
    group = as_group(group)
    inputs = _as_values(inputs)
    types_in = as_field_types(in_types, len(inputs), "in_types")
    dtype = dtype or _infer_dtype(inputs)
    inputs = [x.to(dtype) if isinstance(x, Tensor) and x.is_floating_point() else x for x in inputs]
    num_nodes = _num_nodes(inputs, types_in) if group.permutations else None
    if group.permutations and num_nodes is None:
        raise ValueError(f"group {group} permutes nodes but no in_type declares a node dimension ('..., perm(d)')")
    outputs = _as_values(fn(*inputs))
    types_out = as_field_types(out_types, len(outputs), "out_types")
    elements = group.sample(n_samples, num_nodes=num_nodes, dtype=dtype, device=_device(inputs), generator=generator)
    pairs = []
    for k in range(n_samples):
        g = GroupElement(elements.rotation[k], elements.translation[k], elements.permutation)
        moved = _as_values(fn(*(t.transform(x, g) for x, t in zip(inputs, types_in))))
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
    dtype = dtype or _infer_dtype(_as_values(inputs))
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
