"""Representation theory of O(3): irreps, spherical harmonics, Wigner-D, Clebsch-Gordan, grids, tensor products."""
