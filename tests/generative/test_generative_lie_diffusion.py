import math

import pytest
import torch

from liequiv.generative.igso3 import igso3_score, sample_igso3
from liequiv.generative.lie_diffusion import SE3Diffusion, SO3Diffusion
from liequiv.groups import SE3, SO3

F64 = torch.float64
SIGMA_DATA = 0.2  # rotation data: R* · IGSO3(0.2)
MEAN, STD = torch.tensor([1.0, -2.0, 0.5], dtype=F64), 0.3  # translation data: N(MEAN, STD² I)


def target_rotation() -> SO3:
    return SO3.exp(torch.tensor([0.3, -1.2, 2.0], dtype=F64))


def exact_rotation_score(diffusion, x: SO3, t: torch.Tensor) -> torch.Tensor:
    """The score of the marginal R* · IGSO3(√(σ_d² + σ(t)²)) (the heat kernel is a semigroup)."""
    sigma = (SIGMA_DATA**2 + diffusion.rotation.sigma(t) ** 2).sqrt()
    return igso3_score(target_rotation().inverse().compose(x).log(), sigma)


def exact_translation_score(diffusion, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The score of the marginal N(α MEAN, (α² STD² + σ²) I)."""
    schedule = diffusion.translation.schedule
    alpha, var = schedule.alpha(t)[..., None], (schedule.alpha2(t) * STD**2 + schedule.sigma(t) ** 2)[..., None]
    return -(x - alpha * MEAN) / var


def marginal_rotation(diffusion, t: float, n: int, generator) -> SO3:
    sigma = math.sqrt(SIGMA_DATA**2 + diffusion.rotation.sigma(torch.tensor(t, dtype=F64)).item() ** 2)
    return target_rotation().compose(SO3.exp(sample_igso3(sigma, (n,), generator=generator, dtype=F64)))


def rotation_errors(x: SO3) -> torch.Tensor:
    return torch.linalg.vector_norm(target_rotation().inverse().compose(x).log(), dim=-1)


def test_log_linear_sigma_and_its_rate():
    d = SO3Diffusion(0.05, 2.0)
    t = torch.linspace(0, 1, 11, dtype=F64, requires_grad=True)
    sigma = d.rotation.sigma(t)
    assert abs(sigma[0].item() - 0.05) < 1e-15 and abs(sigma[-1].item() - 2.0) < 1e-15
    torch.testing.assert_close(sigma[5], torch.tensor(math.sqrt(0.05 * 2.0), dtype=F64))
    (rate,) = torch.autograd.grad(sigma.square().sum(), t)
    torch.testing.assert_close(d.rotation.g2(t.detach()), rate)


def test_forward_noising_has_the_igso3_and_vp_marginals():
    n, g = 100_000, torch.Generator().manual_seed(0)
    d = SE3Diffusion()
    x0 = SE3.random((n,), generator=g, dtype=F64)
    t = torch.full((n,), 0.4, dtype=F64)
    xt, target = d.add_noise(x0, t, generator=g)
    relative = x0.rotation().inverse().compose(xt.rotation()).log()
    trace = 1 + 2 * torch.cos(torch.linalg.vector_norm(relative, dim=-1))
    expected = 3 * math.exp(-d.rotation.sigma(t[0]).item() ** 2)  # E[tr R] = 3 exp(-σ²)
    assert abs(trace.mean().item() - expected) < 5 * trace.std().item() / math.sqrt(n)
    torch.testing.assert_close(target[:, 3:], igso3_score(relative, d.rotation.sigma(t)), rtol=1e-9, atol=1e-9)
    schedule = d.translation.schedule
    eps = (xt.translation() - schedule.alpha(t)[:, None] * x0.translation()) / schedule.sigma(t)[:, None]
    torch.testing.assert_close(target[:, :3], -eps / schedule.sigma(t)[:, None])
    assert eps.mean(0).abs().max() < 5 / math.sqrt(n)
    torch.testing.assert_close(eps.T @ eps / n, torch.eye(3, dtype=F64), rtol=0, atol=5 * math.sqrt(2 / n))


def test_loss_vanishes_for_the_exact_score_of_a_single_data_point():
    g = torch.Generator().manual_seed(1)
    x_star = SE3.from_rotation_translation(target_rotation(), MEAN)
    x0 = SE3._wrap(x_star.params.expand(512, 7))
    d = SE3Diffusion()

    def exact(x, t):  # the data is one point: the marginal score is the conditional one
        rotation = igso3_score(target_rotation().inverse().compose(x.rotation()).log(), d.rotation.sigma(t))
        schedule = d.translation.schedule
        translation = -(x.translation() - schedule.alpha(t)[..., None] * MEAN) / schedule.sigma(t)[..., None] ** 2
        return torch.cat([translation, rotation], -1)

    assert d.loss(exact, x0, generator=g).item() < 1e-12
    assert d.loss(lambda x, t: -exact(x, t), x0, generator=g).item() > 1
    zero = d.loss(lambda x, t: torch.zeros(*x.shape, 6, dtype=F64), x0, t=0.01, generator=g).item()
    assert abs(zero - 6) < 0.5  # σ² |score|² ≈ 3 per factor where σ is small


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_so3_samplers_with_the_exact_score_reach_the_data_distribution(sampler):
    n, g = 4000, torch.Generator().manual_seed(2)
    d = SO3Diffusion()
    out = d.sample(lambda x, t: exact_rotation_score(d, x, t), steps=200, sampler=sampler,
                   initial=marginal_rotation(d, 1.0, n, g), generator=g)
    assert isinstance(out, SO3) and out.shape == (n,)
    # the end marginal is R* · IGSO3(σ_end), σ_end² = σ_d² + σ(min_t)²: E[tr(R*⁻¹ R)] = 3 exp(-σ_end²)
    sigma_end_sq = SIGMA_DATA**2 + d.rotation.sigma(torch.tensor(d.min_t)).item() ** 2
    trace = 1 + 2 * torch.cos(rotation_errors(out))
    assert abs(trace.mean().item() - 3 * math.exp(-sigma_end_sq)) < 4 * trace.std().item() / math.sqrt(n) + 2e-3
    assert rotation_errors(out).median() < 2 * math.sqrt(sigma_end_sq)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_se3_samplers_with_the_exact_score_reach_the_data_distribution(sampler):
    n, g = 4000, torch.Generator().manual_seed(3)
    d = SE3Diffusion()
    schedule = d.translation.schedule
    one = torch.tensor(1.0, dtype=F64)
    spread = (schedule.alpha2(one) * STD**2 + schedule.sigma(one) ** 2).sqrt()
    start = schedule.alpha(one) * MEAN + spread * torch.randn(n, 3, generator=g, dtype=F64)
    initial = SE3.from_rotation_translation(marginal_rotation(d, 1.0, n, g), start)

    def exact(x, t):
        return torch.cat([exact_translation_score(d, x.translation(), t), exact_rotation_score(d, x.rotation(), t)], -1)

    out = d.sample(exact, steps=200, sampler=sampler, initial=initial, generator=g)
    assert isinstance(out, SE3) and out.shape == (n,)
    x = out.translation()
    # at min_t the translation marginal is N(α MEAN, (α² STD² + σ²) I) ≈ N(MEAN, STD² I)
    assert (x.mean(0) - MEAN).abs().max() < 4 * STD / math.sqrt(n) + 0.01
    centred = x - x.mean(0)
    torch.testing.assert_close(centred.T @ centred / n, STD**2 * torch.eye(3, dtype=F64), rtol=0, atol=0.01)
    sigma_end_sq = SIGMA_DATA**2 + d.rotation.sigma(torch.tensor(d.min_t)).item() ** 2
    trace = 1 + 2 * torch.cos(rotation_errors(out.rotation()))
    assert abs(trace.mean().item() - 3 * math.exp(-sigma_end_sq)) < 4 * trace.std().item() / math.sqrt(n) + 2e-3


def test_default_prior_and_context():
    d = SE3Diffusion()
    seen = {}

    def model(x, t, scale):
        seen["scale"] = scale
        return torch.zeros(*x.shape, 6)

    out = d.sample(model, (5, 2), steps=3, generator=torch.Generator().manual_seed(4), scale=2.0)
    assert out.shape == (5, 2) and out.dtype == torch.get_default_dtype() and seen["scale"] == 2.0
    assert torch.isfinite(out.params).all()


def test_bad_input():
    d, g = SO3Diffusion(), torch.Generator().manual_seed(5)
    x0 = SO3.random((4,), generator=g)
    zero = lambda x, t: torch.zeros(*x.shape, 3)  # noqa: E731
    with pytest.raises(ValueError, match="steps"):
        d.sample(zero, (4,), steps=0)
    with pytest.raises(ValueError, match="steps"):
        d.sample(zero, (4,), steps=2.5)
    with pytest.raises(ValueError, match="sampler"):
        d.sample(zero, (4,), sampler="heun")
    with pytest.raises(TypeError, match="x0"):
        d.loss(zero, SE3.random((4,)))
    with pytest.raises(TypeError, match="initial"):
        d.sample(zero, initial=SE3.random((4,)))
    with pytest.raises(ValueError, match="score_model"):
        d.loss(lambda x, t: torch.zeros(*x.shape, 6), x0)
    with pytest.raises(TypeError, match="score_model"):
        d.loss(lambda x, t: None, x0)
    with pytest.raises(ValueError, match="t must"):
        d.loss(zero, x0, t=1.5)
    with pytest.raises(ValueError, match="sigma_min"):
        SO3Diffusion(sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="min_t"):
        SE3Diffusion(min_t=0.0)
    with pytest.raises(ValueError, match="schedule"):
        SE3Diffusion(schedule="quadratic")
