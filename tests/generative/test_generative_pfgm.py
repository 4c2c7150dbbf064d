import math

import pytest
import scipy.integrate
import torch

from liequiv.generative.diffusion import EuclideanDiffusion
from liequiv.generative.pfgm import pfgm_noise
from liequiv.generative.schedules import get_schedule

F64 = torch.float64


def _per_sample(eta: torch.Tensor, samples: int) -> torch.Tensor:
    return eta.reshape(samples, -1)


def _radius_cdf(radii: torch.Tensor, dims: int, aug_dim: int) -> torch.Tensor:
    """The distribution function of ``R`` at ``radii``, by quadrature of the radial density
    ``ρ^(N-1) (ρ² + D)^(-(N+D)/2)`` of the kernel at ``r = √D``."""

    def density(rho: float) -> float:
        return rho ** (dims - 1) * (rho**2 + aug_dim) ** (-(dims + aug_dim) / 2)

    total = scipy.integrate.quad(density, 0, math.inf)[0]
    return torch.tensor([scipy.integrate.quad(density, 0, float(r))[0] / total for r in radii], dtype=F64)


@pytest.mark.parametrize(("rows", "trailing", "center", "aug_dim"), [(1, (3,), False, 1), (3, (3,), True, 10),
                                                                     (2, (2, 3), False, 3)])
def test_radii_follow_the_kernel(rows, trailing, center, aug_dim):
    """Kolmogorov-Smirnov distance to the radial law of p_r(x | 0) ∝ (|x|² + r²)^(-(N+D)/2), r = √D, at 60
    quantiles of the sample (bound: the 0.1% level 1.95 / √n)."""
    samples = 10000
    batch = torch.arange(samples).repeat_interleave(rows)
    eta = pfgm_noise((rows * samples, *trailing), batch, aug_dim, center=center, dtype=F64,
                     generator=torch.Generator().manual_seed(0))
    dims = (rows - center) * math.prod(trailing)
    radii = _per_sample(eta, samples).norm(dim=1).sort().values
    probe = torch.linspace(0.01, 0.99, 60, dtype=F64)
    at = radii[(probe * samples).long()]
    empirical = (torch.searchsorted(radii, at, right=True).double()) / samples
    assert (empirical - _radius_cdf(at, dims, aug_dim)).abs().max() < 1.95 / math.sqrt(samples)
    if center:
        assert eta.view(samples, rows, *trailing).mean(1).abs().max() < 1e-12


def test_second_moment_and_directions():
    """Student t with D > 2 degrees of freedom: E η_i η_j = δ_ij D / (D - 2); directions uniform, E u uᵀ = I / N."""
    samples, aug_dim = 40000, 10
    eta = pfgm_noise((samples, 3), None, aug_dim, center=False, dtype=F64, generator=torch.Generator().manual_seed(1))
    second = eta.T @ eta / samples
    products = eta[:, :, None] * eta[:, None, :]
    bound = 4.5 * products.flatten(1).std(0).view(3, 3) / math.sqrt(samples)
    assert ((second - aug_dim / (aug_dim - 2) * torch.eye(3, dtype=F64)).abs() <= bound).all(), second
    u = eta / eta.norm(dim=1, keepdim=True)
    assert ((u.T @ u / samples - torch.eye(3, dtype=F64) / 3).abs() < 4.5 * 0.3 / math.sqrt(samples)).all()


def test_large_dimension_recovers_the_gaussian():
    """D = 10⁶: second and fourth moments of the entries are those of N(0, 1) (1 and 3), also centered (1 - 1/n)."""
    samples, rows = 20000, 4
    batch = torch.arange(samples).repeat_interleave(rows)
    eta = pfgm_noise((rows * samples, 3), batch, 10**6, center=True, dtype=F64,
                     generator=torch.Generator().manual_seed(2))
    variance = 1 - 1 / rows
    second, fourth = eta.square().mean(), eta.pow(4).mean()
    assert abs(float(second) - variance) < 4.5 * math.sqrt(2 / eta.numel()) * variance * 3
    assert abs(float(fourth) / variance**2 - 3) < 0.1
    finite = pfgm_noise((rows * samples, 3), batch, 5, center=True, dtype=F64,
                        generator=torch.Generator().manual_seed(2))
    assert float(finite.square().mean()) > 1.3 * variance  # D / (D - 2) = 5/3 for D = 5


POINTS = torch.tensor([[2.0, 0.0, 0.0], [-1.0, 1.5, 0.0], [0.0, -1.0, 2.0]], dtype=F64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=F64)


class ExactDiscreteModel:
    """Data on three weighted points: under the PFGM++ kernel of ``x_t / α`` at ``r = (σ/α)√D`` (N = 3),
    ``E[x_0 | x_t] = Σ_i w_i y_i`` with ``w_i ∝ π_i (|x_t / α - y_i|² + r²)^(-(N+D)/2)``."""

    def __init__(self, prediction: str, aug_dim: int) -> None:
        self.schedule, self.prediction, self.aug_dim = get_schedule("cosine"), prediction, aug_dim

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        sq_dist = (x_t[:, None] / a[..., None] - POINTS).square().sum(-1)  # [N, 3]
        log_w = WEIGHTS.log() - (3 + self.aug_dim) / 2 * (sq_dist + (s / a) ** 2 * self.aug_dim).log()
        x0 = log_w.softmax(-1) @ POINTS
        return x0 if self.prediction == "x0" else (x_t - a * x0) / s


class ExactDiscreteGaussianModel(ExactDiscreteModel):
    """The same data under the Gaussian kernel (D → ∞): ``w_i ∝ π_i exp(-|x_t / α - y_i|² / (2 (σ/α)²))``."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        sq_dist = (x_t[:, None] / a[..., None] - POINTS).square().sum(-1)
        x0 = (WEIGHTS.log() - sq_dist / (2 * (s / a) ** 2)).softmax(-1) @ POINTS
        return x0 if self.prediction == "x0" else (x_t - a * x0) / s


def log_marginal(x: torch.Tensor, t: torch.Tensor, aug_dim: int | None) -> torch.Tensor:
    """``log p_t(x) [M]`` of the three points perturbed by the kernel (Gaussian for ``aug_dim=None``) of
    ``x / α`` at VE noise level ``σ/α``, with the Jacobian ``α⁻³`` of ``x ↦ x / α``. The normalized kernel at
    ``r``: ``Γ((N+D)/2) / (π^(N/2) Γ(D/2)) r^D (|z|² + r²)^(-(N+D)/2)``."""
    schedule = get_schedule("cosine")
    a, s = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
    sq_dist = (x[:, None] / a[..., None] - POINTS).square().sum(-1)
    ve2 = (s / a) ** 2
    if aug_dim is None:
        log_kernel = -sq_dist / (2 * ve2) - 1.5 * (2 * math.pi * ve2).log()
    else:
        r2, n, d = ve2 * aug_dim, 3, aug_dim
        log_kernel = (math.lgamma((n + d) / 2) - math.lgamma(d / 2) - n / 2 * math.log(math.pi)
                      + d / 2 * r2.log() - (n + d) / 2 * (sq_dist + r2).log())
    return (WEIGHTS.log() + log_kernel).logsumexp(-1) - 3 * a[:, 0].log()


@pytest.mark.parametrize("aug_dim", [None, 1, 5])
@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_probability_flow_transports_the_kernel_marginals(aug_dim, prediction):
    """The continuity equation ∂_t log p + v · ∇ log p + ∇ · v = 0 holds pointwise for the probability-flow
    velocity v with the kernel's exact denoiser and p the kernel's marginal (PFGM++'s claim for D < ∞)."""
    kernel = "gaussian" if aug_dim is None else "pfgm"
    diffusion = EuclideanDiffusion("cosine", prediction=prediction, kernel=kernel, pfgm_dim=aug_dim)
    model = (ExactDiscreteGaussianModel if aug_dim is None else ExactDiscreteModel)(prediction, aug_dim or 1)
    g = torch.Generator().manual_seed(7)
    x = (2 * torch.randn(12, 3, dtype=F64, generator=g)).requires_grad_()
    t = torch.linspace(0.2, 0.9, 12, dtype=F64).requires_grad_()
    d_logp_dx, d_logp_dt = torch.autograd.grad(log_marginal(x, t, aug_dim).sum(), (x, t))
    v = diffusion.probability_flow(model, x, t, None, {})
    divergence = sum(torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(3))
    residual = d_logp_dt + (v * d_logp_dx).sum(-1) + divergence
    scale = d_logp_dt.abs() + (v * d_logp_dx).sum(-1).abs() + divergence.abs()
    assert (residual.abs() < 1e-9 * scale.clamp_min(1)).all(), residual


@pytest.mark.parametrize(("sampler", "prediction", "steps"), [("ddim", "x0", 100), ("heun", "eps", 40),
                                                              ("euler", "x0", 200)])
def test_deterministic_samplers_reach_the_data_with_its_weights(sampler, prediction, steps):
    samples, aug_dim = 2000, 8
    diffusion = EuclideanDiffusion("cosine", prediction=prediction, kernel="pfgm", pfgm_dim=aug_dim)
    x = diffusion.sample(ExactDiscreteModel(prediction, aug_dim), (samples, 3), steps=steps, sampler=sampler,
                         dtype=F64, generator=torch.Generator().manual_seed(3))
    distance, nearest = torch.cdist(x, POINTS).min(-1)
    assert distance.max() < 0.1, distance.max()  # the last Euler step of "euler"/"heun" leaves a little noise
    fractions = torch.bincount(nearest, minlength=3).double() / samples
    assert ((fractions - WEIGHTS).abs() < 4.5 * (WEIGHTS * (1 - WEIGHTS) / samples).sqrt()).all(), fractions


def test_noise_uses_the_kernel():
    diffusion = EuclideanDiffusion("cosine", kernel="pfgm", pfgm_dim=4)
    x0 = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    x_t, eta = diffusion.noise(x0, 0.5, generator=torch.Generator().manual_seed(5))
    expected = pfgm_noise((5, 3), None, 4, center=False, dtype=F64, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(eta, expected, rtol=0, atol=0)
    schedule = get_schedule("cosine")
    t = torch.tensor(0.5, dtype=F64)
    torch.testing.assert_close(x_t, schedule.alpha(t) * x0 + schedule.sigma(t) * eta, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kernel", ["gaussian", "pfgm"])
def test_samplers_start_from_the_kernel_at_the_first_time(kernel):
    """The first model call sees σ(t_max) η, η the kernel's noise at unit scale, at t_max = 1 - t_min."""
    diffusion = EuclideanDiffusion("linear", kernel=kernel, pfgm_dim=3 if kernel == "pfgm" else None, t_min=0.01)
    seen = []

    def recorder(x_t, t):
        seen.append((x_t, t))
        return torch.zeros_like(x_t)

    diffusion.sample(recorder, (6, 3), steps=2, sampler="heun", dtype=F64, generator=torch.Generator().manual_seed(6))
    eta = diffusion.sample_noise((6, 3), None, dtype=F64, generator=torch.Generator().manual_seed(6))
    t_max = torch.tensor(0.99, dtype=F64)
    torch.testing.assert_close(seen[0][1], t_max.expand(6), rtol=0, atol=0)
    torch.testing.assert_close(seen[0][0], get_schedule("linear").sigma(t_max) * eta, rtol=0, atol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="kernel"):
        EuclideanDiffusion(kernel="poisson")
    with pytest.raises(ValueError, match="pfgm_dim"):
        EuclideanDiffusion(kernel="pfgm", pfgm_dim=0)
    with pytest.raises(ValueError, match="pfgm_dim"):
        EuclideanDiffusion(kernel="pfgm")
    with pytest.raises(ValueError, match="pfgm_dim"):
        EuclideanDiffusion(pfgm_dim=4)
    diffusion = EuclideanDiffusion(kernel="pfgm", pfgm_dim=4)
    with pytest.raises(ValueError, match="ancestral"):
        diffusion.sample(ExactDiscreteModel("eps", 4), (5, 3), steps=3, sampler="ancestral")
