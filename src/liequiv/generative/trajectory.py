"""Conditional diffusion of geometric trajectories in the manner of GeoTDM (Han et al., "Geometric Trajectory
Diffusion Models", NeurIPS 2024): given ``history`` past frames of a particle system, draw futures of ``horizon``
frames.

What is diffused is the future's deviation from an equivariant prior mean, the constant-velocity extrapolation of
the last two past frames (``μ_f = x_last + (f + 1)(x_last − x_prev)`` for future frame ``f = 0, 1, ...``),
divided by a fixed scale (the RMS of that deviation on the training data): ``x_0 = (future − μ) / scale``, with
:class:`~liequiv.generative.diffusion.EuclideanDiffusion`. GeoTDM learns the prior's weights over the past frames;
this fixed one keeps the same symmetry (a translation-equivariant combination of past frames) with nothing to fit.
The denoiser is :class:`~liequiv.models.egtn.EGTN`, which sees the past and the current noisy future as positions
``μ + scale · x_t``, both relative to the centre of the last past frame, and moves the future's positions: with
``prediction="x0"`` (the default) the moved future is the prediction of the clean one, ``x̂_0 = x_t + Δ / scale``,
which starts at ``x_t`` and stays bounded while the network is untrained (an ε-prediction divides by ``α(t)``, which
is 0.002 at the first sampling time of the cosine schedule, and sent untrained samples to NaN); with ``"eps"`` the
displacement ``Δ`` itself predicts ε. Both rotate with the system and ignore translations, so the distribution of
futures given the past is E(3)-equivariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liequiv.generative.diffusion import EuclideanDiffusion
from liequiv.generative.schedules import NoiseSchedule
from liequiv.models.egtn import EGTN
from liequiv.nn.graph import scatter_mean
from liequiv.validation import check_positive_int

__all__ = ["TrajectoryDiffusion", "constant_velocity_prior"]


def constant_velocity_prior(past: Tensor, horizon: int) -> Tensor:
    """``past [N, history ≥ 2, 3]`` -> the constant-velocity extrapolation ``[N, horizon, 3]``."""
    if past.dim() != 3 or past.shape[1] < 2 or past.shape[-1] != 3:
        raise ValueError(f"past must have shape [N, history >= 2, 3], got {list(past.shape)}")
    steps = torch.arange(1, horizon + 1, dtype=past.dtype, device=past.device)[:, None]
    return past[:, -1:] + steps * (past[:, -1:] - past[:, -2:-1])


class TrajectoryDiffusion(nn.Module):
    """GeoTDM-style conditional trajectory diffusion (see the module docstring).

    ``forward`` returns the training loss of a batch; :meth:`sample` draws ``k`` futures of every trajectory.
    Shapes: ``past [N, history, 3]``, ``node_features [N, node_dim]``, ``future [N, horizon, 3]``,
    ``edge_index [2, E]`` within each system, ``batch [N]``.
    """

    def __init__(self, history: int, horizon: int, node_dim: int = 1, hidden: int = 64, layers: int = 4,
                 heads: int = 4, *, schedule: str | NoiseSchedule = "cosine", prediction: str = "x0",
                 scale: float = 1.0) -> None:
        super().__init__()
        self.history, self.horizon = check_positive_int(history, "history"), check_positive_int(horizon, "horizon")
        if history < 2:
            raise ValueError(f"history must be >= 2 (the prior extrapolates the last two frames), got {history}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.denoiser = EGTN(node_dim, hidden, layers, heads)
        self.diffusion = EuclideanDiffusion(schedule, prediction=prediction, center=False)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def _check(self, past: Tensor, future: Tensor | None, batch: Tensor) -> None:
        n = past.shape[0]
        if past.shape != (n, self.history, 3):
            raise ValueError(f"past must have shape [N, {self.history}, 3], got {list(past.shape)}")
        if future is not None and future.shape != (n, self.horizon, 3):
            raise ValueError(f"future must have shape [{n}, {self.horizon}, 3], got {list(future.shape)}")
        if batch.shape != (n,):
            raise ValueError(f"batch must have shape [{n}], got {list(batch.shape)}")

    def _frame(self, past: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """The past relative to the centre of its last frame, and the prior mean in the same frame."""
        centre = scatter_mean(past[:, -1], batch, int(batch.max()) + 1 if batch.numel() else 0)[batch]
        relative = past - centre[:, None]
        return relative, constant_velocity_prior(relative, self.horizon)

    def _denoise(self, x_t: Tensor, t: Tensor, *, batch: Tensor, cond: Tensor, mean: Tensor, node_features: Tensor,
                 edge_index: Tensor) -> Tensor:
        moved = self.denoiser(mean + self.scale * x_t, t, cond=cond, node_features=node_features,
                              edge_index=edge_index, batch=batch)
        return x_t + moved / self.scale if self.diffusion.prediction == "x0" else moved

    def forward(self, past: Tensor, node_features: Tensor, future: Tensor, edge_index: Tensor, batch: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
        """The diffusion loss (mean squared error of the prediction) of one batch of trajectories."""
        self._check(past, future, batch)
        cond, mean = self._frame(past, batch)
        centre = past[:, -1] - cond[:, -1]
        x0 = (future - centre[:, None] - mean) / self.scale
        return self.diffusion.loss(self._denoise, x0, batch, generator=generator, cond=cond, mean=mean,
                                   node_features=node_features, edge_index=edge_index)

    @torch.no_grad()
    def sample(self, past: Tensor, node_features: Tensor, edge_index: Tensor, batch: Tensor, *, k: int = 1,
               steps: int = 100, sampler: str = "ddim", generator: torch.Generator | None = None) -> Tensor:
        """``k`` futures of every trajectory, ``[k, N, horizon, 3]``, from ``steps`` denoising steps."""
        check_positive_int(k, "k")
        self._check(past, None, batch)
        n, samples = past.shape[0], int(batch.max()) + 1 if batch.numel() else 0
        cond, mean = self._frame(past, batch)
        centre = past[:, -1] - cond[:, -1]
        offsets = torch.arange(k, device=past.device)
        tiled_batch = (batch + samples * offsets[:, None]).reshape(-1)
        tiled_edges = (edge_index[:, None, :] + n * offsets[None, :, None]).reshape(2, -1)
        cond, mean, features = (x.repeat(k, *([1] * (x.dim() - 1))) for x in (cond, mean, node_features))
        x0 = self.diffusion.sample(self._denoise, (k * n, self.horizon, 3), tiled_batch, steps=steps,
                                   sampler=sampler, dtype=past.dtype, generator=generator, cond=cond, mean=mean,
                                   node_features=features, edge_index=tiled_edges)
        return x0.view(k, n, self.horizon, 3) * self.scale + mean[:n] + centre[:, None]
