"""EqMotion's blocks against their updates written out node by node, with fixed weights; the non-linearity."""

from __future__ import annotations

import torch
from torch import Tensor

from liequiv.nn.eqmotion import EqMotionLayer, InteractionReasoning
from message_passing_reference import affine, randomize, silu, two_layer

DT = torch.float64
# Two graphs: nodes 0-2 (not fully connected) and 3-4; edges (j, i) carry a message from j to i.
EDGES = [(1, 0), (2, 0), (0, 1), (1, 2), (4, 3), (3, 4)]
BATCH = [0, 0, 0, 1, 1]


def _inputs(hidden: int = 4, channels: int = 3, seed: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(5, hidden, generator=g, dtype=DT)
    geometric = torch.randn(5, channels, 3, generator=g, dtype=DT)
    velocity = torch.randn(5, channels, 3, generator=g, dtype=DT)
    weights = torch.softmax(torch.randn(len(EDGES), 2, generator=g, dtype=DT), -1)
    return h, geometric, velocity, torch.tensor(EDGES).T, weights


def _graph_mean(x: Tensor, i: int) -> Tensor:
    members = [k for k, b in enumerate(BATCH) if b == BATCH[i]]
    return sum(x[k] for k in members) / len(members)


def _layer_reference(layer: EqMotionLayer, h: Tensor, geo: Tensor, vel: Tensor, weights: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """The update of the module docstring, receiver by receiver, from the layer's parameters only."""
    n, channels = geo.shape[:2]
    step, h_out = torch.zeros_like(geo), h.clone()
    for i in range(n):
        interaction, messages = torch.zeros(channels, 3, dtype=DT), torch.zeros_like(h[i])
        for e, (j, target) in enumerate(EDGES):
            if target != i:
                continue
            d = geo[i] - geo[j]
            s = torch.cat([h[i], h[j], torch.stack([d[c].norm() for c in range(channels)])])
            typed = sum(weights[e, k] * two_layer(mlp, s, last_silu=True) for k, mlp in enumerate(layer.type_mlps))
            f = two_layer(layer.factor_mlp, typed)
            interaction = interaction + f[:, None] * d
            messages = messages + two_layer(layer.message_mlp, s, last_silu=True)
        attention = silu(affine(layer.attention_mlp[0], h[i]))
        step[i] = (attention[:, None] * (geo[i] - _graph_mean(geo, i)) + interaction
                   + layer.velocity.weight @ vel[i])
        h_out[i] = h[i] + two_layer(layer.node_mlp, torch.cat([h[i], messages]))
    moved = geo + step
    out = torch.empty_like(geo)
    signs = []
    for i in range(n):
        mean = _graph_mean(moved, i)
        q, k = layer.query.weight @ (moved[i] - mean), layer.key.weight @ (moved[i] - mean)
        for c in range(channels):
            dot = q[c] @ k[c]
            signs.append(bool(dot >= 0))
            out[i, c] = mean[c] + (q[c] if dot >= 0 else q[c] - dot / (k[c] @ k[c] + layer.eps) * k[c])
    assert any(signs) and not all(signs)  # both branches of the non-linearity are exercised
    return h_out, out


def test_layer_matches_the_update_written_out() -> None:
    layer = randomize(EqMotionLayer(hidden=4, channels=3, edge_types=2), scale=0.4)
    h, geo, vel, edge_index, weights = _inputs()
    h_out, geo_out = layer(h, geo, vel, edge_index, weights, torch.tensor(BATCH))
    h_ref, geo_ref = _layer_reference(layer, h, geo, vel, weights)
    torch.testing.assert_close(h_out, h_ref, rtol=0, atol=1e-13)
    torch.testing.assert_close(geo_out, geo_ref, rtol=0, atol=1e-13)
    assert (geo_out - geo).abs().max() > 0.1 and (h_out - h).abs().max() > 0.1


def test_layer_without_batch_is_one_graph() -> None:
    layer = randomize(EqMotionLayer(hidden=4, channels=3), scale=0.4)
    h, geo, vel, edge_index, weights = _inputs()
    alone = layer(h[:3], geo[:3], vel[:3], edge_index[:, :4], weights[:4])
    batched = layer(h, geo, vel, edge_index, weights, torch.tensor(BATCH))
    for a, b in zip(alone, batched, strict=True):
        torch.testing.assert_close(a, b[:3], rtol=0, atol=1e-14)


def test_reasoning_matches_the_formula_written_out() -> None:
    module = randomize(InteractionReasoning(hidden=4, channels=3, edge_types=2, temperature=0.5), scale=1.0)
    h, geo, vel, edge_index, _ = _inputs()
    weights = module(h, geo, vel, edge_index)
    both = torch.cat([geo, vel], 1)

    def rho(i: int, j: int) -> Tensor:
        d = both[i] - both[j]
        return two_layer(module.distance_mlp, torch.stack([d[c].norm() for c in range(6)]), last_silu=True)

    h_tilde = []
    for i in range(5):
        total = sum((two_layer(module.edge_mlp, torch.cat([h[i], h[j], rho(i, j)]), last_silu=True)
                     for j, target in EDGES if target == i), torch.zeros(4, dtype=DT))
        h_tilde.append(two_layer(module.node_mlp, torch.cat([h[i], total]), last_silu=True))
    for e, (j, i) in enumerate(EDGES):
        logits = two_layer(module.type_mlp, torch.cat([h_tilde[i], h_tilde[j], rho(i, j)]))
        expected = torch.exp(logits / 0.5) / torch.exp(logits / 0.5).sum()
        torch.testing.assert_close(weights[e], expected, rtol=0, atol=1e-14)
    assert weights.std(0).max() > 0.01  # the edges get different types
