"""Fixed-grid explicit integrators of ``dx/dt = v(x, t)``, shared by the probability-flow ODE of diffusion and by
flow matching.

- ``"euler"``: ``x ← x + h v(x, t)``, one evaluation a step.
- ``"heun"``: Heun's second-order method (the explicit trapezoidal rule, Karras et al.'s sampler):
  ``x̃ = x + h v(x, t)``, ``x ← x + h/2 (v(x, t) + v(x̃, t + h))``, two evaluations a step. With
  ``correct_last=False`` the last step is an Euler step, for a field that cannot be evaluated at the final time
  (the probability-flow ODE at ``σ = 0``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

__all__ = ["ODE_METHODS", "check_ode_method", "integrate_ode"]

ODE_METHODS = ("euler", "heun")


def check_ode_method(method: str, name: str = "method") -> str:
    """``method`` if it is one of ``ODE_METHODS``, else ``ValueError`` naming the argument ``name``."""
    if method not in ODE_METHODS:
        raise ValueError(f"{name} must be one of {list(ODE_METHODS)}, got {method!r}")
    return method


def integrate_ode(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, times: Tensor, *, method: str = "euler",
                  correct_last: bool = True) -> Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``times[0]`` to ``times[-1]`` through the grid ``times [K + 1]``
    (increasing or decreasing); ``velocity`` gets the state ``x [...]`` and a 0-dimensional time, and returns
    ``[...]``. Returns the state at ``times[-1]``."""
    check_ode_method(method)
    if times.dim() != 1 or times.numel() < 2:
        raise ValueError(f"times must be a 1-D grid of at least 2 times, got shape {list(times.shape)}")
    steps = times.numel() - 1
    for i in range(steps):
        t, s = times[i], times[i + 1]
        h = s - t
        v = velocity(x, t)
        if method == "euler" or (not correct_last and i == steps - 1):
            x = x + h * v
        else:
            x = x + 0.5 * h * (v + velocity(x + h * v, s))
    return x
