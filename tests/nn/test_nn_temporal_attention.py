"""TemporalAttention: the update written out frame by frame, equivariance, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from liequiv.groups import SO3
from liequiv.nn.temporal_attention import TemporalAttention
from message_passing_reference import affine, randomize, two_layer

DT = torch.float64


def _reference(layer: TemporalAttention, h, x):
    """Loops over nodes, frames and heads; reads the layer's parameters only."""
    heads, d = layer.heads, layer.head_dim
    hidden = h.shape[-1]
    w, b = layer.qkv.weight, layer.qkv.bias
    h_out, x_out = h.clone(), x.clone()
    for i in range(h.shape[0]):
        frames = h.shape[1]
        for f in range(frames):
            mixed = []
            for k in range(heads):
                rows = slice(k * d, (k + 1) * d)
                q = w[:hidden][rows] @ h[i, f] + b[:hidden][rows]
                logits = []
                for g in range(frames):
                    key = w[hidden:2 * hidden][rows] @ h[i, g] + b[hidden:2 * hidden][rows]
                    dist = ((x[i, g] - x[i, f]) ** 2).sum().reshape(1)
                    logits.append(q @ key / math.sqrt(d) + affine(layer.distance_bias, dist)[k])
                a = torch.softmax(torch.stack(logits), 0)
                value = sum(a[g] * (w[2 * hidden:][rows] @ h[i, g] + b[2 * hidden:][rows]) for g in range(frames))
                mixed.append(value)
                coord = two_layer(layer.coord_weights, h[i, f])[k]
                x_out[i, f] = x_out[i, f] + coord * sum(a[g] * (x[i, g] - x[i, f]) for g in range(frames))
            h_out[i, f] = h[i, f] + affine(layer.out, torch.cat(mixed))
    return h_out, x_out


def test_matches_the_update_written_out():
    layer = randomize(TemporalAttention(hidden=8, heads=2), seed=1)
    g = torch.Generator().manual_seed(0)
    h, x = torch.randn(3, 4, 8, generator=g, dtype=DT), torch.randn(3, 4, 3, generator=g, dtype=DT)
    h_new, x_new = layer(h, x)
    h_ref, x_ref = _reference(layer, h, x)
    torch.testing.assert_close(h_new, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_new, x_ref, rtol=1e-12, atol=1e-12)
    assert (x_new - x).abs().max() > 1e-2  # positions do move with these weights


def test_e3_equivariant_and_permutation_equivariant():
    layer = randomize(TemporalAttention(hidden=8, heads=4), seed=2)
    g = torch.Generator().manual_seed(1)
    h, x = torch.randn(4, 6, 8, generator=g, dtype=DT), torch.randn(4, 6, 3, generator=g, dtype=DT)
    h_new, x_new = layer(h, x)
    for sign in (1, -1):
        rot = SO3.random((), generator=g, dtype=DT).as_matrix() * sign
        shift = torch.randn(3, generator=g, dtype=DT)
        h_moved, x_moved = layer(h, x @ rot.T + shift)
        assert (h_moved - h_new).abs().max() < 1e-10
        assert (x_moved - (x_new @ rot.T + shift)).abs().max() < 1e-10
    perm = torch.randperm(4, generator=g)
    h_p, x_p = layer(h[perm], x[perm])
    assert (h_p - h_new[perm]).abs().max() < 1e-12 and (x_p - x_new[perm]).abs().max() < 1e-12


def test_coincident_frames_are_finite_and_bad_sizes():
    layer = TemporalAttention(hidden=8, heads=2).double()
    x = torch.zeros(2, 3, 3, dtype=DT, requires_grad=True)
    h, out = layer(torch.randn(2, 3, 8, dtype=DT), x)
    (h.sum() + out.sum()).backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="divisible by heads"):
        TemporalAttention(hidden=10, heads=4)


def test_sinusoidal_embedding_closed_form():
    from liequiv.nn.sinusoidal import SinusoidalEmbedding

    emb = SinusoidalEmbedding(6, max_frequency=100.0).double()
    s = torch.tensor([0.0, 0.3], dtype=DT)
    freq = torch.tensor([1.0, 10.0, 100.0], dtype=DT)
    expected = torch.cat([torch.sin(s[:, None] * freq), torch.cos(s[:, None] * freq)], -1)
    torch.testing.assert_close(emb(s), expected, rtol=1e-6, atol=1e-7)  # frequencies stored in the default dtype
    with pytest.raises(ValueError, match="even integer"):
        SinusoidalEmbedding(5)
