"""FA-GNN: a non-equivariant GNN made exactly E(3)- and permutation-equivariant, certified by the checker."""

from __future__ import annotations

import torch

from liequiv.models.baselines import GNN
from liequiv.models.frame_averaged import FrameAveragedGNN
from liequiv.nn.graph import fully_connected_edges
from liequiv.symmetry import check_equivariance

DT = torch.float64


def _inputs(graphs: int = 3, n: int = 5):
    g = torch.Generator().manual_seed(0)
    pos, vel = torch.randn(graphs * n, 3, generator=g, dtype=DT), torch.randn(graphs * n, 3, generator=g, dtype=DT)
    charges = torch.randint(0, 2, (graphs * n, 1), generator=g).to(DT) * 2 - 1
    batch = torch.arange(graphs).repeat_interleave(n)
    return pos, vel, charges, fully_connected_edges(n, graphs), batch


NODE_TYPES = ["pos, perm(0)", "1o, perm(0)", "scalar, perm(0)", "index", "scalar, perm(0)"]


def test_fa_gnn_is_e3_and_permutation_equivariant_while_its_backbone_is_not() -> None:
    torch.manual_seed(0)
    model = FrameAveragedGNN(hidden=16, layers=2).to(DT)
    inputs = _inputs()
    report = check_equivariance(lambda *x: model(*x), inputs, "E(3) x S_n", NODE_TYPES, "pos, perm(0)", n_samples=4)
    assert report.passed, str(report)
    backbone = model.averaged.backbone
    assert isinstance(backbone, GNN)
    broken = check_equivariance(lambda *x: backbone(*x), inputs, "E(3)", NODE_TYPES, "pos, perm(0)", n_samples=2)
    assert not broken.passed


def test_fa_gnn_canonicalize_mode_is_equivariant() -> None:
    torch.manual_seed(1)
    model = FrameAveragedGNN(hidden=16, layers=2, mode="canonicalize").to(DT)
    report = check_equivariance(lambda *x: model(*x), _inputs(), "E(3) x S_n", NODE_TYPES, "pos, perm(0)",
                                n_samples=4)
    assert report.passed, str(report)
