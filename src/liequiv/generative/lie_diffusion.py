"""Score-based diffusion on SO(3) and SE(3) = R³ × SO(3), after FrameDiff (Yim et al., "SE(3) diffusion model
with application to protein backbone generation", 2023).

Time runs from data at ``t = 0`` to noise at ``t = 1``; each factor diffuses independently:

- rotations: Brownian motion on SO(3), ``R_t = R_0 · Exp(τ)`` with ``τ ~ IGSO3(σ(t))``, on the log-linear schedule
  ``σ(t) = σ_min^(1-t) σ_max^t`` (defaults ``σ_min = 0.1``, ``σ_max = 1.5``, FrameDiff's), i.e. the SDE
  ``dR = R ∘ g dW`` with ``g² = dσ²/dt = 2σ² log(σ_max/σ_min)``. The conditional score at R_t is
  ``igso3_score(Log(R_0⁻¹ R_t), σ(t))``, a tangent vector on the right-plus (body-frame) convention
  ``R ⊕ v = R · Exp(v)``. The prior at ``t = 1`` is Haar-uniform (as in FrameDiff; IGSO(3)(σ_max) is close to it).
- translations: the variance-preserving process ``x_t = α(t) x_0 + σ(t) ε`` of a ``NoiseSchedule`` (default
  ``"linear"``), conditional score ``-ε/σ(t)``, prior ``N(0, I)``.

A score model is called as ``score_model(x_t, t, **context)`` with ``x_t`` an ``SO3``/``SE3`` of batch shape
``[...]`` and ``t`` ``[...]``, and returns ``[..., 3]`` (SO(3)) or ``[..., 6]`` (SE(3), translation first, in the
order of the tangent ``(ρ, θ)``; but as FrameDiff treats SE(3) as the product R³ × SO(3), the first three entries
are the Euclidean score with respect to the translation t in the world frame, not SE(3)'s body-frame ρ).

Losses are denoising score matching, each factor weighted by its σ(t)² (so that its target has about unit scale).
Samplers integrate from ``t = 1`` to ``min_t`` in ``steps`` Euler steps, each rotation step taken through ``Exp``:
``"sde"``, the reverse SDE (the geodesic random walk ``R ← R · Exp(g² s dt + g √dt z)`` and
``x ← x + (½ β x + β s) dt + √(β dt) z``), or ``"ode"``, the probability-flow ODE (``R ← R · Exp(½ g² s dt)``,
``x ← x + ½ β (x + s) dt``).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.generative.igso3 import igso3_score, sample_igso3
from liequiv.generative.lie_common import (
    Element,
    Model,
    call_model,
    check_choice,
    check_element,
    check_times,
    time_grid,
)
from liequiv.generative.schedules import NoiseSchedule, get_schedule
from liequiv.groups.se3 import SE3
from liequiv.groups.so3 import SO3

__all__ = ["SAMPLERS", "LieDiffusion", "RotationDiffusion", "SE3Diffusion", "SO3Diffusion", "TranslationDiffusion"]

SAMPLERS = ("sde", "ode")
Part = SO3 | Tensor


class RotationDiffusion:
    """Brownian motion on SO(3) with ``σ(t) = σ_min^(1-t) σ_max^t``: one factor of a ``LieDiffusion``."""

    dim = 3

    def __init__(self, sigma_min: float = 0.1, sigma_max: float = 1.5) -> None:
        if not (0 < sigma_min < sigma_max < math.inf):
            raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(sigma_max / sigma_min)

    def sigma(self, t: Tensor) -> Tensor:
        """σ(t) ``[...]``."""
        return self.sigma_min * torch.exp(self._log_ratio * t)

    def g2(self, t: Tensor) -> Tensor:
        """The squared diffusion coefficient g(t)² = dσ²/dt ``[...]``."""
        return 2 * self._log_ratio * self.sigma(t).square()

    def weight(self, t: Tensor) -> Tensor:
        return self.sigma(t).square()

    def perturb(self, x0: SO3, t: Tensor, generator: torch.Generator | None) -> tuple[SO3, Tensor]:
        """(R_t = R_0 · Exp(τ), the score of p(R_t | R_0) at R_t ``[..., 3]``)."""
        sigma = self.sigma(t)
        tau = sample_igso3(sigma, x0.shape, generator=generator)
        return x0.plus(tau), igso3_score(tau, sigma)

    def prior(self, shape: Sequence[int], generator: torch.Generator | None, dtype: torch.dtype,
              device: torch.device) -> SO3:
        return SO3.random(shape, generator=generator, dtype=dtype, device=device)

    def step(self, x: SO3, score: Tensor, t: Tensor, dt: float, noise: Tensor | None) -> SO3:
        """One Euler step from t back to t - dt."""
        g2 = self.g2(t)[..., None]
        if noise is None:
            return x.plus(0.5 * g2 * dt * score)
        return x.plus(g2 * dt * score + (g2 * dt).sqrt() * noise)


class TranslationDiffusion:
    """The variance-preserving process of a ``NoiseSchedule`` on R³: one factor of a ``LieDiffusion``."""

    dim = 3

    def __init__(self, schedule: str | NoiseSchedule = "linear") -> None:
        self.schedule = get_schedule(schedule)

    def weight(self, t: Tensor) -> Tensor:
        return self.schedule.sigma(t).square()

    def perturb(self, x0: Tensor, t: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(x_t = α x_0 + σ ε, the score -ε/σ of p(x_t | x_0) ``[..., 3]``)."""
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        sigma = self.schedule.sigma(t)[..., None]
        return self.schedule.alpha(t)[..., None] * x0 + sigma * eps, -eps / sigma

    def prior(self, shape: Sequence[int], generator: torch.Generator | None, dtype: torch.dtype,
              device: torch.device) -> Tensor:
        return torch.randn(*shape, 3, generator=generator, dtype=dtype, device=device)

    def step(self, x: Tensor, score: Tensor, t: Tensor, dt: float, noise: Tensor | None) -> Tensor:
        """One Euler step from t back to t - dt."""
        beta = self.schedule.beta(t)[..., None]
        if noise is None:
            return x + 0.5 * beta * dt * (x + score)
        return x + beta * dt * (0.5 * x + score) + (beta * dt).sqrt() * noise


class LieDiffusion(ABC):
    """Diffusion on a product of factors (``RotationDiffusion``, ``TranslationDiffusion``): the loss and the
    samplers, written once; subclasses say how an element splits into its factors (in tangent order)."""

    group: type[SO3] | type[SE3]

    def __init__(self, factors: Sequence[RotationDiffusion | TranslationDiffusion], min_t: float) -> None:
        if not 0 < min_t < 1:
            raise ValueError(f"min_t must lie in (0, 1), got {min_t}")
        self.factors, self.min_t = tuple(factors), float(min_t)
        self.dim = sum(f.dim for f in self.factors)

    @abstractmethod
    def split(self, x: Element) -> list[Part]:
        """The factors of ``x``, in tangent order."""

    @abstractmethod
    def join(self, parts: Sequence[Part]) -> Element:
        """The element with these factors."""

    def _scores(self, score: Tensor) -> list[Tensor]:
        return list(score.split([f.dim for f in self.factors], -1))

    def add_noise(self, x0: Element, t: float | Tensor,
                  generator: torch.Generator | None = None) -> tuple[Element, Tensor]:
        """(x_t ~ p(x_t | x_0), the score of p(x_t | x_0) at x_t ``[..., dim]``) for data ``x0`` and times ``t``."""
        x0 = check_element(x0, "x0", self.group)
        t = check_times(t, x0.shape, x0.params)
        noised = [f.perturb(p, t, generator) for f, p in zip(self.factors, self.split(x0))]
        return self.join([p for p, _ in noised]), torch.cat([s for _, s in noised], -1)

    def loss(self, score_model: Model, x0: Element, t: float | Tensor | None = None, *,
             generator: torch.Generator | None = None, **context: object) -> Tensor:
        """Denoising score matching: the batch mean of Σ_factors σ(t)² |s_θ(x_t, t) - ∇ log p(x_t | x_0)|².

        ``t``: times ``[...]`` (default: uniform in [min_t, 1] per element).
        """
        x0 = check_element(x0, "x0", self.group)
        if t is None:
            t = torch.rand(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            t = self.min_t + (1 - self.min_t) * t
        t = check_times(t, x0.shape, x0.params)
        xt, target = self.add_noise(x0, t, generator)
        predicted = call_model(score_model, "score_model", xt, t, self.dim, context)
        errors = zip(self.factors, self._scores(predicted - target))
        return sum(f.weight(t) * e.square().sum(-1) for f, e in errors).mean()

    def sample(self, score_model: Model, batch_shape: Sequence[int] = (), *, steps: int = 100,
               sampler: str = "sde", initial: Element | None = None, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None,
               **context: object) -> Element:
        """Samples ``[*batch_shape]`` by integrating from t = 1 to ``min_t`` in ``steps`` Euler steps.

        ``sampler``: ``"sde"`` (reverse SDE) or ``"ode"`` (probability flow); ``initial``: the state at t = 1
        (default: drawn from the prior, which sets the batch shape, dtype and device).
        """
        check_choice(sampler, "sampler", SAMPLERS)
        if initial is None:
            dtype = dtype or torch.get_default_dtype()
            device = torch.device(device) if device is not None else torch.device("cpu")
            initial = self.join([f.prior(tuple(batch_shape), generator, dtype, device) for f in self.factors])
        x = check_element(initial, "initial", self.group)
        times = time_grid(steps, 1.0, self.min_t, x.dtype, x.device)
        parts = self.split(x)
        for start, end in itertools.pairwise(times):
            t = start.expand(x.shape)
            scores = self._scores(call_model(score_model, "score_model", x, t, self.dim, context))
            dt = float(start - end)
            parts = [f.step(p, s, t, dt, None if sampler == "ode" else self._noise(s, generator))
                     for f, p, s in zip(self.factors, parts, scores)]
            x = self.join(parts)
        return x

    @staticmethod
    def _noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class SO3Diffusion(LieDiffusion):
    """FrameDiff's diffusion on SO(3): score models return ``[..., 3]``."""

    group = SO3

    def __init__(self, sigma_min: float = 0.1, sigma_max: float = 1.5, *, min_t: float = 1e-3) -> None:
        super().__init__([RotationDiffusion(sigma_min, sigma_max)], min_t)

    def split(self, x: SO3) -> list[Part]:
        return [x]

    def join(self, parts: Sequence[Part]) -> SO3:
        return parts[0]

    @property
    def rotation(self) -> RotationDiffusion:
        return self.factors[0]


class SE3Diffusion(LieDiffusion):
    """FrameDiff's diffusion on SE(3) = R³ × SO(3): score models return ``[..., 6]``, translation first."""

    group = SE3

    def __init__(self, schedule: str | NoiseSchedule = "linear", sigma_min: float = 0.1, sigma_max: float = 1.5,
                 *, min_t: float = 1e-3) -> None:
        super().__init__([TranslationDiffusion(schedule), RotationDiffusion(sigma_min, sigma_max)], min_t)

    def split(self, x: SE3) -> list[Part]:
        return [x.translation(), x.rotation()]

    def join(self, parts: Sequence[Part]) -> SE3:
        translation, rotation = parts
        return SE3.from_rotation_translation(rotation, translation)

    @property
    def translation(self) -> TranslationDiffusion:
        return self.factors[0]

    @property
    def rotation(self) -> RotationDiffusion:
        return self.factors[1]
