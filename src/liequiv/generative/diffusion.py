"""Diffusion of Euclidean data ``[N, *shape]`` in continuous time ``t ∈ [0, 1]`` (``t = 0`` data, ``t = 1`` noise).

The forward process is variance preserving, ``x_t = α(t) x_0 + σ(t) ε`` with ``α² + σ² = 1`` from a schedule of
:mod:`liequiv.generative.schedules`, and ``ε ~ N(0, I)``, or its projection onto the zero-centre-of-mass subspace
with ``center=True`` (Hoogeboom et al., EDM: data, noise, model outputs and samples all live there, so that an
E(3)-equivariant model gives an E(3)-invariant density).

The model (see :mod:`liequiv.generative.contract` for the call) predicts ``ε`` (``prediction="eps"``, Ho et al.)
or ``x_0`` (``"x0"``); the other follows from ``x_t = α x̂_0 + σ ε̂``. The loss is the mean squared error of the
prediction over all entries, with one time per sample drawn uniformly from ``[t_min, 1]``; ``t_min`` (default
``1e-3``) keeps the ε target away from ``t = 0``, where ``x_t = x_0`` says nothing about it.

Samplers run on the uniform grid of ``steps + 1`` times from ``t_max = 1 - t_min`` to ``0``, starting from
``σ(t_max) ε`` (at ``t = 1`` the cosine schedule has ``α = 0``, where an ε-prediction fixes no ``x̂_0``, and
``β = ∞``); the sample is the state at ``t = 0`` (``α(0) x_0 + σ(0) ε`` of the schedule, ``x_0`` where
``σ(0) = 0``). From ``t`` to ``s < t``:

- ``"ancestral"``: a draw from the DDPM posterior ``q(x_s | x_t, x_0 = x̂_0)``, a Gaussian of mean
  ``α_{t|s} σ_s² / σ_t² x_t + α_s σ_{t|s}² / σ_t² x̂_0`` and variance ``σ_{t|s}² σ_s² / σ_t²``, with
  ``α_{t|s} = α_t / α_s`` and ``σ_{t|s}² = σ_t² - α_{t|s}² σ_s²``;
- ``"ddim"``: deterministic DDIM, ``x_s = α_s x̂_0 + σ_s ε̂``;
- ``"euler"``, ``"heun"``: the probability-flow ODE ``dx/dt = -½ β(t) (x - ε̂ / σ(t))`` through
  :func:`~liequiv.generative.ode.integrate_ode`, the last step an Euler step (the field is singular at ``σ = 0``).

Sampling runs without gradients (a model that needs them inside, for forces, enables them itself).

``kernel="pfgm"`` replaces the Gaussian ``ε`` by the PFGM++ perturbation ``η`` of :mod:`liequiv.generative.pfgm`
at unit scale (``r = √D``, ``D = pfgm_dim``), in ``x_t = α(t) x_0 + σ(t) η``: ``x_t / α`` is then PFGM++'s
perturbation of ``x_0`` at ``r = (σ/α) √D``, the variance-exploding noise level ``σ/α`` of the VP process, and
``D → ∞`` recovers the Gaussian. The ε-prediction predicts ``η``, the prior is ``σ(t_max) η``, and for finite
``D`` the noise has variance ``D / (D - 2)`` per entry, so the process is variance preserving only as ``D → ∞``.
PFGM++'s ODE ``dx/dσ = (x - E[x_0 | x]) / σ`` (in the variance-exploding variables) has the form of the Gaussian
probability-flow ODE written with the denoiser, so the deterministic samplers (``"ddim"``, ``"euler"``,
``"heun"``) apply unchanged with the kernel's ``x̂_0``; the ancestral sampler draws Gaussian posteriors and is
refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from liequiv.generative.centering import remove_mean, standard_noise
from liequiv.generative.contract import call_model, check_samples, check_shape, check_times, per_row
from liequiv.generative.ode import ODE_METHODS, integrate_ode
from liequiv.generative.pfgm import pfgm_noise
from liequiv.generative.schedules import NoiseSchedule, get_schedule
from liequiv.validation import check_positive_int, check_tensor

__all__ = ["KERNELS", "PREDICTIONS", "SAMPLERS", "EuclideanDiffusion"]

PREDICTIONS = ("eps", "x0")
KERNELS = ("gaussian", "pfgm")
SAMPLERS = ("ancestral", "ddim", *ODE_METHODS)


class EuclideanDiffusion:
    """Variance-preserving diffusion of data ``[N, *shape]`` grouped into samples by ``batch [N]``.

    ``schedule``: a name of ``SCHEDULES`` or a :class:`~liequiv.generative.schedules.NoiseSchedule`;
    ``prediction``: ``"eps"`` or ``"x0"``; ``kernel``: ``"gaussian"`` or ``"pfgm"`` (PFGM++ with
    ``pfgm_dim = D`` augmented dimensions, an int ≥ 1); ``center``: work in the zero-centre-of-mass subspace
    (needs ``batch``); ``t_min``: the smallest training time, and ``1 - t_min`` the first sampling time.

    Example::

        >>> diffusion = EuclideanDiffusion("cosine", prediction="eps", center=True)
        >>> loss = diffusion.loss(model, pos, batch, h=charges)             # model(x_t, t, batch=batch, h=charges)
        >>> pos = diffusion.sample(model, pos.shape, batch, steps=500, sampler="heun", h=charges)
    """

    def __init__(self, schedule: str | NoiseSchedule = "cosine", *, prediction: str = "eps", kernel: str = "gaussian",
                 pfgm_dim: int | None = None, center: bool = False, t_min: float = 1e-3) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}")
        if kernel == "pfgm":
            check_positive_int(pfgm_dim, "pfgm_dim")
        elif pfgm_dim is not None:
            raise ValueError(f"pfgm_dim applies only to kernel='pfgm', got pfgm_dim={pfgm_dim!r} with "
                             f"kernel={kernel!r}")
        if not isinstance(center, bool):
            raise TypeError(f"center must be a bool, got {type(center).__name__}")
        if not 0 < t_min < 1:
            raise ValueError(f"t_min must lie in (0, 1), got {t_min!r}")
        self.schedule = get_schedule(schedule)
        self.prediction, self.kernel, self.pfgm_dim = prediction, kernel, pfgm_dim
        self.center, self.t_min = center, float(t_min)

    def __repr__(self) -> str:
        kernel = f"kernel={self.kernel!r}" + (f", pfgm_dim={self.pfgm_dim}" if self.kernel == "pfgm" else "")
        return (f"{type(self).__name__}({type(self.schedule).__name__}, prediction={self.prediction!r}, {kernel}, "
                f"center={self.center}, t_min={self.t_min:g})")

    def sample_noise(self, shape: Sequence[int], batch: Tensor | None, *, dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The noise ``ε [N, *shape]`` of the forward process: ``N(0, I)``, or PFGM++'s ``η`` at ``r = √D``; in the
        zero-centre-of-mass subspace when ``center``."""
        if self.kernel == "pfgm":
            return pfgm_noise(shape, batch, self.pfgm_dim, center=self.center, dtype=dtype, device=device,
                              generator=generator)
        return standard_noise(shape, batch, center=self.center, dtype=dtype, device=device, generator=generator)

    def noise(self, x0: Tensor, t: Tensor | float, batch: Tensor | None = None, *,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x_t, ε)`` with ``x_t = α(t) x_0 + σ(t) ε``, both ``[N, *shape]``; ``t``: a float or one time per
        sample ``[B]``. With ``center=True``, ``x_0`` is centered first."""
        check_tensor(x0, "x0", ())
        batch_index, num_samples = check_samples(x0.shape, batch, center=self.center, device=x0.device)
        t = check_times(t, num_samples, x0)
        x0 = remove_mean(x0, batch_index) if self.center else x0
        t_rows = per_row(t[batch_index], x0)
        eps = self.sample_noise(x0.shape, batch_index, dtype=x0.dtype, device=x0.device, generator=generator)
        return self.schedule.alpha(t_rows) * x0 + self.schedule.sigma(t_rows) * eps, eps

    def loss(self, model: Callable[..., Tensor], x0: Tensor, batch: Tensor | None = None, *,
             generator: torch.Generator | None = None, **context: Any) -> Tensor:
        """Mean squared error of the model's prediction (of ``ε`` or of ``x_0``), ``t ~ U[t_min, 1]`` per sample."""
        check_tensor(x0, "x0", ())
        batch_index, num_samples = check_samples(x0.shape, batch, center=self.center, device=x0.device)
        u = torch.rand(num_samples, dtype=x0.dtype, device=x0.device, generator=generator)
        t = self.t_min + (1 - self.t_min) * u
        x_t, eps = self.noise(x0, t, batch, generator=generator)
        out = call_model(model, x_t, t[batch_index], batch, context, center=self.center)
        target = eps if self.prediction == "eps" else (remove_mean(x0, batch_index) if self.center else x0)
        return (out - target).square().mean()

    def predict(self, model: Callable[..., Tensor], x_t: Tensor, t: Tensor, batch: Tensor | None,
                context: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """``(x̂_0, ε̂)`` from the model at ``x_t [N, *shape]`` and the rows' times ``t [N]``."""
        out = call_model(model, x_t, t, batch, context, center=self.center)
        alpha, sigma = self.schedule.alpha(per_row(t, x_t)), self.schedule.sigma(per_row(t, x_t))
        if self.prediction == "eps":
            return (x_t - sigma * out) / alpha, out
        return out, (x_t - alpha * out) / sigma

    def probability_flow(self, model: Callable[..., Tensor], x_t: Tensor, t: Tensor, batch: Tensor | None,
                         context: dict[str, Any]) -> Tensor:
        """``dx/dt = -½ β(t) (x - ε̂ / σ(t))`` ``[N, *shape]`` of the probability-flow ODE at ``x_t`` and the rows'
        times ``t [N]``."""
        t_rows = per_row(t, x_t)
        eps_hat = self.predict(model, x_t, t, batch, context)[1]
        return -0.5 * self.schedule.beta(t_rows) * (x_t - eps_hat / self.schedule.sigma(t_rows))

    @torch.no_grad()
    def sample(self, model: Callable[..., Tensor], shape: Sequence[int], batch: Tensor | None = None, *, steps: int,
               sampler: str = "ddim", dtype: torch.dtype | None = None, device: torch.device | str | None = None,
               generator: torch.Generator | None = None, **context: Any) -> Tensor:
        """Samples ``[N, *shape]`` from ``steps`` model evaluations (``2 steps - 1`` for ``"heun"``); ``dtype``
        defaults to torch's, ``device`` to that of ``batch``."""
        shape = check_shape(shape)
        check_positive_int(steps, "steps")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        if sampler == "ancestral" and self.kernel == "pfgm":
            raise ValueError("sampler 'ancestral' draws Gaussian posteriors; with kernel='pfgm' use a deterministic "
                             f"sampler, one of {[s for s in SAMPLERS if s != 'ancestral']}")
        if device is None and batch is not None:
            device = batch.device
        batch_index, _ = check_samples(shape, batch, center=self.center, device=device)
        times = torch.linspace(1 - self.t_min, 0, steps + 1, dtype=dtype, device=device)
        sched = self.schedule
        x = sched.sigma(times[0]) * self.sample_noise(shape, batch_index, dtype=times.dtype, device=device,
                                                      generator=generator)

        if sampler in ODE_METHODS:
            def velocity(x: Tensor, t: Tensor) -> Tensor:
                return self.probability_flow(model, x, t.repeat(shape[0]), batch, context)

            return integrate_ode(velocity, x, times, method=sampler, correct_last=False)
        for t, s in itertools.pairwise(times):
            x0_hat, eps_hat = self.predict(model, x, t.repeat(shape[0]), batch, context)
            if sampler == "ddim":
                x = sched.alpha(s) * x0_hat + sched.sigma(s) * eps_hat
            else:
                noise = self.sample_noise(shape, batch_index, dtype=x.dtype, device=device, generator=generator)
                x = self._posterior_sample(x, x0_hat, t, s, noise)
        return x

    def _posterior_sample(self, x_t: Tensor, x0_hat: Tensor, t: Tensor, s: Tensor, noise: Tensor) -> Tensor:
        """A draw from the DDPM posterior ``q(x_s | x_t, x_0 = x̂_0)`` (see the module docstring)."""
        sched = self.schedule
        alpha_ts = sched.alpha(t) / sched.alpha(s)
        var_t, var_s = sched.sigma(t).square(), sched.sigma(s).square()
        var_ts = (var_t - alpha_ts.square() * var_s).clamp_min(0)
        mean = alpha_ts * var_s / var_t * x_t + sched.alpha(s) * var_ts / var_t * x0_hat
        return mean + (var_ts * var_s / var_t).sqrt() * noise
