"""RegistrationEGNN: its graph against brute force, E(3) equivariance, permutations, bad input."""

from __future__ import annotations

import pytest
import torch

from liequiv.groups import SO3
from liequiv.models.registration_egnn import RegistrationEGNN
from liequiv.nn.graph import knn_edges

DT = torch.float64


def _clouds(b=2, n=12, m=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, n, 3, generator=g, dtype=DT), torch.randn(b, m, 3, generator=g, dtype=DT),
            torch.rand(b, generator=g, dtype=DT))


def _model(**kw):
    torch.manual_seed(0)
    model = RegistrationEGNN(hidden=16, layers=2, k=4, **kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # away from the near-identity start
    return model


def test_knn_edges_brute_force():
    src, dst, _ = _clouds(n=9, m=7)
    edges = knn_edges(src, dst, 3)
    for b in range(2):
        for i in range(7):
            chosen = sorted(int(j) - 9 * b for j in edges[0][edges[1] == b * 7 + i])
            dist = torch.linalg.vector_norm(src[b] - dst[b, i], dim=-1)
            assert chosen == sorted(dist.argsort()[:3].tolist())
    own = knn_edges(src, src, 2, exclude_self=True)
    assert (own[0] != own[1]).all()
    with pytest.raises(ValueError, match="k must lie"):
        knn_edges(src, src, 9, exclude_self=True)


def test_graph_joins_the_clouds():
    model = _model()
    source, target, _ = _clouds(n=6, m=5)
    edge_index, edge_attr = model.graph(source, target)
    joint = torch.cat([source, target], 1).reshape(-1, 3)
    is_source = (torch.arange(joint.shape[0]) % 11) < 6
    cross = is_source[edge_index[0]] != is_source[edge_index[1]]
    assert torch.equal(edge_attr[:, 1].bool(), cross)
    assert (edge_index[0] // 11 == edge_index[1] // 11).all()  # never across samples
    # each node has k = 4 neighbours in its own cloud and 4 in the other
    counts = torch.bincount(edge_index[1], minlength=joint.shape[0])
    assert (counts == 8).all()


def test_equivariance_and_permutations():
    model = _model()
    source, target, t = _clouds()
    moved, weight = model(source, target, t)
    g = torch.Generator().manual_seed(3)
    for sign in (1, -1):
        rot = SO3.random((), generator=g, dtype=DT).as_matrix() * sign
        shift = torch.randn(3, generator=g, dtype=DT)
        moved2, weight2 = model(source @ rot.T + shift, target @ rot.T + shift, t)
        assert (moved2 - moved @ rot.T).abs().max() < 1e-10
        assert (weight2 - weight).abs().max() < 1e-10
    perm = torch.randperm(12, generator=g)
    moved3, weight3 = model(source[:, perm], target[:, torch.randperm(15, generator=g)], t)
    assert (moved3 - moved[:, perm]).abs().max() < 1e-10 and (weight3 - weight[:, perm]).abs().max() < 1e-10
    assert moved.abs().max() > 1e-3 and (weight > 0).all()
    assert (model(source, target, t + 0.3)[0] - moved).abs().max() > 1e-6  # the time enters


def test_bad_input():
    model = _model()
    source, target, t = _clouds()
    with pytest.raises(ValueError, match="source and target must be"):
        model(source[0], target, t)
    with pytest.raises(ValueError, match="t must have shape"):
        model(source, target, t[:1])
    with pytest.raises(ValueError, match="at least 2 points"):
        model(source[:, :1], target, t)
