"""Variance-preserving noise schedules in continuous time ``t ∈ [0, 1]``.

A schedule gives the signal scale ``α(t)`` and the noise scale ``σ(t) = √(1 - α(t)²)`` of the forward process
``x_t = α(t) x_0 + σ(t) ε``, and the rate ``β(t) = -d log α(t)² / dt`` of the equivalent SDE
``dx = -½ β x dt + √β dW`` (Song et al.'s VP-SDE). ``α`` decreases from about 1 at ``t = 0`` to about 0 at
``t = 1``; samplers start from pure noise at ``t = 1``.

- ``"cosine"`` (Nichol & Dhariwal): ``α² = cos²(π/2 (t + s)/(1 + s)) / cos²(π/2 s/(1 + s))``, ``s = 0.008``;
  ``α(1) = 0`` exactly.
- ``"polynomial"`` (Hoogeboom et al.'s EDM): ``α² = (1 - 2p)(1 - t^k)² + p`` with power ``k = 2`` and precision
  ``p = 1e-5``, so that ``α²`` stays in ``[p, 1 - p]``. EDM also clips the ratio of consecutive discrete ``α²``;
  in continuous time there is no such ratio, and it is left out.
- ``"linear"`` (Ho et al.'s DDPM, as an SDE): ``β(t) = β_min + t (β_max - β_min)``, ``β_min = 0.1``,
  ``β_max = 20``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "CosineSchedule", "LinearSchedule", "NoiseSchedule", "PolynomialSchedule", "get_schedule"]


class NoiseSchedule(ABC):
    """``α(t)²`` and its rate ``β(t)``; everything else derived. Times are tensors ``[...]`` in ``[0, 1]``."""

    @abstractmethod
    def alpha2(self, t: Tensor) -> Tensor:
        """``α(t)²``, ``[...]``."""

    @abstractmethod
    def beta(self, t: Tensor) -> Tensor:
        """``β(t) = -d log α(t)² / dt``, ``[...]``."""

    def alpha(self, t: Tensor) -> Tensor:
        """Signal scale ``α(t)``, ``[...]``."""
        return self.alpha2(t).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        """Noise scale ``σ(t) = √(1 - α²)``, ``[...]``."""
        return (1 - self.alpha2(t)).clamp_min(0).sqrt()

    def log_snr(self, t: Tensor) -> Tensor:
        """``log(α² / σ²)``, ``[...]`` (``-inf`` where ``α = 0``)."""
        a2 = self.alpha2(t)
        return a2.log() - (1 - a2).log()


class CosineSchedule(NoiseSchedule):
    """Nichol & Dhariwal's cosine schedule with offset ``s``."""

    def __init__(self, s: float = 0.008) -> None:
        if not 0 < s < 1:
            raise ValueError(f"s must lie in (0, 1), got {s}")
        self.s = s

    def _angle(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * (t + self.s) / (1 + self.s)

    def alpha2(self, t: Tensor) -> Tensor:
        start = math.cos(0.5 * math.pi * self.s / (1 + self.s))
        return (torch.cos(self._angle(t)) / start).square().clamp(0, 1)

    def beta(self, t: Tensor) -> Tensor:
        return math.pi / (1 + self.s) * torch.tan(self._angle(t))


class PolynomialSchedule(NoiseSchedule):
    """EDM's polynomial schedule ``α² = (1 - 2p)(1 - t^k)² + p``."""

    def __init__(self, power: float = 2.0, precision: float = 1e-5) -> None:
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        if not 0 < precision < 0.5:
            raise ValueError(f"precision must lie in (0, 0.5), got {precision}")
        self.power, self.precision = power, precision

    def alpha2(self, t: Tensor) -> Tensor:
        return (1 - 2 * self.precision) * (1 - t**self.power).square() + self.precision

    def beta(self, t: Tensor) -> Tensor:
        k, p = self.power, self.precision
        d_alpha2 = -2 * k * (1 - 2 * p) * (1 - t**k) * t ** (k - 1)
        return -d_alpha2 / self.alpha2(t)


class LinearSchedule(NoiseSchedule):
    """DDPM's linear rate ``β(t) = β_min + t (β_max - β_min)``: ``α² = exp(-β_min t - ½ (β_max - β_min) t²)``."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        if not 0 <= beta_min <= beta_max or beta_max <= 0:
            raise ValueError(f"need 0 <= beta_min <= beta_max, beta_max > 0; got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max

    def alpha2(self, t: Tensor) -> Tensor:
        return torch.exp(-self.beta_min * t - 0.5 * (self.beta_max - self.beta_min) * t.square())

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)


SCHEDULES = {"cosine": CosineSchedule, "polynomial": PolynomialSchedule, "linear": LinearSchedule}


def get_schedule(schedule: str | NoiseSchedule, **options: float) -> NoiseSchedule:
    """The schedule named ``schedule`` (one of ``SCHEDULES``) built with ``options``, or ``schedule`` itself."""
    if isinstance(schedule, NoiseSchedule):
        if options:
            raise ValueError("options apply only to a schedule given by name")
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)} or a NoiseSchedule, got {schedule!r}")
    return SCHEDULES[schedule](**options)
