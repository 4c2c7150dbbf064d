"""Data augmentation by random rotations, reflections and translations, on PyG-style batches.

A batch is a dict or any object with attributes (a PyG ``Data``/``Batch``): fields such as ``pos [N, 3]``,
``vel [N, 3]``, ``batch [N]``. Each graph gets its own random element of the group (through ``batch``; one
graph when there is none), and each declared field transforms by its :class:`~liequiv.symmetry.FieldType`,
the same rules the equivariance checker uses: ``"pos"`` is rotated and translated, ``"1o"`` vectors only
rotated, ``"1e"`` pseudovectors do not flip under reflections, irreps features by their Wigner matrices.
Fields leading with the nodes get their graph's element; fields leading with the graphs (``[B, ...]``) their own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from liequiv.symmetry.elements import GroupElement
from liequiv.symmetry.fields import FieldType, as_field_type
from liequiv.symmetry.groups import Group, as_group


def _get(data: Any, name: str) -> Any:
    return data.get(name) if isinstance(data, Mapping) else getattr(data, name, None)


class RandomSymmetryTransform:
    """Apply one random element of ``group`` per graph to the typed ``fields`` of a batch; returns a new batch
    (a new dict, or a shallow copy of the object) and leaves the input untouched.

    ``group``: any :class:`~liequiv.symmetry.Group` without permutations, e.g. ``"E(3)"``, ``"SO(3)"``, ``"SO(2)"``
    (subgroups: rotations about an axis with :func:`~liequiv.symmetry.rotations_about`). ``translation_scale``
    multiplies the standard-normal translations. Example::

        >>> augment = RandomSymmetryTransform({"pos": "pos", "vel": "1o", "force": "1o"}, "E(3)")
        >>> batch = augment({"pos": pos, "vel": vel, "force": force, "batch": batch_index})
    """

    def __init__(self, fields: Mapping[str, FieldType | str | Any], group: Group | str = "E(3)", *,
                 translation_scale: float = 1.0, generator: torch.Generator | None = None) -> None:
        if not isinstance(fields, Mapping) or not fields:
            raise ValueError("fields must be a non-empty mapping of field names to types, e.g. {'pos': 'pos'}")
        self.fields = {name: as_field_type(t) for name, t in fields.items()}
        self.group = as_group(group)
        if self.group.permutations:
            raise ValueError(f"group must not permute nodes for augmentation, got {self.group}")
        if not isinstance(translation_scale, (int, float)) or translation_scale < 0:
            raise ValueError(f"translation_scale must be a non-negative number, got {translation_scale!r}")
        self.translation_scale = float(translation_scale)
        self.generator = generator

    def __call__(self, data: Any) -> Any:
        values = {name: _get(data, name) for name in self.fields}
        missing = [name for name, v in values.items() if v is None]
        if missing:
            raise ValueError(f"the batch has no field(s) {missing} (declared in fields)")
        reference = next((v for v in values.values() if isinstance(v, Tensor) and v.is_floating_point()), None)
        if reference is None:
            raise TypeError("at least one declared field must be a floating tensor")
        batch = _get(data, "batch")
        num_graphs = int(batch.max()) + 1 if isinstance(batch, Tensor) and batch.numel() else 1
        node_field = next((v for name, v in values.items() if self.fields[name].kind == "pos"), reference)
        num_nodes = batch.shape[0] if isinstance(batch, Tensor) else node_field.shape[0]
        sample = self.group.sample(num_graphs, dtype=reference.dtype, device=reference.device,
                                   generator=self.generator)
        per_graph = GroupElement(sample.rotation, sample.translation * self.translation_scale)
        index = batch if isinstance(batch, Tensor) else torch.zeros(num_nodes, dtype=torch.long,
                                                                    device=reference.device)
        per_node = GroupElement(per_graph.rotation[index], per_graph.translation[index])
        out = dict(data) if isinstance(data, Mapping) else copy.copy(data)
        for name, value in values.items():
            leading = value.shape[0] if isinstance(value, Tensor) and value.dim() else None
            if leading == num_nodes:
                element = per_node
            elif leading == num_graphs:
                element = per_graph
            else:
                raise ValueError(f"field {name!r} must lead with the nodes ({num_nodes}) or the graphs "
                                 f"({num_graphs}), got shape {list(getattr(value, 'shape', []))}")
            moved = self.fields[name].transform(value, element)
            if isinstance(out, dict):
                out[name] = moved
            else:
                setattr(out, name, moved)
        return out
