"""Registration metrics against closed forms: angles about an axis, the trace formula, tiny and half-turn angles,
translation distances, success thresholds and accuracy curves, batching and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from liequiv.groups import SE3, SO3
from liequiv.train.registration_metrics import (
    fraction_below,
    rotation_error,
    success,
    success_rate,
    translation_error,
)

DTYPE = torch.float64
Z = torch.tensor([0.0, 0.0, 1.0], dtype=DTYPE)


def _about_z(degrees: float | list[float]) -> SO3:
    angle = torch.deg2rad(torch.as_tensor(degrees, dtype=DTYPE))
    return SO3.from_axis_angle(Z.expand(*angle.shape, 3), angle)


def _motion(translation: list[float], rotation: SO3) -> SE3:
    t = torch.as_tensor(translation, dtype=DTYPE)
    return SE3._wrap(torch.cat([t.expand(*rotation.shape, 3), rotation.params], -1))


def test_rotation_error_closed_forms() -> None:
    identity = SO3.identity(dtype=DTYPE)
    assert float(rotation_error(_about_z(30.0), identity)) == pytest.approx(30.0, abs=1e-12)
    assert float(rotation_error(identity, _about_z(30.0))) == pytest.approx(30.0, abs=1e-12)
    assert float(rotation_error(_about_z(100.0), _about_z(-100.0))) == pytest.approx(160.0, abs=1e-12)  # 200 -> 160
    assert float(rotation_error(_about_z(180.0), identity)) == pytest.approx(180.0, abs=1e-12)
    tiny = math.degrees(1e-8)
    assert float(rotation_error(_about_z(tiny), identity)) == pytest.approx(tiny, rel=1e-6)
    assert float(rotation_error(identity, identity)) == 0.0
    q = _about_z(45.0).params
    assert float(rotation_error(SO3._wrap(-q), _about_z(45.0))) == pytest.approx(0.0, abs=1e-12)  # q and -q


def test_rotation_error_is_the_trace_formula() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = SO3.random((50,), generator=g, dtype=DTYPE), SO3.random((50,), generator=g, dtype=DTYPE)
    relative = a.as_matrix().mT @ b.as_matrix()
    trace = relative.diagonal(dim1=-2, dim2=-1).sum(-1)
    expected = torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1, 1)))
    torch.testing.assert_close(rotation_error(a, b), expected, rtol=0, atol=1e-6)
    motions = _motion([1.0, 2.0, 3.0], a), _motion([0.0, 0.0, 0.0], b)
    torch.testing.assert_close(rotation_error(*motions), expected, rtol=0, atol=1e-6)


def test_translation_error_and_success() -> None:
    truth = _motion([0.0, 0.0, 0.0], SO3.identity((4,), dtype=DTYPE))
    estimate = SE3._wrap(torch.cat([
        torch.tensor([[0.03, 0.04, 0.0], [0.3, 0.4, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=DTYPE),
        _about_z([1.0, 1.0, 6.0, 4.9]).params], -1))
    torch.testing.assert_close(translation_error(estimate, truth), torch.tensor([0.05, 0.5, 0, 0], dtype=DTYPE))
    assert success(estimate, truth).tolist() == [True, False, False, True]
    assert float(success_rate(estimate, truth)) == 0.5
    assert success(estimate, truth, rotation_threshold=10.0, translation_threshold=1.0).all()
    assert float(success_rate(estimate, truth, 4.0, 0.01)) == 0.0
    assert success(estimate[0], truth[0]).shape == ()


def test_fraction_below() -> None:
    errors = torch.tensor([1.0, 4.0, 6.0, 12.0, 30.0])
    torch.testing.assert_close(fraction_below(errors, [5.0, 10.0, 20.0]), torch.tensor([0.4, 0.6, 0.8]))
    assert fraction_below(torch.tensor([[5, 1]]), [5]).tolist() == [0.5]  # strictly below
    with pytest.raises(ValueError, match="errors"):
        fraction_below(torch.tensor([]), [5.0])
    with pytest.raises(ValueError, match="thresholds"):
        fraction_below(errors, [])


def test_broadcasting_and_bad_input() -> None:
    truth = _about_z(10.0)
    torch.testing.assert_close(rotation_error(_about_z([10.0, 40.0, 5.0]), truth),
                               torch.tensor([0.0, 30.0, 5.0], dtype=DTYPE), rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="estimate"):
        rotation_error(torch.eye(3), truth)
    with pytest.raises(TypeError, match="same group"):
        rotation_error(_motion([0.0, 0.0, 0.0], truth), truth)
    with pytest.raises(TypeError, match="truth must be an SE3"):
        translation_error(_motion([0.0, 0.0, 0.0], truth), truth)
    with pytest.raises(ValueError, match="broadcastable"):
        rotation_error(_about_z([1.0, 2.0]), _about_z([1.0, 2.0, 3.0]))
    motion = _motion([0.0, 0.0, 0.0], truth)
    with pytest.raises(ValueError, match="rotation_threshold"):
        success(motion, motion, rotation_threshold=0.0)
    with pytest.raises(ValueError, match="translation_threshold"):
        success_rate(motion, motion, translation_threshold=-1.0)
