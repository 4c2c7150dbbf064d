"""The cuEquivariance backend (``backend="cueq"``, its plain-torch method on the CPU) against the ``cg`` backend: same
values, gradients and second derivatives for the same weights; a potential with ``tp_backend="cueq"`` loads a ``cg``
model's weights and gives its energies and forces."""

import pytest
import torch

from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import ChannelwiseTensorProduct, TensorProduct

pytest.importorskip("cuequivariance_torch")

F64 = torch.float64

MAKERS = {
    "message_L3": lambda b, w: ChannelwiseTensorProduct("5x0e+5x1o+5x2e", Irreps.spherical_harmonics(3), lmax_out=3,
                                                        weights=w, backend=b),
    "mixed_muls_odd": lambda b, w: ChannelwiseTensorProduct("3x0o+2x1e+4x2o", "0e+1o+2e", weights=w, backend=b),
    "summed_blocks": lambda b, w: ChannelwiseTensorProduct("2x0e+2x1o", "0e+1o", "2x0e+2x1o+2x1e", weights=w,
                                                           backend=b),
    "unweighted": lambda b, w: ChannelwiseTensorProduct("3x0e+3x1o", "0e+1o", lmax_out=1, weights=None, backend=b),
}


def _pair(name: str, weights: str):
    torch.manual_seed(0)
    return MAKERS[name]("cg", weights).to(F64), MAKERS[name]("cueq", weights).to(F64)


def _inputs(tp, batch: int, weights: str):
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(batch, tp.irreps_in1.dim, generator=g, dtype=F64, requires_grad=True)
    x2 = torch.randn(batch, tp.irreps_in2.dim, generator=g, dtype=F64, requires_grad=True)
    if not tp.weight_numel:
        return [x1, x2]
    w = torch.randn(*((batch,) if weights == "per_sample" else ()), tp.weight_numel, generator=g, dtype=F64)
    return [x1, x2, w.requires_grad_()]


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("weights", ["per_sample", "shared"])
def test_values_and_derivatives_equal_cg(name: str, weights: str) -> None:
    cg, cueq = _pair(name, weights)
    assert cueq.weight_numel == cg.weight_numel
    inputs = _inputs(cg, 9, weights)
    probes = [torch.randn(t.shape, dtype=F64, generator=torch.Generator().manual_seed(2)) for t in inputs]

    def values(tp):
        out = tp(*inputs)
        grads = torch.autograd.grad(out.square().sum(), inputs, create_graph=True)
        second = torch.autograd.grad(sum((g * p).sum() for g, p in zip(grads, probes)), inputs)
        return [out, *grads, *second]

    got, want = values(cueq), values(cg)
    assert want[0].abs().max() > 0.1
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-12 * (1 + b.abs().max().item())


def test_float32_and_empty_batch() -> None:
    cg, cueq = _pair("message_L3", "per_sample")
    inputs = [t.detach().float() for t in _inputs(cg, 6, "per_sample")]
    torch.testing.assert_close(cueq.float()(*inputs), cg.float()(*inputs), atol=1e-5, rtol=1e-5)
    empty = [t[:0] for t in inputs]
    assert cueq(*empty).shape == (0, cueq.irreps_out.dim)


def test_rejects_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="channel-wise"):
        TensorProduct("2x1o", "1o", "2x1e", connection="uvw", backend="cueq")
    with pytest.raises(ValueError, match="channel-wise"):
        ChannelwiseTensorProduct("2x0e", "2x1o", backend="cueq")
    with pytest.raises(ValueError, match="every path weighted or none"):
        TensorProduct("2x0e", "0e+1o", "2x0e+2x1o", [(0, 0, 0, "uvu", True), (0, 1, 1, "uvu", False)],
                      backend="cueq")


def test_potential_with_cueq_equals_cg() -> None:
    from liequiv.models import TensorProductPotential

    kwargs = {"channels": 4, "lmax": 2, "layers": 2, "correlation": 2, "cutoff": 3.5, "radial_hidden": (8,)}
    cg = TensorProductPotential((1, 6, 8), tp_backend="cg", **kwargs).to(F64)
    cueq = TensorProductPotential((1, 6, 8), tp_backend="cueq", **kwargs).to(F64)
    cueq.load_state_dict(cg.state_dict())
    g = torch.Generator().manual_seed(3)
    pos = torch.randn(6, 3, generator=g, dtype=F64) * 1.2
    numbers = torch.tensor([1, 6, 8, 1, 6, 8])
    edge_index = torch.tensor([[i, j] for i in range(6) for j in range(6) if i != j]).T
    a, b = cg(numbers, pos, edge_index), cueq(numbers, pos, edge_index)
    assert "cueq" in repr(cueq)
    for key in ("energy", "forces"):
        assert (a[key] - b[key]).abs().max() < 1e-12 * (1 + a[key].abs().max())
