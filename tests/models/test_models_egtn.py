"""EGTN (GeoTDM's denoiser): one block against its layers applied frame by frame, E(3) x S_n equivariance, bad
input."""

from __future__ import annotations

import pytest
import torch

from liequiv.groups import SO3
from liequiv.models.egtn import EGTN
from liequiv.nn.graph import fully_connected_edges
from message_passing_reference import randomize

DT = torch.float64


def _inputs(n_graphs=2, n=4, history=3, horizon=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = n_graphs * n
    x_t = torch.randn(rows, horizon, 3, generator=g, dtype=DT)
    cond = torch.randn(rows, history, 3, generator=g, dtype=DT)
    t = torch.rand(n_graphs, generator=g, dtype=DT).repeat_interleave(n)
    charges = torch.randint(0, 2, (rows, 1), generator=g).to(DT) * 2 - 1
    return x_t, t, {"cond": cond, "node_features": charges, "edge_index": fully_connected_edges(n, n_graphs)}


def _model(layers=2):
    return randomize(EGTN(node_dim=1, hidden=8, layers=layers, heads=2, embedding_dim=4), seed=3, scale=0.4)


def test_one_block_is_its_layers_applied_per_frame():
    model = _model(layers=1)
    x_t, t, ctx = _inputs()
    captured = {}
    model.embedding.register_forward_hook(lambda m, args, out: captured.update(h=out))
    out = model(x_t, t, **ctx)
    h0, x0 = captured["h"], torch.cat([ctx["cond"], x_t], 1)
    charges, edges = ctx["node_features"], ctx["edge_index"]
    edge_attr = charges[edges[0]] * charges[edges[1]]
    per_frame = [model.spatial[0](h0[:, f], x0[:, f], edges, edge_attr) for f in range(x0.shape[1])]
    h1, x1 = torch.stack([p[0] for p in per_frame], 1), torch.stack([p[1] for p in per_frame], 1)
    _, x2 = model.temporal[0](h1, x1)
    torch.testing.assert_close(out, (x2 - x0)[:, 3:], rtol=1e-12, atol=1e-12)


def test_embedding_inputs():
    model = _model(layers=1)
    x_t, t, ctx = _inputs()
    seen = {}
    model.embedding.register_forward_hook(lambda m, args, out: seen.update(z=args[0]))
    model(x_t, t, **ctx)
    z = seen["z"]  # [N, F, node_dim + 2 * 4 + 2]
    x = torch.cat([ctx["cond"], x_t], 1)
    torch.testing.assert_close(z[..., 0], ctx["node_features"][:, :1].expand(8, 8))
    torch.testing.assert_close(z[..., -2], torch.tensor([1.0] * 3 + [0.0] * 5, dtype=DT).expand(8, 8))
    steps = torch.linalg.vector_norm(x[:, 1:] - x[:, :-1], dim=-1)
    torch.testing.assert_close(z[:, 1:, -1], steps)
    assert (z[:, 0, -1] == 0).all()
    torch.testing.assert_close(z[:, 0, 1:5], model.time_embedding(t))


def test_e3_and_permutation_equivariance():
    model = _model()
    x_t, t, ctx = _inputs()
    out = model(x_t, t, **ctx)
    g = torch.Generator().manual_seed(5)
    for sign in (1, -1):
        rot = SO3.random((), generator=g, dtype=DT).as_matrix() * sign
        shift = torch.randn(3, generator=g, dtype=DT)
        moved = model(x_t @ rot.T + shift, t, **{**ctx, "cond": ctx["cond"] @ rot.T + shift})
        assert (moved - out @ rot.T).abs().max() < 1e-10  # displacements: rotate, ignore the shift
    perm = torch.cat([torch.randperm(4, generator=g), 4 + torch.randperm(4, generator=g)])
    inverse = torch.argsort(perm)
    edges = inverse[ctx["edge_index"]]  # the same graph on the renumbered nodes
    permuted = model(x_t[perm], t[perm], cond=ctx["cond"][perm], node_features=ctx["node_features"][perm],
                     edge_index=edges)
    assert (permuted - out[perm]).abs().max() < 1e-10
    assert out.abs().max() > 1e-2


def test_bad_input():
    model = _model()
    x_t, t, ctx = _inputs()
    with pytest.raises(ValueError, match="x_t must be"):
        model(x_t[..., :2], t, **ctx)
    with pytest.raises(ValueError, match="t must be"):
        model(x_t, t[:3], **ctx)
    with pytest.raises(TypeError, match="float32"):
        model(x_t.float(), t, **ctx)
