"""Representation theory of O(3): irreps, spherical harmonics, Wigner-D, Clebsch-Gordan, spherical grids."""

from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.irreps import Irrep, Irreps, IrrepsSort, MulIr
from liequiv.o3.s2grid import fibonacci_sphere
from liequiv.o3.wigner import change_basis_real_to_complex, clebsch_gordan, so3_generators, wigner_D

__all__ = [
    "Irrep",
    "Irreps",
    "IrrepsSort",
    "MulIr",
    "change_basis_real_to_complex",
    "clebsch_gordan",
    "fibonacci_sphere",
    "so3_generators",
    "spherical_harmonics",
    "wigner_D",
]
