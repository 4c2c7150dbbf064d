"""Irrep and Irreps against e3nn 0.6's behaviour."""

import math

import pytest
import torch
from e3nn import o3

from liequiv.groups.so3 import quaternion_multiply
from liequiv.o3.irreps import Irrep, Irreps, MulIr
from liequiv.o3.wigner import wigner_D

STRINGS = [
    "",
    "0e",
    "1o",
    "16x0e + 8x1o",
    "2x1e+3x0o+1e+0x2e",
    " 3 x 2y + 1x1y",
    "0x0e",
    "4x0o+4x0e+2x2o+1x2e+1x1o+1x1e",
    "1e + 1e + 1o + 0e + 1e",
    "10x3o+5x3e+2x0e+7x5o",
    "0e+0o+0e",
]
BAD = ["1", "x1o", "2x", "1o+", "+1o", "-1x1o", "1x-1o", "2x1x1o", "1q", "ae", "1.5x1o", "o", "1o 2e"]


def _same(ours: Irreps, ref: o3.Irreps) -> None:
    assert str(ours) == str(ref)
    assert [(m, (ir.l, ir.p)) for m, ir in ours] == [(m, (ir.l, ir.p)) for m, ir in ref]


@pytest.mark.parametrize("s", STRINGS)
def test_irreps_like_e3nn(s):
    ours, ref = Irreps(s), o3.Irreps(s)
    _same(ours, ref)
    assert (ours.dim, ours.num_irreps, ours.ls, len(ours)) == (ref.dim, ref.num_irreps, ref.ls, len(ref))
    assert ours.slices() == ref.slices()
    _same(ours.simplify(), ref.simplify())
    _same(ours.regroup(), ref.regroup())
    _same(ours.remove_zero_multiplicities(), ref.remove_zero_multiplicities())
    srt, p, inv = ours.sort()
    rs = ref.sort()
    _same(srt, rs.irreps)
    assert (p, inv) == (rs.p, rs.inv) and ours.sort().p == p
    for ir in ["0e", "0o", "1o", "1e", "2e", "3o"]:
        assert ours.count(ir) == ref.count(ir)
        assert (ir in ours) == (ir in ref)
    if ref.ls:
        assert ours.lmax == ref.lmax
    else:
        with pytest.raises(ValueError, match="lmax"):
            ours.lmax  # noqa: B018
    _same(ours * 3, ref * 3)
    _same(2 * ours, 2 * ref)
    _same(ours + "2x1o", ref + "2x1o")
    _same(ours[1:], ref[1:])
    _same(Irreps(str(ours)), ref)
    assert Irreps(ours) is ours


@pytest.mark.parametrize("s", BAD)
def test_malformed_strings(s):
    with pytest.raises(ValueError) as ref_err:
        o3.Irreps(s)
    with pytest.raises(ValueError, match=f'"{s}"' if "+" not in s else "Irreps") as err:
        Irreps(s)
    assert s in str(err.value) and "Irreps" in str(ref_err.value)


def test_filter_like_e3nn():
    s = "2x0e + 1o + 3x1e + 2e + 0x3o + 1o"
    ours, ref = Irreps(s), o3.Irreps(s)
    # e3nn's filter(keep=<Irreps or str>) compares against degrees (a bug); ours keeps those irreps
    assert ours.filter(keep="1o + 2e") == Irreps("1o + 2e + 0x3o + 1o").filter(drop="3o")
    assert str(ours.filter(keep="1o + 2e")) == "1x1o+1x2e+1x1o"
    assert str(ours.filter(drop="1o")) == "2x0e+3x1e+1x2e+0x3o"
    for kw in [
        dict(keep=["2e", "1o"]),
        dict(keep=["0e", "1o"]),
        dict(drop=["1o"]),
        dict(drop=[Irrep("1e")]),
        dict(lmax=1),
        dict(keep=lambda mi: mi.mul > 1),
        dict(drop=lambda mi: mi.ir.p == -1),
        {},
    ]:
        _same(ours.filter(**kw), ref.filter(**kw))
    _same(ours.filter(Irrep("1e")), ref.filter(o3.Irrep("1e")))
    with pytest.raises(ValueError, match="keep"):
        ours.filter(keep="0e", drop="1o")


def test_irrep_basics():
    for s in ["0e", "0o", "1o", "1e", "2e", "7o", "3y", "4y", " 2o "]:
        ours, ref = Irrep(s), o3.Irrep(s)
        assert (ours.l, ours.p, ours.dim, ours.is_scalar(), str(ours)) == (
            ref.l,
            ref.p,
            ref.dim,
            ref.is_scalar(),
            str(ref),
        )
    assert Irrep(1, -1) == Irrep("1o") == Irrep((1, -1)) == Irrep(Irrep("1o"))
    assert hash(Irrep("1o")) == hash(Irrep(1, -1))
    assert len({Irrep("1o"), Irrep(1, -1), Irrep("1e")}) == 2
    irs = [Irrep(l, p) for l in range(4) for p in (1, -1)]
    assert [str(x) for x in sorted(irs)] == [str(x) for x in sorted(o3.Irrep(l, p) for l in range(4) for p in (1, -1))]
    assert Irrep("0o") < Irrep("0e") < Irrep("1o")
    with pytest.raises(AttributeError):
        Irrep("1o").foo = 1
    assert [str(x) for x in Irrep.iterator(2)] == [str(x) for x in o3.Irrep.iterator(2)]


def test_irrep_product_and_arithmetic():
    for a in ["0e", "1o", "2e", "3o", "1e"]:
        for b in ["0o", "1o", "2e", "2o"]:
            assert [str(x) for x in Irrep(a) * Irrep(b)] == [str(x) for x in o3.Irrep(a) * o3.Irrep(b)]
    assert 3 * Irrep("1e") == Irreps("3x1e") == Irrep("1e") * 3
    assert str(Irrep("1e") + Irrep("0e")) == "1x1e+1x0e"
    assert Irreps("1e") + Irrep("0o") == Irreps("1e + 0o")


def test_constructors_and_errors():
    assert Irreps([(2, "1o"), "0e", Irrep("2e"), (1, (3, -1)), MulIr(4, Irrep("0o"))]) == Irreps(
        "2x1o + 0e + 2e + 3o + 4x0o"
    )
    assert Irreps(Irrep("1o")) == Irreps("1x1o")
    assert Irreps() == Irreps("") == Irreps([])
    assert Irreps("3x1o")[0].dim == 9 and Irreps("3x1o")[0].ir == Irrep("1o")
    with pytest.raises(ValueError, match="irrep"):
        Irreps([(-1, "1o")])
    with pytest.raises(TypeError, match="irreps"):
        Irreps(3)
    with pytest.raises(ValueError, match="l"):
        Irrep(-1, 1)
    with pytest.raises(ValueError, match="p"):
        Irrep(1, 0)
    with pytest.raises(ValueError, match='"2x"'):
        Irrep("2x")
    with pytest.raises(TypeError):
        Irreps("1o") * Irreps("1o")
    with pytest.raises(ValueError, match="lmax"):
        Irreps("").lmax  # noqa: B018
    with pytest.raises(AttributeError):
        Irreps("1o").foo = 1


def test_spherical_harmonics_irreps():
    for lmax in range(5):
        for p in (-1, 1):
            _same(Irreps.spherical_harmonics(lmax, p), o3.Irreps.spherical_harmonics(lmax, p))
    with pytest.raises(ValueError, match="lmax"):
        Irreps.spherical_harmonics(-1)


def test_D_from_matrix():
    torch.manual_seed(0)
    R = o3.rand_matrix(6, dtype=torch.float64)
    R = torch.cat([R, -R])  # proper and improper
    s = "2x0e + 0o + 1o + 1e + 2e + 2o + 3o"
    D = Irreps(s).D_from_matrix(R)
    assert D.shape == (12, Irreps(s).dim, Irreps(s).dim)
    # e3nn's wigner_D uses float32 constants
    torch.testing.assert_close(D, o3.Irreps(s).D_from_matrix(R), atol=1e-5, rtol=0)
    # exact identities: 1o is R itself, 1e is R / det R, blocks are D_l(R / det R) times the parity factor
    d = torch.linalg.det(R)[:, None, None]
    torch.testing.assert_close(Irrep("1o").D_from_matrix(R), R, atol=1e-12, rtol=0)
    torch.testing.assert_close(Irrep("1e").D_from_matrix(R), R * d, atol=1e-12, rtol=0)
    torch.testing.assert_close(Irrep("3o").D_from_matrix(R), wigner_D(3, R * d) * d, atol=1e-12, rtol=0)
    torch.testing.assert_close(Irrep("2e").D_from_matrix(R), wigner_D(2, R * d), atol=1e-12, rtol=0)
    # homomorphism on O(3), block structure
    A = Irreps(s).D_from_matrix(R[:6] @ R[6:])
    torch.testing.assert_close(A, D[:6] @ D[6:], atol=1e-10, rtol=0)
    sl = Irreps(s).slices()
    torch.testing.assert_close(D[:, sl[0], sl[0]], torch.eye(2, dtype=torch.float64).expand(12, 2, 2))
    assert D[:, sl[0], sl[1]].abs().max() == 0
    assert Irreps("").D_from_matrix(R).shape == (12, 0, 0)


@pytest.fixture
def float64_default():
    """e3nn builds its Wigner-D constants in the default dtype: float64 for an exact reference."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_D_from_angles_quaternion_axis_angle_match_e3nn(float64_default):
    g = torch.Generator().manual_seed(0)
    irreps = Irreps("2x0e + 1x0o + 1x1o + 1x1e + 1x2e + 1x3o")
    ref = o3.Irreps(str(irreps))
    alpha, beta, gamma = 2 * math.pi * torch.rand(3, 6, generator=g, dtype=torch.float64)
    k = torch.arange(6) % 2
    torch.testing.assert_close(
        irreps.D_from_angles(alpha, beta, gamma, k), ref.D_from_angles(alpha, beta, gamma, k), atol=1e-12, rtol=0
    )
    q = torch.nn.functional.normalize(torch.randn(2, 6, 4, generator=g, dtype=torch.float64), dim=-1)
    wxyz = torch.cat([q[..., 3:], q[..., :3]], -1)  # e3nn puts the scalar first
    torch.testing.assert_close(irreps.D_from_quaternion(q[0]), ref.D_from_quaternion(wxyz[0]), atol=1e-12, rtol=0)
    # a homomorphism: D(q1 q2) = D(q1) D(q2), improper elements included
    D12 = irreps.D_from_quaternion(quaternion_multiply(q[0], q[1]), k)
    torch.testing.assert_close(D12, irreps.D_from_quaternion(q[0], k) @ irreps.D_from_quaternion(q[1]), atol=1e-12,
                               rtol=0)
    axis = torch.nn.functional.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.linspace(0, math.pi, 6, dtype=torch.float64)
    torch.testing.assert_close(irreps.D_from_axis_angle(axis, angle), ref.D_from_axis_angle(axis, angle), atol=1e-12,
                               rtol=0)
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        irreps.D_from_quaternion(torch.randn(3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        Irrep("1o").D_from_axis_angle(torch.randn(4), 0.3)
