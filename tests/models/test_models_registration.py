"""Kabsch alignment and ICP: exact recovery (random, planar, weighted), the reflection fix against its closed form,
scipy's weighted alignment as an oracle, gradients, ICP convergence, trimming and equivariance, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from liequiv.data.shapes import random_shape
from liequiv.groups import SE3, SO3
from liequiv.models.registration import icp, icp_with_restarts, kabsch

DTYPE = torch.float64


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _max_difference(a: SE3, b: SE3) -> float:
    return float((a.as_matrix() - b.as_matrix()).abs().max())


def _shape_points(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(random_shape(rng).sample(n, rng))


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_kabsch_recovers_a_random_motion_exactly(batch: tuple[int, ...]) -> None:
    g = _generator(1)
    source = torch.randn(*batch, 10, 3, generator=g, dtype=DTYPE)
    truth = SE3.random(batch, generator=g, dtype=DTYPE)
    target = truth[(..., None)].act(source) if batch else truth.act(source)
    estimate = kabsch(source, target)
    assert estimate.shape == batch
    assert _max_difference(estimate, truth) < 1e-10


def test_kabsch_planar_and_minimal_sets() -> None:
    g = _generator(2)
    truth = SE3.random((4,), generator=g, dtype=DTYPE)
    planar = torch.randn(4, 12, 3, generator=g, dtype=DTYPE)
    planar[..., 2] = 0.0  # rank-2 covariance: the third singular value is 0
    assert _max_difference(kabsch(planar, truth[:, None].act(planar)), truth) < 1e-10
    triangle = torch.randn(4, 3, 3, generator=g, dtype=DTYPE)  # three points: the minimum
    assert _max_difference(kabsch(triangle, truth[:, None].act(triangle)), truth) < 1e-10


def test_kabsch_fixes_the_reflection() -> None:
    """Target = source mirrored along a principal axis e_k: the best proper rotation flips the two axes other than
    the one of smallest spread; for points ±3 e1, ±2 e2, ±e3 mirrored along e1 it is the turn by π about e2."""
    g = _generator(3)
    axes = SO3.random((), generator=g, dtype=DTYPE).as_matrix()  # columns: the principal axes e1, e2, e3
    local = torch.tensor([[3.0, 0, 0], [-3, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 1], [0, 0, -1]], dtype=DTYPE)
    source = local @ axes.T
    mirror_e1 = torch.diag(torch.tensor([-1.0, 1, 1], dtype=DTYPE))
    target = local @ mirror_e1 @ axes.T
    estimate = kabsch(source, target).as_matrix()
    expected = axes @ torch.diag(torch.tensor([-1.0, 1, -1], dtype=DTYPE)) @ axes.T
    assert float((estimate[:3, :3] - expected).abs().max()) < 1e-10
    assert float(estimate[:3, 3].abs().max()) < 1e-12
    mirror_e3 = torch.diag(torch.tensor([1.0, 1, -1], dtype=DTYPE))  # mirrored along the thinnest axis: identity
    estimate = kabsch(source, local @ mirror_e3 @ axes.T).as_matrix()
    assert float((estimate[:3, :3] - torch.eye(3, dtype=DTYPE)).abs().max()) < 1e-10


def test_kabsch_weighted_against_scipy() -> None:
    g = _generator(4)
    source = torch.randn(6, 15, 3, generator=g, dtype=DTYPE)
    target = SE3.random((6,), generator=g, dtype=DTYPE)[:, None].act(source)
    target = target + 0.3 * torch.randn(target.shape, generator=g, dtype=DTYPE)
    weights = torch.rand(6, 15, generator=g, dtype=DTYPE)
    estimate = kabsch(source, target, weights)
    for b in range(6):
        w = weights[b].numpy()
        xs, ys = source[b].numpy(), target[b].numpy()
        x0, y0 = xs - np.average(xs, 0, w), ys - np.average(ys, 0, w)
        rotation = Rotation.align_vectors(y0, x0, w)[0].as_matrix()  # minimizes Σ w |y0 - R x0|²
        np.testing.assert_allclose(estimate[b].as_matrix()[:3, :3].numpy(), rotation, atol=1e-10)
        np.testing.assert_allclose(estimate[b].as_matrix()[:3, 3].numpy(),
                                   np.average(ys, 0, w) - rotation @ np.average(xs, 0, w), atol=1e-10)


def test_kabsch_zero_weights_ignore_points() -> None:
    g = _generator(5)
    source = torch.randn(20, 3, generator=g, dtype=DTYPE)
    truth = SE3.random((), generator=g, dtype=DTYPE)
    target = truth.act(source)
    target[:5] = 10 * torch.randn(5, 3, generator=g, dtype=DTYPE)  # outliers
    weights = torch.ones(20, dtype=DTYPE)
    weights[:5] = 0
    assert _max_difference(kabsch(source, target, weights), truth) < 1e-10
    assert _max_difference(kabsch(source, target), truth) > 1e-2


def test_kabsch_gradients_match_finite_differences() -> None:
    g = _generator(6)
    source = torch.randn(2, 6, 3, generator=g, dtype=DTYPE, requires_grad=True)
    target = torch.randn(2, 6, 3, generator=g, dtype=DTYPE, requires_grad=True)
    weights = (torch.rand(2, 6, generator=g, dtype=DTYPE) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y, w: kabsch(x, y, w).as_matrix()[..., :3, :], (source, target, weights))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"source": torch.zeros(5, 2, dtype=DTYPE)}, "source"),
    ({"target": torch.zeros(4, 3, dtype=DTYPE)}, "same shape"),
    ({"source": torch.zeros(2, 3, dtype=DTYPE), "target": torch.zeros(2, 3, dtype=DTYPE)}, "at least 3"),
    ({"weights": torch.ones(4, dtype=DTYPE)}, "weights"),
    ({"weights": -torch.ones(5, dtype=DTYPE)}, "weights"),
    ({"target": torch.zeros(5, 3)}, "target must be torch.float64"),
])
def test_kabsch_bad_input(kwargs: dict, name: str) -> None:
    args = {"source": torch.randn(5, 3, dtype=DTYPE), "target": torch.randn(5, 3, dtype=DTYPE), **kwargs}
    with pytest.raises(ValueError, match=name):
        kabsch(**args)


# ---------------------------------------------------------------------------------------------------------
# ICP

def test_icp_converges_to_the_truth_from_a_small_perturbation() -> None:
    """Target = the moved source, shuffled: from within ~10° ICP finds the exact correspondences, so the motion."""
    g = _generator(7)
    source = torch.stack([_shape_points(400, seed) for seed in range(3)])
    truth = SE3.random((3,), generator=g, dtype=DTYPE)
    target = truth[:, None].act(source)[:, torch.randperm(400, generator=g)]
    tangent = torch.randn(3, 6, generator=g, dtype=DTYPE)
    tangent = tangent * torch.tensor([0.05, 0.05, 0.05, 0.1, 0.1, 0.1], dtype=DTYPE)  # about 10°, 0.05 away
    start = truth @ SE3.exp(tangent)
    assert _max_difference(start, truth) > 0.05
    result = icp(source, target, start, max_iterations=100, tolerance=1e-12)
    assert bool(result.converged.all()) and int(result.iterations.max()) < 100
    assert _max_difference(result.motion, truth) < 1e-10 and float(result.rmse.max()) < 1e-10


def test_icp_trimming_ignores_outliers() -> None:
    g = _generator(8)
    source = _shape_points(500, 11)
    truth = SE3.exp(torch.tensor([0.05, -0.02, 0.03, 0.1, -0.05, 0.08], dtype=DTYPE))
    target = truth.act(source)
    target[:100] = target[:100] + 0.5 * torch.randn(100, 3, generator=g, dtype=DTYPE)  # 20 % outliers
    trimmed = icp(source, target, max_iterations=100, tolerance=1e-12, overlap=0.75)
    plain = icp(source, target, max_iterations=100, tolerance=1e-12)
    assert _max_difference(trimmed.motion, truth) < 1e-10
    assert _max_difference(plain.motion, truth) > 1e-3


def test_icp_is_equivariant() -> None:
    """icp(R·source, target, init·R⁻¹) = icp(source, target, init)·R⁻¹ and icp(source, S·target, S·init) =
    S·icp(source, target, init), iteration by iteration (noisy partial clouds, fixed iterations)."""
    g = _generator(9)
    source = torch.stack([_shape_points(200, 20), _shape_points(200, 21)])
    target = torch.stack([_shape_points(250, 20), _shape_points(250, 21)])
    target = SE3.exp(0.2 * torch.randn(2, 6, generator=g, dtype=DTYPE))[:, None].act(target)
    target = target + 0.02 * torch.randn(target.shape, generator=g, dtype=DTYPE)
    init = SE3.exp(0.1 * torch.randn(2, 6, generator=g, dtype=DTYPE))
    rotation = SE3.random((2,), generator=g, dtype=DTYPE)  # a rigid motion of the source: R and a translation
    other = SE3.random((2,), generator=g, dtype=DTYPE)
    options = {"max_iterations": 8, "tolerance": 0.0, "overlap": 0.8}
    reference = icp(source, target, init, **options)
    moved_source = icp(rotation[:, None].act(source), target, init @ rotation.inverse(), **options)
    moved_target = icp(source, other[:, None].act(target), other @ init, **options)
    assert _max_difference(moved_source.motion, reference.motion @ rotation.inverse()) < 1e-10
    assert _max_difference(moved_target.motion, other @ reference.motion) < 1e-10
    torch.testing.assert_close(moved_source.rmse, reference.rmse, rtol=0, atol=1e-10)
    assert _max_difference(reference.motion, init) > 1e-2  # it moved


def test_icp_with_restarts_finds_a_large_rotation() -> None:
    source = _shape_points(300, 31) + torch.tensor([2.0, 0.0, 0.0], dtype=DTYPE)  # a box and a torus, off-centre
    truth = SE3._wrap(torch.cat([torch.tensor([0.3, -0.2, 0.1], dtype=DTYPE),
                                 SO3.from_axis_angle(torch.tensor([1.0, 1.0, 0.0], dtype=DTYPE) / math.sqrt(2),
                                                     torch.tensor(2.5, dtype=DTYPE)).params]))
    target = truth.act(source)
    assert _max_difference(icp(source, target, max_iterations=100).motion, truth) > 0.1  # a local minimum
    found = icp_with_restarts(source, target, 32, generator=_generator(10), max_iterations=100, tolerance=1e-12)
    assert _max_difference(found.motion, truth) < 1e-10
    single = icp_with_restarts(source, target, 1, max_iterations=5)  # the first start: identity, centroids aligned
    centroids = SE3._wrap(torch.cat([target.mean(0) - source.mean(0), torch.tensor([0.0, 0, 0, 1], dtype=DTYPE)]))
    # the same iterations, batched differently (the last bits depend on the reduction order: 8e-17 was seen)
    assert _max_difference(single.motion, icp(source, target, centroids, max_iterations=5).motion) < 1e-12
    batch = icp_with_restarts(source.expand(2, 300, 3), target.expand(2, 300, 3), 4, generator=_generator(0))
    assert batch.motion.shape == (2,) and batch.rmse.shape == (2,) and batch.iterations.shape == (2,)


def test_icp_stopping_rules() -> None:
    g = _generator(12)
    source = _shape_points(200, 40)
    target = _shape_points(200, 40) + 0.05 * torch.randn(200, 3, generator=g, dtype=DTYPE)
    capped = icp(source, target, max_iterations=3, tolerance=0.0)  # noisy pairs: a step is never exactly 0
    assert int(capped.iterations) == 3 and not bool(capped.converged)
    loose = icp(source, target, max_iterations=50, tolerance=10.0)  # any first step is below 10
    assert int(loose.iterations) == 1 and bool(loose.converged)
    tight = icp(source, target, max_iterations=200, tolerance=1e-9)
    again = icp(source, target, tight.motion, max_iterations=200, tolerance=1e-9)  # a fixed point: one more step
    assert bool(tight.converged) and 1 < int(tight.iterations) < 200
    assert _max_difference(again.motion, tight.motion) < 1e-8
    exact = source[torch.randperm(200, generator=g)]  # converges at once, while the noisy pair goes on
    batched = icp(torch.stack([source, source]), torch.stack([exact, target]), max_iterations=200, tolerance=1e-9)
    alone = icp(source, exact, max_iterations=200, tolerance=1e-9)
    assert batched.iterations.tolist() == [int(alone.iterations), int(tight.iterations)]
    assert _max_difference(batched.motion[0], alone.motion) < 1e-12
    assert _max_difference(batched.motion[1], tight.motion) < 1e-12
    far = SE3.exp(torch.tensor([[0.0, 0, 0, 0, 0, 0], [0.3, 0, 0, 0, 0, 0.4]], dtype=DTYPE))
    frozen = icp(torch.stack([source, source]), torch.stack([target, target]), far, tolerance=1e-2)
    first = icp(source, target, tolerance=1e-2)  # stops while its steps are still nonzero: a frozen cloud stays put
    assert int(frozen.iterations[0]) < int(frozen.iterations[1])
    assert _max_difference(frozen.motion[0], first.motion) < 1e-12


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"max_iterations": 0}, "max_iterations"), ({"tolerance": -1.0}, "tolerance"), ({"overlap": 0.0}, "overlap"),
    ({"overlap": 1.5}, "overlap"), ({"init": SE3.identity((2,), dtype=DTYPE)}, "init"),
    ({"target": torch.zeros(2, 3, dtype=DTYPE)}, "at least 3"),
    ({"target": torch.zeros(1, 6, 3, dtype=DTYPE)}, "batch shape"),
])
def test_icp_bad_input(kwargs: dict, name: str) -> None:
    args = {"source": torch.randn(5, 3, dtype=DTYPE), "target": torch.randn(6, 3, dtype=DTYPE), **kwargs}
    with pytest.raises(ValueError, match=name):
        icp(**args)
    if name in ("batch shape", "at least 3"):
        with pytest.raises(ValueError, match=name):
            icp_with_restarts(args["source"], args["target"], 2)
