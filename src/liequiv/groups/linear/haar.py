"""The Haar measure of GL+(n) and SL(n) in polar coordinates, and importance sampling of it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from liequiv.groups import series
from liequiv.groups.linear.algebra import sym_dim, sym_hat
from liequiv.groups.linear.polar import sym_expm
from liequiv.groups.linear.rotations import sample_rotation
from liequiv.groups.linear.spectral import symmetric_part
from liequiv.validation import check_positive_int, check_square, check_symmetric

__all__ = ["HaarSample", "haar_log_density", "sample_glplus", "sample_sl"]


def haar_log_density(S: Tensor) -> Tensor:
    """log h(S) = Σ_{i<j} log(sinh(λ_i - λ_j) / (λ_i - λ_j)) ``[...]``, λ the eigenvalues of S ``[..., n, n]``.

    The Haar measure of GL+(n) (and of SL(n), S traceless) is dR · h(S) ds in the polar coordinates
    A = R · Exp(S), with dR the Haar probability of SO(n) and ds Lebesgue measure in ``sym_vee``
    coordinates; see the package notes. Gradients are finite at repeated eigenvalues.
    """
    S = check_square(S, "S")
    check_symmetric(S, "S")
    lam = torch.linalg.eigvalsh(symmetric_part(S))
    n = lam.shape[-1]
    i, j = torch.triu_indices(n, n, 1, device=lam.device)
    return series.log_sinhc((lam[..., j] - lam[..., i]) ** 2).sum(-1)


class HaarSample(NamedTuple):
    """Draws of ``sample_glplus``/``sample_sl``: A = R · Exp(S) and log(dμ_Haar / dq) at A."""

    matrix: Tensor
    """A ``[..., n, n]``."""
    rotation: Tensor
    """R ``[..., n, n]``, Haar-uniform on SO(n)."""
    log_spd: Tensor
    """S ``[..., n, n]`` symmetric (traceless for SL(n)), the logarithm of the positive definite factor."""
    log_weight: Tensor
    """``[...]``: log h(S) - log q(s), so that E[exp(log_weight) φ(A)] = ∫ φ dμ_Haar."""


def _sample(n: int, batch_shape: Sequence[int], special: bool, scale: float, generator: torch.Generator | None,
            dtype: torch.dtype | None, device: torch.device | str | None) -> HaarSample:
    n = check_positive_int(n, "n")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    R = sample_rotation(n, batch_shape, generator=generator, dtype=dtype, device=device)
    m = sym_dim(n, special)
    s = scale * torch.randn(*batch_shape, m, generator=generator, dtype=R.dtype, device=R.device)
    S = sym_hat(s, n, traceless=special)
    log_q = -0.5 * (s * s).sum(-1) / scale**2 - 0.5 * m * math.log(2 * math.pi * scale**2)
    return HaarSample(R @ sym_expm(S), R, S, haar_log_density(S) - log_q)


def sample_glplus(n: int, batch_shape: Sequence[int] = (), *, scale: float = 1.0,
                  generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> HaarSample:
    """Draws from GL+(n) with importance weights for its Haar measure.

    R is Haar-uniform on SO(n); the coordinates s of S are N(0, scale² I) (so S is a Gaussian on
    Sym(n) with density ∝ exp(-‖S‖²_F / 2 scale²)); A = R · Exp(S). The proposal is invariant under
    A ↦ k A k' for rotations k, k'. ``log_weight`` = log h(S) - log q(s) corrects it to the Haar
    measure dR · h(S) ds. Example::

        >>> A, R, S, log_w = sample_glplus(2, (1000,), scale=0.5)
        >>> w = torch.softmax(log_w, 0)  # self-normalized weights: E_Haar-ρ[φ] ≈ Σ w ρ(A) φ(A) / Σ w ρ(A)
    """
    return _sample(n, batch_shape, False, scale, generator, dtype, device)


def sample_sl(n: int, batch_shape: Sequence[int] = (), *, scale: float = 1.0,
              generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> HaarSample:
    """As ``sample_glplus`` on SL(n): S is traceless, its n(n+1)/2 - 1 coordinates N(0, scale² I)."""
    return _sample(n, batch_shape, True, scale, generator, dtype, device)
