"""Modules whose constant tables (Clebsch-Gordan, grids, coupling bases) stay in float64 whatever the module's dtype.

Such tables are built once in float64 and cast to the input's dtype per call, so that ``module.float().double()`` is
still exact to float64 round-off. ``module.to(device)`` moves them like any buffer.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Float64Constants"]


class Float64Constants(nn.Module):
    """An ``nn.Module`` with :meth:`register_constant`: a non-persistent buffer kept in float64 by ``.to(dtype)``,
    ``.float()``, ``.half()``, ... (only moved between devices)."""

    def __init__(self) -> None:
        super().__init__()
        self._constant_names: list[str] = []

    def register_constant(self, name: str, value: Tensor | None) -> None:
        """Register ``value`` (float64) as a non-persistent buffer that dtype casts leave in float64."""
        self.register_buffer(name, value, persistent=False)
        self._constant_names.append(name)

    def _apply(self, fn, recurse=True):  # type: ignore[override]
        saved = {n: self._buffers[n] for n in self._constant_names}
        out = super()._apply(fn, recurse)
        for n, t in saved.items():
            new = self._buffers[n]
            if t is not None and new is not None and new.dtype != t.dtype:
                self._buffers[n] = t.to(device=new.device)
        return out
