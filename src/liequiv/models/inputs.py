"""Input checks shared by the models: floating inputs in the parameters' dtype, and the uniform N-body interface."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def parameter_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the first floating parameter of ``model`` (``None`` when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def check_input_dtypes(model: nn.Module, **inputs: Tensor | None) -> None:
    """Raise TypeError unless every floating tensor among ``inputs`` (name -> value) has the dtype of the model's
    parameters, e.g. ``pos is float64 but the model's parameters are float32``."""
    dtype = parameter_dtype(model)
    if dtype is None:
        return
    for name, value in inputs.items():
        if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != dtype:
            given, expected = str(value.dtype).removeprefix("torch."), str(dtype).removeprefix("torch.")
            raise TypeError(f"{name} is {given} but the model's parameters are {expected}: convert the inputs "
                            f"or the model with .to(torch.{expected}) or .to(torch.{given})")


def check_dynamics_inputs(model: nn.Module, pos: Tensor, vel: Tensor, node_features: Tensor) -> None:
    """Raise unless pos, vel are ``[N, 3]`` and node_features ``[N, model.node_dim]`` for one N (ValueError) and
    all three are tensors in the dtype of the model's parameters (TypeError)."""
    for name, t in (("pos", pos), ("vel", vel), ("node_features", node_features)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    n = pos.shape[0] if pos.dim() > 0 else -1
    for name, t, width in (("pos", pos, 3), ("vel", vel, 3), ("node_features", node_features, model.node_dim)):
        if t.dim() != 2 or t.shape != (n, width):
            raise ValueError(f"{name} must have shape [{n}, {width}], got {list(t.shape)}")
    check_input_dtypes(model, pos=pos, vel=vel, node_features=node_features)
