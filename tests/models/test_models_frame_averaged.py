"""FA-GNN: a non-equivariant GNN made exactly E(3)- and permutation-equivariant, certified by the checker."""

from __future__ import annotations

import itertools

import pytest
import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE, random_systems
from liequiv.models.baselines import GNN
from liequiv.models.frame_averaged import FrameAveragedGNN
from liequiv.nn import fully_connected_edges
from liequiv.symmetry import check_equivariance

DT = torch.float64


def test_fa_gnn_is_e3_and_permutation_equivariant_while_its_backbone_is_not() -> None:
    torch.manual_seed(0)
    model = FrameAveragedGNN(hidden=16, layers=2).to(DT)
    inputs = random_systems()
    report = check_equivariance(lambda *x: model(*x), inputs, "E(3) x S_n", NODE_TYPES, OUT_TYPE, n_samples=4)
    assert report.passed, str(report)
    backbone = model.averaged.backbone
    assert isinstance(backbone, GNN)
    broken = check_equivariance(lambda *x: backbone(*x), inputs, "E(3)", NODE_TYPES, OUT_TYPE, n_samples=2)
    assert not broken.passed


def test_fa_gnn_canonicalize_mode_is_equivariant() -> None:
    torch.manual_seed(1)
    model = FrameAveragedGNN(hidden=16, layers=2, mode="canonicalize").to(DT)
    report = check_equivariance(lambda *x: model(*x), random_systems(), "E(3) x S_n", NODE_TYPES, OUT_TYPE,
                                n_samples=4)
    assert report.passed, str(report)


def test_fa_gnn_is_the_mean_over_each_graphs_frame() -> None:
    """Per graph, with c its centroid and V the eigenvectors of its covariance (built here), over the 8 frames
    F = V S: out = 1/8 Σ_F [c + F GNN((x - c) F, v F, q)], the backbone run on that graph alone."""
    torch.manual_seed(0)
    model = FrameAveragedGNN(hidden=8, layers=2).to(DT)
    pos, vel, charges, edge_index, batch = random_systems(n_graphs=2, n=4, seed=1)
    out = model(pos, vel, charges, edge_index, batch)
    backbone, local_edges = model.averaged.backbone, fully_connected_edges(4)
    for b in range(2):
        x, v, q = pos[batch == b], vel[batch == b], charges[batch == b]
        centroid = x.mean(0)
        axes = torch.linalg.eigh((x - centroid).T @ (x - centroid) / len(x)).eigenvectors
        frames = [axes * torch.tensor(s, dtype=DT) for s in itertools.product((1.0, -1.0), repeat=3)]
        expected = torch.stack([centroid + backbone((x - centroid) @ f, v @ f, q, local_edges) @ f.T
                                for f in frames]).mean(0)
        torch.testing.assert_close(out[batch == b], expected, rtol=0, atol=1e-12)


def test_fa_gnn_rejects_bad_input() -> None:
    model = FrameAveragedGNN(hidden=8, layers=1).to(DT)
    pos, vel, charges, edge_index, batch = random_systems()
    with pytest.raises(ValueError, match="vel must have shape"):
        model(pos, vel[:, :2], charges, edge_index, batch)
