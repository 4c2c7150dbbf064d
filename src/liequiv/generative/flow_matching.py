"""Conditional flow matching of Euclidean data ``[N, *shape]`` on the linear path (Lipman et al.; Liu et al.'s
rectified flow), with Tong et al.'s minibatch optimal-transport coupling.

Time runs from noise to data, Lipman's convention and the reverse of :mod:`liequiv.generative.diffusion`'s:
``x_t = (1 - t) x_0 + t x_1`` with ``x_0`` the noise (``N(0, I)``, projected onto the zero-centre-of-mass subspace
with ``center=True``) at ``t = 0`` and ``x_1`` the data at ``t = 1``. The model (see
:mod:`liequiv.generative.contract` for the call) predicts the velocity; its target is ``u = x_1 - x_0`` and the
loss is the mean squared error over all entries, one time ``t ~ U[0, 1]`` per sample. Sampling integrates
``dx/dt = v(x, t)`` from noise at ``t = 0`` to ``t = 1`` in ``steps`` uniform steps of
:func:`~liequiv.generative.ode.integrate_ode` (Euler or Heun), without gradients.

Couplings of noise and data:

- ``"independent"``: each data sample gets its own draw of noise;
- ``"ot"``: the noise samples are reassigned to the data samples by the assignment that minimizes the total
  squared distance ``Σ |x_1 - x_0|²`` within the batch (the Hungarian algorithm, scipy's
  ``linear_sum_assignment``), separately among the samples of each size (only samples with the same number of
  rows can exchange noise). The rows of two samples are paired in order: no rotation or permutation of the rows
  is searched. The data keep their order, so the ``context`` of the rows stays valid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from liequiv.generative.centering import check_batch, remove_mean, standard_noise
from liequiv.generative.contract import call_model, check_samples, check_shape, check_times, per_row
from liequiv.generative.ode import check_ode_method, integrate_ode
from liequiv.validation import check_positive_int, check_tensor

__all__ = ["COUPLINGS", "EuclideanFlowMatching", "minibatch_ot_coupling"]

COUPLINGS = ("independent", "ot")


def minibatch_ot_coupling(noise: Tensor, data: Tensor, batch: Tensor | None = None) -> Tensor:
    """``noise [N, *shape]`` with its samples reassigned to those of ``data [N, *shape]`` so that the total squared
    distance is minimal, among the samples of each size (``batch [N]``; ``None``: every row a sample). Rows keep
    their order within a sample; the result is ``[N, *shape]``."""
    if noise.shape != data.shape:
        raise ValueError(f"noise and data must have the same shape, got {list(noise.shape)} and {list(data.shape)}")
    from scipy.optimize import linear_sum_assignment

    batch, num_samples = check_batch(batch, data.shape[0], device=data.device)
    counts = torch.bincount(batch, minlength=num_samples)
    order = torch.argsort(batch, stable=True)  # the rows of sample b are order[start_b : start_b + count_b]
    starts = counts.cumsum(0) - counts
    coupled = noise.clone()
    for size in counts.unique().tolist():
        samples = (counts == size).nonzero().squeeze(1)
        if size == 0 or samples.numel() < 2:
            continue
        rows = order[starts[samples, None] + torch.arange(size, device=data.device)]  # [G, size]
        cost = torch.cdist(data[rows].flatten(1), noise[rows].flatten(1)).square()  # [G, G]: data i, noise j
        data_index, noise_index = linear_sum_assignment(cost.detach().cpu().numpy())
        coupled[rows[torch.as_tensor(data_index, device=data.device)].flatten()] = \
            noise[rows[torch.as_tensor(noise_index, device=data.device)].flatten()]
    return coupled


class EuclideanFlowMatching:
    """Flow matching of data ``[N, *shape]`` grouped into samples by ``batch [N]``, from Gaussian noise at
    ``t = 0`` to data at ``t = 1``.

    ``coupling``: ``"ot"`` (minibatch optimal transport) or ``"independent"``; ``center``: work in the
    zero-centre-of-mass subspace (needs ``batch``).

    Example::

        >>> flow = EuclideanFlowMatching(coupling="ot", center=True)
        >>> loss = flow.loss(model, pos, batch, h=charges)                  # model(x_t, t, batch=batch, h=charges)
        >>> pos = flow.sample(model, pos.shape, batch, steps=100, method="heun", h=charges)
    """

    def __init__(self, *, coupling: str = "ot", center: bool = False) -> None:
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {list(COUPLINGS)}, got {coupling!r}")
        if not isinstance(center, bool):
            raise TypeError(f"center must be a bool, got {type(center).__name__}")
        self.coupling, self.center = coupling, center

    def __repr__(self) -> str:
        return f"{type(self).__name__}(coupling={self.coupling!r}, center={self.center})"

    def sample_noise(self, shape: Sequence[int], batch: Tensor | None, *, dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The noise ``x_0 [N, *shape]`` at ``t = 0``: ``N(0, I)``, in the zero-centre-of-mass subspace when
        ``center``."""
        return standard_noise(shape, batch, center=self.center, dtype=dtype, device=device, generator=generator)

    def path(self, x1: Tensor, t: Tensor | float, batch: Tensor | None = None, *,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x_t, u)``: the point ``x_t = (1 - t) x_0 + t x_1`` of the path from noise ``x_0`` (coupled to the data
        ``x1 [N, *shape]``) and its velocity ``u = x_1 - x_0``; ``t``: a float or one time per sample ``[B]``. With
        ``center=True``, ``x1`` is centered first."""
        check_tensor(x1, "x1", ())
        batch_index, num_samples = check_samples(x1.shape, batch, center=self.center, device=x1.device)
        t = check_times(t, num_samples, x1)
        x1 = remove_mean(x1, batch_index) if self.center else x1
        x0 = self.sample_noise(x1.shape, batch_index, dtype=x1.dtype, device=x1.device, generator=generator)
        if self.coupling == "ot":
            x0 = minibatch_ot_coupling(x0, x1, batch_index)
        t_rows = per_row(t[batch_index], x1)
        return (1 - t_rows) * x0 + t_rows * x1, x1 - x0

    def loss(self, model: Callable[..., Tensor], x1: Tensor, batch: Tensor | None = None, *,
             generator: torch.Generator | None = None, **context: Any) -> Tensor:
        """Mean squared error of the predicted velocity, ``t ~ U[0, 1]`` per sample; ``x1 [N, *shape]`` the data."""
        check_tensor(x1, "x1", ())
        batch_index, num_samples = check_samples(x1.shape, batch, center=self.center, device=x1.device)
        t = torch.rand(num_samples, dtype=x1.dtype, device=x1.device, generator=generator)
        x_t, target = self.path(x1, t, batch, generator=generator)
        out = call_model(model, x_t, t[batch_index], batch, context, center=self.center)
        return (out - target).square().mean()

    @torch.no_grad()
    def sample(self, model: Callable[..., Tensor], shape: Sequence[int], batch: Tensor | None = None, *, steps: int,
               method: str = "euler", dtype: torch.dtype | None = None, device: torch.device | str | None = None,
               generator: torch.Generator | None = None, **context: Any) -> Tensor:
        """Samples ``[N, *shape]`` from ``steps`` steps of ``method`` (``"euler"``, or ``"heun"`` with two model
        evaluations a step); ``dtype`` defaults to torch's, ``device`` to that of ``batch``."""
        shape = check_shape(shape)
        check_positive_int(steps, "steps")
        check_ode_method(method)
        if device is None and batch is not None:
            device = batch.device
        batch_index, _ = check_samples(shape, batch, center=self.center, device=device)
        times = torch.linspace(0, 1, steps + 1, dtype=dtype, device=device)
        x = self.sample_noise(shape, batch_index, dtype=times.dtype, device=device, generator=generator)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return call_model(model, x, t.repeat(shape[0]), batch, context, center=self.center)

        return integrate_ode(velocity, x, times, method=method)
