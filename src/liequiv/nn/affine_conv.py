r"""Lifting and group convolutions on R² ⋊ H, H = GL+(2), SL(2) or SO(2), with Monte Carlo sums over H.

After Mironenco & Forré, "Lie Group Decompositions for Equivariant Neural Networks" (ICLR 2024). A feature map
is a function on the affine group G = R² ⋊ H, stored at the pixel grid × K sampled elements A_k of H as
``[B, C, K, H, W]``. The plane coordinates of a pixel offset are y = (column, row) in pixels, as
``torch.nn.functional.affine_grid`` orders them; g = (B, t) acts on features by (g·F)(x, A) = F(B⁻¹(x - t), B⁻¹A).

* :class:`AffineLifting`: image f ``[B, C, H, W]`` -> ``[B, O, K, H, W]``,

      (Lf)(x, A_k) = Σ_y k(A_k⁻¹ y) f(x + y) / det A_k,

  a Riemann sum over integer pixel offsets y of ∫ k(A⁻¹y) f(x + y) dy / det A = ∫ k(u) f(x + A u) du. The
  image is needed only at pixels (zero outside); the kernel is continuous (an MLP of u) and is evaluated at the
  transformed offsets, so no image interpolation is needed.
* :class:`AffineGroupConv`: ``[B, I, K, H, W]`` -> ``[B, O, K, H, W]``, the group convolution with a separable
  kernel k(u, h) = k_s(u)_o k_H(h)_oi of the relative element h = A_k⁻¹ A_j:

      (ΦF)(x, A_k) = Σ_y k_s(A_k⁻¹ y) / det A_k · Σ_j w_j k_H(A_k⁻¹ A_j) F(x + y, A_j) / Σ_j w_j e(A_k⁻¹ A_j).

  w_j are the Haar importance weights of the samples (``HaarSample.log_weight``). k_H = MLP(cos ω, sin ω, s / τ)
  · e(h), (ω, s) the polar coordinates of h = R(ω) Exp(S(s)) (the package notes of ``liequiv.groups.linear``),
  damped by e(h) = exp(-‖s‖² / 2τ²) in the non-compact factor. The denominator is the Monte Carlo estimate of
  ∫ e(A_k⁻¹ A') dμ(A'), a constant by left invariance: the ratio (self-normalized per output element) estimates
  ∫_H k_H(A⁻¹A') F(·, A') dμ(A') up to that constant and is unbiased in the limit. The left Haar measure of G has
  the factor 1 / det A' rather than 1 / det A; the ratio det A / det A' = 1 / det h is a function of h and is
  absorbed in k_H. For SO(2), w_j = 1 and e = 1: the sum is the plain average over the samples.
* :func:`invariant_max_pool`: ``[B, C, K, H, W]`` -> ``[B, C]``, the maximum over the plane and the samples.

Choices (the freedom the continuous formulas leave):

* Spatial kernels: a linear combination of Gaussians on a grid (``SPATIAL_GRID``) times the compact envelope
  (1 - |u|² / r²)³₊ of radius r = ``kernel_radius`` pixels in the frame of A; at A = I it trains like a free
  convolution kernel. Sharper kernels have a larger Riemann-sum error at transformed offsets; this basis
  keeps a bump per pixel at r = 3 (the lifting test measures the error and its decay under refinement).
* Group kernels: a linear combination of (1, cos mω, sin mω) ⊗ (1, s) (``FOURIER_ORDER``) in the polar
  coordinates of h, so that orientation is not averaged away at initialization.
* Windows: since A_k⁻¹ y stays in the disc only for |y| ≤ r σ_max(A_k) ≤ r e^ρ, the window of offsets has the
  fixed radius ⌊r e^ρ⌋ (ρ = ``max_log_scale``) and truncating to it drops nothing.
* Samples (:func:`sample_group`, :class:`GroupSampler`): A_k = R(θ_k) Exp(S(s_k)) with stratified angles
  θ_k = φ + 2πk / K (one uniform phase φ) and, for GL+(2)/SL(2), s_k the draws of
  ``sample_glplus``/``sample_sl`` (s ~ N(0, scale²)) truncated by rejection to ‖s‖ ≤ ρ (so the singular values
  of A lie in [e^-ρ, e^ρ]). The Haar measure is dR · h(S) ds in these coordinates, so the stratified angles
  leave the importance weights of ``sample_glplus`` unchanged; with the acceptance probability they are exact
  weights of the Haar measure restricted to the truncated set. Equivariance to g = (B, t) therefore holds up
  to the Monte Carlo error and the part of B⁻¹·(truncated set) outside it. For SO(2) the samples are the K
  stratified rotations alone; with K divisible by 4 the set is closed under 90° rotations, which makes
  equivariance to ``torch.rot90`` exact.
* Grid quadrature (:func:`grid_group`, ``GroupSampler(quadrature="grid")``): a deterministic product rule instead
  of random stretches, R angles × L isotropic log-scales t ∈ [-ρ/2, ρ/2] × the traceless stretches {0} ∪ {β
  turned by ψ_d = π d / D}, β = ρ - max |t|. Left multiplication by R(2π/R) permutes the set and the scaling by
  one log-scale step maps all but the top level onto the set, so invariance to those maps holds up to the
  pixel grid and the ends of the scale range (the Monte Carlo set is closed under the rotations only). The
  weights are h(S) times the cells of a polar rule on the traceless plane: the disc |T| < β/2 for T = 0, and
  1 / D of the annulus β/2 < |T| < 3β/2 for each ring point.
* Redrawing: :class:`GroupSampler` gives the same seeded set in eval mode and, in training mode, the same set
  again (``redraw="none"``, the default), the seeded stretches with a fresh phase φ at every call
  (``"rotation"``) or fresh draws of all (``"all"``). With K = 8 samples of the 4-dimensional GL+(2), a fresh
  phase or fresh draws at every step left the model unable to fit 64 digits in 30 Adam steps (loss -13 %,
  against -84 % with the seeded set); the trained model is then a fixed quadrature rule of the group integral.
  All layers of one forward pass share one set (features live on it).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liequiv.groups.linear import (
    haar_log_density,
    polar_decompose,
    sample_glplus,
    sample_sl,
    sym_dim,
    sym_expm,
    sym_vee,
)
from liequiv.groups.so2 import rotation_matrix, unit_complex
from liequiv.validation import check_positive_int, checking_values

__all__ = ["GROUPS", "QUADRATURES", "REDRAWS", "AffineGroupConv", "AffineLifting", "GroupSampler", "GroupSamples",
           "grid_group", "invariant_max_pool", "sample_group"]

GROUPS = ("glplus", "sl", "so2")
"""The linear parts H of R² ⋊ H: GL+(2), SL(2) and the rotation-only baseline SO(2)."""

SPATIAL_GRID = 3
"""The spatial kernel basis: Gaussians at the points c of the grid (r / SPATIAL_GRID) Z² in the disc |c| ≤ r,
r = ``kernel_radius`` (29 of them), of width SPATIAL_WIDTH · r / SPATIAL_GRID."""

SPATIAL_WIDTH = 0.6
"""Width of the spatial kernel basis' Gaussians in grid spacings (one pixel at r = 3)."""

FOURIER_ORDER = 2
"""Highest frequency in the rotation angle of the group kernel basis."""


class GroupSamples(NamedTuple):
    """K elements of H and their Haar importance weights."""

    matrix: Tensor
    """A_k ``[K, 2, 2]``."""
    log_weight: Tensor
    """``[K]``: log dμ_Haar / dq at A_k, up to a constant (zeros for SO(2))."""


def check_group(group: object) -> str:
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return group


def _check_positive(x: object, name: str) -> float:
    if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
    return float(x)


def sample_group(group: str, num_samples: int, *, scale: float = 0.3, max_log_scale: float = 0.5,
                 rotations: int | None = None, generator: torch.Generator | None = None, phase: Tensor | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupSamples:
    """K = ``num_samples`` elements of H (see the module notes for the proposal and the truncation ‖s‖ ≤ ρ):
    K stratified angles, each with its own stretch, or (``rotations`` = R dividing K) every one of R angles with
    every one of K / R stretches. ``phase`` (a scalar tensor) fixes the phase φ of the angles, otherwise drawn
    with ``generator``."""
    group = check_group(group)
    num_samples = check_positive_int(num_samples, "num_samples")
    scale, rho = _check_positive(scale, "scale"), _check_positive(max_log_scale, "max_log_scale")
    angles = _angles(group, num_samples, rotations)
    turns = _turns(angles, phase, generator, dtype, device)
    if group == "so2":
        return GroupSamples(turns, turns.new_zeros(angles))
    special = group == "sl"
    draw = sample_sl if special else sample_glplus
    m = sym_dim(2, special)
    accept = torch.special.gammainc(torch.tensor(m / 2, dtype=torch.float64), torch.tensor(rho**2 / (2 * scale**2),
                                                                                            dtype=torch.float64))
    count, wanted = 0, num_samples // angles if rotations is not None else num_samples
    stretches, log_weights = [], []
    while count < wanted:  # rejection: about wanted / accept draws in all
        batch = draw(2, (int(2 * wanted / float(accept)) + 4,), scale=scale, generator=generator, dtype=dtype,
                     device=device)
        keep = torch.linalg.matrix_norm(batch.log_spd) <= rho
        stretches.append(batch.rotation.mT[keep] @ batch.matrix[keep])  # Exp(S)
        log_weights.append(batch.log_weight[keep])
        count += int(keep.sum())
    stretch, log_weight = torch.cat(stretches)[:wanted], torch.cat(log_weights)[:wanted] + math.log(float(accept))
    if rotations is None:
        return GroupSamples(turns @ stretch, log_weight)
    return _product(turns, stretch, log_weight)


def grid_group(group: str, rotations: int, *, scales: int = 1, shears: int = 0, max_log_scale: float = 0.5,
               generator: torch.Generator | None = None, phase: Tensor | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupSamples:
    """K = ``rotations`` × ``scales`` × (1 + ``shears``) elements of H on a product grid (the ``"grid"`` quadrature
    of the module notes): every stratified angle with every stretch Exp(t I + T), t on ``scales`` evenly spaced
    log-scales in [-ρ/2, ρ/2] (GL+(2) only), T = 0 or one of ``shears`` traceless stretches β diag(1, -1) turned
    by ψ_d = π d / ``shears``, with β = ρ - max |t|; ρ = ``max_log_scale``."""
    group = check_group(group)
    rotations = check_positive_int(rotations, "rotations")
    scales, rho = check_positive_int(scales, "scales"), _check_positive(max_log_scale, "max_log_scale")
    if not (isinstance(shears, int) and shears >= 0):
        raise ValueError(f"shears must be an integer >= 0, got {shears!r}")
    if group != "glplus" and scales != 1:
        raise ValueError(f"scales must be 1 for group {group!r} (it has no isotropic scaling), got {scales}")
    if group == "so2" and shears:
        raise ValueError(f"shears must be 0 for group 'so2', got {shears}")
    turns = _turns(rotations, phase, generator, dtype, device)
    if group == "so2":
        return GroupSamples(turns, turns.new_zeros(rotations))
    t = torch.linspace(-rho / 2, rho / 2, scales, dtype=turns.dtype, device=turns.device) if scales > 1 \
        else turns.new_zeros(1)
    beta = rho - float(t.abs().max())
    psi = math.pi * torch.arange(shears, dtype=turns.dtype, device=turns.device) / max(shears, 1)
    c, s = torch.cos(2 * psi), torch.sin(2 * psi)
    traceless = beta * torch.cat([turns.new_zeros(1, 2, 2), torch.stack([torch.stack([c, s], -1),
                                                                         torch.stack([s, -c], -1)], -2)])
    # cells of the polar rule on the traceless plane: the disc |T| < β/2 around 0, and 1 / shears of the
    # annulus β/2 < |T| < 3β/2 around each ring point (areas in units of π β²: 1/4 and 2 / shears)
    cell = torch.tensor([0.25] + [2.0 / max(shears, 1)] * shears, dtype=turns.dtype, device=turns.device)
    log_spd = (t[:, None, None, None] * torch.eye(2, dtype=t.dtype, device=t.device) + traceless).flatten(0, 1)
    log_weight = haar_log_density(log_spd) + cell.log().repeat(scales)
    return _product(turns, sym_expm(log_spd), log_weight)


def _turns(angles: int, phase: Tensor | None, generator: torch.Generator | None, dtype: torch.dtype | None,
           device: torch.device | str | None) -> Tensor:
    """R(φ + 2πk / angles) ``[angles, 2, 2]``; the phase φ is drawn with ``generator`` unless given."""
    if phase is None:
        phase = 2 * math.pi * torch.rand((), generator=generator, dtype=dtype, device=device)
    angle = phase + 2 * math.pi * torch.arange(angles, dtype=phase.dtype, device=phase.device) / angles
    return rotation_matrix(unit_complex(angle))


def _product(turns: Tensor, stretch: Tensor, log_weight: Tensor) -> GroupSamples:
    """Every turn with every stretch, angle-major: ``[R · S, 2, 2]`` and the stretches' weights."""
    return GroupSamples((turns[:, None] @ stretch[None]).flatten(0, 1), log_weight.repeat(len(turns)))


def _angles(group: str, num_samples: int, rotations: int | None) -> int:
    """The number of sampled angles: ``rotations`` (which must divide K), or K without it and for SO(2)."""
    if rotations is None or group == "so2":
        return num_samples
    if num_samples % check_positive_int(rotations, "rotations"):
        raise ValueError(f"rotations must divide num_samples = {num_samples}, got {rotations}")
    return rotations


REDRAWS = ("none", "rotation", "all")
QUADRATURES = ("monte-carlo", "grid")


class GroupSampler(nn.Module):
    """``forward(dtype, device) -> GroupSamples``: the ``seed``-ed set in eval mode; in training mode the same
    (``redraw="none"``), a fresh phase φ of the angles with the seeded stretches (``"rotation"``) or fresh draws
    of both (``"all"``). ``quadrature="grid"`` takes the stretches of :func:`grid_group` (``rotations`` × ``scales``
    × (1 + ``shears``) = ``num_samples``; only the phase is ever redrawn) instead of Monte Carlo draws."""

    def __init__(self, group: str, num_samples: int, *, scale: float = 0.3, max_log_scale: float = 0.5,
                 rotations: int | None = None, seed: int = 0, redraw: str = "none", quadrature: str = "monte-carlo",
                 scales: int = 1, shears: int = 0) -> None:
        super().__init__()
        self.group = check_group(group)
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.scale, self.max_log_scale = _check_positive(scale, "scale"), _check_positive(max_log_scale,
                                                                                         "max_log_scale")
        _angles(self.group, self.num_samples, rotations)
        self.rotations = rotations
        self.seed = int(seed)
        if redraw not in REDRAWS:
            raise ValueError(f"redraw must be one of {REDRAWS}, got {redraw!r}")
        self.redraw = redraw
        if quadrature not in QUADRATURES:
            raise ValueError(f"quadrature must be one of {QUADRATURES}, got {quadrature!r}")
        self.quadrature, self.scales, self.shears = quadrature, scales, shears
        if quadrature == "grid":
            grid = grid_group(self.group, rotations or 1, scales=scales, shears=shears, max_log_scale=max_log_scale,
                              phase=torch.zeros((), dtype=torch.float64))
            if rotations is None or len(grid.matrix) != self.num_samples:
                raise ValueError(f"the grid quadrature needs rotations × scales × (1 + shears) = num_samples, got "
                                 f"rotations={rotations}, scales={scales}, shears={shears}, "
                                 f"num_samples={self.num_samples}")

    def extra_repr(self) -> str:
        grid = f", scales={self.scales}, shears={self.shears}" if self.quadrature == "grid" else ""
        return (f"group={self.group!r}, num_samples={self.num_samples}, scale={self.scale}, "
                f"max_log_scale={self.max_log_scale}, rotations={self.rotations}, seed={self.seed}, "
                f"redraw={self.redraw!r}, quadrature={self.quadrature!r}{grid}")

    def forward(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupSamples:
        generator, phase = None, None
        if not self.training or self.redraw != "all":
            generator = torch.Generator(device=device or "cpu").manual_seed(self.seed)
        if self.training and self.redraw == "rotation":
            phase = 2 * math.pi * torch.rand((), dtype=dtype, device=device)
        if self.quadrature == "grid":
            return grid_group(self.group, self.rotations, scales=self.scales, shears=self.shears,
                              max_log_scale=self.max_log_scale, generator=generator, phase=phase, dtype=dtype,
                              device=device)
        return sample_group(self.group, self.num_samples, scale=self.scale, max_log_scale=self.max_log_scale,
                            rotations=self.rotations, generator=generator, phase=phase, dtype=dtype, device=device)


def _offsets(radius: int, like: Tensor) -> Tensor:
    """Integer offsets y = (column, row) of the (2 radius + 1)² window, row-major ``[P, 2]``."""
    r = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1)


class _SpatialKernel(nn.Module):
    """k(A⁻¹ y) / det A on the window -> ``[K, P, channels]``: k(u) = Σ_b W_b φ_b(u) (1 - |u|²/r²)³₊ with φ_b
    the Gaussians of ``SPATIAL_GRID`` (a kernel of r = 3 has the resolution of a 7 × 7 convolution)."""

    def __init__(self, channels: int, fan_in: int, kernel_radius: float, max_log_scale: float) -> None:
        super().__init__()
        self.radius = _check_positive(kernel_radius, "kernel_radius")
        self.window = math.floor(self.radius * math.exp(max_log_scale))
        centres = _offsets(SPATIAL_GRID, torch.empty(0))
        self.register_buffer("centres", centres[centres.norm(dim=-1) <= SPATIAL_GRID], persistent=False)
        bound = math.sqrt(3 / (fan_in * len(self.centres)))  # unit output variance at A = I for unit inputs
        self.weight = nn.Parameter(torch.empty(len(self.centres), channels).uniform_(-bound, bound))

    def forward(self, matrix: Tensor) -> Tensor:
        u = torch.einsum("kab,pb->kpa", torch.linalg.inv(matrix), _offsets(self.window, matrix)) / self.radius
        grid = u[:, :, None] * SPATIAL_GRID - self.centres.to(u)
        basis = torch.exp(-(grid**2).sum(-1) / (2 * SPATIAL_WIDTH**2))
        envelope = (1 - (u * u).sum(-1)).clamp_min(0) ** 3
        return (basis @ self.weight.to(u)) * (envelope / torch.linalg.det(matrix)[:, None])[..., None]


def _group_basis(rotation: Tensor, s: Tensor) -> Tensor:
    """``[..., (2 FOURIER_ORDER + 1)(1 + d)]``: (1, cos mω, sin mω for m ≤ FOURIER_ORDER) ⊗ (1, s) for the
    rotation R(ω) ``[..., 2, 2]`` and the scaled non-compact coordinates s ``[..., d]`` of h = R(ω) Exp(S(s))."""
    angle = torch.atan2(rotation[..., 1, 0], rotation[..., 0, 0])
    m = torch.arange(1, FOURIER_ORDER + 1, dtype=angle.dtype, device=angle.device)
    fourier = torch.cat([torch.ones_like(angle)[..., None], torch.cos(angle[..., None] * m),
                         torch.sin(angle[..., None] * m)], -1)
    return (fourier[..., :, None] * torch.cat([s.new_ones(*s.shape[:-1], 1), s], -1)[..., None, :]).flatten(-2)


def _check_samples(samples: GroupSamples, max_log_scale: float, group: str) -> tuple[Tensor, Tensor]:
    matrix, log_weight = samples
    if matrix.dim() != 3 or matrix.shape[1:] != (2, 2) or log_weight.shape != matrix.shape[:1]:
        raise ValueError(f"samples must be (matrix [K, 2, 2], log_weight [K]), got {list(matrix.shape)} and "
                         f"{list(log_weight.shape)}")
    if checking_values() and group != "so2" and math.isfinite(max_log_scale):
        stretch = torch.linalg.svdvals(matrix).log().abs().max()
        if stretch > max_log_scale * (1 + 1e-6) + 1e-6:
            raise ValueError(f"samples stretch by e^{float(stretch):.3g}, beyond the layer's e^max_log_scale = "
                             f"e^{max_log_scale}: draw them with the same max_log_scale")
    return matrix, log_weight


def _check_features(x: object, name: str, channels: int, dims: int, layout: str) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating torch.Tensor, got {type(x).__name__}")
    if x.dim() != dims or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape {layout} with {channels} channels, got {list(x.shape)}")
    return x


class AffineLifting(nn.Module):
    """Image ``[B, C, H, W]`` -> features on R² ⋊ H ``[B, O, K, H, W]`` (see the module notes).

    Example::

        >>> lift = AffineLifting(1, 8, "glplus")
        >>> samples = sample_group("glplus", 8)
        >>> lift(torch.randn(2, 1, 28, 28), samples).shape
        torch.Size([2, 8, 8, 28, 28])
    """

    def __init__(self, in_channels: int, out_channels: int, group: str, *, kernel_radius: float = 3.0,
                 max_log_scale: float = 0.5) -> None:
        super().__init__()
        self.group = check_group(group)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.max_log_scale = 0.0 if group == "so2" else _check_positive(max_log_scale, "max_log_scale")
        self.kernel = _SpatialKernel(out_channels * in_channels, in_channels, kernel_radius, self.max_log_scale)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, group={self.group!r}, window={self.kernel.window}"

    def forward(self, image: Tensor, samples: GroupSamples) -> Tensor:
        image = _check_features(image, "image", self.in_channels, 4, "[B, C, H, W]")
        matrix, _ = _check_samples(samples, self.max_log_scale, self.group)
        K, O, C, w = matrix.shape[0], self.out_channels, self.in_channels, 2 * self.kernel.window + 1
        weight = self.kernel(matrix.to(image.dtype)).reshape(K, w, w, O, C).permute(3, 0, 4, 1, 2)
        out = F.conv2d(image, weight.reshape(O * K, C, w, w), padding=self.kernel.window)
        return out.unflatten(1, (O, K)) + self.bias[:, None, None, None]


class AffineGroupConv(nn.Module):
    """Features ``[B, I, K, H, W]`` -> ``[B, O, K, H, W]`` on the same samples (see the module notes).

    ``group_width`` is τ, the damping width of the kernel in the non-compact coordinates s of h = A_k⁻¹ A_j.
    """

    def __init__(self, in_channels: int, out_channels: int, group: str, *, kernel_radius: float = 3.0,
                 max_log_scale: float = 0.5, group_width: float = 0.5) -> None:
        super().__init__()
        self.group = check_group(group)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.max_log_scale = 0.0 if group == "so2" else _check_positive(max_log_scale, "max_log_scale")
        self.group_width = _check_positive(group_width, "group_width")
        self.sym_dim = 0 if group == "so2" else sym_dim(2, group == "sl")
        self.spatial = _SpatialKernel(out_channels, 1, kernel_radius, self.max_log_scale)
        basis = (2 * FOURIER_ORDER + 1) * (1 + self.sym_dim)
        bound = math.sqrt(3 / (in_channels * basis))
        self.mixing = nn.Parameter(torch.empty(basis, out_channels * in_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, group={self.group!r}, window={self.spatial.window}, "
                f"group_width={self.group_width}")

    def group_kernel(self, matrix_out: Tensor, matrix_in: Tensor, log_weight_in: Tensor) -> Tensor:
        """w_j k_H(A_k⁻¹ A_j) / Σ_j w_j e(A_k⁻¹ A_j) ``[K_out, K_in, O, I]`` (output sample k, input sample j)."""
        relative = torch.linalg.solve(matrix_out[:, None], matrix_in[None, :])
        if self.group == "so2":
            rotation, s = relative, relative.new_zeros(*relative.shape[:2], 0)
        else:
            rotation, log_spd = polar_decompose(relative)
            s = sym_vee(log_spd, traceless=self.group == "sl")
        features = _group_basis(rotation, s / self.group_width)
        damped = torch.softmax(log_weight_in, 0) * torch.exp(-0.5 * (s * s).sum(-1) / self.group_width**2)
        weight = damped / damped.sum(1, keepdim=True)
        kernel = features @ self.mixing.to(features)
        return (kernel * weight[..., None]).unflatten(-1, (self.out_channels, self.in_channels))

    def forward(self, features: Tensor, samples: GroupSamples, out_samples: GroupSamples | None = None) -> Tensor:
        """``out_samples`` (default: ``samples``) are the elements at which the output is evaluated."""
        features = _check_features(features, "features", self.in_channels, 5, "[B, I, K, H, W]")
        matrix_in, log_weight = _check_samples(samples, math.inf, self.group)
        matrix = _check_samples(samples if out_samples is None else out_samples, self.max_log_scale, self.group)[0]
        matrix_in, log_weight, matrix = (t.to(features.dtype) for t in (matrix_in, log_weight, matrix))
        K, O, w = matrix.shape[0], self.out_channels, 2 * self.spatial.window + 1
        if features.shape[2] != matrix_in.shape[0]:
            raise ValueError(f"features have {features.shape[2]} group samples but samples has {matrix_in.shape[0]}")
        mixed = torch.einsum("kjoi,bijhw->bokhw", self.group_kernel(matrix, matrix_in, log_weight), features)
        weight = self.spatial(matrix).reshape(K, w, w, O).permute(3, 0, 1, 2).reshape(O * K, 1, w, w)
        out = F.conv2d(mixed.flatten(1, 2), weight, padding=self.spatial.window, groups=O * K)
        return out.unflatten(1, (O, K)) + self.bias[:, None, None, None]


def invariant_max_pool(features: Tensor) -> Tensor:
    """``[B, C, K, H, W]`` -> ``[B, C]``: the maximum over the plane and the group samples."""
    if not isinstance(features, Tensor) or features.dim() != 5:
        raise ValueError(f"features must be a tensor of shape [B, C, K, H, W], got {getattr(features, 'shape', None)}")
    return features.flatten(2).amax(-1)
