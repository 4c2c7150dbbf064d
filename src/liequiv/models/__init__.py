"""Complete networks."""

from liequiv.models.egnn import EGNN, EGNNLayer

__all__ = ["EGNN", "EGNNLayer"]
