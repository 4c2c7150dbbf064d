"""Representation theory of O(3): irreps, spherical harmonics, Wigner-D, Clebsch-Gordan, spherical grids, Gaunt
products, tensor products with interchangeable backends, and the equivariant layers built on them."""

from liequiv.o3.gate import Gate
from liequiv.o3.gaunt import gaunt_coefficients, gaunt_product_fourier, gaunt_product_grid, gaunt_tensor
from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.irreps import Irrep, Irreps, IrrepsSort, MulIr
from liequiv.o3.linear import Linear
from liequiv.o3.norm import Norm
from liequiv.o3.s2grid import (
    fibonacci_sphere,
    fourier_to_sh,
    from_grid,
    grid_vectors,
    quadrature_size,
    s2_grid,
    sh_to_fourier,
    to_grid,
)
from liequiv.o3.tensor_product import (
    ChannelwiseTensorProduct,
    ElementwiseTensorProduct,
    FullyConnectedTensorProduct,
    TensorProduct,
    available_backends,
    register_backend,
)
from liequiv.o3.tensor_product.gaunt import gaunt_path_factor
from liequiv.o3.wigner import change_basis_real_to_complex, clebsch_gordan, so3_generators, wigner_D

__all__ = [
    "ChannelwiseTensorProduct",
    "ElementwiseTensorProduct",
    "FullyConnectedTensorProduct",
    "Gate",
    "Irrep",
    "Irreps",
    "IrrepsSort",
    "Linear",
    "MulIr",
    "Norm",
    "TensorProduct",
    "available_backends",
    "change_basis_real_to_complex",
    "clebsch_gordan",
    "fibonacci_sphere",
    "fourier_to_sh",
    "from_grid",
    "gaunt_coefficients",
    "gaunt_path_factor",
    "gaunt_product_fourier",
    "gaunt_product_grid",
    "gaunt_tensor",
    "grid_vectors",
    "quadrature_size",
    "register_backend",
    "s2_grid",
    "sh_to_fourier",
    "so3_generators",
    "spherical_harmonics",
    "to_grid",
    "wigner_D",
]
