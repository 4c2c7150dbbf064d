"""The interaction block: its update against a literal per-node sum, O(3) equivariance for every backend, and the
Gaunt backend's factorized weights against the Clebsch-Gordan product with the same path weights."""

from __future__ import annotations

import pytest
import torch

from liequiv import o3
from liequiv.nn import Interaction, SymmetricContraction, natural_irreps
from liequiv.nn.radial import BesselBasis, PolynomialCutoff
from liequiv.o3.tensor_product.gaunt import gaunt_path_factor

DT = torch.float64
CUTOFF = 3.0


def _graph(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=DT)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = (src != dst) & ((pos[:, None] - pos[None]).norm(dim=-1) < CUTOFF)
    return pos, torch.stack([src[keep], dst[keep]]), torch.tensor([0, 1, 2, 0, 1, 2][:n])


def _edges(pos, edge_index, lmax):
    vec = pos[edge_index[1]] - pos[edge_index[0]]
    r = vec.norm(dim=-1)
    return o3.spherical_harmonics(lmax, vec), BesselBasis(CUTOFF, 8)(r), PolynomialCutoff(CUTOFF)(r)


def _block(backend: str, product: bool, irreps_in="4x0e + 4x1o", lmax=2, gate=True) -> Interaction:
    torch.manual_seed(0)
    message = natural_irreps(4, lmax)
    prod = SymmetricContraction(message, "4x0e + 4x1o", 2, 3) if product else None
    if prod is not None and backend != "cg":
        from liequiv.nn import GauntContraction

        prod = GauntContraction(message, "4x0e + 4x1o", 2, 3)
    block = Interaction(irreps_in, "4x0e + 4x1o", lmax, message, 8, 3, radial_hidden=(16,), avg_num_neighbors=2.5,
                        backend=backend, product=prod, gate=gate)
    return block.to(DT)


def test_update_equals_the_per_node_sum() -> None:
    block = _block("cg", product=False, gate=False)
    pos, edge_index, species = _graph()
    sh, basis, env = _edges(pos, edge_index, 2)
    attrs = torch.nn.functional.one_hot(species, 3).to(DT)
    h = torch.randn(len(pos), block.irreps_in.dim, dtype=DT)
    out = block(h, attrs, species, edge_index, sh, basis, env)
    up = block.linear_up(h)
    for i in range(len(pos)):
        m = torch.zeros(block.tp.irreps_out.dim, dtype=DT)
        for e in range(edge_index.shape[1]):
            j, k = edge_index[:, e].tolist()
            if k == i:  # an edge j -> i carries h_j and Y(x_i - x_j)
                m += block.tp(up[j], sh[e], block.radial(basis[e]) * env[e])
        expected = block.linear_out(m / 2.5) + block.self_connection(h[i], attrs[i])
        assert torch.allclose(out[i], expected, atol=1e-12)


@pytest.mark.parametrize("backend", ["cg", "gaunt_grid", "gaunt_fourier"])
@pytest.mark.parametrize("product", [False, True])
def test_equivariance(backend: str, product: bool) -> None:
    block = _block(backend, product)
    pos, edge_index, species = _graph()
    attrs = torch.nn.functional.one_hot(species, 3).to(DT)
    h = torch.randn(len(pos), block.irreps_in.dim, dtype=DT)
    out = block(h, attrs, species, edge_index, *_edges(pos, edge_index, 2))
    assert out.abs().max() > 1e-3
    for seed in range(3):
        q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)).Q
        moved = block(h @ block.irreps_in.D_from_matrix(q).T, attrs, species, edge_index,
                      *_edges(pos @ q.T, edge_index, 2))
        assert (moved - out @ block.irreps_out.D_from_matrix(q).T).abs().max() < 1e-10


@pytest.mark.parametrize("backend", ["gaunt_grid", "gaunt_fourier"])
def test_gaunt_message_is_cg_with_factorized_path_weights(backend: str) -> None:
    block = _block(backend, product=False, irreps_in="3x0e + 3x1o + 3x2e")
    tp = block.tp
    cg = o3.TensorProduct(tp.irreps_in1, tp.irreps_in2, tp.irreps_out, connection="uvu", weights="per_sample")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, tp.irreps_in1.dim, generator=g, dtype=DT)
    y = torch.randn(5, tp.irreps_in2.dim, generator=g, dtype=DT)
    s_in = torch.randn(5, 3, tp.irreps_in1.lmax + 1, generator=g, dtype=DT)
    s_out = torch.randn(5, 3, tp.irreps_out.lmax + 1, generator=g, dtype=DT)
    gaunt = tp(x * s_in.flatten(1)[:, block.scale_in], y) * s_out.flatten(1)[:, block.scale_out]
    weights = []
    for ins in cg.instructions:
        l1, l2, l3 = (irreps[i].ir.l for irreps, i in ((tp.irreps_in1, ins.i_in1), (tp.irreps_in2, ins.i_in2),
                                                         (tp.irreps_out, ins.i_out)))
        weights.append(gaunt_path_factor(l1, l2, l3) * s_in[:, :, l1] * s_out[:, :, l3])  # [Z, C] (v = 1)
    assert torch.allclose(gaunt, cg(x, y, torch.cat(weights, 1)), atol=1e-12)


def test_bad_backend() -> None:
    with pytest.raises(ValueError, match="backend"):
        Interaction("4x0e", "4x0e", 1, "4x0e + 4x1o", 8, 1, backend="e3nn")


@pytest.mark.parametrize("backend", ["cg", "gaunt_grid"])
def test_edge_chunks_change_nothing(monkeypatch, backend: str) -> None:
    """Messages computed a few edges at a time (as for large structures) give the same output, input gradients and
    second derivatives (forces in training) as all edges at once."""
    from liequiv.nn import interaction

    block = _block(backend, product=True)
    pos, edge_index, species = _graph(6, seed=2)
    attrs = torch.nn.functional.one_hot(species, 3).to(DT)
    h0 = torch.randn(len(pos), block.irreps_in.dim, dtype=DT)

    def run():
        p, h = pos.clone().requires_grad_(), h0.clone().requires_grad_()
        out = block(h, attrs, species, edge_index, *_edges(p, edge_index, 2))
        gp, gh = torch.autograd.grad(out.square().sum(), (p, h), create_graph=True)
        second = torch.autograd.grad(gp.square().sum(), [*block.parameters(), h])
        return [out, gp, gh, *second]

    whole = run()
    row_bytes = block.tp.irreps_out.dim * 8
    monkeypatch.setattr(interaction, "MESSAGE_CHUNK_BYTES", 3 * row_bytes)  # 3 edges a chunk
    assert edge_index.shape[1] > 6
    chunked = run()
    for a, b in zip(chunked, whole):
        assert (a - b).abs().max() < 1e-12 * (1 + b.abs().max())
