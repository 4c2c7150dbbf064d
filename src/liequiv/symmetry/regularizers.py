"""Soft equivariance (after Kim et al., "Regularizing Towards Soft Equivariance Under Mixed Symmetries", ICML 2023).

The equivariance regularizer of one symmetry type ``G`` is the expected squared deviation

    R_G(f) = E_{g ~ G} E_x  mean |f(g·x) - g·f(x)|²,

estimated with ``n_samples`` random elements per call (the same machinery as the checker, with gradients).
:class:`SoftEquivarianceRegularizer` sums ``λ_G R_G`` over several symmetry types and tunes the strengths
``λ_G`` during training by dual ascent on the constraints ``R_G ≤ ε_G``:

    λ_G ← max(0, λ_G + η (R_G - ε_G))        (each training-mode forward)

so the strengths are Lagrange multipliers: a symmetry the data has is satisfied at no cost and its strength
returns to 0; a symmetry the data breaks keeps ``R_G`` above its level while the task is fitted, and its
strength grows: the learned strengths (and the running ``violations``) reveal which symmetry types are
approximate, without supervision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from liequiv.symmetry.checker import equivariance_pairs
from liequiv.symmetry.groups import Group, as_group


def equivariance_error(model: Callable[..., Any], inputs: Any, group: Group | str, in_types: Any, out_types: Any,
                       n_samples: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
    """The differentiable regularizer ``R_G``: mean over samples and outputs of ``mean |f(g·x) - g·f(x)|²`` (a
    scalar tensor; 0 exactly for an equivariant model). Types as in :func:`~liequiv.symmetry.check_equivariance`."""
    pairs = equivariance_pairs(model, inputs, group, in_types, out_types, n_samples=n_samples, generator=generator)
    squared = [(moved - expected).pow(2).mean() for sample in pairs for moved, expected in sample]
    return torch.stack(squared).mean()


class SoftEquivarianceRegularizer(nn.Module):
    """``Σ_G λ_G R_G`` over named symmetry types with strengths tuned by dual ascent (module docstring).

    ``symmetries``: name -> group; the fields are typed once by ``in_types``/``out_types`` (how a field
    transforms does not depend on the group). ``levels``: the constraint level ε (one for all or per name).
    ``forward(model, inputs)`` returns the penalty to add to the task loss; in training mode it then updates the
    strengths. ``strengths`` and ``violations`` (a running mean of ``R_G``) are exposed per name.

    Example::

        >>> reg = SoftEquivarianceRegularizer({"z-rotations": "SO(2)", "rotations": "SO(3)"}, "1o", "1o")
        >>> loss = task_loss + reg(model, x)
    """

    def __init__(self, symmetries: Mapping[str, Group | str], in_types: Any, out_types: Any, *,
                 levels: float | Mapping[str, float] = 1e-3, dual_step: float = 1.0, n_samples: int = 1,
                 initial_strength: float = 0.0, momentum: float = 0.9) -> None:
        super().__init__()
        if not isinstance(symmetries, Mapping) or not symmetries:
            raise ValueError("symmetries must be a non-empty mapping of names to groups")
        self.names = list(symmetries)
        self.groups = [as_group(g) for g in symmetries.values()]
        level_map = levels if isinstance(levels, Mapping) else dict.fromkeys(self.names, levels)
        if set(level_map) != set(self.names):
            raise ValueError(f"levels must name exactly the symmetries {self.names}, got {sorted(level_map)}")
        for name, value in (("dual_step", dual_step), ("initial_strength", initial_strength),
                            *((f"levels[{k!r}]", v) for k, v in level_map.items())):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        self.in_types, self.out_types = in_types, out_types
        self.dual_step, self.n_samples, self.momentum = float(dual_step), n_samples, float(momentum)
        self.register_buffer("levels", torch.tensor([float(level_map[n]) for n in self.names]))
        self.register_buffer("_strengths", torch.full((len(self.names),), float(initial_strength)))
        self.register_buffer("_violations", torch.zeros(len(self.names)))

    def errors(self, model: Callable[..., Any], inputs: Any, *, generator: torch.Generator | None = None) -> Tensor:
        """``R_G`` for every symmetry ``[K]`` (differentiable)."""
        return torch.stack([equivariance_error(model, inputs, g, self.in_types, self.out_types, self.n_samples,
                                               generator=generator) for g in self.groups])

    def forward(self, model: Callable[..., Any], inputs: Any, *,
                generator: torch.Generator | None = None) -> Tensor:
        errors = self.errors(model, inputs, generator=generator)
        penalty = (self._strengths.to(errors.dtype, copy=True) * errors).sum()  # copy: updated below
        if self.training:
            with torch.no_grad():
                observed = errors.detach().to(self._strengths.dtype)
                self._strengths.add_(self.dual_step * (observed - self.levels)).clamp_(min=0)
                self._violations.mul_(self.momentum).add_((1 - self.momentum) * observed)
        return penalty

    @property
    def strengths(self) -> dict[str, float]:
        """The current strength λ of each symmetry type."""
        return dict(zip(self.names, self._strengths.tolist()))

    @property
    def violations(self) -> dict[str, float]:
        """A running mean of each type's regularizer ``R_G`` during training."""
        return dict(zip(self.names, self._violations.tolist()))
