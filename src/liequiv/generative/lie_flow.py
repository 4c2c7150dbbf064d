"""Geodesic flow matching on SO(3) and SE(3) (Chen & Lipman's Riemannian flow matching, 2024, on a Lie group;
as in Bose et al.'s FoldFlow and Yim et al.'s FrameFlow for SO(3)).

Time runs from noise at ``t = 0`` to data at ``t = 1``. The conditional path from noise x_0 to data x_1 is the
geodesic of the group through ``exp``/``log``,

    x_t = x_0 · Exp(t v),  v = Log(x_0⁻¹ x_1),

and its velocity, expressed at x_t in the body frame of the right-plus convention (``x ⊕ δ = x · Exp(δ)``), is
``x_t⁻¹ dx_t/dt = v``: the same vector all along the path (equal to ``Log(x_t⁻¹ x_1) / (1 - t)``). On SE(3) the
geodesic is the screw motion of SE(3)'s own ``Exp`` (rotation and translation coupled), with the tangent
``(ρ, θ)``, translation first. Noise: Haar-uniform rotations and, on SE(3), standard normal translations (the
groups' ``random``).

A velocity model is called as ``velocity_model(x_t, t, **context)`` and returns ``[..., 3]`` (SO(3)) or
``[..., 6]`` (SE(3)) in that frame. The loss is the batch mean of ``|v_θ(x_t, t) - v|²``; the sampler takes
``steps`` Euler steps ``x ← x · Exp(h v_θ(x, t))`` from t = 0 to 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.generative.lie_common import Element, Model, call_model, check_element, check_times, time_grid
from liequiv.groups.se3 import SE3
from liequiv.groups.so3 import SO3

__all__ = ["GeodesicFlowMatching"]


class GeodesicFlowMatching:
    """Flow matching along the geodesics of ``group`` (``SO3`` or ``SE3``)."""

    def __init__(self, group: type[SO3] | type[SE3] = SO3) -> None:
        if group not in (SO3, SE3):
            raise TypeError(f"group must be SO3 or SE3, got {group!r}")
        self.group = group

    def noise(self, batch_shape: Sequence[int] = (), *, generator: torch.Generator | None = None,
              dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Element:
        """Noise ``[*batch_shape]``: a Haar rotation and, on SE(3), a standard normal translation."""
        return self.group.random(tuple(batch_shape), generator=generator, dtype=dtype, device=device)

    def interpolate(self, x0: Element, x1: Element, t: float | Tensor) -> tuple[Element, Tensor]:
        """(x_t = x_0 · Exp(t v), the velocity v = Log(x_0⁻¹ x_1) at x_t ``[..., d]``); t ``[...]`` in [0, 1]."""
        x0, x1 = check_element(x0, "x0", self.group), check_element(x1, "x1", self.group)
        velocity = x1.minus(x0)
        t = check_times(t, velocity.shape[:-1], velocity)
        return x0.plus(t[..., None] * velocity), velocity

    def loss(self, velocity_model: Model, x1: Element, t: float | Tensor | None = None, *,
             x0: Element | None = None, generator: torch.Generator | None = None, **context: object) -> Tensor:
        """The batch mean of |v_θ(x_t, t) - v|² for data ``x1``; ``t`` ``[...]`` (default: uniform in [0, 1]) and
        the noise ``x0`` (default: drawn) may be given."""
        x1 = check_element(x1, "x1", self.group)
        if x0 is None:
            x0 = self.noise(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
        if t is None:
            t = torch.rand(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
        xt, velocity = self.interpolate(x0, x1, t)
        t = check_times(t, xt.shape, velocity)
        predicted = call_model(velocity_model, "velocity_model", xt, t, self.group.tangent_dim, context)
        return (predicted - velocity).square().sum(-1).mean()

    def sample(self, velocity_model: Model, batch_shape: Sequence[int] = (), *, steps: int = 100,
               initial: Element | None = None, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None,
               **context: object) -> Element:
        """Samples ``[*batch_shape]``: ``steps`` Euler steps through ``Exp`` from ``initial`` (default: noise) at
        t = 0 to t = 1."""
        if initial is None:
            initial = self.noise(batch_shape, generator=generator, dtype=dtype, device=device)
        x = check_element(initial, "initial", self.group)
        times = time_grid(steps, 0.0, 1.0, x.dtype, x.device)
        for start, end in itertools.pairwise(times):
            t = start.expand(x.shape)
            velocity = call_model(velocity_model, "velocity_model", x, t, self.group.tangent_dim, context)
            x = x.plus((end - start) * velocity)
        return x
