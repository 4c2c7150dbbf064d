"""Tensor products of O(3) irreps: one interface, one backend a module."""
