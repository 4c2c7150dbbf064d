"""Errors and success rates of rigid registration, batched.

``rotation_error`` is the geodesic angle of ``R_estᵀ R_true`` in degrees, computed from the relative quaternion as
``2 atan2(|v|, |w|)``, accurate at tiny angles and at 180° alike (``arccos((tr - 1)/2)`` loses half the digits
near 0). ``translation_error`` is ``|t_est - t_true|``, in the units of the data (the shapes of
:mod:`liequiv.data.shapes` have radius 1). A registration succeeds when both are below thresholds; the defaults,
5° and 0.1 (a tenth of the object's radius), are those of the 5° rotation accuracy reported for the SE(3)
diffusion model (Jiang et al. 2023, who also report 10° and 20°: use :func:`fraction_below` for such curves).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from liequiv.groups import SE3, SO3

DEFAULT_ROTATION_THRESHOLD = 5.0  # degrees
DEFAULT_TRANSLATION_THRESHOLD = 0.1  # units of the data


def _check_pair(estimate: object, truth: object, types: tuple[type, ...]) -> None:
    names = " or ".join(t.__name__ for t in types)
    for name, value in (("estimate", estimate), ("truth", truth)):
        if not isinstance(value, types):
            raise TypeError(f"{name} must be an {names}, got {type(value).__name__}")
    if type(estimate) is not type(truth):
        raise TypeError(f"estimate and truth must be the same group, got {type(estimate).__name__} and "
                        f"{type(truth).__name__}")
    try:
        torch.broadcast_shapes(estimate.shape, truth.shape)
    except RuntimeError:
        raise ValueError(f"estimate and truth must have broadcastable shapes, got {list(estimate.shape)} and "
                         f"{list(truth.shape)}") from None


def rotation_error(estimate: SO3 | SE3, truth: SO3 | SE3) -> Tensor:
    """The angle in degrees ``[...]`` of ``R_estᵀ R_true``, in ``[0, 180]`` (rotations or rigid motions)."""
    _check_pair(estimate, truth, (SO3, SE3))
    r_est, r_true = (x.rotation() if isinstance(x, SE3) else x for x in (estimate, truth))
    q = (r_est.inverse() @ r_true).params
    return torch.rad2deg(2 * torch.atan2(q[..., :3].norm(dim=-1), q[..., 3].abs()))


def translation_error(estimate: SE3, truth: SE3) -> Tensor:
    """``|t_est - t_true|`` ``[...]`` of rigid motions."""
    _check_pair(estimate, truth, (SE3,))
    return (estimate.params[..., :3] - truth.params[..., :3]).norm(dim=-1)


def _check_threshold(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def success(estimate: SE3, truth: SE3, rotation_threshold: float = DEFAULT_ROTATION_THRESHOLD,
            translation_threshold: float = DEFAULT_TRANSLATION_THRESHOLD) -> Tensor:
    """Whether each registration ``[...]`` (bool) has rotation error < ``rotation_threshold`` degrees and translation
    error < ``translation_threshold``."""
    rotation_threshold = _check_threshold(rotation_threshold, "rotation_threshold")
    translation_threshold = _check_threshold(translation_threshold, "translation_threshold")
    return ((rotation_error(estimate, truth) < rotation_threshold)
            & (translation_error(estimate, truth) < translation_threshold))


def success_rate(estimate: SE3, truth: SE3, rotation_threshold: float = DEFAULT_ROTATION_THRESHOLD,
                 translation_threshold: float = DEFAULT_TRANSLATION_THRESHOLD) -> Tensor:
    """The fraction (a 0-d tensor) of registrations that :func:`success` accepts."""
    return success(estimate, truth, rotation_threshold, translation_threshold).to(estimate.dtype).mean()


def fraction_below(errors: Tensor, thresholds: Sequence[float]) -> Tensor:
    """The fraction of ``errors`` (any shape) strictly below each threshold: ``[len(thresholds)]``, e.g. the
    rotation accuracy at 5°, 10° and 20°."""
    if not isinstance(errors, Tensor) or errors.numel() == 0:
        raise ValueError("errors must be a non-empty tensor")
    if not errors.is_floating_point():
        errors = errors.to(torch.get_default_dtype())
    limits = torch.as_tensor(list(thresholds), dtype=errors.dtype, device=errors.device)
    if limits.dim() != 1 or limits.numel() == 0:
        raise ValueError(f"thresholds must be a non-empty sequence of numbers, got {thresholds!r}")
    return (errors.reshape(-1, 1) < limits).to(errors.dtype).mean(0)
