"""Image classifiers on R² ⋊ H (H = GL+(2), SL(2), SO(2)) after Mironenco & Forré (ICLR 2024), and a plain CNN.

``AffineCNN``: images ``[B, C, H, W]`` -> logits ``[B, num_classes]``::

    A_1..A_K = sampler()                                  (the seeded set; see GroupSampler's redraw)
    h = avgpool2(relu(norm_0(lift(blur(x)))))             [B, c_0, K, H/2, W/2]
    h = avgpool2(relu(norm_i(conv_i(h))))  (no pooling after the last)
    logits = linear(layernorm(max over plane and samples of h))

norm_i is an instance norm (``GroupNorm`` with one group per channel): per image and channel, its statistics
pool the samples and the plane, so it commutes with the group action, and it keeps no running statistics (with
``BatchNorm3d`` the running statistics lagged the training weights so much that the validation error in eval
mode was twice that in training mode). blur is a Gaussian of ``blur`` pixels: it band-limits the image, so that the
Riemann sums of the lifting stay close to the integrals at transformed offsets (on digits it halved the change of
the lifted invariants under 10°-45° rotations). The 2×2 average pooling of the plane commutes with the group
action up to the pixel grid (exactly with ``torch.rot90`` when the side is even; max pooling was less robust
between the grid's symmetries). ``PlainCNN`` is the same stack with ``Conv2d`` layers; ``matching_plain_cnn``
sizes it to a given parameter count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liequiv.nn.affine_conv import AffineGroupConv, AffineLifting, GroupSampler, invariant_max_pool
from liequiv.validation import check_positive_int

__all__ = ["AffineCNN", "PlainCNN", "matching_plain_cnn"]


def _check_channels(channels: Sequence[int]) -> tuple[int, ...]:
    channels = tuple(channels)
    if len(channels) < 2:
        raise ValueError(f"channels must list at least two widths (lifting, group convolutions), got {channels}")
    return tuple(check_positive_int(c, "channels") for c in channels)


def _head(channels: int, num_classes: int) -> nn.Module:
    """Layer norm of the pooled invariants (their spread across images is small next to their mean), then linear."""
    return nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, check_positive_int(num_classes, "num_classes")))


def _pool(h: Tensor) -> Tensor:
    """2×2 average pooling of the plane of ``[B, C, K, H, W]`` or ``[B, C, H, W]``."""
    return F.avg_pool2d(h.flatten(1, h.dim() - 3), 2).unflatten(1, h.shape[1:-2])


def _smooth(images: Tensor, sigma: float) -> Tensor:
    """``[B, C, H, W]`` convolved with a Gaussian of ``sigma`` pixels (truncated at 3 sigma; 0: unchanged)."""
    if sigma == 0:
        return images
    r = torch.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1, dtype=images.dtype, device=images.device)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    C = images.shape[1]
    kernel = (g[:, None] * g[None, :]).expand(C, 1, len(r), len(r))
    return F.conv2d(images, kernel, padding=len(r) // 2, groups=C)


def _check_blur(blur: object) -> float:
    if not (isinstance(blur, (int, float)) and math.isfinite(blur) and blur >= 0):
        raise ValueError(f"blur must be a finite number >= 0 (pixels), got {blur!r}")
    return float(blur)


class AffineCNN(nn.Module):
    """Invariant classifier on R² ⋊ H; ``group`` is "glplus", "sl" or "so2" (see the module notes); the samples
    are those of :class:`~liequiv.nn.GroupSampler` with the same arguments."""

    def __init__(self, group: str = "glplus", in_channels: int = 1, num_classes: int = 10,
                 channels: Sequence[int] = (8, 16), num_samples: int = 8, *, rotations: int | None = None,
                 kernel_radius: float = 3.0, scale: float = 0.3, max_log_scale: float = 0.5,
                 group_width: float = 0.5, blur: float = 1.0, seed: int = 0, redraw: str = "none",
                 quadrature: str = "monte-carlo", scales: int = 1, shears: int = 0) -> None:
        super().__init__()
        channels = _check_channels(channels)
        self.blur = _check_blur(blur)
        self.sampler = GroupSampler(group, num_samples, scale=scale, max_log_scale=max_log_scale,
                                    rotations=rotations, seed=seed, redraw=redraw, quadrature=quadrature,
                                    scales=scales, shears=shears)
        self.lift = AffineLifting(in_channels, channels[0], group, kernel_radius=kernel_radius,
                                  max_log_scale=max_log_scale)
        self.convs = nn.ModuleList(
            AffineGroupConv(c_in, c_out, group, kernel_radius=kernel_radius, max_log_scale=max_log_scale,
                            group_width=group_width)
            for c_in, c_out in pairwise(channels))
        self.norms = nn.ModuleList(nn.GroupNorm(c, c) for c in channels)
        self.head = _head(channels[-1], num_classes)

    def forward(self, images: Tensor) -> Tensor:
        samples = self.sampler(images.dtype, images.device)
        h = _pool(F.relu(self.norms[0](self.lift(_smooth(images, self.blur), samples))))
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms[1:])):
            h = F.relu(norm(conv(h, samples)))
            if i < len(self.convs) - 1:
                h = _pool(h)
        return self.head(invariant_max_pool(h))


class PlainCNN(nn.Module):
    """The baseline: the same input blur, then ``Conv2d`` layers with instance norm, ReLU and 2×2 average pooling
    between them, global max pooling, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: Sequence[int] = (8, 16),
                 kernel_size: int = 5, blur: float = 1.0) -> None:
        super().__init__()
        channels = _check_channels(channels)
        self.blur = _check_blur(blur)
        kernel_size = check_positive_int(kernel_size, "kernel_size")
        widths = (check_positive_int(in_channels, "in_channels"), *channels)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)
                                   for c_in, c_out in pairwise(widths))
        self.norms = nn.ModuleList(nn.GroupNorm(c, c) for c in channels)
        self.head = _head(channels[-1], num_classes)

    def forward(self, images: Tensor) -> Tensor:
        h = _smooth(images, self.blur)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = F.relu(norm(conv(h)))
            if i < len(self.convs) - 1:
                h = _pool(h)
        return self.head(h.flatten(2).amax(-1))


def matching_plain_cnn(model: nn.Module, in_channels: int = 1, num_classes: int = 10, depth: int = 2,
                       kernel_size: int = 5, blur: float = 1.0) -> PlainCNN:
    """The ``PlainCNN`` with widths (w, 2w, 4w, …) of ``depth`` layers whose parameter count is closest to model's."""
    target = sum(p.numel() for p in model.parameters())

    def build(width: int) -> PlainCNN:
        return PlainCNN(in_channels, num_classes, [width * 2**i for i in range(depth)], kernel_size, blur)

    return min((build(w) for w in range(1, 65)), key=lambda m: abs(sum(p.numel() for p in m.parameters()) - target))
