import math

import pytest
import torch

from liequiv.generative.lie_flow import GeodesicFlowMatching
from liequiv.groups import SE3, SO3

F64 = torch.float64
GROUPS = [SO3, SE3]


def target(group):
    rotvec = torch.tensor([0.3, -1.2, 2.0], dtype=F64)
    return SO3.exp(rotvec) if group is SO3 else SE3.exp(torch.cat([torch.tensor([1.0, -2.0, 0.5], dtype=F64), rotvec]))


def toward(x_star):
    """The exact marginal velocity when the data is the single point x*: Log(x⁻¹ x*) / (1 - t) at x."""
    return lambda x, t: x_star.inverse().compose(x).inverse().log() / (1 - t)[..., None]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_path_ends_and_body_frame_velocity(group):
    g = torch.Generator().manual_seed(0)
    fm = GeodesicFlowMatching(group)
    x0, x1 = group.random((50,), generator=g, dtype=F64), group.random((50,), generator=g, dtype=F64)
    start, _ = fm.interpolate(x0, x1, 0.0)
    end, _ = fm.interpolate(x0, x1, 1.0)
    torch.testing.assert_close(start.as_matrix(), x0.as_matrix(), rtol=0, atol=1e-12)
    torch.testing.assert_close(end.as_matrix(), x1.as_matrix(), rtol=0, atol=1e-10)
    # dx_t/dt = x_t v^ (body frame), by central differences of the matrices, at several t
    t, h = torch.rand(50, generator=g, dtype=F64) * 0.8 + 0.1, 1e-6
    xt, velocity = fm.interpolate(x0, x1, t)
    derivative = (fm.interpolate(x0, x1, t + h)[0].as_matrix() - fm.interpolate(x0, x1, t - h)[0].as_matrix()) / (2 * h)
    torch.testing.assert_close(derivative, xt.as_matrix() @ group.hat(velocity), rtol=0, atol=1e-7)
    # and the velocity is also Log(x_t⁻¹ x_1) / (1 - t): constant along the path
    torch.testing.assert_close(velocity, x1.minus(xt) / (1 - t)[:, None], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_loss_vanishes_for_the_exact_velocity_of_a_single_data_point(group):
    g = torch.Generator().manual_seed(1)
    fm, x_star = GeodesicFlowMatching(group), target(group)
    x1 = group._wrap(x_star.params.expand(256, -1))
    t = torch.rand(256, generator=g, dtype=F64) * 0.99
    assert fm.loss(toward(x_star), x1, t, generator=g).item() < 1e-18
    assert fm.loss(lambda x, t: 2 * toward(x_star)(x, t), x1, t, generator=g).item() > 0.1
    left = lambda x, t: x_star.lminus(x) / (1 - t)[..., None]  # noqa: E731  (the left-frame velocity)
    assert fm.loss(left, x1, t, generator=g).item() > 0.1


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("steps", [1, 7, 50])
def test_euler_sampler_with_the_exact_velocity_lands_on_the_data_point(group, steps):
    fm, x_star = GeodesicFlowMatching(group), target(group)
    out = fm.sample(toward(x_star), (300,), steps=steps, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert out.shape == (300,)
    assert out.minus(group._wrap(x_star.params.expand(300, -1))).abs().max() < 1e-9


def test_euler_sampler_with_the_exact_velocity_of_two_points_splits_the_mass_evenly():
    """Two data points R_1, R_2 with weight ½: given endpoint R_k, R_k⁻¹ x_t = Exp((1 - t) Log y) with y Haar, so
    p_t(x | R_k) / Haar = (1 - cos(ω_k/(1 - t))) / ((1 - t)(1 - cos ω_k)) for ω_k = |Log(R_k⁻¹ x)| < (1 - t)π, and
    the marginal velocity is the posterior mean of Log(x⁻¹ R_k) / (1 - t)."""
    points = SO3.exp(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.5, -1.0]], dtype=F64))

    def velocity(x, t):
        r = 1 - t[..., None]
        logs = torch.stack([x.inverse().compose(points[k]).log() for k in range(2)], -2)  # [..., 2, 3]
        angle = torch.linalg.vector_norm(logs, dim=-1)
        ratio = torch.sin(angle / (2 * r)).square() / torch.sin(angle / 2).square().clamp_min(1e-300)
        ratio = torch.where(angle < 1e-8, 1 / r**2, ratio) * (angle < r * math.pi) + 1e-300
        weights = ratio / ratio.sum(-1, keepdim=True)
        return (weights[..., None] * logs).sum(-2) / r

    n = 4000
    out = GeodesicFlowMatching(SO3).sample(velocity, (n,), steps=400, generator=torch.Generator().manual_seed(3),
                                           dtype=F64)
    errors = torch.stack([torch.linalg.vector_norm(points[k].inverse().compose(out).log(), dim=-1) for k in range(2)])
    nearest, which = errors.min(0)
    assert (nearest < 0.05).float().mean() > 0.99
    assert abs(which.double().mean().item() - 0.5) < 4 * 0.5 / math.sqrt(n)


def test_noise_and_context():
    fm = GeodesicFlowMatching(SE3)
    noise = fm.noise((20_000,), generator=torch.Generator().manual_seed(4), dtype=F64)
    translation = noise.translation()
    assert translation.mean(0).abs().max() < 0.05 and (translation.var(0) - 1).abs().max() < 0.05
    trace = noise.rotation().as_matrix().diagonal(dim1=-2, dim2=-1).sum(-1)
    assert trace.mean().abs() < 0.05  # Haar: E[tr R] = 0
    seen = {}

    def model(x, t, mask):
        seen["mask"] = mask
        return torch.zeros(*x.shape, 6)

    out = fm.sample(model, (3,), steps=2, mask="m")
    assert out.shape == (3,) and seen["mask"] == "m"


def test_bad_input():
    fm = GeodesicFlowMatching(SO3)
    zero = lambda x, t: torch.zeros(*x.shape, 3)  # noqa: E731
    with pytest.raises(TypeError, match="group"):
        GeodesicFlowMatching(torch.Tensor)
    with pytest.raises(ValueError, match="steps"):
        fm.sample(zero, (2,), steps=0)
    with pytest.raises(TypeError, match="x1"):
        fm.loss(zero, SE3.random((2,)))
    with pytest.raises(TypeError, match="initial"):
        fm.sample(zero, initial=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="velocity_model"):
        fm.loss(lambda x, t: torch.zeros(*x.shape, 6), SO3.random((2,)))
    with pytest.raises(ValueError, match="t must"):
        fm.loss(zero, SO3.random((2,)), t=-0.1)
    with pytest.raises(ValueError, match="t does not broadcast"):
        fm.loss(zero, SO3.random((2,)), t=torch.rand(3))
