"""The input check shared by every dynamics model (the uniform N-body interface)."""

from __future__ import annotations

from torch import Tensor


def check_dynamics_inputs(pos: Tensor, vel: Tensor, node_features: Tensor, node_dim: int) -> None:
    """Raise ValueError unless pos, vel are ``[N, 3]`` and node_features is ``[N, node_dim]`` for one N."""
    for name, t in (("pos", pos), ("vel", vel), ("node_features", node_features)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    n = pos.shape[0] if pos.dim() > 0 else -1
    for name, t, width in (("pos", pos, 3), ("vel", vel, 3), ("node_features", node_features, node_dim)):
        if t.dim() != 2 or t.shape != (n, width):
            raise ValueError(f"{name} must have shape [{n}, {width}], got {list(t.shape)}")
