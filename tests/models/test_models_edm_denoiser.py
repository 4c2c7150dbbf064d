"""EDMDenoiser: E(3) equivariance of the position output (no translation part, zero centre of mass), invariance of
the feature output, permutation equivariance, the conditioning input, bad inputs."""

import pytest
import torch

from liequiv.models.edm_denoiser import EDMDenoiser, molecule_edges

F64 = torch.float64
SIZES = (3, 5, 1, 4)  # a single-atom molecule included


def random_orthogonal(generator: torch.Generator, det: float) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) * det > 0 else -q


def make_inputs(generator: torch.Generator, feature_dim: int = 6):
    """Molecules of SIZES with their atoms interleaved (batch not sorted)."""
    batch = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    batch = batch[torch.randperm(len(batch), generator=generator)]
    pos = 2 * torch.randn(len(batch), 3, dtype=F64, generator=generator)
    h = torch.randn(len(batch), feature_dim, dtype=F64, generator=generator)
    t = torch.rand(len(SIZES), dtype=F64, generator=generator)
    return pos, h, t, batch


def make_model(condition: bool = False, seed: int = 0) -> EDMDenoiser:
    torch.manual_seed(seed)
    model = EDMDenoiser(6, hidden=16, layers=3, condition=condition).double()
    with torch.no_grad():  # away from the near-identity initialization, so that positions really move
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def molecule_means(x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[batch == m].mean(0) for m in range(len(SIZES))])


def test_molecule_edges_join_every_pair_of_a_molecule():
    batch = torch.tensor([1, 0, 1, 1, 0, 2])
    src, dst = molecule_edges(batch)
    pairs = set(zip(src.tolist(), dst.tolist(), strict=True))
    expected = {(i, j) for i in range(6) for j in range(6) if i != j and batch[i] == batch[j]}
    assert pairs == expected and len(src) == len(expected)


@pytest.mark.parametrize("det", [1.0, -1.0])
def test_e3_equivariance(det):
    g = torch.Generator().manual_seed(1)
    model = make_model()
    pos, h, t, batch = make_inputs(g)
    q = random_orthogonal(g, det)
    shift = 5 * torch.randn(3, dtype=F64, generator=g)
    out_pos, out_h = model(pos, h, t, batch)
    moved_pos, moved_h = model(pos @ q.T + shift, h, t, batch)
    assert out_pos.abs().max() > 1e-2 and out_h.abs().max() > 1e-2  # not trivially equivariant
    assert (moved_pos - out_pos @ q.T).abs().max() < 1e-10  # rotates, no translation part
    assert (moved_h - out_h).abs().max() < 1e-10


def test_position_output_has_zero_centre_of_mass():
    g = torch.Generator().manual_seed(2)
    pos, h, t, batch = make_inputs(g)
    out_pos, _ = make_model()(pos, h, t, batch)
    assert molecule_means(out_pos, batch).abs().max() < 1e-12
    assert out_pos[batch == 2].abs().max() < 1e-12  # the single atom cannot move relative to itself


def test_permutation_equivariance_and_molecules_independent():
    g = torch.Generator().manual_seed(3)
    model = make_model()
    pos, h, t, batch = make_inputs(g)
    perm = torch.randperm(len(batch), generator=g)
    out_pos, out_h = model(pos, h, t, batch)
    perm_pos, perm_h = model(pos[perm], h[perm], t, batch[perm])
    assert (perm_pos - out_pos[perm]).abs().max() < 1e-10 and (perm_h - out_h[perm]).abs().max() < 1e-10
    # another molecule's atoms (or time) do not change molecule 0's outputs
    alone = batch == 0
    solo_pos, solo_h = model(pos[alone], h[alone], t[:1], torch.zeros(int(alone.sum()), dtype=torch.long))
    assert (solo_pos - out_pos[alone]).abs().max() < 1e-10 and (solo_h - out_h[alone]).abs().max() < 1e-10


def test_time_and_condition_are_inputs():
    g = torch.Generator().manual_seed(4)
    model = make_model(condition=True)
    pos, h, t, batch = make_inputs(g)
    cond = torch.randn(len(SIZES), dtype=F64, generator=g)
    base = model(pos, h, t, batch, cond)[1]
    assert (model(pos, h, t + 0.3, batch, cond)[1] - base).abs().max() > 1e-4
    changed = model(pos, h, t, batch, cond + torch.tensor([1.0, 0, 0, 0], dtype=F64))[1]
    assert (changed - base)[batch == 0].abs().max() > 1e-4 and (changed - base)[batch != 0].abs().max() < 1e-12


def test_bad_inputs():
    g = torch.Generator().manual_seed(5)
    model, conditional = make_model(), make_model(condition=True)
    pos, h, t, batch = make_inputs(g)
    with pytest.raises(ValueError, match="features"):
        model(pos, h[:, :5], t, batch)
    with pytest.raises(ValueError, match="positions"):
        model(pos[:, :2], h, t, batch)
    with pytest.raises(ValueError, match="t \\[M\\]"):
        model(pos, h, t[None], batch)
    with pytest.raises(ValueError, match="batch must be an int64"):
        model(pos, h, t, batch.double())
    with pytest.raises(ValueError, match="batch entries"):
        model(pos, h, t[:2], batch)
    with pytest.raises(ValueError, match="condition=True"):
        conditional(pos, h, t, batch)
    with pytest.raises(ValueError, match="condition must have shape"):
        conditional(pos, h, t, batch, torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="condition=False"):
        model(pos, h, t, batch, torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match="feature_dim"):
        EDMDenoiser(0)


def test_position_output_is_the_displacement():
    """With the coordinate updates switched off the atoms stay put, and the position output is zero."""
    g = torch.Generator().manual_seed(6)
    model = make_model()
    with torch.no_grad():
        for layer in model.layers:
            layer.coord_mlp[0][-1].weight.zero_()
    pos, h, t, batch = make_inputs(g)
    assert model(pos, h, t, batch)[0].abs().max() < 1e-12
