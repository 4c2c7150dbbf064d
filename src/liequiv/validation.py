"""Input checks shared by the whole library: tensors, square and rotation matrices, degrees.

Every check raises ``TypeError`` for a wrong type and ``ValueError`` for a wrong shape or value, with a
message that names the argument and says what was expected. Checks of values (finiteness, orthogonality,
determinants) are skipped while ``torch.compile`` traces, where they would break the graph.

Membership in a group is checked to the tolerance of ``membership_tolerance``, one table for the library:

    ==================  ==========
    dtype               tolerance
    ==================  ==========
    float64             1e-9
    float32             1e-4
    float16             1e-2
    bfloat16            5e-2
    ==================  ==========

It bounds the entries of the residual of the defining equation: ``RᵀR - I`` for a rotation, ``|q| - 1``
for a unit quaternion, the last rows of a homogeneous matrix, the asymmetry of a symmetric matrix
(relative to its largest entry); checks of a determinant allow ten times it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_degree",
    "check_homogeneous_rows",
    "check_like",
    "check_positive_det",
    "check_positive_int",
    "check_rotation_matrix",
    "check_square",
    "check_symmetric",
    "check_tensor",
    "check_unit_det",
    "checking_values",
    "membership_tolerance",
]

_TOLERANCES = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def membership_tolerance(dtype: torch.dtype) -> float:
    """The tolerance of membership checks for ``dtype`` (see the table of the module)."""
    try:
        return _TOLERANCES[dtype]
    except KeyError:
        raise TypeError(f"dtype must be one of {list(_TOLERANCES)}, got {dtype}") from None


def checking_values() -> bool:
    """Whether value checks run: not while ``torch.compile`` traces."""
    return not torch.compiler.is_compiling()


def check_tensor(x: object, name: str, last_dims: Sequence[int], *, finite: bool = True) -> Tensor:
    """Validate a floating tensor whose trailing shape is ``last_dims`` (finite unless ``finite=False``); return it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (float32 or float64), got {x.dtype}")
    n = len(last_dims)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != tuple(last_dims):
        want = "[..., " + ", ".join(str(d) for d in last_dims) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(x.shape)}")
    if finite and checking_values() and not _all_finite(x):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    return x


def _all_finite(x: Tensor) -> bool:
    """All entries finite. Fast path: a non-finite entry makes the sum non-finite, so a finite sum proves it;
    only a non-finite sum (which finite entries can also give, by overflow) needs the elementwise test."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_square(x: object, name: str, n: int | None = None) -> Tensor:
    """Validate a finite floating tensor ``[..., n, n]`` with n ≥ 1 (any such n if ``n`` is None); return it."""
    x = check_tensor(x, name, (), finite=False)
    if x.dim() < 2 or x.shape[-1] != x.shape[-2] or x.shape[-1] == 0 or (n is not None and x.shape[-1] != n):
        want = "n, n" if n is None else f"{n}, {n}"
        raise ValueError(f"{name} must have shape [..., {want}] with n ≥ 1, got {list(x.shape)}")
    return check_tensor(x, name, tuple(x.shape[-2:]))


def check_rotation_matrix(matrix: object, name: str, n: int | None = None, *, hint: str = "") -> Tensor:
    """Validate rotation matrices ``[..., n, n]`` (any n ≥ 1 if ``n`` is None): finite, ``|RᵀR - I|`` entrywise
    within ``membership_tolerance`` and det > 0; return them. ``hint`` is appended to the error message."""
    matrix = check_square(matrix, name, n)
    if not checking_values():
        return matrix
    tol = membership_tolerance(matrix.dtype)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    if bool(((matrix.mT @ matrix - eye).abs() > tol).any()) or bool((torch.linalg.det(matrix) <= 0).any()):
        raise ValueError(f"{name} must be a rotation matrix (orthogonal to {tol:g} in {matrix.dtype}, with det +1)"
                         f"{hint}")
    return matrix


def check_homogeneous_rows(matrix: Tensor, name: str, k: int = 1, *, hint: str = "") -> None:
    """Check that the last ``k`` rows of homogeneous matrices ``[..., n, n]`` are ``[0, I_k]`` (for k = 1 the row
    ``(0, …, 0, 1)``), entrywise within ``membership_tolerance``."""
    if not checking_values():
        return
    n = matrix.shape[-1]
    expected = torch.eye(n, dtype=matrix.dtype, device=matrix.device)[n - k :]
    tol = membership_tolerance(matrix.dtype)
    if bool(((matrix[..., n - k :, :] - expected).abs() > tol).any()):
        raise ValueError(f"{name} must have bottom rows [0, I_{k}] of a homogeneous matrix (for k = 1 the last row "
                         f"(0, …, 0, 1)), to {tol:g}{hint}")


def check_positive_int(n: object, name: str) -> int:
    """Validate a size or dimension: an int (not a bool) ≥ 1; return it. ``ValueError`` for anything else."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be an integer ≥ 1 (a positive integer), got {n!r}")
    return n


def check_positive_det(matrix: Tensor, name: str) -> None:
    """Check det > 0 for square matrices ``[..., n, n]`` (membership in GL+(n))."""
    if checking_values() and bool((torch.linalg.slogdet(matrix).sign <= 0).any()):
        raise ValueError(f"{name} must have det > 0 (be in GL+(n)), got det ≤ 0")


def check_unit_det(matrix: Tensor, name: str) -> None:
    """Check det = 1 (within ten times ``membership_tolerance``) for square matrices ``[..., n, n]`` (SL(n))."""
    check_positive_det(matrix, name)
    tol = 10 * membership_tolerance(matrix.dtype)
    if checking_values() and bool(((torch.linalg.det(matrix) - 1).abs() > tol).any()):
        raise ValueError(f"{name} must have det = 1 (be in SL(n), to {tol:g})")


def check_symmetric(matrix: Tensor, name: str) -> None:
    """Check |M - Mᵀ| ≤ ``membership_tolerance`` · max(1, max |M|) for square matrices ``[..., n, n]``."""
    if not checking_values():
        return
    tol = membership_tolerance(matrix.dtype)
    scale = matrix.detach().abs().amax(dim=(-2, -1)).clamp_min(1)
    if bool(((matrix - matrix.mT).abs().amax(dim=(-2, -1)) > tol * scale).any()):
        raise ValueError(f"{name} must be symmetric (to {tol:g} relative)")


def check_like(x: Tensor, like: Tensor, name: str) -> None:
    """Check that ``x`` has the dtype and device of ``like``."""
    if x.dtype != like.dtype or x.device != like.device:
        raise ValueError(f"{name} must be {like.dtype} on {like.device}, got {x.dtype} on {x.device}")


def check_degree(l: object, name: str = "l") -> int:
    """Validate a degree (``l``, ``lmax``, ...): an int (not a bool) ≥ 0; return it."""
    if isinstance(l, bool) or not isinstance(l, int):
        raise TypeError(f"{name} must be an int, got {type(l).__name__}")
    if l < 0:
        raise ValueError(f"{name} must be >= 0, got {l}")
    return l
