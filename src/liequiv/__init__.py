"""liequiv: symmetry-aware deep learning on geometric data."""

from liequiv import groups

__all__ = ["groups"]
__version__ = "0.1.0"
