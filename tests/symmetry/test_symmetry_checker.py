"""The equivariance checker: it passes known-equivariant functions and flags known-broken ones."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3 as e3nn_o3

from liequiv.groups import SE3, SO3
from liequiv.symmetry import (
    FieldType,
    Group,
    GroupElement,
    as_field_type,
    as_group,
    assert_equivariant,
    check_equivariance,
    rotations_about,
)

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _points(n: int = 7, dtype: torch.dtype = DT, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, generator=_gen(seed), dtype=dtype)


def _cubic(v: torch.Tensor) -> torch.Tensor:
    return v * (v * v).sum(-1, keepdim=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equivariant_vector_map_passes_o3(dtype: torch.dtype) -> None:
    report = assert_equivariant(_cubic, _points(dtype=dtype), "O(3)", "1o", "1o", generator=_gen())
    assert report.max_abs_error < (1e-10 if dtype == DT else 1e-5)
    assert report.dtype == dtype and report.passed


def test_cross_product_is_so3_but_not_o3_equivariant_as_a_vector() -> None:
    a, b = _points(seed=1), _points(seed=2)
    assert check_equivariance(torch.linalg.cross, (a, b), "SO(3)", ["1o", "1o"], "1o", generator=_gen()).passed
    report = check_equivariance(torch.linalg.cross, (a, b), "O(3)", ["1o", "1o"], "1o", generator=_gen())
    assert not report.passed and report.max_rel_error > 0.5  # flips sign under improper elements
    assert "NOT equivariant" in str(report)
    assert check_equivariance(torch.linalg.cross, (a, b), "O(3)", ["1o", "1o"], "1e", generator=_gen()).passed


def test_pseudoscalar_triple_product() -> None:
    a, b, c = _points(seed=1), _points(seed=2), _points(seed=3)

    def triple(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (torch.linalg.cross(a, b) * c).sum(-1, keepdim=True)

    assert_equivariant(triple, (a, b, c), "O(3)", ["1o"] * 3, "0o", generator=_gen())
    assert_equivariant(triple, (a, b, c), "SO(3)", ["1o"] * 3, "scalar", generator=_gen())
    with pytest.raises(AssertionError, match="NOT equivariant"):
        assert_equivariant(triple, (a, b, c), "O(3)", ["1o"] * 3, "scalar", generator=_gen())


def test_broken_only_by_translation() -> None:
    """f(x) = x·|x| is O(3)-equivariant as positions but does not commute with translations."""
    x = _points()

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return x * torch.linalg.vector_norm(x, dim=-1, keepdim=True)

    assert check_equivariance(scaled, x, "O(3)", "pos", "pos", generator=_gen()).passed
    report = check_equivariance(scaled, x, "E(3)", "pos", "pos", generator=_gen())
    assert not report.passed and report.max_abs_error > 1e-2

    def recentred(x: torch.Tensor) -> torch.Tensor:  # x - c + c is E(3)-equivariant; x - c is not a position
        centroid = x.mean(0, keepdim=True)
        return _cubic(x - centroid) + centroid

    assert_equivariant(recentred, x, "E(3)", "pos", "pos", generator=_gen())
    assert not check_equivariance(lambda x: x - x.mean(0), x, "E(3)", "pos", "pos", generator=_gen()).passed
    assert_equivariant(lambda x: x - x.mean(0), x, "E(3)", "pos", "1o", generator=_gen())


def test_irreps_types_against_e3nn_spherical_harmonics() -> None:
    """e3nn builds its Wigner matrices from float32 constants: its D_from_matrix is good to ~1e-7 only."""
    x = _points()
    irreps = e3nn_o3.Irreps("0e + 1o + 2e + 3o")

    def harmonics(v: torch.Tensor) -> torch.Tensor:
        return e3nn_o3.spherical_harmonics(irreps, v, normalize=True)

    assert_equivariant(harmonics, x, "O(3)", "1o", irreps, generator=_gen(), tolerance=1e-5)
    wrong_parity = e3nn_o3.Irreps("0e + 1o + 2e + 3e")
    assert check_equivariance(harmonics, x, "O(3)", "1o", wrong_parity, generator=_gen()).max_rel_error > 0.1
    assert check_equivariance(harmonics, x, "SO(3)", "1o", wrong_parity, generator=_gen(), tolerance=1e-5).passed
    # an irreps input: the 1o block of a "2x0e + 1o" feature is a vector
    feats = torch.randn(7, 5, generator=_gen(4), dtype=DT)
    assert_equivariant(lambda f: _cubic(f[:, 2:]), feats, "O(3)", e3nn_o3.Irreps("2x0e + 1o"), "1o", generator=_gen(),
                       tolerance=1e-5)


def test_irreps_strings_with_liequiv_irreps() -> None:
    irreps_module = pytest.importorskip("liequiv.o3.irreps")
    irreps = irreps_module.Irreps("2x0e + 1o + 1e")
    feats = torch.randn(7, irreps.dim, generator=_gen(4), dtype=DT)
    assert as_field_type("2x0e + 1o + 1e, perm(0)").node_dim == 0

    def mix(f: torch.Tensor) -> torch.Tensor:  # scalars times the vector, plus the pseudovector x vector
        return f[:, :1] * f[:, 2:5] + torch.linalg.cross(f[:, 5:8], f[:, 2:5])

    assert_equivariant(mix, feats, "O(3) x S_n", "2x0e + 1o + 1e, perm(0)", "1o, perm(0)", generator=_gen())
    assert not check_equivariance(mix, feats, "O(3)", "2x0e + 1o + 1o", "1o", generator=_gen()).passed


def _message_passing(pos: torch.Tensor, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    src, dst = edge_index
    rel = pos[src] - pos[dst]
    weight = h[src, :1] * torch.exp(-(rel * rel).sum(-1, keepdim=True))
    return pos + torch.zeros_like(pos).index_add(0, dst, weight * rel)


def test_graph_function_under_e3_times_permutations() -> None:
    pos, h = _points(6), torch.randn(6, 2, generator=_gen(5), dtype=DT)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 2], [1, 2, 3, 4, 5, 0, 3, 5]])
    types = ["pos, perm(0)", "perm(0)", "index"]
    report = assert_equivariant(_message_passing, (pos, h, edge_index), "E(3) x S_n", types, "pos, perm(0)",
                                generator=_gen())
    assert report.group == "E(3) x S_n"
    # forgetting that edge_index holds node indices breaks permutation equivariance, not E(3)
    wrong = ["pos, perm(0)", "perm(0)", "scalar"]
    assert not check_equivariance(_message_passing, (pos, h, edge_index), "S_n", wrong, "pos, perm(0)",
                                  generator=_gen()).passed
    assert check_equivariance(_message_passing, (pos, h, edge_index), "E(3)", wrong, "pos, perm(0)",
                              generator=_gen()).passed


def test_positional_encoding_breaks_permutations() -> None:
    x = _points(5)
    order = torch.arange(5, dtype=DT)[:, None]
    assert_equivariant(lambda x: x * 2.0, x, "S_n", "perm(0)", "perm(0)", generator=_gen())
    assert not check_equivariance(lambda x: x + order, x, "S_n", "perm(0)", "perm(0)", generator=_gen()).passed
    assert_equivariant(lambda x: x.sum(0), x, "O(3) x S_n", "1o, perm(0)", "1o", generator=_gen())


def test_subequivariance_about_an_axis() -> None:
    """Adding gravity along z is equivariant under rotations about z only."""
    x = _points()
    gravity = torch.tensor([0.0, 0.0, -9.8], dtype=DT)
    assert_equivariant(lambda v: v + gravity, x, "SO(2)", "1o", "1o", generator=_gen())
    assert_equivariant(lambda v: v + gravity, x, "O(2) x T(3)", "pos", "pos", generator=_gen())
    assert not check_equivariance(lambda v: v + gravity, x, "SO(3)", "1o", "1o", generator=_gen()).passed
    assert not check_equivariance(lambda v: v + gravity, x, rotations_about((1.0, 0.0, 0.0)), "1o", "1o",
                                  generator=_gen()).passed
    g = rotations_about((1.0, 1.0, 0.0), reflections=True).sample(4, generator=_gen())
    axis = torch.tensor([1.0, 1.0, 0.0]) / 2**0.5
    assert torch.allclose(g.rotation @ axis, axis.expand(4, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(g.rotation), torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-6)


def test_group_elements_left_and_right_actions() -> None:
    rot = SO3.random((5,), generator=_gen(1), dtype=DT).as_matrix()
    fixed = SO3.random((), generator=_gen(2), dtype=DT).as_matrix()
    assert_equivariant(lambda r: r @ fixed, rot, "O(3)", "element", "element", generator=_gen())
    assert not check_equivariance(lambda r: fixed @ r, rot, "SO(3)", "element", "element", generator=_gen()).passed
    assert_equivariant(lambda r: fixed @ r, rot, "O(3)", "element_right", "element_right", generator=_gen())
    # SE3 objects and homogeneous matrices under SE(3)
    poses, offset = SE3.random((4,), generator=_gen(3), dtype=DT), SE3.random((4,), generator=_gen(4), dtype=DT)
    assert_equivariant(lambda t: t.compose(offset), poses, "SE(3)", "element", "element", generator=_gen())
    assert_equivariant(lambda m: m @ offset.as_matrix(), poses.as_matrix(), "E(3)", "element", "element",
                       generator=_gen())
    assert_equivariant(lambda t: t.act(torch.ones(3, dtype=DT)), poses, "SE(3)", "element", "pos", generator=_gen())
    with pytest.raises(ValueError, match="cannot be reflected"):
        check_equivariance(lambda t: t, poses, "E(3)", "element", "element", generator=_gen())


def test_per_node_elements_are_left_aligned() -> None:
    """A batched element ``[N, 3, 3]`` acts on field ``[N, C, 3]`` node by node."""
    rot = SO3.random((4,), generator=_gen(1), dtype=DT).as_matrix()
    shift = torch.randn(4, 3, generator=_gen(2), dtype=DT)
    field = torch.randn(4, 2, 3, generator=_gen(3), dtype=DT)
    g = GroupElement(rot, shift)
    expected = torch.einsum("nij,ncj->nci", rot, field) + shift[:, None]
    assert torch.allclose(as_field_type("pos").transform(field, g), expected, atol=1e-14)
    det = torch.linalg.det(-rot)
    pseudo = as_field_type("1e").transform(field, GroupElement(-rot, shift))
    assert torch.allclose(pseudo, det[:, None, None] * torch.einsum("nij,ncj->nci", -rot, field), atol=1e-14)


def test_parsing_and_bad_input() -> None:
    assert str(as_group("E(3) x S_n")) == "E(3) x S_n"
    assert as_group("SO(3) x T(3)") == as_group("SE(3)")
    assert as_group("E(3)") * "S_n" == Group("O(3)", translations=True, permutations=True)
    assert as_field_type("1o, perm(0)") == FieldType("vector", node_dim=0)
    assert as_field_type("perm(1)") == FieldType("scalar", node_dim=1)
    with pytest.raises(ValueError, match="unknown group"):
        as_group("SU(2)")
    with pytest.raises(ValueError, match="product of two rotation groups"):
        as_group("SO(3) x O(2)")
    with pytest.raises(ValueError, match="field type"):
        as_field_type("vectorish")
    with pytest.raises(TypeError, match="field type"):
        as_field_type(3)
    x = _points()
    with pytest.raises(ValueError, match="in_types"):
        check_equivariance(_cubic, x, "O(3)", ["1o", "1o"], "1o")
    with pytest.raises(ValueError, match="node dimension"):
        check_equivariance(_cubic, x, "S_n", "1o", "1o")
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\]"):
        check_equivariance(lambda v: v, torch.ones(4, 2, dtype=DT), "O(3)", "1o", "1o")
    with pytest.raises(ValueError, match="n_samples"):
        check_equivariance(_cubic, x, "O(3)", "1o", "1o", n_samples=0)


def test_value_types_are_reexported_from_the_checker() -> None:
    """Groups, elements and field types live in their own modules; the old import path still serves them."""
    from liequiv.symmetry import checker, elements, fields, groups

    for module, names in ((groups, ["Group", "ROTATION_KINDS", "as_group", "rotations_about"]),
                          (elements, ["GroupElement", "apply_matrix"]),
                          (fields, ["FieldType", "FIELD_KINDS", "as_field_type", "as_field_types"])):
        for name in names:
            assert getattr(checker, name) is getattr(module, name), name
