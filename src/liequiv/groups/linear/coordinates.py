"""Global coordinates x = (ω, s) of GL+(n) and SL(n): A = Exp(ω^) · Exp(S(s)) (see the package notes)."""

from __future__ import annotations

import torch
from torch import Tensor

from liequiv.groups.linear.algebra import group_dim, so_dim, sym_hat, sym_vee
from liequiv.groups.linear.polar import polar_decompose, sym_expm
from liequiv.groups.linear.rotations import rotation_exp, rotation_log
from liequiv.validation import check_positive_int, check_square, check_tensor, check_unit_det

__all__ = ["from_coordinates", "to_coordinates"]


def from_coordinates(coords: Tensor, n: int, *, special: bool = False) -> Tensor:
    """x = (ω, s) ``[..., group_dim(n, special)]`` -> A = Exp(ω^) · Exp(S(s)) ``[..., n, n]`` in GL+(n) or SL(n).

    Onto the group; one-to-one where every rotation angle of ω^ is below π (see the package notes).
    """
    n = check_positive_int(n, "n")
    coords = check_tensor(coords, "coords", (group_dim(n, special),))
    omega, s = coords[..., : so_dim(n)], coords[..., so_dim(n):]
    return rotation_exp(omega, n) @ sym_expm(sym_hat(s, n, traceless=special))


def to_coordinates(A: Tensor, *, special: bool = False) -> Tensor:
    """A ``[..., n, n]`` in GL+(n) (det > 0) or SL(n) (det = 1) -> (ω, s) ``[..., group_dim(n, special)]``."""
    A = check_square(A, "A")
    if special:
        check_unit_det(A, "A")
    R, S = polar_decompose(A)
    return torch.cat([rotation_log(R), sym_vee(S, traceless=special)], dim=-1)
