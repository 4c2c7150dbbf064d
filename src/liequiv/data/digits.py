"""Handwritten digits for affine-equivariant image models, and affine-perturbed copies of them.

The images are scikit-learn's bundled 8×8 digits (``sklearn.datasets.load_digits``: 1797 images of 0-9, shipped
inside the wheel, nothing is downloaded), scaled from [0, 16] to [0, 1] and rendered as smooth functions of the
plane: each of the 64 source pixels is a Gaussian bump of width ``RENDER_WIDTH`` times its spacing, the 8 × 8
grid spans ``digit_size`` pixels in a ``size`` × ``size`` frame (default 20 in 28, MNIST's layout), so that a
rotated or stretched digit still fits. A digit moved by a linear map A is rendered exactly, f(A⁻¹ p), not
resampled from the upright image: upright and moved digits are equally sharp, and the test sweep measures
geometry, not interpolation blur (resampling by bilinear interpolation alone changed the features of a
rotation-invariant model by as much as the difference between digits).

Perturbations (:func:`random_linear_maps`, :func:`perturbed_digits`; :func:`warp_images` resamples any
image): linear maps A = R(θ) Exp(S) about the image centre, in the polar coordinates of
``liequiv.groups.linear``; ``magnitude`` m ∈ [0, 1] scales both ranges: θ ~ U[-m θ_max, m θ_max] and S with a
uniformly random direction in Sym(2) (traceless for SL(2)) and norm ‖S‖_F ~ U[0, m ρ_max], so the singular values
of A lie in [e^(-m ρ_max), e^(m ρ_max)]; f'(p) = f(A⁻¹ p) with p = (column, row) from the centre; m = 0 is the
identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from liequiv.data.molecules import split_indices
from liequiv.groups.linear import sym_dim, sym_expm, sym_hat
from liequiv.groups.so2 import rotation_matrix, unit_complex

__all__ = [
    "DIGIT_SPLITS",
    "RENDER_WIDTH",
    "load_digit_images",
    "load_digits_split",
    "moved_digits",
    "perturbed_digits",
    "random_linear_maps",
    "render_digits",
    "warp_images",
]

DIGIT_SPLITS = {"train": 1257, "valid": 270, "test": 270}
"""Split sizes of the 1797 images."""


RENDER_WIDTH = 0.5
"""Width of a source pixel's Gaussian bump, in source pixel spacings."""


def render_digits(values: Tensor, matrices: Tensor | None = None, *, size: int = 28,
                  digit_size: int = 20) -> Tensor:
    """Source digits ``[N, 8, 8]`` in [0, 1] -> images ``[N, 1, size, size]`` float32, f(A⁻¹ p) for A
    ``[N, 2, 2]`` (default: the identity); see the module notes. A constant source renders constant inside up
    to a ripple of 4 % (the bumps are not a partition of unity)."""
    if not (isinstance(size, int) and isinstance(digit_size, int) and 8 <= digit_size <= size):
        raise ValueError(f"need integers 8 <= digit_size <= size, got digit_size={digit_size!r}, size={size!r}")
    if not isinstance(values, Tensor) or values.dim() != 3 or values.shape[1:] != (8, 8):
        raise ValueError(f"values must be a tensor [N, 8, 8], got {getattr(values, 'shape', None)}")
    n = values.shape[0]
    if matrices is not None and (not isinstance(matrices, Tensor) or matrices.shape != (n, 2, 2)):
        raise ValueError(f"matrices must have shape [{n}, 2, 2], got {getattr(matrices, 'shape', None)}")
    spacing, width = digit_size / 8, RENDER_WIDTH * digit_size / 8
    source = (torch.arange(8, dtype=torch.float64) - 3.5) * spacing
    rows, cols = torch.meshgrid(source, source, indexing="ij")
    centres = torch.stack([cols.reshape(-1), rows.reshape(-1)], -1)  # [64, 2], row-major as values
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    pixels = torch.stack([cols.reshape(-1), rows.reshape(-1)], -1)  # [P, 2]
    k = torch.arange(-8, 9, dtype=torch.float64) * spacing
    norm = float(torch.exp(-(k**2) / (2 * width**2)).sum()) ** 2  # the sum of all bumps at a source centre
    flat = values.reshape(n, 64, 1).to(torch.float64) / norm
    images = []
    for start in range(0, n, 256):
        stop = min(start + 256, n)
        q = pixels if matrices is None else torch.einsum("nab,pb->npa",
                                                         torch.linalg.inv(matrices[start:stop].double()), pixels)
        bumps = torch.exp(-((q[..., None, :] - centres) ** 2).sum(-1) / (2 * width**2))  # [(n,) P, 64]
        images.append((bumps @ flat[start:stop]).reshape(stop - start, 1, size, size))
    return torch.cat(images).to(torch.float32)


def _source_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.as_tensor(digits.images, dtype=torch.float64) / 16, torch.as_tensor(digits.target, dtype=torch.long)


def load_digit_images(size: int = 28, digit_size: int = 20) -> tuple[Tensor, Tensor]:
    """All 1797 digits, upright: images ``[N, 1, size, size]`` float32 in [0, 1] and labels ``[N]`` long."""
    values, labels = _source_digits()
    return render_digits(values, size=size, digit_size=digit_size), labels


def _check_split(split: object) -> str:
    if split not in DIGIT_SPLITS:
        raise ValueError(f"split must be one of {tuple(DIGIT_SPLITS)}, got {split!r}")
    return split


def _split_index(split: str, n: int, seed: int) -> Tensor:
    _check_split(split)
    return torch.as_tensor(split_indices(n, tuple(DIGIT_SPLITS.values()), seed)[split])


def load_digits_split(split: str, *, size: int = 28, digit_size: int = 20, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images ``[n, 1, size, size]`` and labels ``[n]`` of ``split`` ("train", "valid" or "test"), disjoint blocks
    of a permutation from ``seed`` with the sizes of ``DIGIT_SPLITS``."""
    values, labels = _source_digits()
    index = _split_index(split, len(labels), seed)
    return render_digits(values[index], size=size, digit_size=digit_size), labels[index]


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
    return rotation_matrix(unit_complex(angle)) @ sym_expm(sym_hat(s, 2, traceless=special))


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


def moved_digits(split: str, matrices: Tensor, *, split_seed: int = 0, size: int = 28,
                 digit_size: int = 20) -> tuple[Tensor, Tensor]:
    """The digits of ``split`` moved by the maps A ``[n, 2, 2]`` or one map ``[2, 2]`` for all, rendered exactly:
    (images ``[n, 1, size, size]``, labels ``[n]``)."""
    values, labels = _source_digits()
    index = _split_index(split, len(labels), split_seed)
    if isinstance(matrices, Tensor) and matrices.shape == (2, 2):
        matrices = matrices.expand(len(index), 2, 2)
    return render_digits(values[index], matrices, size=size, digit_size=digit_size), labels[index]


def perturbed_digits(split: str, magnitude: float, *, seed: int = 0, split_seed: int = 0,
                     max_angle: float = math.pi, max_log_stretch: float = 0.5, special: bool = False,
                     size: int = 28, digit_size: int = 20) -> tuple[Tensor, Tensor, Tensor]:
    """The digits of ``split`` moved by seeded random maps of ``magnitude``, rendered exactly: (images
    ``[n, 1, size, size]``, labels ``[n]``, the maps A ``[n, 2, 2]``)."""
    matrices = random_linear_maps(DIGIT_SPLITS[_check_split(split)], magnitude, max_angle=max_angle,
                                  max_log_stretch=max_log_stretch, special=special,
                                  generator=torch.Generator().manual_seed(seed))
    images, labels = moved_digits(split, matrices, split_seed=split_seed, size=size, digit_size=digit_size)
    return images, labels, matrices.to(torch.float32)
