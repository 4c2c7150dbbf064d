"""liequiv: symmetry-aware deep learning on geometric data.

The subpackages load on first use: ``import liequiv`` then ``liequiv.o3.Irreps("1x1o")`` imports only ``o3``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["data", "generative", "groups", "models", "nn", "o3", "symmetry", "train"]
__version__ = "0.1.0"


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module  # later lookups skip this function
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
