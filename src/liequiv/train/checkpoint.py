"""Checkpoints that know which task and model wrote them, read back without running code from the file.

A checkpoint holds only tensors and plain values (``None``, ``bool``, ``int``, ``float``, ``str``, lists, tuples
and dictionaries of them): :func:`save_checkpoint` converts numpy values, paths, dataclasses and
``argparse.Namespace`` objects to those, and :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``,
which refuses any other Python object instead of unpickling it (unpickling can run arbitrary code).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

_SCALARS = (type(None), bool, int, float, str)


def to_plain(value: Any, where: str = "state") -> Any:
    """``value`` as tensors and plain Python values; ``TypeError`` naming ``where`` for anything else.

    Numpy arrays become tensors, numpy scalars Python numbers, paths strings, dataclasses and namespaces
    dictionaries, sets sorted lists; a state dict keeps its type and ``_metadata`` (modules read the version)."""
    if type(value) in _SCALARS or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(f"{where} is a numpy array of dtype {value.dtype}; a checkpoint holds numeric arrays only")
        return torch.from_numpy(np.array(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item in value.items():
            if type(key) not in _SCALARS:
                raise TypeError(f"{where} has a key of type {type(key).__name__}; keys must be plain values")
            out[key] = to_plain(item, f"{where}[{key!r}]")
        if hasattr(value, "_metadata"):
            out._metadata = to_plain(value._metadata, f"{where}._metadata")
        return out
    if isinstance(value, list | tuple):
        items = [to_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, set | frozenset):
        return sorted(to_plain(item, f"{where} item") for item in value)
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds only "
                    "tensors, None, bools, numbers, strings and lists, tuples or dicts of them")


def save_checkpoint(path: Path, *, task: str, model_name: str, **state: Any) -> None:
    """Write ``state`` (made plain by :func:`to_plain`) with the task and model names, atomically (a partial file
    never replaces a good one)."""
    payload = to_plain({"task": task, "model_name": model_name, **state}, "checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, *, task: str, model: str | Sequence[str]) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain values only); ``ValueError`` if it is missing, unreadable, holds any
    other Python object, or is from another task or model (``model``: a name or the names accepted)."""
    if not path.exists():
        raise ValueError(f"no checkpoint to resume from at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found is None:  # not a pickle at all
            raise ValueError(f"checkpoint {path} could not be read: not a torch checkpoint, or damaged") from error
        raise ValueError(f"checkpoint {path} holds a Python object ({found.group(1)}), not only tensors and plain "
                         "values; it is not loaded, since unpickling objects can run arbitrary code") from None
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path} could not be read: {error}") from error
    if not isinstance(state, dict) or "model_name" not in state:
        raise ValueError(f"{path} is not a liequiv checkpoint")
    if state["task"] != task or state["model_name"] not in ((model,) if isinstance(model, str) else tuple(model)):
        raise ValueError(f"checkpoint {path} was written for task {state['task']!r} and model "
                         f"{state['model_name']!r}, not task {task!r} and model {model!r}")
    return state
