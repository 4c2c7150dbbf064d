"""RegistrationEGNN: its neighbour graph and local geometry, E(3) equivariance, permutations, the proximity term,
bad input."""

from __future__ import annotations

import pytest
import torch

from liequiv.groups import SO3
from liequiv.models.registration_egnn import RegistrationEGNN, local_geometry
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


def test_local_geometry_is_invariant_and_sees_planes():
    points = _clouds(b=2, n=20)[0]
    node, pair, edges = local_geometry(points, 6)
    g = torch.Generator().manual_seed(5)
    for sign in (1, -1):
        rot = SO3.random((), generator=g, dtype=DT).as_matrix() * sign
        node2, pair2, edges2 = local_geometry(points @ rot.T + torch.randn(3, generator=g, dtype=DT), 6)
        assert torch.equal(edges2, edges)
        assert (node2 - node).abs().max() < 1e-10 and (pair2 - pair).abs().max() < 1e-10
    assert (pair[:, 0] - torch.linalg.vector_norm(points.reshape(-1, 3)[edges[0]] - points.reshape(-1, 3)[edges[1]],
                                                  dim=-1)).abs().max() < 1e-12
    # points of a tilted plane: zero thickness, parallel normals, normals orthogonal to every edge
    plane = torch.cat([torch.rand(1, 30, 2, generator=g, dtype=DT), torch.zeros(1, 30, 1, dtype=DT)], -1)
    plane = plane @ SO3.random((), generator=g, dtype=DT).as_matrix().T
    node, pair, _ = local_geometry(plane, 5)
    assert node[..., 0].abs().max() < 1e-7 and (node[..., 1:] > 1e-3).all()
    assert (pair[:, 1] - 1).abs().max() < 1e-10 and pair[:, 2:].abs().max() < 1e-10


def test_matching_without_proximity_ignores_the_relative_pose():
    """Where β(t) = 0 the soft correspondences depend on each cloud's shape alone: moving the source by any rigid
    motion leaves its matched target points and its weights unchanged; with β > 0 they change."""
    model = _model()
    source, target, t = _clouds()
    motion = (SO3.random((), generator=torch.Generator().manual_seed(6), dtype=DT).as_matrix(),
              torch.tensor([0.3, -1.0, 2.0], dtype=DT))
    moved = source @ motion[0].T + motion[1]
    displacement, weight = model(source, target, t)
    displacement2, weight2 = model(moved, target, t)
    assert ((moved + displacement2) - (source + displacement)).abs().max() > 1e-3
    with torch.no_grad():
        model.proximity[-1].bias.fill_(-800.0)  # softplus(-800) = 0 in float64
    displacement, weight = model(source, target, t)
    displacement2, weight2 = model(moved, target, t)
    assert ((moved + displacement2) - (source + displacement)).abs().max() < 1e-10
    assert (weight2 - weight).abs().max() < 1e-10
    logits, _ = model.matching(source, target, t)  # the matches are the attention-weighted target points
    assert ((source + displacement) - torch.softmax(logits, -1) @ target).abs().max() < 1e-12


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


def test_given_descriptors_are_those_of_the_unmoved_clouds():
    """A sampler passes the descriptors of the source before its pose is applied: the output equals recomputing
    them on the moved source (they are invariant to moving one cloud rigidly), and a wrong one changes it."""
    model = _model()
    source, target, t = _clouds()
    g = torch.Generator().manual_seed(5)
    rot, shift = SO3.random((2,), generator=g, dtype=DT).as_matrix(), torch.randn(2, 1, 3, generator=g, dtype=DT)
    moved_source = source @ rot.mT + shift
    descriptors = (model.descriptors(source), model.descriptors(target))
    expected = model(moved_source, target, t)
    given = model(moved_source, target, t, descriptors)
    for a, b in zip(given, expected, strict=True):
        assert (a - b).abs().max() < 1e-10
    swapped = (descriptors[0].flip(0), descriptors[1])
    assert (model(moved_source, target, t, swapped)[0] - expected[0]).abs().max() > 1e-3


def test_bad_input():
    model = _model()
    source, target, t = _clouds()
    with pytest.raises(ValueError, match="descriptors must be"):
        model(source, target, t, (model.descriptors(target), model.descriptors(target)))
    with pytest.raises(ValueError, match="source and target must be"):
        model(source[0], target, t)
    with pytest.raises(ValueError, match="t must have shape"):
        model(source, target, t[:1])
    with pytest.raises(ValueError, match="at least 2 points"):
        model(source[:, :1], target, t)
