"""Real spherical harmonics in e3nn's basis, by a vectorized Cartesian (solid-harmonic) recurrence.

e3nn's harmonics put the polar axis on ``y``: with ``(X, Y, Z) = (z, x, y)``, the degree-``l`` block is
``Y_l^m(X, Y, Z)`` for ``m = -l..l``, the standard real harmonics (no Condon-Shortley phase) times ``sqrt(4π)``
(normalization ``"component"``). Degree 1 is ``(x, y, z)``.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["spherical_harmonics"]

_NORMALIZATIONS = ("component", "norm", "integral")


@functools.cache
def _constants(lmax: int, normalization: str) -> tuple[torch.Tensor, ...]:
    """Per degree, the factors ``[2l+1]`` (float64) multiplying ``Q_l^|m| · (S_|m| or C_m)`` for ``m = -l..l``."""
    out = []
    for l in range(lmax + 1):
        f = []
        for m in range(-l, l + 1):
            a = abs(m)
            c = math.sqrt((2 * l + 1) * math.factorial(l - a) / math.factorial(l + a))
            if m != 0:
                c *= math.sqrt(2)
            if normalization == "norm":
                c /= math.sqrt(2 * l + 1)
            elif normalization == "integral":
                c /= math.sqrt(4 * math.pi)
            f.append(c)
        out.append(torch.tensor(f, dtype=torch.float64))
    return tuple(out)


@functools.cache
def _recurrence(lmax: int) -> tuple[torch.Tensor, ...]:
    """Coefficients ``(a [l-1], b [l-1])`` of ``Q_l^m = a_m Z Q_{l-1}^m - b_m r² Q_{l-2}^m`` for ``m < l - 1``."""
    out = []
    for l in range(lmax + 1):
        m = torch.arange(max(l - 1, 0), dtype=torch.float64)
        out.append(torch.stack([(2 * l - 1) / (l - m), (l + m - 1) / (l - m)]))
    return tuple(out)


def spherical_harmonics(
    lmax: int,
    vectors: torch.Tensor,
    normalize: bool = True,
    normalization: str = "component",
) -> torch.Tensor:
    """Real spherical harmonics of degrees ``0..lmax``: ``vectors [..., 3] -> [..., (lmax+1)^2]``.

    Equal to ``e3nn.o3.spherical_harmonics(range(lmax + 1), vectors, normalize, normalization)``; note that e3nn's own
    default normalization is ``"integral"`` while ours is ``"component"``.

    Args:
        lmax: largest degree (>= 0; tested up to 16).
        vectors: points ``[..., 3]`` in ``(x, y, z)`` order.
        normalize: project ``vectors`` onto the unit sphere first. The zero vector then gives ``Y_0`` (a constant)
            and zeros for ``l >= 1``, with a zero (finite) gradient. Without it the output is the homogeneous
            polynomial ``|v|^l Y_l(v / |v|)`` (solid harmonics).
        normalization: ``"component"`` (``Σ_m Y_lm² = 2l+1`` on the sphere), ``"norm"`` (``Σ_m Y_lm² = 1``) or
            ``"integral"`` (``∫ Y_lm² dΩ = 1``, e3nn's default).

    Twice differentiable everywhere (polynomial, plus a guarded normalization).
    """
    if isinstance(lmax, bool) or not isinstance(lmax, int):
        raise TypeError(f"lmax must be an int, got {type(lmax).__name__}")
    if lmax < 0:
        raise ValueError(f"lmax must be >= 0, got {lmax}")
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
    if not isinstance(vectors, torch.Tensor):
        raise TypeError(f"vectors must be a torch.Tensor, got {type(vectors).__name__}")
    if vectors.ndim < 1 or vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have shape [..., 3], got {tuple(vectors.shape)}")
    if not vectors.is_floating_point():
        raise TypeError(f"vectors must be floating point, got {vectors.dtype}")

    v = vectors
    if normalize:
        r2 = (v * v).sum(-1, keepdim=True)
        small = r2 <= torch.finfo(v.dtype).tiny
        # double where: the unused branch sees a safe denominator, so the gradient at 0 is 0, not NaN
        v = torch.where(small, torch.zeros_like(v), v / torch.sqrt(torch.where(small, torch.ones_like(r2), r2)))
    # standard axes of the real harmonics: polar axis Z = y, azimuth in the (X, Y) = (z, x) plane
    X, Y, Z = v[..., 2], v[..., 0], v[..., 1]
    r2 = X * X + Y * Y + Z * Z

    # C_m + i S_m = (X + iY)^m, m = 0..lmax
    cs, ss = [torch.ones_like(X)], [torch.zeros_like(X)]
    for _ in range(lmax):
        c, s = cs[-1], ss[-1]
        cs.append(X * c - Y * s)
        ss.append(X * s + Y * c)
    C = torch.stack(cs, -1)
    S = torch.stack(ss, -1)

    factors = [f.to(dtype=v.dtype, device=v.device) for f in _constants(lmax, normalization)]
    coeffs = [c.to(dtype=v.dtype, device=v.device) for c in _recurrence(lmax)]
    Zc, r2c = Z[..., None], r2[..., None]
    # Q_l [..., l+1]: Q_l^m(Z, r²) for m = 0..l, with r^l P_l^m(Z/r) (sinθ)^-m r^-m = Q_l^m
    q_prev2: torch.Tensor | None = None
    q_prev = torch.ones_like(X)[..., None]  # Q_0
    blocks = [factors[0] * q_prev]
    for l in range(1, lmax + 1):
        top = (2 * l - 1) * q_prev[..., l - 1 :]  # Q_l^l = (2l-1) Q_{l-1}^{l-1}
        parts = [Zc * top, top]  # Q_l^{l-1} = (2l-1) Z Q_{l-1}^{l-1}
        if l >= 2:
            a, b = coeffs[l]
            parts.insert(0, a * Zc * q_prev[..., : l - 1] - b * r2c * q_prev2[..., : l - 1])
        q = torch.cat(parts, -1)
        # m = -l..-1 use S_|m| (|m| descending), m = 0..l use C_m
        neg = q[..., 1:].flip(-1) * S[..., 1 : l + 1].flip(-1)
        pos = q * C[..., : l + 1]
        blocks.append(factors[l] * torch.cat([neg, pos], -1))
        q_prev2, q_prev = q_prev, q
    return torch.cat(blocks, -1)
