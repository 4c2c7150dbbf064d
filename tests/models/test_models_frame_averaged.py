"""FA-GNN: a non-equivariant GNN made exactly E(3)- and permutation-equivariant, certified by the checker."""

from __future__ import annotations

import torch

from dynamics_testing import NODE_TYPES, OUT_TYPE, random_systems
from liequiv.models.baselines import GNN
from liequiv.models.frame_averaged import FrameAveragedGNN
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
