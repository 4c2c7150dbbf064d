"""The model contract shared by the Euclidean diffusion and flow-matching models.

The network is called as ``model(x_t, t, **context)`` with ``x_t [N, *shape]``, ``t [N]`` (each row gets the
time of its sample, ``t_sample[batch]``) and ``context`` passed through unchanged from the loss or sampler call;
``batch`` is added to it as the keyword ``batch`` when the caller gave one (with ``batch=None`` the model is
called without it). The model returns a tensor shaped like ``x_t``; with ``center=True`` it is projected onto
the zero-centre-of-mass subspace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from liequiv.generative.centering import check_batch, remove_mean

__all__ = ["call_model", "check_samples", "check_shape", "check_times", "per_row"]


def check_shape(shape: object, name: str = "shape") -> tuple[int, ...]:
    """A data shape ``[N, *shape]``: a non-empty sequence of non-negative ints (or a ``torch.Size``)."""
    if (not isinstance(shape, Sequence) or len(shape) == 0
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ValueError(f"{name} must be a non-empty sequence of non-negative ints [N, *shape], got {shape!r}")
    return tuple(shape)


def check_samples(shape: Sequence[int], batch: Tensor | None, *, center: bool,
                  device: torch.device | str | None = None) -> tuple[Tensor, int]:
    """The rows' sample index ``[N]`` and the number of samples ``B`` of data shaped ``[N, *shape]``; ``center``
    needs a ``batch`` (with ``batch=None`` every row is a sample, which centering would reduce to zeros)."""
    if center and batch is None:
        raise ValueError("batch is required with center=True (batch=None makes every row a sample of its own, "
                         "which centering reduces to zeros); pass torch.zeros(N, dtype=torch.long) for one sample")
    return check_batch(batch, shape[0], device=device)


def check_times(t: Tensor | float, num_samples: int, like: Tensor) -> Tensor:
    """``t``, a float or one time per sample ``[B]``, as a tensor ``[B]`` of the dtype and device of ``like``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.shape not in ((), (num_samples,)):
        raise ValueError(f"t must be a float or a tensor [B] = [{num_samples}] (one time per sample), "
                         f"got shape {list(t.shape)}")
    return t.expand(num_samples)


def per_row(values: Tensor, x: Tensor) -> Tensor:
    """``values [N]`` viewed as ``[N, 1, ..., 1]`` to broadcast against ``x [N, *shape]``."""
    return values.view(-1, *([1] * (x.dim() - 1)))


def call_model(model: Callable[..., Tensor], x: Tensor, t: Tensor, batch: Tensor | None, context: dict[str, Any], *,
               center: bool) -> Tensor:
    """``model(x, t, [batch=batch,] **context)``, checked to be shaped like ``x [N, *shape]`` and projected onto
    the zero-centre-of-mass subspace when ``center``."""
    out = model(x, t, **(context if batch is None else {"batch": batch, **context}))
    if not isinstance(out, Tensor) or out.shape != x.shape:
        raise ValueError(f"model must return a tensor shaped like x_t {list(x.shape)}, got "
                         f"{list(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return remove_mean(out, batch) if center else out
