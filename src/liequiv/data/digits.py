"""Handwritten digits for affine-equivariant image models, and affine-perturbed copies of them.

The images are scikit-learn's bundled 8×8 digits (``sklearn.datasets.load_digits``: 1797 images of 0-9, shipped
inside the wheel, nothing is downloaded), scaled from [0, 16] to [0, 1], upsampled bilinearly to
``digit_size`` pixels and zero-padded to ``size`` × ``size`` (default 20 in 28, MNIST's layout), so that a
rotated or stretched digit still fits in the frame.

Perturbations (:func:`random_linear_maps`, :func:`warp_images`): linear maps A = R(θ) Exp(S) about the image
centre, in the polar coordinates of ``liequiv.groups.linear``; ``magnitude`` m ∈ [0, 1] scales both ranges:
θ ~ U[-m θ_max, m θ_max] and S with a uniformly random direction in Sym(2) (traceless for SL(2)) and norm
‖S‖_F ~ U[0, m ρ_max], so the singular values of A lie in [e^(-m ρ_max), e^(m ρ_max)]. Images are warped
exactly by the matrix, f'(p) = f(A⁻¹ p) with p = (column, row) from the centre, by bilinear
``grid_sample`` with zeros outside; m = 0 is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from liequiv.data.molecules import split_indices
from liequiv.groups.linear import sym_dim, sym_expm, sym_hat

__all__ = [
    "DIGIT_SPLITS",
    "load_digit_images",
    "load_digits_split",
    "perturbed_digits",
    "random_linear_maps",
    "warp_images",
]

DIGIT_SPLITS = {"train": 1257, "valid": 270, "test": 270}
"""Split sizes of the 1797 images."""


def load_digit_images(size: int = 28, digit_size: int = 20) -> tuple[Tensor, Tensor]:
    """All 1797 digits: images ``[N, 1, size, size]`` float32 in [0, 1] and labels ``[N]`` long."""
    if not (isinstance(size, int) and isinstance(digit_size, int) and 8 <= digit_size <= size):
        raise ValueError(f"need integers 8 <= digit_size <= size, got digit_size={digit_size!r}, size={size!r}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16
    images = F.interpolate(images, size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    before = (size - digit_size) // 2
    images = F.pad(images, (before, size - digit_size - before, before, size - digit_size - before))
    return images.clamp(0, 1), torch.as_tensor(digits.target, dtype=torch.long)


def load_digits_split(split: str, *, size: int = 28, digit_size: int = 20, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images ``[n, 1, size, size]`` and labels ``[n]`` of ``split`` ("train", "valid" or "test"), disjoint blocks
    of a permutation from ``seed`` with the sizes of ``DIGIT_SPLITS``."""
    if split not in DIGIT_SPLITS:
        raise ValueError(f"split must be one of {tuple(DIGIT_SPLITS)}, got {split!r}")
    images, labels = load_digit_images(size, digit_size)
    index = torch.as_tensor(split_indices(len(labels), tuple(DIGIT_SPLITS.values()), seed)[split])
    return images[index], labels[index]


def random_linear_maps(n: int, magnitude: float, *, max_angle: float = math.pi, max_log_stretch: float = 0.5,
                       special: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """n maps A = R(θ) Exp(S) ``[n, 2, 2]`` in GL+(2) (SL(2) if ``special``) of the given magnitude (module notes)."""
    if not (isinstance(magnitude, (int, float)) and 0 <= magnitude <= 1):
        raise ValueError(f"magnitude must be a number in [0, 1], got {magnitude!r}")
    for name, value in (("max_angle", max_angle), ("max_log_stretch", max_log_stretch)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    angle = magnitude * max_angle * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    direction = torch.randn(n, sym_dim(2, special), generator=generator, dtype=torch.float64)
    norm = magnitude * max_log_stretch * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    s = direction / direction.norm(dim=-1, keepdim=True) * norm
    c, si = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([c, -si], -1), torch.stack([si, c], -1)], -2)
    return rotation @ sym_expm(sym_hat(s, 2, traceless=special))


def warp_images(images: Tensor, matrices: Tensor) -> Tensor:
    """f'(p) = f(A⁻¹ p) for images ``[B, C, H, W]`` and A ``[B, 2, 2]`` about the centre (bilinear, zeros outside)."""
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a floating tensor [B, C, H, W], got {getattr(images, 'shape', None)}")
    if not isinstance(matrices, Tensor) or matrices.shape != (images.shape[0], 2, 2):
        raise ValueError(f"matrices must have shape [{images.shape[0]}, 2, 2], got {getattr(matrices, 'shape', None)}")
    H, W = images.shape[-2:]
    half = torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=torch.float64, device=images.device)
    # affine_grid (align_corners=True) works in normalized coordinates p / half
    theta = torch.linalg.inv(matrices.to(torch.float64)) * half[None, :] / half[:, None]
    theta = torch.cat([theta, theta.new_zeros(theta.shape[0], 2, 1)], dim=-1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def perturbed_digits(images: Tensor, magnitude: float, *, seed: int = 0, max_angle: float = math.pi,
                     max_log_stretch: float = 0.5, special: bool = False) -> tuple[Tensor, Tensor]:
    """An affine-perturbed copy of ``images`` ``[B, C, H, W]``: (warped images, the maps A ``[B, 2, 2]``), seeded."""
    matrices = random_linear_maps(images.shape[0], magnitude, max_angle=max_angle, max_log_stretch=max_log_stretch,
                                  special=special, generator=torch.Generator().manual_seed(seed))
    return warp_images(images, matrices), matrices.to(images.dtype)
