"""The shared input checks: error types, messages naming the argument, dtype-aware tolerances, accepted values."""

from __future__ import annotations

import math

import pytest
import torch

from liequiv.validation import (
    check_degree,
    check_homogeneous_rows,
    check_like,
    check_positive_det,
    check_positive_int,
    check_rotation_matrix,
    check_square,
    check_symmetric,
    check_tensor,
    check_unit_det,
    membership_tolerance,
)


def _rotation(angle: float, dtype: torch.dtype) -> torch.Tensor:
    """Rotation about z (float64 trig, then cast)."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64).to(dtype)


# ------------------------------------------------------------------ check_tensor


def test_check_tensor_accepts_and_returns_the_tensor() -> None:
    x = torch.zeros(5, 2, 3)
    assert check_tensor(x, "x", (2, 3)) is x
    assert check_tensor(x, "x", ()) is x
    assert check_tensor(torch.full((3,), float("nan")), "x", (3,), finite=False).shape == (3,)


def test_check_tensor_rejects_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"points must be a torch\.Tensor, got list"):
        check_tensor([1.0, 2.0, 3.0], "points", (3,))
    with pytest.raises(TypeError, match="points must have a floating dtype"):
        check_tensor(torch.zeros(3, dtype=torch.int64), "points", (3,))
    with pytest.raises(ValueError, match=r"points must have shape \[\.\.\., 3\], got \[4, 2\]"):
        check_tensor(torch.zeros(4, 2), "points", (3,))
    with pytest.raises(ValueError, match=r"points must have shape \[\.\.\., 2, 3\], got \[3\]"):
        check_tensor(torch.zeros(3), "points", (2, 3))
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="points must be finite"):
            check_tensor(torch.tensor([0.0, bad, 1.0]), "points", (3,))
    # finite entries whose sum overflows are accepted (the fast path falls back to the elementwise test)
    big = torch.full((4,), torch.finfo(torch.float32).max)
    assert check_tensor(big, "points", (4,)) is big


# ------------------------------------------------------------------ check_square


def test_check_square() -> None:
    assert check_square(torch.eye(4), "A").shape == (4, 4)
    assert check_square(torch.eye(2).expand(3, 2, 2), "A", 2).shape == (3, 2, 2)
    with pytest.raises(ValueError, match=r"A must have shape \[\.\.\., n, n\] with n ≥ 1, got \[2, 3\]"):
        check_square(torch.zeros(2, 3), "A")
    with pytest.raises(ValueError, match=r"A must have shape \[\.\.\., n, n\]"):
        check_square(torch.zeros(0, 0), "A")
    with pytest.raises(ValueError, match=r"A must have shape \[\.\.\., 3, 3\]"):
        check_square(torch.eye(2), "A", 3)
    with pytest.raises(ValueError, match="A must be finite"):
        check_square(torch.full((2, 2), float("nan")), "A")
    with pytest.raises(TypeError, match=r"A must be a torch\.Tensor"):
        check_square("eye", "A")


# ------------------------------------------------------------------ tolerances and rotations


def test_membership_tolerance_table() -> None:
    assert membership_tolerance(torch.float64) == 1e-9
    assert membership_tolerance(torch.float32) == 1e-4
    assert membership_tolerance(torch.float16) == 1e-2
    assert membership_tolerance(torch.bfloat16) == 5e-2
    # each dtype's tolerance is above its rounding of a rotation (a few eps) and far below O(1) errors
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        assert 4 * torch.finfo(dtype).eps < membership_tolerance(dtype) < 0.1
    with pytest.raises(TypeError, match="dtype must be one of"):
        membership_tolerance(torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_rotation_check_accepts_rotations(n: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(n)
    q, r = torch.linalg.qr(torch.randn(7, n, n, generator=g, dtype=torch.float64))
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign()[..., None, :]
    q[..., 0] *= torch.linalg.det(q).sign()[..., None]  # det +1
    R = q.to(dtype)
    assert check_rotation_matrix(R, "R") is R
    assert check_rotation_matrix(R, "R", n) is R
    assert check_rotation_matrix(torch.eye(n, dtype=dtype), "R", n).shape == (n, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_check_tolerance_depends_on_dtype(dtype: torch.dtype) -> None:
    tol = membership_tolerance(dtype)
    R = _rotation(0.3, dtype)
    # scaling by 1 + δ makes RᵀR - I = ((1 + δ)² - 1) I ≈ 2δ I
    check_rotation_matrix(R * (1 + 0.25 * tol), "R")
    with pytest.raises(ValueError, match=rf"R must be a rotation matrix \(orthogonal to {tol:g} in {dtype}"):
        check_rotation_matrix(R * (1 + 4 * tol), "R")


def test_rotation_check_float32_tolerance_is_looser_than_float64() -> None:
    R = _rotation(0.3, torch.float64) * (1 + 1e-6)
    check_rotation_matrix(R.float(), "R")
    with pytest.raises(ValueError, match="rotation matrix"):
        check_rotation_matrix(R, "R")


def test_rotation_check_rejects_reflections_and_bad_shapes() -> None:
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"matrix must be a rotation matrix .*det \+1\); pass project=True"):
        check_rotation_matrix(reflection, "matrix", hint="; pass project=True")
    batch = torch.stack([torch.eye(3, dtype=torch.float64), reflection])
    with pytest.raises(ValueError, match="R must be a rotation matrix"):
        check_rotation_matrix(batch, "R")
    with pytest.raises(ValueError, match=r"R must have shape \[\.\.\., 3, 3\]"):
        check_rotation_matrix(torch.eye(2), "R", 3)
    with pytest.raises(TypeError, match="R must have a floating dtype"):
        check_rotation_matrix(torch.eye(3, dtype=torch.int64), "R")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_homogeneous_rows(dtype: torch.dtype) -> None:
    tol = membership_tolerance(dtype)
    m = torch.eye(4, dtype=dtype)
    m[:3, 3] = torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
    check_homogeneous_rows(m, "matrix")
    m[3, 0] = 0.5 * tol
    check_homogeneous_rows(m, "matrix")
    m[3, 0] = 2 * tol
    with pytest.raises(ValueError, match=r"matrix must have bottom rows \[0, I_1\] .*last row \(0, …, 0, 1\)"):
        check_homogeneous_rows(m, "matrix")
    # k = 2: the last two rows must be [0, I_2]; the translation block is free
    m2 = torch.eye(5, dtype=dtype)
    m2[:3, 3:] = 7.0
    check_homogeneous_rows(m2, "matrix", 2)
    m2[4, 3] = 2 * tol
    with pytest.raises(ValueError, match=r"matrix must have bottom rows \[0, I_2\].*; hint"):
        check_homogeneous_rows(m2, "matrix", 2, hint="; hint")


# ------------------------------------------------------------------ degrees


def test_check_degree() -> None:
    for l in (0, 1, 7, 100):
        assert check_degree(l) == l
    assert check_degree(3, "lmax") == 3
    with pytest.raises(ValueError, match="lmax must be >= 0, got -1"):
        check_degree(-1, "lmax")
    with pytest.raises(TypeError, match="l1 must be an int, got float"):
        check_degree(1.0, "l1")
    with pytest.raises(TypeError, match="l must be an int, got bool"):
        check_degree(True)
    with pytest.raises(TypeError, match="l must be an int, got str"):
        check_degree("2")


def test_check_positive_int() -> None:
    for n in (1, 2, 100):
        assert check_positive_int(n, "n") == n
    for bad in (0, -3, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=r"n_beta must be an integer ≥ 1 \(a positive integer\), got"):
            check_positive_int(bad, "n_beta")


# ------------------------------------------------------------------ determinants, symmetry, dtype and device


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_determinant_checks(dtype: torch.dtype) -> None:
    tol = membership_tolerance(dtype)
    check_positive_det(torch.diag(torch.tensor([2.0, 0.1], dtype=dtype)), "A")
    for bad in (torch.diag(torch.tensor([1.0, -1.0], dtype=dtype)), torch.zeros(2, 2, dtype=dtype)):
        with pytest.raises(ValueError, match="A must have det > 0"):
            check_positive_det(bad, "A")
    # det = 1 + δ: accepted within ten times the table's tolerance
    check_unit_det(torch.diag(torch.tensor([1 + 5 * tol, 1.0], dtype=dtype)), "A")
    with pytest.raises(ValueError, match=rf"A must have det = 1 \(be in SL\(n\), to {10 * tol:g}\)"):
        check_unit_det(torch.diag(torch.tensor([1 + 20 * tol, 1.0], dtype=dtype)), "A")
    with pytest.raises(ValueError, match="A must have det > 0"):
        check_unit_det(-torch.eye(3, dtype=dtype), "A")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_check_symmetric_is_relative_to_the_largest_entry(dtype: torch.dtype) -> None:
    tol = membership_tolerance(dtype)
    m = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    check_symmetric(m + torch.tensor([[0.0, 0.5 * tol], [0.0, 0.0]], dtype=dtype), "S")
    with pytest.raises(ValueError, match=rf"S must be symmetric \(to {tol:g} relative\)"):
        check_symmetric(m + torch.tensor([[0.0, 2 * tol], [0.0, 0.0]], dtype=dtype), "S")
    # scaled by 1000, an asymmetry of 500 tol is within the relative tolerance
    check_symmetric(1000 * m + torch.tensor([[0.0, 500 * tol], [0.0, 0.0]], dtype=dtype), "S")
    # below 1 the scale is 1: tiny matrices are held to the absolute tolerance, not a tighter one
    check_symmetric(1e-3 * m + torch.tensor([[0.0, 0.5 * tol], [0.0, 0.0]], dtype=dtype), "S")


def test_check_like() -> None:
    like = torch.zeros(3, dtype=torch.float64)
    check_like(torch.ones(2, dtype=torch.float64), like, "points")
    with pytest.raises(ValueError, match=r"points must be torch\.float64 on cpu, got torch\.float32 on cpu"):
        check_like(torch.ones(2), like, "points")
