"""Data sets generated locally (and cached): N-body systems."""

from liequiv.data.nbody import NBodyConfig, NBodyDataset, collate_nbody, load_split, simulate

__all__ = ["NBodyConfig", "NBodyDataset", "collate_nbody", "load_split", "simulate"]
