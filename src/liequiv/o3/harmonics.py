r"""Real spherical harmonics in e3nn's basis, fast and twice differentiable.

Basis (e3nn 0.6). e3nn's harmonics put the polar axis on ``y``: with the permuted vector
``(X, Y, Z) = (z, x, y)``, the degree-``l`` block is ``sqrt(4π) · Y_l^m(X, Y, Z)`` for ``m = -l..l``, the
standard real harmonics without the Condon-Shortley phase (``"component"`` normalization). Degree 1 is
``sqrt(3) · (x, y, z)`` and its Wigner-D matrix is the rotation matrix itself. In angles,
``(x, y, z) = (sin β sin α, cos β, sin β cos α)`` and

.. math::  Y_{lm}(β, α) = Λ_{l|m|}(β) Φ_m(α), \quad Φ_0 = 1,\ Φ_{m>0} = \cos mα,\ Φ_{m<0} = \sin |m|α,

with ``Λ_{lk}(β) = sqrt((2l+1)(2-δ_{k0})(l-k)!/(l+k)!) P_l^k(cos β)`` (``P_l^k`` without the phase).

How it is computed. On the sphere ``Y_lm = q_l^{|m|}(Z) · T_m(X, Y)`` where ``T_m`` are the real and imaginary
parts of ``(X + iY)^{|m|}`` and ``q_l^k`` is a polynomial in ``Z`` alone. Both factors are built for all ``m``
at once from two short recurrences on ``[L+1, N]`` arrays (Chebyshev polynomials of ``Z``, powers of
``X + iY``), and the output is assembled by two small matrix products with constant tables (the Chebyshev
coefficients of every ``q_l^k``, well conditioned at any degree, and a 0/1 expansion of ``T_m`` over the
``(l, m)`` layout) and one elementwise product. That writes the batch-major output ``[N, (L+1)^2]``
directly, without the per-component ``stack`` that dominates a closed-form implementation. The backward is
written by hand (:class:`_HarmonicsFunction`): it reuses the two factors and needs two more small
products; its own derivative (second derivatives, forces) is taken by autograd through the same formula.
``normalize=False`` (solid harmonics, homogeneous polynomials of the raw vector) uses the classical
three-term recurrence with ``r²``, which is exact at every point including ``0``; ``lmax <= 1`` is a closed form.

On the CPU a compiled C++ kernel, ``csrc/harmonics.cpp``, computes the forward (the three-term Legendre recurrence
per ``|m|`` and powers of ``X + iY``, points in SIMD blocks) and the first-order backward (the same recurrences
differentiated, then the projection of the normalization), as the operators ``torch.ops.liequiv.harmonics`` and
``liequiv.harmonics_backward`` (:mod:`liequiv.o3.kernels`; they run under ``torch.compile`` too). The derivative of the
backward (second derivatives, forces) is taken through the torch formula above. The kernel is built on first use by
:mod:`liequiv.native`; other devices, ``LIEQUIV_NATIVE=0`` and machines without a compiler run the torch forward and
:class:`_HarmonicsFunction`.

Speed against e3nn and sphericart: ``python benchmarks/bench_o3.py --section a`` (tables in
``docs/benchmarks/o3.md``). Accuracy: float64 within
``1e-13`` of e3nn up to ``l = 12``; float32 about ``2e-5`` absolute at ``l = 8`` and ``1e-4`` at ``l = 16``
(near the poles; the intrinsic float32 sensitivity there is of the same order).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from liequiv.o3 import kernels

__all__ = ["spherical_harmonics"]

_NORMALIZATIONS = ("component", "norm", "integral")


def _check_lmax(lmax: int) -> int:
    if isinstance(lmax, bool) or not isinstance(lmax, int):
        raise TypeError(f"lmax must be an int, got {type(lmax).__name__}")
    if lmax < 0:
        raise ValueError(f"lmax must be >= 0, got {lmax}")
    return lmax


def _check_normalization(normalization: str) -> str:
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
    return normalization


def _degree_scale(lmax: int, normalization: str) -> np.ndarray:
    """Factor ``[lmax+1]`` turning "component" harmonics of degree ``l`` into the given normalization."""
    l = np.arange(lmax + 1, dtype=np.float64)
    if normalization == "component":
        return np.ones(lmax + 1)
    if normalization == "norm":
        return 1 / np.sqrt(2 * l + 1)
    return np.full(lmax + 1, 1 / math.sqrt(4 * math.pi))


def _legendre_q(lmax: int, t: np.ndarray) -> np.ndarray:
    """``q [..., L+1, L+1]`` (float64): ``q[l, k] = sqrt((l-k)!/(l+k)!) d^k P_l / dt^k (t)``, 0 for ``k > l``.

    ``q_l^k(cos β) sin^k β`` is the orthonormalized associated Legendre function (no Condon-Shortley phase).
    Three-term recurrence in ``l`` for each ``k``, stable for ``|t| <= 1``.
    """
    t = np.asarray(t, dtype=np.float64)
    q = np.zeros((*t.shape, lmax + 1, lmax + 1))
    diag = 1.0
    for k in range(lmax + 1):
        if k > 0:
            diag *= math.sqrt((2 * k - 1) / (2 * k))
        q[..., k, k] = diag
        if k + 1 <= lmax:
            q[..., k + 1, k] = math.sqrt(2 * k + 1) * t * diag
        for l in range(k + 2, lmax + 1):
            a = (2 * l - 1) / math.sqrt((l - k) * (l + k))
            b = math.sqrt((l + k - 1) * (l - k - 1) / ((l - k) * (l + k)))
            q[..., l, k] = a * t * q[..., l - 1, k] - b * q[..., l - 2, k]
    return q


def _legendre_lambda(lmax: int, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``Λ [..., L+1 (l), L+1 (k)]`` (float64), ``Λ_lk = sqrt((2l+1)(2-δ_k0)) q_l^k(cos) sin^k``.

    ``Y_lm = Λ_{l|m|}(β) Φ_m(α)`` in "component" normalization. ``sin`` may be negative (the natural
    extension of ``Λ`` to ``β ∈ (π, 2π)`` used by the Fourier basis on the torus).
    """
    cos = np.asarray(cos, dtype=np.float64)
    sin = np.asarray(sin, dtype=np.float64)
    q = _legendre_q(lmax, cos)
    l = np.arange(lmax + 1)
    k = np.arange(lmax + 1)
    norm = np.sqrt((2 * l[:, None] + 1) * np.where(k[None, :] == 0, 1.0, 2.0))
    sink = sin[..., None] ** k  # [..., L+1 (k)]
    return q * norm * sink[..., None, :]


@functools.cache
def _tables_f64(lmax: int, normalization: str) -> tuple[np.ndarray, np.ndarray]:
    """Constant tables of the forward, float64.

    ``cheb [L+1, K]``: column ``(l, m)`` holds the Chebyshev coefficients of ``s_l sqrt((2l+1)(2-δ)) q_l^{|m|}(Z)``.
    ``expand [2L+2, K]``: 0/1 map from the trigonometric features ``(μ, 1, C_1..C_L, S_1..S_L)`` to the columns;
    ``μ`` (1 off the origin, 0 at it) multiplies the ``m = 0`` columns of degree ``l >= 1``.
    """
    K = (lmax + 1) ** 2
    n = lmax + 1
    nodes = np.cos(np.pi * (np.arange(n) + 0.5) / n)  # Chebyshev points of the first kind: exact interpolation
    q = _legendre_q(lmax, nodes)  # [n, L+1, L+1]
    # Chebyshev transform: c_i = (2 - δ_i0)/n Σ_j f(t_j) T_i(t_j)
    Tij = np.cos(np.outer(np.arange(n), np.pi * (np.arange(n) + 0.5) / n))  # [i, j]
    coef = np.einsum("ij,jlk->ilk", Tij, q) * ((2 - (np.arange(n) == 0)) / n)[:, None, None]  # [i, l, k]
    scale = _degree_scale(lmax, normalization)
    cheb = np.zeros((n, K))
    expand = np.zeros((2 * lmax + 2, K))
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            k = abs(m)
            col = l * l + l + m
            c = coef[:, l, k].copy()
            c[l - k + 1 :] = 0  # degree l - k and parity (-1)^(l-k) exactly: drop rounding noise
            c[(l - k - np.arange(n)) % 2 == 1] = 0
            cheb[:, col] = c * math.sqrt((2 * l + 1) * (1 if k == 0 else 2)) * scale[l]
            if m == 0:
                expand[1 if l == 0 else 0, col] = 1
            elif m > 0:
                expand[1 + k, col] = 1
            else:
                expand[lmax + 1 + k, col] = 1
    return cheb, expand


_TABLE_CACHE: dict[tuple, tuple[Tensor, Tensor]] = {}


def _tables(lmax: int, normalization: str, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    key = (lmax, normalization, dtype, device)
    out = _TABLE_CACHE.get(key)
    if out is None:
        cheb, expand = _tables_f64(lmax, normalization)
        out = (torch.tensor(cheb, dtype=dtype, device=device), torch.tensor(expand, dtype=dtype, device=device))
        _TABLE_CACHE[key] = out
    return out


_BACKWARD_CACHE: dict[tuple, tuple[Tensor, Tensor]] = {}


def _backward_tables(lmax: int, normalization: str, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``cheb_d [L, K]`` = rows ``j = 1..L`` of ``cheb`` times ``j``; ``expand_k [2L, K]`` = the ``C_k`` and ``S_k``
    rows of ``expand`` times ``k``: the derivative factors of the features, folded into the tables."""
    key = (lmax, normalization, dtype, device)
    out = _BACKWARD_CACHE.get(key)
    if out is None:
        cheb, expand = _tables_f64(lmax, normalization)
        j = np.arange(1, lmax + 1, dtype=np.float64)[:, None]
        out = (
            torch.tensor(cheb[1:] * j, dtype=dtype, device=device),
            torch.tensor(expand[2:] * np.concatenate([j, j]), dtype=dtype, device=device),
        )
        _BACKWARD_CACHE[key] = out
    return out


def _unit(v: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, μ)``: ``v / |v|`` ``[N, 3]`` and ``μ = 1`` off the origin; ``u = 0``, ``μ = 0`` at it.

    Double where: the unused branch sees a safe denominator, so the value, gradient and second derivative of ``u``
    are exactly 0 at the origin, never NaN (``v / sqrt(r²)``, unlike ``v · rsqrt(r²)``, has no overflowing
    intermediate in its derivative for tiny float32 vectors).
    """
    r2 = (v * v).sum(-1, keepdim=True)
    nonzero = r2 > torch.finfo(v.dtype).tiny
    u = torch.where(nonzero, v / torch.sqrt(torch.where(nonzero, r2, torch.ones_like(r2))), torch.zeros_like(v))
    return u, nonzero[:, 0].to(v.dtype)


def _features(lmax: int, u: Tensor, nonzero: Tensor) -> tuple[Tensor, Tensor]:
    """``(cheb [L+1, N], trig [2L+2, N])`` of unit (or zero) vectors ``u [N, 3]``, component-major, differentiable.

    ``cheb``: Chebyshev polynomials ``T_j(Z)``; ``trig``: ``(μ, 1, C_1..C_L, S_1..S_L)`` with
    ``C_k + i S_k = (X + iY)^k``.
    """
    X, Y, Z = u[:, 2], u[:, 0], u[:, 1]
    one = torch.ones_like(Z)
    ch = [one, Z]
    for _ in range(2, lmax + 1):
        ch.append(2 * Z * ch[-1] - ch[-2])
    cs, ss = [], []
    c, s = X, Y
    for k in range(1, lmax + 1):
        if k > 1:
            c, s = X * c - Y * s, X * s + Y * c
        cs.append(c)
        ss.append(s)
    return torch.stack(ch[: lmax + 1]), torch.stack([nonzero, one, *cs, *ss])


def _features_fast(lmax: int, ut: Tensor, nonzero: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_features` without autograd, from component-major ``ut [3, N]``: rows written in place."""
    N = ut.shape[1]
    X, Y, Z = ut[2], ut[0], ut[1]
    cheb_feat = torch.empty(lmax + 1, N, dtype=ut.dtype, device=ut.device)
    cheb_feat[0].fill_(1)
    trig_feat = torch.empty(2 * lmax + 2, N, dtype=ut.dtype, device=ut.device)
    trig_feat[0].copy_(nonzero)
    trig_feat[1].fill_(1)
    if lmax >= 1:
        cheb_feat[1].copy_(Z)
        Z2 = Z + Z
        for j in range(2, lmax + 1):
            torch.mul(Z2, cheb_feat[j - 1], out=cheb_feat[j])
            cheb_feat[j].sub_(cheb_feat[j - 2])
        C, S = trig_feat[2 : lmax + 2], trig_feat[lmax + 2 :]
        C[0].copy_(X)
        S[0].copy_(Y)
        for k in range(1, lmax):
            torch.mul(X, C[k - 1], out=C[k])
            C[k].addcmul_(Y, S[k - 1], value=-1)
            torch.mul(X, S[k - 1], out=S[k])
            S[k].addcmul_(Y, C[k - 1])
    return cheb_feat, trig_feat


def _assemble(cheb_feat: Tensor, trig_feat: Tensor, cheb: Tensor, expand: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    poly = cheb_feat.T @ cheb  # [N, K]
    trig = trig_feat.T @ expand  # [N, K]
    return poly * trig, poly, trig


def _forward_autograd(lmax: int, v: Tensor, cheb: Tensor, expand: Tensor) -> Tensor:
    """The forward in plain differentiable operations (reference, and the graph of second derivatives)."""
    u, mu = _unit(v)
    return _assemble(*_features(lmax, u, mu), cheb, expand)[0]


def _graph_backward(lmax: int, v: Tensor, g: Tensor, cheb: Tensor, expand: Tensor) -> Tensor:
    """The gradient ``[N, 3]`` of ``Σ g ⊙ Y(v)`` with its own graph (second derivatives): autograd through
    :func:`_forward_autograd`, recomputed from ``v``."""
    with torch.enable_grad():
        out = _forward_autograd(lmax, v, cheb, expand)
    (gv,) = torch.autograd.grad(out, v, g, create_graph=True)
    return gv


class _HarmonicsFunction(torch.autograd.Function):
    """Harmonics of vectors ``v [N, 3]`` (normalized inside) with an analytic backward.

    Forward in component-major rows: ``u = v / |v|`` (0 at the origin), the features, two small products and one
    elementwise product ``Y = P ⊙ T``. Backward: ``g ⊙ T`` and ``g ⊙ P``, two small products with the tables
    (derivative factors folded in) give the gradients of the Chebyshev and trigonometric features, whose
    derivatives are again short recurrences (``T_j' = j U_{j-1}``, ``∂_X (X+iY)^k = k (X+iY)^{k-1}``,
    ``∂_Y = i k (X+iY)^{k-1}``), then the projection ``(g_u - u (u·g_u)) / |v|`` of the normalization (0 at the
    origin). When a graph of the backward is requested (second derivatives), the backward is instead taken by
    autograd through :func:`_forward_autograd`, recomputed from ``v``.
    """

    @staticmethod
    def forward(ctx, v, lmax, normalization, cheb, expand):  # type: ignore[override]
        vt = v.T.contiguous()  # [3, N] rows x, y, z
        r2 = (vt * vt).sum(0)
        nonzero = r2 > torch.finfo(v.dtype).tiny
        inv = torch.where(nonzero, r2, torch.ones_like(r2)).rsqrt_().mul_(nonzero)  # 1/|v|, 0 at the origin
        ut = vt * inv  # (not in place: for one vector, vt may share memory with v)
        mu = nonzero.to(v.dtype)
        cheb_feat, trig_feat = _features_fast(lmax, ut, mu)
        ctx.lmax = lmax
        ctx.normalization = normalization
        if not ctx.needs_input_grad[0]:  # inference: multiply in place, save nothing
            return (cheb_feat.T @ cheb).mul_(trig_feat.T @ expand)
        out, poly, trig = _assemble(cheb_feat, trig_feat, cheb, expand)
        ctx.save_for_backward(v, cheb, expand, ut, inv, trig_feat, poly, trig)
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        v, cheb, expand, ut, inv, trig_feat, poly, trig = ctx.saved_tensors
        lmax = ctx.lmax
        if lmax == 0:
            return torch.zeros_like(v), None, None, None, None
        if torch.is_grad_enabled():  # double backward
            return _graph_backward(lmax, v, g, cheb, expand), None, None, None, None
        # component-major [rows, N] gradients of the features; the derivative factors are folded in the tables
        cheb_d, expand_k = _backward_tables(lmax, ctx.normalization, v.dtype, v.device)
        work = g * trig  # one [N, K] temporary, reused (fresh large allocations cost page faults)
        g_dz = cheb_d @ work.T  # [L, N]: Σ_cols g T C[j, col] j, for j = 1..L
        g_cs = expand_k @ torch.mul(g, poly, out=work).T  # [2L, N]: k ∂/∂C_k and k ∂/∂S_k, k = 1..L
        Z = ut[1]
        # d/dZ of Chebyshev T_j = j U_{j-1}(Z): U_0 = 1, U_1 = 2Z, U_j = 2Z U_{j-1} - U_{j-2}
        us = [torch.ones_like(Z)]
        if lmax >= 2:
            us.append(2 * Z)
        for _ in range(3, lmax + 1):
            us.append(2 * Z * us[-1] - us[-2])
        gZ = (g_dz * torch.stack(us)).sum(0)
        # ∂C_k/∂X = k C_{k-1}, ∂S_k/∂X = k S_{k-1}, ∂C_k/∂Y = -k S_{k-1}, ∂S_k/∂Y = k C_{k-1} (C_0 = 1, S_0 = 0)
        gC, gS = g_cs[:lmax], g_cs[lmax:]
        C_prev = trig_feat[1 : lmax + 1]  # rows 1.. = 1, C_1 .. C_{L-1}
        S = trig_feat[lmax + 2 : 2 * lmax + 1]  # S_1 .. S_{L-1}
        gX = (gC * C_prev).sum(0) + (gS[1:] * S).sum(0)
        gY = (gS * C_prev).sum(0) - (gC[1:] * S).sum(0)
        gu = torch.stack([gY, gZ, gX])  # [3, N] in (x, y, z) order
        # through u = v / |v|: (g_u - u (u · g_u)) / |v|
        gu.sub_(ut * (ut * gu).sum(0)).mul_(inv)
        return gu.T, None, None, None, None


_USE_HAND_BACKWARD = True
_SCALE_CACHE: dict[tuple[int, str], Tensor] = {}


def _scale(lmax: int, normalization: str) -> Tensor:
    """``s_l`` of :func:`_degree_scale` as a float64 tensor, for the kernels."""
    scale = _SCALE_CACHE.get((lmax, normalization))
    if scale is None:
        scale = _SCALE_CACHE.setdefault((lmax, normalization), torch.tensor(_degree_scale(lmax, normalization)))
    return scale


def _native_forward(v: Tensor, lmax: int, normalization: str) -> Tensor:
    """CPU implementation of ``liequiv::harmonics``: unit-normalized harmonics of ``v [N, 3]`` -> ``[N, K]``."""
    v = v.contiguous()
    out = v.new_empty(v.shape[0], (lmax + 1) ** 2)
    fn = kernels.kernel("harmonics", "harmonics_forward", v.dtype)
    fn(kernels.ptr(v), kernels.ptr(out), v.shape[0], lmax, kernels.ptr(_scale(lmax, normalization)), kernels.threads())
    return out


def _native_backward(v: Tensor, g: Tensor, lmax: int, normalization: str) -> Tensor:
    """CPU implementation of ``liequiv::harmonics_backward``: the gradient ``[N, 3]`` of ``Σ g ⊙ Y(v)``."""
    v, g = v.contiguous(), g.contiguous()
    gv = torch.empty_like(v)
    fn = kernels.kernel("harmonics", "harmonics_backward", v.dtype)
    scale = _scale(lmax, normalization)
    fn(kernels.ptr(v), kernels.ptr(g), kernels.ptr(gv), v.shape[0], lmax, kernels.ptr(scale), kernels.threads())
    return gv


def _save_inputs(ctx, inputs, output) -> None:
    *tensors, ctx.lmax, ctx.normalization = inputs
    ctx.save_for_backward(*tensors)


def _harmonics_vjp(ctx, g: Tensor) -> tuple[Tensor, None, None]:
    (v,) = ctx.saved_tensors
    return _harmonics_backward_op(v, g, ctx.lmax, ctx.normalization), None, None


def _torch_vjp(v: Tensor, g: Tensor, lmax: int, normalization: str) -> Tensor:
    """``J(v)^T g`` through the torch formula, differentiable in ``v`` and ``g`` to any order. (The tables are made
    here, not taken from the cache: when traced for ``torch.compile`` they must be made under its fake mode.)"""
    cheb, expand = (torch.tensor(t, dtype=v.dtype, device=v.device) for t in _tables_f64(lmax, normalization))
    return torch.func.vjp(lambda x: _forward_autograd(lmax, x, cheb, expand), v)[1](g)[0]


def _harmonics_backward_vjp(ctx, a: Tensor) -> tuple[Tensor, Tensor, None, None]:
    """Second derivatives (forces in training) through the torch formula: there is no compiled kernel for them."""
    v, g = ctx.saved_tensors
    dv, dg = torch.func.vjp(lambda x, y: _torch_vjp(x, y, ctx.lmax, ctx.normalization), v, g)[1](a)
    return dv, dg, None, None


_harmonics_backward_op = kernels.define(
    "harmonics_backward(Tensor v, Tensor grad, int lmax, str normalization) -> Tensor",
    _native_backward,
    lambda v, g, lmax, normalization: torch.empty_like(v),
    _harmonics_backward_vjp,
    _save_inputs,
)
_harmonics_op = kernels.define(
    "harmonics(Tensor v, int lmax, str normalization) -> Tensor",
    _native_forward,
    lambda v, lmax, normalization: v.new_empty(v.shape[0], (lmax + 1) ** 2),
    _harmonics_vjp,
    _save_inputs,
)


def _solid_recurrence(lmax: int, v: Tensor, normalization: str) -> Tensor:
    """Solid harmonics ``|v|^l Y_l(v/|v|)`` ``[N, K]``: three-term recurrence with ``r²`` (exact polynomials)."""
    X, Y, Z = v[:, 2], v[:, 0], v[:, 1]
    r2 = X * X + Y * Y + Z * Z
    scale = _degree_scale(lmax, normalization)
    one = X * 0 + 1  # keeps degree 0 in the graph (its gradient is 0)
    # p_l^k = sqrt((2l+1)(2-δ)) q̂_l^k(Z, r²) with q̂ homogeneous of degree l-k; edges p_l^l are constants
    blocks_q = [one[None]]  # q̂_l [l+1 (k), N], unnormalized-by-(2l+1)
    diag = [1.0]
    for l in range(1, lmax + 1):
        diag.append(diag[-1] * math.sqrt((2 * l - 1) / (2 * l)))
    for l in range(1, lmax + 1):
        rows = []
        if l >= 2:
            k = torch.arange(l - 1, dtype=v.dtype, device=v.device)
            a = (2 * l - 1) / torch.sqrt((l - k) * (l + k))
            b = torch.sqrt((l + k - 1) * (l - k - 1) / ((l - k) * (l + k)))
            rows.append(a[:, None] * Z * blocks_q[l - 1][: l - 1] - b[:, None] * r2 * blocks_q[l - 2][: l - 1])
        rows.append((math.sqrt(2 * l - 1) * diag[l - 1]) * Z[None])
        rows.append(torch.full_like(Z, diag[l])[None])
        blocks_q.append(torch.cat(rows))
    cs, ss = [one], [torch.zeros_like(X)]
    for _ in range(lmax):
        c, s = cs[-1], ss[-1]
        cs.append(X * c - Y * s)
        ss.append(X * s + Y * c)
    out = []
    for l in range(lmax + 1):
        f = math.sqrt(2 * l + 1) * scale[l]
        q = blocks_q[l]
        neg = q[1:].flip(0) * torch.stack(ss[1 : l + 1][::-1]) * (f * math.sqrt(2)) if l > 0 else q[:0]
        pos = q * torch.stack(cs[: l + 1])
        if l > 0:
            pos = torch.cat([pos[:1] * f, pos[1:] * (f * math.sqrt(2))])
        else:
            pos = pos * f
        out.append(torch.cat([neg, pos]))
    return torch.cat(out).T


def _restore(out: Tensor, batch: torch.Size, dtype: torch.dtype) -> Tensor:
    """``out [N, K]`` with the batch shape and dtype of the input (skipping the no-op calls, a few us each)."""
    if len(batch) != 1:
        out = out.reshape(*batch, out.shape[-1])
    return out if out.dtype == dtype else out.to(dtype)


def spherical_harmonics(
    lmax: int,
    vectors: Tensor,
    normalize: bool = True,
    normalization: str = "component",
) -> Tensor:
    """Real spherical harmonics of degrees ``0..lmax``: ``vectors [..., 3] -> [..., (lmax+1)^2]``.

    Equal to ``e3nn.o3.spherical_harmonics(list(range(lmax + 1)), vectors, normalize, normalization)`` (e3nn 0.6
    stops at ``l = 12``; this has no limit and is tested to ``l = 16``). Note that **e3nn's own default
    normalization is** ``"integral"`` while ours is ``"component"``; pass it explicitly when moving between them.

    Args:
        lmax: largest degree (>= 0).
        vectors: points ``[..., 3]`` in ``(x, y, z)`` order, float32 or float64 (others are computed in
            float32 and cast back). Batch dimensions are kept.
        normalize: project ``vectors`` onto the unit sphere first. **The zero vector** (squared norm at most the
            dtype's smallest normal number) then gives ``Y_0`` (the constant of degree 0) and zeros for
            ``l >= 1``, with a gradient and second derivative that are exactly zero there (finite, not NaN).
            Without ``normalize`` the output is the homogeneous polynomial ``|v|^l Y_l(v / |v|)`` (solid
            harmonics), exact and differentiable everywhere, 0 included.
        normalization: ``"component"`` (``Σ_m Y_lm² = 2l+1`` on the sphere, the default), ``"norm"``
            (``Σ_m Y_lm² = 1``) or ``"integral"`` (``∫_{S²} Y_lm² dΩ = 1``, e3nn's default).

    Returns:
        ``[..., (lmax+1)^2]``: the blocks ``l = 0..lmax`` concatenated, ``m = -l..l`` inside each block.

    Example:
        >>> y = spherical_harmonics(2, torch.tensor([[0.0, 0.0, 2.0]]))
        >>> y[0, 1:4]  # degree 1 is sqrt(3) (x, y, z) on the sphere
        tensor([0.0000, 0.0000, 1.7321])

    Twice differentiable (``gradgradcheck`` passes): forces from an energy built on these features can be
    trained with gradient descent.
    """
    _check_lmax(lmax)
    _check_normalization(normalization)
    if not isinstance(vectors, Tensor):
        raise TypeError(f"vectors must be a torch.Tensor, got {type(vectors).__name__}")
    if vectors.ndim < 1 or vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have shape [..., 3], got {tuple(vectors.shape)}")
    if not vectors.is_floating_point():
        raise TypeError(f"vectors must be floating point, got {vectors.dtype}")
    in_dtype = vectors.dtype
    if in_dtype not in (torch.float32, torch.float64):
        vectors = vectors.float()
    batch = vectors.shape[:-1]
    v = vectors.reshape(-1, 3) if vectors.ndim != 2 else vectors
    if normalize and kernels.supports(v) and kernels.available("harmonics"):
        if lmax > 0 or not (torch.is_grad_enabled() and v.requires_grad):
            # (lmax 0 is a constant: the closed form below keeps it in the graph)
            return _restore(_harmonics_op(v, lmax, normalization), batch, in_dtype)
    if not normalize:
        return _restore(_solid_recurrence(lmax, v, normalization), batch, in_dtype)
    if lmax <= 1:  # closed form: fewer operations than the general path
        scale = _degree_scale(lmax, normalization)
        u, _ = _unit(v)
        y0 = u[:, :1] * 0 + float(scale[0])  # in the graph (zero gradient), like every other degree
        out = y0 if lmax == 0 else torch.cat([y0, u * float(math.sqrt(3) * scale[1])], -1)
        return _restore(out, batch, in_dtype)
    cheb, expand = _tables(lmax, normalization, v.dtype, v.device)
    if _USE_HAND_BACKWARD:
        out = _HarmonicsFunction.apply(v, lmax, normalization, cheb, expand)
    else:
        out = _forward_autograd(lmax, v, cheb, expand)
    return _restore(out, batch, in_dtype)
