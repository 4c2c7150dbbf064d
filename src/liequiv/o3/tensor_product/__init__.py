"""Tensor products of O(3) irreps: one interface (:mod:`.interface`), one backend a module (:mod:`.cg`,
:mod:`.gaunt`)."""

from liequiv.o3.tensor_product.interface import (
    ChannelwiseTensorProduct,
    ElementwiseTensorProduct,
    FullyConnectedTensorProduct,
    TensorProduct,
    available_backends,
    register_backend,
)

__all__ = [
    "ChannelwiseTensorProduct",
    "ElementwiseTensorProduct",
    "FullyConnectedTensorProduct",
    "TensorProduct",
    "available_backends",
    "register_backend",
]
