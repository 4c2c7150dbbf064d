"""The CG backend's plans: the output layout each strategy registers places every output column of every path once."""

import random

import pytest
import torch

from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import ChannelwiseTensorProduct, TensorProduct


def _random_products(seed: int, n: int) -> list[TensorProduct]:
    rng = random.Random(seed)

    def irreps(maxmul: int, k: int) -> Irreps:
        return Irreps([(rng.randint(1, maxmul), (rng.randint(0, 3), rng.choice((1, -1)))) for _ in range(k)])

    out = []
    while len(out) < n:
        conn = rng.choice(["uvw", "uvu", "uuu"])
        i1, i2 = irreps(4, rng.randint(1, 4)), irreps(rng.choice((1, 3)), rng.randint(1, 3))
        if conn == "uuu":
            i2 = Irreps([(i1[0].mul, mi.ir) for mi in i2])
            i1 = Irreps([(i1[0].mul, mi.ir) for mi in i1])
        irs = [ir for a in i1 for b in i2 for ir in a.ir * b.ir]
        mul_out = [rng.randint(1, 4) if conn == "uvw" else i1[0].mul for _ in irs]
        io = Irreps([(m, ir) for m, ir in zip(mul_out, irs) if rng.random() < 0.7] or [(mul_out[0], irs[0])])
        try:
            out.append(TensorProduct(i1, i2, io, connection=conn, weights="per_sample"))
        except ValueError:  # no path reaches a block of the wanted shape (uvu/uuu multiplicities)
            continue
    return out


PRODUCTS = [
    *_random_products(0, 12),
    *[ChannelwiseTensorProduct(Irreps([(8, (l, (-1) ** l)) for l in range(L + 1)]), Irreps.spherical_harmonics(L),
                               lmax_out=L) for L in (1, 2, 4)],
    ChannelwiseTensorProduct("2x0e+2x1o+3x2e", "0e+1o+2e", "2x0e+2x1o+2x1e+3x2e+3x1o"),  # summed paths
    TensorProduct("2x1o+1x2e", "2x1o", "2x1o+1x2e+2x0e+1x1e+3x0o", connection="uvu"),  # an output no path reaches
]


def _reached(tp: TensorProduct) -> torch.Tensor:
    """Independently of the plans: the output columns some path writes, ``bool [d_out]``."""
    so = tp.irreps_out.slices()
    reached = torch.zeros(tp.irreps_out.dim, dtype=torch.bool)
    for ins in tp.instructions:
        if 0 not in ins.path_shape:
            reached[so[ins.i_out]] = True
    return reached


@pytest.mark.parametrize("tp", PRODUCTS, ids=lambda tp: f"{tp.irreps_in1}|{tp.irreps_in2}|{tp.irreps_out}")
def test_output_layout_places_every_column_once(tp):
    b, reached = tp.backend, _reached(tp)
    d_out = tp.irreps_out.dim
    if b._dense is not None:
        written = b.dense_mask.bool()
        assert torch.equal(written, reached)
        perm = b.dense_perm[written]
        assert perm.unique().numel() == perm.numel() == b.dense_inv.numel()  # a bijection onto the result columns
        assert torch.equal(b.dense_inv[perm], torch.nonzero(written).reshape(-1))
        assert sum(b._dense.u * kg for _, kg in b._dense.groups) == perm.numel()
        return
    assembly = b._paths.assembly
    if assembly.segments is not None:  # classes in output order
        widths = [a if c < 0 else 0 for c, a in assembly.segments]
        assert sum(widths) == int((~reached).sum())
        assert all(sum(split) == cl.n_paths for split, cl in zip(assembly.class_split, b._paths.classes))
    elif assembly.permute:
        fwd, bwd = b.out_fwd, b.out_bwd
        n_y = bwd.numel() - assembly.pad
        assert torch.equal(fwd[~reached], torch.full_like(fwd[~reached], n_y))  # the appended zero column
        assert assembly.pad == bool((~reached).any())
        assert sorted(fwd[reached].tolist()) == list(range(n_y))  # every result column read exactly once
        assert torch.equal(bwd[fwd[reached]], torch.arange(d_out)[reached])
    else:  # paths summed into shared blocks
        assert torch.equal(torch.bincount(b.out_index, minlength=d_out) > 0, reached)
