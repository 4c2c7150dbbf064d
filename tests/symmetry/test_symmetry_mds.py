"""MDS initial coordinates: E(3) invariance, exact distances, batching, gradients."""

from __future__ import annotations

import pytest
import torch

from liequiv.symmetry import assert_equivariant
from liequiv.symmetry.mds import mds_embedding, mds_from_squared_distances, squared_distances

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_e3_invariant_and_permutation_equivariant(dim: int) -> None:
    pos = torch.randn(12, 3, generator=_gen(), dtype=DT)
    report = assert_equivariant(lambda x: mds_embedding(x, dim), pos, "E(3) x S_n", "pos, perm(0)", "perm(0)",
                                generator=_gen())
    assert report.max_abs_error < 1e-10


def test_float32_invariance() -> None:
    pos = torch.randn(12, 3, generator=_gen(1))
    assert_equivariant(mds_embedding, pos, "E(3)", "pos", "scalar", generator=_gen())


@pytest.mark.parametrize("dim", [3, 6])
def test_distances_are_preserved(dim: int) -> None:
    pos = torch.randn(15, 3, generator=_gen(2), dtype=DT)
    coords = mds_embedding(pos, dim)
    assert coords.shape == (15, dim)
    assert (squared_distances(coords) - squared_distances(pos)).abs().max() < 1e-12
    assert (coords[:, 3:] == 0).all()  # rank 3: the extra coordinates vanish exactly
    assert (coords.sum(0)).abs().max() < 1e-12  # centred
    assert ((coords**3).sum(0)[:3] >= 0).all()  # the sign rule


def test_planar_cloud_and_two_dimensions() -> None:
    """A planar cloud needs only 2 coordinates; the top-2 embedding of a 3D cloud is its PCA projection."""
    planar = torch.cat([torch.randn(9, 2, generator=_gen(3), dtype=DT), torch.zeros(9, 1, dtype=DT)], -1)
    assert (squared_distances(mds_embedding(planar, 2)) - squared_distances(planar)).abs().max() < 1e-12
    pos = torch.randn(9, 3, generator=_gen(4), dtype=DT)
    centred = pos - pos.mean(0)
    _, axes = torch.linalg.eigh(centred.T @ centred)
    projected = centred @ axes[:, [2, 1]]
    assert torch.allclose(mds_embedding(pos, 2).abs(), projected.abs(), atol=1e-10)


def test_batched_dense_masked_and_pyg_agree() -> None:
    sizes = [4, 7, 5]
    clouds = [torch.randn(n, 3, generator=_gen(10 + i), dtype=DT) for i, n in enumerate(sizes)]
    singles = [mds_embedding(c) for c in clouds]
    dense = torch.zeros(3, 7, 3, dtype=DT)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for i, c in enumerate(clouds):
        dense[i, : len(c)], mask[i, : len(c)] = c, True
    dense[0, 4:] = 50.0  # padding content must not matter
    out = mds_embedding(dense, mask=mask)
    for i, c in enumerate(clouds):
        assert torch.allclose(out[i, : len(c)], singles[i], atol=1e-10)
        assert (out[i, len(c):] == 0).all()
    # PyG style, with the clouds' nodes interleaved
    pos, batch = torch.cat(clouds), torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    shuffle = torch.randperm(len(batch), generator=_gen(5))
    assert torch.allclose(mds_embedding(pos[shuffle], batch=batch[shuffle]), torch.cat(singles)[shuffle], atol=1e-10)


def test_gradients_are_finite_with_repeated_zero_eigenvalues() -> None:
    pos = torch.randn(10, 3, generator=_gen(6), dtype=DT, requires_grad=True)
    coords = mds_embedding(pos, 5)
    (coords**2).sum().backward()  # Σ|c|² = Σ|x - x̄|²: its gradient is 2 (x - x̄)
    assert torch.isfinite(pos.grad).all()
    assert torch.allclose(pos.grad, 2 * (pos - pos.mean(0)).detach(), atol=1e-10)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="dist_sq"):
        mds_from_squared_distances(torch.ones(3, 4, dtype=DT))
    with pytest.raises(ValueError, match="dim"):
        mds_embedding(torch.randn(4, 3, dtype=DT), 0)
    with pytest.raises(ValueError, match="not both"):
        mds_embedding(torch.randn(4, 3, dtype=DT), batch=torch.zeros(4, dtype=torch.long), mask=torch.ones(4))
    with pytest.raises(ValueError, match="pos"):
        mds_embedding(torch.randn(4, dtype=DT))
