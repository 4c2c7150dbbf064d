"""Many-body product blocks: coupling bases against e3nn, the contraction against its defining formula, the Gaunt
block against repeated Gaunt products, O(3) equivariance, gradients, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

from liequiv import o3
from liequiv.nn.many_body import GauntContraction, SymmetricContraction, symmetric_coupling_basis

DT = torch.float64
IRREPS = o3.Irreps("0e + 1o + 2e")


def _rotation(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=DT)).Q
    return q * torch.sign(torch.linalg.det(q)) * (-1) ** seed  # odd seeds: improper


@pytest.mark.parametrize("nu", [2, 3])
def test_coupling_basis_counts_match_e3nn(nu: int) -> None:
    e3nn_o3 = pytest.importorskip("e3nn.o3")
    formula = "=".join("".join(p) for p in itertools.permutations("ijk"[:nu]))
    irreps = IRREPS if nu == 2 else o3.Irreps("0e + 1o + 1e")  # (e3nn's reduction is slow for dim 9^3)
    reference = e3nn_o3.ReducedTensorProducts(formula, i=str(irreps)).irreps_out
    for l in range(2 * nu + 1):
        for p in (1, -1):
            ir = o3.Irrep(l, p)
            expected = sum(mul for mul, ir_ref in reference if (ir_ref.l, ir_ref.p) == (l, p))
            assert symmetric_coupling_basis(irreps, ir, nu).shape[-1] == expected, ir


@pytest.mark.parametrize(("ir", "nu"), [("0e", 3), ("1o", 3), ("2e", 2), ("1e", 3)])
def test_coupling_basis_orthonormal_symmetric_equivariant(ir: str, nu: int) -> None:
    u = symmetric_coupling_basis(IRREPS, ir, nu)
    p = u.shape[-1]
    assert p > 0
    flat = u.reshape(-1, p)
    assert torch.allclose(flat.T @ flat, torch.eye(p, dtype=DT), atol=1e-12)
    for perm in itertools.permutations(range(nu)):
        assert torch.allclose(u.permute(*perm, nu, nu + 1), u, atol=1e-12)
    R = _rotation(1)
    d_in, d_out = IRREPS.D_from_matrix(R), o3.Irrep(ir).D_from_matrix(R)
    x = torch.randn(IRREPS.dim, dtype=DT)

    def apply(v):
        out = u
        for _ in range(nu):
            out = torch.tensordot(v, out, dims=([0], [0]))
        return out  # [2L+1, P]

    assert torch.allclose(apply(d_in @ x), d_out @ apply(x), atol=1e-12)


def _brute_force(block: SymmetricContraction, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """MACE's formula, literally: Σ_ν Σ_p W[z, p, c] Σ_{a_1..a_ν} U[a, M, p] A_{a_1} ⋯ A_{a_ν}, over all tuples."""
    c, ir_in = block.channels, block.ir_in
    a = torch.cat([x[:, sl].reshape(len(x), c, -1) for sl in block.irreps_in.slices()], -1)  # [N, C, d]
    outs = []
    for k, (_, ir) in enumerate(block.ir_out):
        w = block.weights[k]  # [E, P, C]
        total, start = 0, 0
        for nu in range(1, block.correlation + 1):
            u = symmetric_coupling_basis(ir_in, ir, nu)
            p = u.shape[-1]
            t = torch.tensordot(a, u, dims=([2], [0]))  # [N, C, d^(nu-1)..., M, P]
            for _ in range(nu - 1):
                t = (a.reshape(*a.shape, *[1] * (t.dim() - 3)) * t).sum(2)
            total = total + torch.einsum("ncmp,npc->ncm", t, w[species][:, start : start + p])
            start += p
        outs.append(total.reshape(len(x), -1))
    return torch.cat(outs, -1)


@pytest.mark.parametrize("correlation", [1, 2, 3])
def test_symmetric_contraction_equals_its_formula(correlation: int) -> None:
    torch.manual_seed(0)
    irreps_out = "3x0e + 3x1o + 3x1e" if correlation == 3 else "3x0e + 3x1o + 3x2e"  # 1e needs three factors
    block = SymmetricContraction("3x0e + 3x1o + 3x2e", irreps_out, correlation, 4).to(DT)
    x = torch.randn(7, block.irreps_in.dim, dtype=DT)
    species = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    assert torch.allclose(block(x, species), _brute_force(block, x, species), atol=1e-12)


def _gaunt_reference(block: GauntContraction, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """Pointwise powers by the library's two-signal Gaunt product, applied repeatedly."""
    c, d = block.channels, block.ir_in.dim
    lmax_in, lmax_out = block.ir_in.lmax, block.ir_out.lmax
    a = torch.cat([x[:, sl].reshape(len(x), c, -1) for sl in block.irreps_in.slices()], -1)  # [N, C, d]
    degree = torch.tensor([ir.l for _, ir in block.ir_in for _ in range(ir.dim)])
    out = 0
    for nu in range(1, block.correlation + 1):
        f = a * block.weight_in[species, nu - 1][:, :, degree] / d**0.5
        g = f
        for k in range(2, nu + 1):
            g = o3.gaunt_product_grid(g, f, k * lmax_in if k < nu else lmax_out)
        if nu == 1:
            g = g[..., : (lmax_out + 1) ** 2]
        scale = block.weight_out[species, nu - 1][:, :, torch.tensor([ir.l for _, ir in block.ir_out
                                                                      for _ in range(ir.dim)])]
        out = out + g * scale
    return torch.cat([out[:, :, ir.l**2 : (ir.l + 1) ** 2].reshape(len(x), -1) for _, ir in block.ir_out], -1)


@pytest.mark.parametrize("correlation", [1, 2, 3])
def test_gaunt_contraction_equals_repeated_gaunt_products(correlation: int) -> None:
    torch.manual_seed(1)
    block = GauntContraction("2x0e + 2x1o + 2x2e", "2x0e + 2x1o + 2x2e", correlation, 3).to(DT)
    with torch.no_grad():
        block.weight_in.normal_()
    x = torch.randn(5, block.irreps_in.dim, dtype=DT)
    species = torch.tensor([2, 0, 1, 2, 0])
    assert torch.allclose(block(x, species), _gaunt_reference(block, x, species), atol=1e-12)


@pytest.mark.parametrize("cls", [SymmetricContraction, GauntContraction])
def test_equivariance_and_gradients(cls) -> None:
    torch.manual_seed(2)
    block = cls("4x0e + 4x1o + 4x2e + 4x3o", "4x0e + 4x1o + 4x2e", 3, 2).to(DT)
    x = torch.randn(6, block.irreps_in.dim, dtype=DT, requires_grad=True)
    species = torch.tensor([0, 1, 1, 0, 1, 0])
    y = block(x, species)
    for seed in range(4):
        R = _rotation(seed)
        moved = block(x @ block.irreps_in.D_from_matrix(R).T, species)
        assert (moved - y @ block.irreps_out.D_from_matrix(R).T).abs().max() < 1e-10
    assert y.abs().max() > 1e-2
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(gg).all() and gg.abs().max() > 0
    # float32 agrees with float64 (the tables stay float64 through .float().double())
    y32 = block.float()(x.detach().float(), species)
    assert torch.allclose(y32.double(), y.detach(), atol=1e-4, rtol=1e-4)
    assert torch.equal(block.double()(x.detach(), species), y.detach())


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="C x"):
        SymmetricContraction("4x0e + 2x1o", "4x0e", 2, 1)
    with pytest.raises(ValueError, match="natural parity"):
        GauntContraction("4x0e + 4x1e", "4x0e", 2, 1)
    with pytest.raises(ValueError, match="correlation"):
        SymmetricContraction("4x0e", "4x0e", 0, 1)
    with pytest.raises(ValueError, match="contains 1e"):
        SymmetricContraction("4x0e + 4x1o", "4x0e + 4x1e", 2, 1)  # a pseudovector needs three vectors
    block = SymmetricContraction("2x0e + 2x1o", "2x0e", 2, 2)
    with pytest.raises(ValueError, match="species"):
        block(torch.randn(3, 8), torch.zeros(3))


@pytest.mark.parametrize("cls", [SymmetricContraction, GauntContraction])
def test_node_chunks_change_nothing(monkeypatch, cls) -> None:
    """Nodes a few at a time (as for large structures) give the same values and gradients as all at once."""
    from liequiv.nn import many_body

    torch.manual_seed(0)
    block = cls("3x0e + 3x1o + 3x2e", "3x0e + 3x1o", 3, 2).double()
    x0 = torch.randn(11, block.irreps_in.dim, dtype=torch.float64)
    species = torch.tensor([0, 1] * 5 + [1])

    def run():
        x = x0.clone().requires_grad_()
        y = block(x, species)
        return [y, *torch.autograd.grad(y.square().sum(), [x, *block.parameters()])]

    whole = run()
    monkeypatch.setattr(many_body, "NODE_CHUNK_BYTES", 4 * block._row_elements() * 8)  # 4 nodes a chunk
    chunked = run()
    for a, b in zip(chunked, whole):
        assert (a - b).abs().max() < 1e-12 * (1 + b.abs().max())
