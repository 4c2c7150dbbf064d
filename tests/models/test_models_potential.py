"""The tensor-product potential: E(3) x S_n invariance of energies and equivariance of forces (the checker), forces
against finite differences, smoothness at the cutoff, statistics, batching, bad input."""

from __future__ import annotations

import pytest
import torch

from liequiv.models import TensorProductPotential
from liequiv.symmetry import check_equivariance

DT = torch.float64
ELEMENTS = (1, 6, 8)


def _model(backend: str = "cg", correlation: int = 2, **kwargs) -> TensorProductPotential:
    torch.manual_seed(0)
    kwargs = {"channels": 4, "lmax": 2, "layers": 2, "cutoff": 3.5, "radial_hidden": (16,), **kwargs}
    return TensorProductPotential(ELEMENTS, tp_backend=backend, correlation=correlation, **kwargs).to(DT)


def _molecule(n: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=DT) * 1.2
    numbers = torch.tensor(ELEMENTS * n)[:n]
    return numbers, pos


def _edges(pos: torch.Tensor, cutoff: float) -> torch.Tensor:
    """All ordered pairs within the cutoff (a test-only O(N²) search)."""
    n = len(pos)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = (i != j) & ((pos[:, None] - pos[None]).norm(dim=-1) < cutoff)
    return torch.stack([i[keep], j[keep]])


@pytest.mark.parametrize("backend", ["cg", "gaunt_grid", "gaunt_fourier"])
@pytest.mark.parametrize("correlation", [1, 3])
def test_energy_invariant_forces_equivariant(backend: str, correlation: int) -> None:
    model = _model(backend, correlation).eval()
    numbers, pos = _molecule()
    edge_index = _edges(pos, 10.0)  # a complete graph: the neighbourhood itself must not depend on the frame

    def energy_and_forces(pos, numbers, edge_index):
        with torch.enable_grad():
            out = model(numbers, pos, edge_index)
        return out["energy"].detach(), out["forces"].detach()

    report = check_equivariance(energy_and_forces, (pos, numbers, edge_index), "E(3) x S_n",
                                ["pos, perm(0)", "perm(0)", "index"], ["scalar", "1o, perm(0)"])
    assert report.passed, report
    _, forces = energy_and_forces(pos, numbers, edge_index)
    assert forces.abs().max() > 1e-4  # not trivially equivariant


def test_forces_are_minus_the_gradient() -> None:
    model = _model("cg", 3).eval()
    numbers, pos = _molecule(5, seed=1)
    edge_index = _edges(pos, 10.0)
    forces = model(numbers, pos, edge_index)["forces"]
    eps = 1e-5
    for atom, axis in [(0, 0), (2, 1), (4, 2)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += eps
        minus[atom, axis] -= eps
        fd = (model(numbers, plus, edge_index)["energy"] - model(numbers, minus, edge_index)["energy"]) / (2 * eps)
        assert abs(float(fd.detach()) + float(forces[atom, axis])) < 1e-7


def test_smooth_at_the_cutoff_and_isolated_atoms() -> None:
    model = _model("gaunt_grid", 2).eval()
    numbers = torch.tensor([6, 8])

    def energy(r: float) -> torch.Tensor:
        pos = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=DT)
        return model(numbers, pos, _edges(pos, model.cutoff))

    inside, outside = energy(model.cutoff - 1e-4), energy(model.cutoff + 1e-4)
    assert abs(float((inside["energy"] - outside["energy"]).detach())) < 1e-9
    assert inside["forces"].abs().max() < 1e-9
    assert outside["forces"].abs().max() == 0  # no edge left: two isolated atoms
    assert torch.isfinite(outside["energy"]).all()


def test_statistics_batching_and_dtypes() -> None:
    model = _model("cg", 2).eval()
    numbers, pos = _molecule(6)
    edges = _edges(pos, model.cutoff)
    base = model(numbers, pos, edges)["energy"]
    model.set_statistics(reference_energies=[-10.0, -20.0, -30.0], scale=2.0, shift=0.5)
    counts = torch.tensor([float((numbers == z).sum()) for z in ELEMENTS], dtype=DT)
    out = model(numbers, pos, edges)
    expected = 2.0 * base + 0.5 * len(numbers) + counts @ torch.tensor([-10.0, -20.0, -30.0], dtype=DT)
    assert torch.allclose(out["energy"], expected, atol=1e-10)
    # two structures in one batch give the energies and forces of each alone
    numbers2, pos2 = _molecule(4, seed=5)
    edges2 = _edges(pos2, model.cutoff)
    both = model(torch.cat([numbers, numbers2]), torch.cat([pos, pos2]), torch.cat([edges, edges2 + 6], 1),
                 torch.tensor([0] * 6 + [1] * 4))
    alone = model(numbers2, pos2, edges2)
    assert torch.allclose(both["energy"], torch.cat([out["energy"], alone["energy"]]), atol=1e-10)
    assert torch.allclose(both["forces"][6:], alone["forces"], atol=1e-10)
    # float32 follows float64
    out32 = model.float()(numbers, pos.float(), edges)
    assert torch.allclose(out32["energy"].double(), out["energy"], rtol=1e-5)
    assert (out32["forces"].double() - out["forces"]).abs().max() < 1e-4


def test_training_mode_keeps_the_graph_of_the_forces() -> None:
    model = _model("cg", 2).train()
    numbers, pos = _molecule(5)
    out = model(numbers, pos, _edges(pos, model.cutoff))
    out["forces"].square().sum().backward()
    grads = [p.grad for p in model.interactions[0].radial.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert max(float(g.abs().max()) for g in grads) > 0


def test_bad_input() -> None:
    model = _model("cg", 1)
    numbers, pos = _molecule(4)
    edges = _edges(pos, model.cutoff)
    with pytest.raises(ValueError, match=r"unknown element\(s\) \[7\]; this model knows \[1, 6, 8\]"):
        model(torch.tensor([1, 6, 7, 8]), pos, edges)
    bad = pos.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model(numbers, bad, edges)
    close = pos.clone()
    close[1] = close[0] + 0.05
    with pytest.raises(ValueError, match=r"closer than 0\.1"):
        model(numbers, close, _edges(close, model.cutoff))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        model(numbers, pos, edges)
    with pytest.raises(ValueError, match="tp_backend"):
        TensorProductPotential(ELEMENTS, tp_backend="e3nn")
    with pytest.raises(ValueError, match="elements"):
        TensorProductPotential([1, 1])


def test_forces_under_no_grad() -> None:
    """Forces need a graph: the model builds it even inside torch.no_grad() (as evaluation loops use)."""
    model = _model("cg", 1).eval()
    numbers, pos = _molecule(5)
    edges = _edges(pos, model.cutoff)
    expected = model(numbers, pos, edges)["forces"]
    with torch.no_grad():
        out = model(numbers, pos, edges)
    assert torch.equal(out["forces"], expected)
