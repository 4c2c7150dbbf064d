"""Frame averaging and canonical frames: exact symmetry with any backbone, batching, masks, degeneracy."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from liequiv.groups import SO3
from liequiv.symmetry import FieldType, GroupElement, assert_equivariant, check_equivariance
from liequiv.symmetry.frames import FrameAveraging, canonicalize, pca_frames

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(d_in: int = 3, d_out: int = 3, dtype: torch.dtype = DT) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d_in, 32), nn.Tanh(), nn.Linear(32, d_out)).to(dtype)


class DeepSet(nn.Module):
    """A permutation-invariant backbone that is not rotation invariant: MLP per point, mean, MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.point, self.head = _mlp(3, 16), _mlp(16, 2)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.head(self.point(pos).mean(0))


@pytest.mark.parametrize("mode", ["average", "canonicalize"])
def test_invariant_under_e3_and_permutations(mode: str) -> None:
    pos = torch.randn(11, 3, generator=_gen(), dtype=DT)
    model = FrameAveraging(DeepSet(), "E(3)", "invariant", mode=mode)
    report = assert_equivariant(model, pos, "E(3) x S_n", "pos, perm(0)", "scalar", generator=_gen())
    assert report.max_abs_error < 1e-10
    assert not check_equivariance(DeepSet(), pos, "E(3)", "pos", "scalar", generator=_gen()).passed


@pytest.mark.parametrize("mode", ["average", "canonicalize"])
def test_so3_frames_are_not_reflection_invariant(mode: str) -> None:
    pos = torch.randn(11, 3, generator=_gen(1), dtype=DT)
    model = FrameAveraging(DeepSet(), "SE(3)", "invariant", mode=mode)
    assert_equivariant(model, pos, "SE(3) x S_n", "pos, perm(0)", "scalar", generator=_gen())
    assert not check_equivariance(model, pos, "E(3)", "pos", "scalar", generator=_gen()).passed
    assert torch.allclose(torch.linalg.det(pca_frames(pos, "SO(3)").rotations), torch.ones((), dtype=DT))


@pytest.mark.parametrize(("group", "size"), [("E(3)", 8), ("SE(3)", 4)])
def test_invariant_output_is_the_mean_over_the_frame(group: str, size: int) -> None:
    """⟨φ⟩(x) = 1/|F| Σ_F φ((x - c) F), with the frame built here: the centroid c, the eigenvectors V of the
    covariance and every sign pattern S (with det(V S) = +1 only, for SE(3)); eigh's own signs do not matter."""
    pos = torch.randn(11, 3, generator=_gen(3), dtype=DT)
    backbone = DeepSet()
    centred = pos - pos.mean(0)
    axes = torch.linalg.eigh(centred.T @ centred / len(pos)).eigenvectors
    frames = [axes * torch.tensor(signs, dtype=DT) for signs in itertools.product((1.0, -1.0), repeat=3)]
    frames = [f for f in frames if group == "E(3)" or torch.linalg.det(f) > 0]
    assert len(frames) == size
    expected = torch.stack([backbone(centred @ f) for f in frames]).mean(0)
    out = FrameAveraging(backbone, group, "invariant")(pos)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert (out - backbone(centred @ frames[0])).abs().max() > 1e-4  # the frames' outputs differ


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equivariant_positions_with_vector_features(dtype: torch.dtype) -> None:
    g = _gen(2)
    pos, vel = torch.randn(9, 3, generator=g, dtype=dtype), torch.randn(9, 3, generator=g, dtype=dtype)
    backbone = _mlp(6, 3, dtype)
    model = FrameAveraging(lambda x, v: x + backbone(torch.cat([x, v], -1)), "E(3)", "equivariant",
                           in_types=["pos", "1o"], out_type="pos")
    report = assert_equivariant(model, (pos, vel), "E(3) x S_n", ["pos, perm(0)", "1o, perm(0)"], "pos, perm(0)",
                                generator=_gen())
    assert report.max_abs_error < (1e-10 if dtype == DT else 1e-5)


def test_batched_clouds_of_different_sizes_with_independent_motions() -> None:
    sizes = [5, 8, 6]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    pos = torch.randn(sum(sizes), 3, generator=_gen(3), dtype=DT)
    node_model = FrameAveraging(_mlp(), "E(3)", "equivariant", out_type="pos")
    point_mlp = _mlp()

    def pooled(x: torch.Tensor) -> torch.Tensor:  # per-cloud sum of a per-point MLP: [3 clouds, 3]
        return torch.zeros(3, 3, dtype=DT).index_add(0, batch, point_mlp(x))

    cloud_model = FrameAveraging(pooled, "E(3)", "equivariant", out_type="1o")

    # one independent rigid motion per cloud, as per-node group elements
    rot = SO3.random((3,), generator=_gen(4), dtype=DT).as_matrix() * torch.tensor([1.0, -1.0, 1.0], dtype=DT)[
        :, None, None]
    shift = torch.randn(3, 3, generator=_gen(5), dtype=DT)
    per_node, per_cloud = GroupElement(rot[batch], shift[batch]), GroupElement(rot, shift)
    pos_type = FieldType("pos")
    moved = pos_type.transform(pos, per_node)
    out, out_moved = node_model(pos, batch=batch), node_model(moved, batch=batch)
    assert (out_moved - pos_type.transform(out, per_node)).abs().max() < 1e-10
    vec = FieldType("vector")
    assert (cloud_model(moved, batch=batch) - vec.transform(cloud_model(pos, batch=batch), per_cloud)).abs().max() \
        < 1e-10
    # the batch vector is a node field: permuting nodes across clouds is a symmetry too
    assert_equivariant(lambda x, b: node_model(x, batch=b), (pos, batch), "E(3) x S_n",
                       ["pos, perm(0)", "perm(0)"], "pos, perm(0)", generator=_gen())


def test_masked_points_do_not_move_the_frame() -> None:
    pos = torch.randn(7, 3, generator=_gen(6), dtype=DT)
    padded = torch.cat([pos, torch.full((2, 3), 100.0, dtype=DT)])
    mask = torch.tensor([True] * 7 + [False] * 2)
    full, masked = pca_frames(pos), pca_frames(padded, weights=mask)
    assert torch.allclose(full.centers, masked.centers, atol=1e-12)
    assert torch.allclose(full.rotations, masked.rotations, atol=1e-10)
    weights = torch.rand(7, generator=_gen(7), dtype=DT)
    weighted = pca_frames(pos, weights=weights)
    assert torch.allclose(weighted.centers[0], (weights[:, None] * pos).sum(0) / weights.sum(), atol=1e-12)
    eye = torch.eye(3, dtype=DT)
    assert torch.allclose(weighted.rotations.mT @ weighted.rotations, eye.expand(1, 8, 3, 3), atol=1e-12)


def _cloud_with_gap(gap: float) -> torch.Tensor:
    """A cloud with covariance eigenvalues exactly (1, 1 + gap, 4), in a random orientation."""
    x = torch.randn(20, 3, generator=_gen(8), dtype=DT)
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / 20)
    white = x @ evecs / evals.sqrt()  # covariance exactly I (up to round-off)
    scales = torch.tensor([1.0, 1.0 + gap, 4.0], dtype=DT).sqrt()
    rot = SO3.random((), generator=_gen(9), dtype=DT).as_matrix()
    return (white * scales) @ rot.T


def test_invariance_degrades_as_the_eigenvalue_gap_closes() -> None:
    """Measured: error ≲ ε/gap, flagged below √ε, finite (with finite gradients) at gap 0."""
    model = FrameAveraging(DeepSet(), "E(3)", "invariant")
    errors = {}
    for gap in (1e-1, 1e-3, 1e-5, 1e-7, 1e-9, 0.0):
        pos = _cloud_with_gap(gap)
        frames = pca_frames(pos)
        assert math.isclose(float(frames.relative_gap[0]), gap / 4, rel_tol=1e-3, abs_tol=1e-14)
        assert bool(frames.degenerate[0]) == (gap / 4 < torch.finfo(DT).eps ** 0.5)
        errors[gap] = check_equivariance(model, pos, "E(3)", "pos", "scalar", n_samples=6,
                                         generator=_gen()).max_abs_error
        if gap > 0:
            assert errors[gap] < 1e-13 / gap  # ε / gap, with a constant of a few hundred
        pos.requires_grad_(True)
        model(pos).sum().backward()
        assert torch.isfinite(pos.grad).all()
    assert errors[1e-1] < 1e-12
    assert errors[0.0] > 1e-6  # exactly degenerate: the frame is arbitrary in the eigenspace, invariance is lost
    assert math.isfinite(errors[0.0])


@pytest.mark.parametrize("kind", ["single", "collinear", "symmetric", "zero_weights"])
def test_degenerate_clouds_are_flagged_and_finite(kind: str) -> None:
    g = _gen(10)
    if kind == "single":
        pos = torch.randn(1, 3, generator=g, dtype=DT)
    elif kind == "collinear":
        pos = torch.randn(6, 1, generator=g, dtype=DT) * torch.tensor([1.0, 2.0, -0.5], dtype=DT)
    else:
        pos = torch.cat([torch.eye(3, dtype=DT), -torch.eye(3, dtype=DT)])  # octahedron: isotropic covariance
    weights = torch.zeros(pos.shape[0], dtype=DT) if kind == "zero_weights" else None
    for canonical in (False, True):
        frames = pca_frames(pos, weights=weights, canonical=canonical)
        assert bool(frames.degenerate.all())
        assert torch.isfinite(frames.rotations).all() and torch.isfinite(frames.centers).all()
    pos = pos.clone().requires_grad_(True)
    out = FrameAveraging(DeepSet(), "E(3)", "invariant")(pos, weights=weights)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(pos.grad).all()
    if kind == "single":  # a single point is its own centroid: its canonical pose is the origin, exactly invariant
        assert_equivariant(FrameAveraging(DeepSet(), "E(3)"), pos.detach(), "E(3)", "pos", "scalar")


def test_canonicalize_returns_a_unique_pose() -> None:
    pos = torch.randn(10, 3, generator=_gen(11), dtype=DT)
    canonical, frames = canonicalize(pos)
    assert not bool(frames.degenerate.any())
    assert_equivariant(lambda x: canonicalize(x)[0], pos, "E(3) x S_n", "pos, perm(0)", "perm(0)", generator=_gen())
    cov = canonical.T @ canonical / 10
    assert torch.allclose(cov, torch.diag(frames.eigenvalues[0]), atol=1e-12)  # principal axes
    assert (canonical**3).sum(0).min() > 0  # the sign rule


def test_bad_input() -> None:
    pos = torch.randn(5, 3, dtype=DT)
    with pytest.raises(ValueError, match="group"):
        pca_frames(pos, "SO(2)")
    with pytest.raises(ValueError, match="pos"):
        pca_frames(torch.randn(5, 2, dtype=DT))
    with pytest.raises(ValueError, match="output"):
        FrameAveraging(DeepSet(), "E(3)", "covariant")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        pca_frames(pos, weights=-torch.ones(5, dtype=DT))
    with pytest.raises(TypeError, match="batch"):
        pca_frames(pos, batch=torch.zeros(5))
