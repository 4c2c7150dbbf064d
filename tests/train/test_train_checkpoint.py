"""Checkpoints: plain values round-trip, anything else is refused on saving, and a file holding another Python
object is refused on loading without running its code."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from liequiv.train.checkpoint import load_checkpoint, save_checkpoint, to_plain


@dataclasses.dataclass
class Options:
    width: int
    where: Path


def test_plain_values_round_trip(tmp_path: Path) -> None:
    module = torch.nn.BatchNorm1d(3)  # its state dict carries a version in _metadata
    state = {
        "weights": module.state_dict(), "array": np.arange(6.0).reshape(2, 3), "count": np.int64(7),
        "rate": np.float32(0.5), "file": tmp_path / "x", "options": Options(4, Path("/data")),
        "args": argparse.Namespace(epochs=3, lr=1e-3), "sizes": (24, 8, 8), "history": [{"epoch": 1, "mse": 0.25}],
        "tags": {"b", "a"}, "nothing": None, "flag": True,
    }
    save_checkpoint(tmp_path / "c.pt", task="toy", model_name="egnn", **state)
    loaded = load_checkpoint(tmp_path / "c.pt", task="toy", model="egnn")
    assert loaded["task"] == "toy" and loaded["model_name"] == "egnn"
    assert isinstance(loaded["weights"], OrderedDict)
    assert loaded["weights"]._metadata == module.state_dict()._metadata
    torch.nn.BatchNorm1d(3).load_state_dict(loaded["weights"])
    assert torch.equal(loaded["array"], torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
    assert type(loaded["count"]) is int and loaded["count"] == 7
    assert type(loaded["rate"]) is float and loaded["rate"] == 0.5
    assert loaded["file"] == str(tmp_path / "x")
    assert loaded["options"] == {"width": 4, "where": "/data"}
    assert loaded["args"] == {"epochs": 3, "lr": 1e-3}
    assert loaded["sizes"] == (24, 8, 8) and loaded["history"] == [{"epoch": 1, "mse": 0.25}]
    assert loaded["tags"] == ["a", "b"] and loaded["nothing"] is None and loaded["flag"] is True


def test_other_objects_are_refused_on_saving(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"checkpoint\['extra'\]\['model'\] is a torch.nn.modules.linear.Linear"):
        save_checkpoint(tmp_path / "c.pt", task="toy", model_name="egnn", extra={"model": torch.nn.Linear(2, 2)})
    with pytest.raises(TypeError, match="dtype <U1"):
        to_plain(np.array(["a"]))
    assert not (tmp_path / "c.pt").exists()


class _Touch:
    """Unpickling this creates a file: the kind of side effect a checkpoint must not be able to cause."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def test_a_file_holding_a_python_object_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"task": "toy", "model_name": "egnn", "model": {}, "payload": _Touch(marker)}, path)
    with pytest.raises(ValueError, match=r"evil.pt holds a Python object \(\w+\).*arbitrary code"):
        load_checkpoint(path, task="toy", model="egnn")
    assert not marker.exists()
    torch.save({"task": "toy", "model_name": "egnn", "array": np.zeros(3)}, path)  # numpy objects, too
    with pytest.raises(ValueError, match="holds a Python object"):
        load_checkpoint(path, task="toy", model="egnn")
