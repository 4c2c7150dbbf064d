"""What diffusion and flow matching on SO(3) and SE(3) share: checking elements, times, step counts and sampler
names, and calling the user's model and checking what it returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from liequiv.groups.se3 import SE3
from liequiv.groups.so3 import SO3
from liequiv.validation import check_positive_int

Element = SO3 | SE3
Model = Callable[..., Tensor]

__all__ = ["Element", "Model", "call_model", "check_choice", "check_element", "check_steps", "check_times",
           "time_grid"]


def check_element(x: object, name: str, group: type[SO3] | type[SE3]) -> Element:
    """``x`` if it is a ``group`` element (``TypeError`` naming ``name`` otherwise)."""
    if type(x) is not group:
        raise TypeError(f"{name} must be an {group.__name__}, got {type(x).__name__}")
    return x


def check_steps(steps: object) -> int:
    """A number of sampler steps: an int ≥ 1."""
    return check_positive_int(steps, "steps")


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (``ValueError`` naming ``name`` otherwise)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_times(t: float | Tensor, shape: Sequence[int], like: Tensor) -> Tensor:
    """Times in [0, 1] broadcast to the batch ``shape``, in the dtype and device of ``like``, ``[*shape]``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError("t must lie in [0, 1]")
    try:
        return t.expand(tuple(shape))
    except RuntimeError:
        raise ValueError(f"t does not broadcast: {list(t.shape)} to the batch shape {list(shape)}") from None


def call_model(model: Model, name: str, x: Element, t: Tensor, dim: int, context: dict[str, object]) -> Tensor:
    """``model(x, t, **context)``, checked to be a tensor ``[*x.shape, dim]`` of x's dtype."""
    out = model(x, t, **context)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name} must return a tensor, got {type(out).__name__}")
    if tuple(out.shape) != (*x.shape, dim):
        raise ValueError(f"{name} must return shape {[*x.shape, dim]}, got {list(out.shape)}")
    return out.to(x.dtype)


def time_grid(steps: int, start: float, end: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``steps + 1`` equally spaced times from ``start`` to ``end`` ``[steps + 1]``."""
    return torch.linspace(start, end, check_steps(steps) + 1, dtype=dtype, device=device)
