"""Augmentation: per-graph rigid motions recovered by an independent Kabsch fit; subgroups; objects and dicts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from liequiv.symmetry import rotations_about
from liequiv.symmetry.augmentation import RandomSymmetryTransform

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(sizes: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    g = _gen(seed)
    n = sum(sizes)
    return {"pos": torch.randn(n, 3, generator=g, dtype=DT), "vel": torch.randn(n, 3, generator=g, dtype=DT),
            "spin": torch.randn(n, 3, generator=g, dtype=DT), "charge": torch.randn(n, 1, generator=g, dtype=DT),
            "batch": torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)),
            "dipole": torch.randn(len(sizes), 3, generator=g, dtype=DT)}


def _kabsch(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The orthogonal R (reflections allowed) and t with b = R a + t, by least squares (an independent oracle)."""
    ca, cb = a.mean(0), b.mean(0)
    u, _, vh = torch.linalg.svd((b - cb).T @ (a - ca))
    rot = u @ vh
    return rot, cb - rot @ ca


def test_each_graph_gets_one_rigid_motion() -> None:
    sizes = [5, 7, 6, 4, 5, 6]
    data = _batch(sizes)
    fields = {"pos": "pos", "vel": "1o", "spin": "1e", "charge": "scalar", "dipole": "vector"}
    out = RandomSymmetryTransform(fields, "E(3)", generator=_gen(1))(data)
    dets = []
    for graph in range(len(sizes)):
        nodes = data["batch"] == graph
        rot, shift = _kabsch(data["pos"][nodes], out["pos"][nodes])
        assert (out["pos"][nodes] - (data["pos"][nodes] @ rot.T + shift)).abs().max() < 1e-12
        assert (out["vel"][nodes] - data["vel"][nodes] @ rot.T).abs().max() < 1e-12
        det = torch.linalg.det(rot)
        assert (out["spin"][nodes] - det * data["spin"][nodes] @ rot.T).abs().max() < 1e-12
        assert (out["dipole"][graph] - rot @ data["dipole"][graph]).abs().max() < 1e-12
        assert shift.abs().max() > 1e-3
        dets.append(float(det))
    assert torch.equal(out["charge"], data["charge"]) and torch.equal(out["batch"], data["batch"])
    assert sorted(set(round(d) for d in dets)) == [-1, 1]  # O(3) samples alternate proper / improper
    assert torch.equal(data["pos"], _batch(sizes)["pos"])  # the input is untouched


def test_subgroups() -> None:
    data = _batch([6, 6, 6])
    out = RandomSymmetryTransform({"pos": "pos", "vel": "1o"}, "SO(3)", generator=_gen(2))(data)
    for graph in range(3):
        nodes = data["batch"] == graph
        rot, shift = _kabsch(data["pos"][nodes], out["pos"][nodes])
        assert torch.isclose(torch.linalg.det(rot), torch.ones((), dtype=DT))
        assert shift.abs().max() < 1e-12  # no translations in SO(3)
    about_z = RandomSymmetryTransform({"pos": "pos", "vel": "1o"}, rotations_about((0.0, 0.0, 1.0)),
                                      generator=_gen(3))(data)
    assert torch.allclose(about_z["vel"][:, 2], data["vel"][:, 2], atol=1e-14)
    assert not torch.allclose(about_z["vel"][:, :2], data["vel"][:, :2])


def test_objects_with_attributes_and_a_single_graph() -> None:
    data = SimpleNamespace(pos=torch.randn(5, 3, dtype=DT), vel=torch.randn(5, 3, dtype=DT))
    out = RandomSymmetryTransform({"pos": "pos", "vel": "1o"}, "SE(3)", translation_scale=2.0, generator=_gen(4))(data)
    assert out is not data and out.pos is not data.pos
    rot, _ = _kabsch(data.pos, out.pos)
    assert (out.vel - data.vel @ rot.T).abs().max() < 1e-12


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="fields"):
        RandomSymmetryTransform({})
    with pytest.raises(ValueError, match="permute"):
        RandomSymmetryTransform({"pos": "pos"}, "E(3) x S_n")
    with pytest.raises(ValueError, match="no field"):
        RandomSymmetryTransform({"pos": "pos", "force": "1o"})({"pos": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match="translation_scale"):
        RandomSymmetryTransform({"pos": "pos"}, translation_scale=-1.0)
