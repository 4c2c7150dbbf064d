import pytest
import scipy.integrate
import torch

from liequiv.generative.diffusion import EuclideanDiffusion
from liequiv.generative.schedules import get_schedule
from mixture_testing import MEANS, assert_centered_samples, assert_mixture_samples, posterior_means

F64 = torch.float64


class ExactMixtureModel:
    """The exact ε- or x₀-prediction ``E[· | x_t]`` of the test mixture under the VP marginal of ``schedule``."""

    def __init__(self, schedule: str, prediction: str, **mixture: torch.Tensor) -> None:
        self.schedule, self.prediction, self.mixture = get_schedule(schedule), prediction, mixture

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, *, tag: str) -> torch.Tensor:
        assert tag == "context" and t.shape == x_t.shape[:1]  # context passed through, one time a row
        x0, eps = posterior_means(x_t, self.schedule.alpha(t), self.schedule.sigma(t), **self.mixture)
        return eps if self.prediction == "eps" else x0


class ExactCenteredModel:
    """Exact predictions for data ``N(0, scale_k² P)`` per trailing index k (``P`` the centering projector):
    ``x_t ~ N(0, (α² s_k² + σ²) P)``, ``E[ε | x_t] = σ x_t / (α² s_k² + σ²)``,
    ``E[x_0 | x_t] = α s_k² x_t / (α² s_k² + σ²)``."""

    def __init__(self, schedule: str, prediction: str, scale: torch.Tensor) -> None:
        self.schedule, self.prediction, self.scale2 = get_schedule(schedule), prediction, scale**2

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, *, batch: torch.Tensor) -> torch.Tensor:
        a, s = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        var_t = a**2 * self.scale2 + s**2
        return (s if self.prediction == "eps" else a * self.scale2) * x_t / var_t


CASES = [("ancestral", "eps", 100, "cosine"), ("ancestral", "x0", 100, "linear"), ("ddim", "eps", 50, "cosine"),
         ("ddim", "x0", 50, "polynomial"), ("euler", "eps", 100, "cosine"), ("euler", "x0", 100, "linear"),
         ("heun", "eps", 20, "cosine"), ("heun", "x0", 20, "polynomial")]


@pytest.mark.parametrize(("sampler", "prediction", "steps", "schedule"), CASES)
def test_exact_model_samples_the_mixture(sampler, prediction, steps, schedule):
    diffusion = EuclideanDiffusion(schedule, prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x = diffusion.sample(ExactMixtureModel(schedule, prediction), (3000, 3), steps=steps, sampler=sampler,
                         dtype=F64, generator=g, tag="context")
    assert_mixture_samples(x)


@pytest.mark.parametrize(("sampler", "prediction", "steps"), [("ancestral", "eps", 100), ("ddim", "x0", 50),
                                                              ("euler", "x0", 100), ("heun", "eps", 20)])
def test_centered_samples(sampler, prediction, steps):
    """Samples of N(0, scale_k² P): every sample centered, covariance within 4.5 standard errors."""
    n, samples = 5, 2000
    scale = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    batch = torch.arange(samples).repeat_interleave(n)
    diffusion = EuclideanDiffusion("cosine", prediction=prediction, center=True)
    g = torch.Generator().manual_seed(1)
    x = diffusion.sample(ExactCenteredModel("cosine", prediction, scale), (n * samples, 3), batch, steps=steps,
                         sampler=sampler, dtype=F64, generator=g).view(samples, n, 3)
    assert_centered_samples(x, scale)


def test_model_outputs_are_projected_when_centering():
    """A model output shifted off the subspace (a constant per row) changes nothing with center=True."""
    n, samples = 4, 50
    batch = torch.arange(samples).repeat_interleave(n)
    exact = ExactCenteredModel("cosine", "eps", torch.ones(3, dtype=F64))
    diffusion = EuclideanDiffusion("cosine", center=True)

    def shifted(x_t, t, *, batch):
        return exact(x_t, t, batch=batch) + torch.tensor([1.0, -2.0, 0.5], dtype=F64) * (1 + batch[:, None] % 3)

    for sampler in ("ancestral", "heun"):
        x, y = (diffusion.sample(model, (n * samples, 3), batch, steps=10, sampler=sampler, dtype=F64,
                                 generator=torch.Generator().manual_seed(6)) for model in (exact, shifted))
        torch.testing.assert_close(x, y, rtol=0, atol=1e-11)
    x0 = torch.randn(n * samples, 3, dtype=F64, generator=torch.Generator().manual_seed(7))
    losses = [diffusion.loss(model, x0, batch, generator=torch.Generator().manual_seed(8))
              for model in (exact, shifted)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=0)


@pytest.mark.parametrize("kernel", ["gaussian", "pfgm"])
def test_trajectories_are_centered_per_time_and_coordinate(kernel):
    """Data [N, T, 3]: the mean over each sample's rows vanishes for every (time, coordinate)."""
    batch = torch.tensor([0, 1, 0, 0, 1, 1, 1])
    diffusion = EuclideanDiffusion("cosine", prediction="x0", kernel=kernel, pfgm_dim=5 if kernel == "pfgm" else None,
                                   center=True)

    def model(x_t, t, *, batch):
        return 0.5 * x_t + torch.arange(12, dtype=F64).view(4, 3)

    x = diffusion.sample(model, (7, 4, 3), batch, steps=5, sampler="ddim", dtype=F64,
                         generator=torch.Generator().manual_seed(10))
    assert x.shape == (7, 4, 3) and x.abs().min() > 0
    for b in range(2):
        assert x[batch == b].mean(0).abs().max() < 1e-12


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_deterministic_samplers_solve_one_probability_flow_ode(schedule):
    """From the same noise, DDIM, Euler and Heun converge to the same ODE solution (90% of the points within a
    small distance; the few near the boundaries between components are sensitive)."""
    diffusion = EuclideanDiffusion(schedule)
    model = ExactMixtureModel(schedule, "eps")

    def run(sampler, steps):
        return diffusion.sample(model, (100, 3), steps=steps, sampler=sampler, dtype=F64,
                                generator=torch.Generator().manual_seed(9), tag="context")

    reference = run("heun", 150)
    errors = {sampler: float((run(sampler, steps) - reference).norm(dim=-1).quantile(0.9))
              for sampler, steps in [("heun", 50), ("euler", 400), ("ddim", 200)]}
    assert errors["heun"] < 0.015 and errors["euler"] < 0.006 and errors["ddim"] < 0.04, errors


def test_noise_is_the_forward_process():
    diffusion = EuclideanDiffusion("cosine", center=True)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(6, 2, 3, dtype=F64, generator=g)
    batch = torch.tensor([0, 0, 1, 1, 1, 0])
    t = torch.tensor([0.3, 0.8], dtype=F64)
    x_t, eps = diffusion.noise(x0, t, batch, generator=g)
    schedule = get_schedule("cosine")
    t_rows = t[batch][:, None, None]
    centered = x0 - torch.stack([x0[batch == b].mean(0) for b in range(2)])[batch]
    torch.testing.assert_close(x_t, schedule.alpha(t_rows) * centered + schedule.sigma(t_rows) * eps, rtol=0,
                               atol=1e-14)
    for b in range(2):
        assert eps[batch == b].sum(0).abs().max() < 1e-13
    _, eps_plain = EuclideanDiffusion("linear").noise(x0, 0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(eps_plain, torch.randn(6, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_exact_model_loss_is_the_irreducible_error(prediction):
    """Data N(μ, diag(c)): E‖ε - E[ε|x_t]‖² per entry is α²c / (α²c + σ²), that of x₀ is c σ² / (α²c + σ²);
    the loss averages it over t ~ U[t_min, 1]."""
    c = torch.tensor([0.25, 1.0, 2.25], dtype=F64)
    mixture = {"weights": torch.ones(1, dtype=F64), "means": MEANS[:1], "covs": torch.diag(c)[None]}
    schedule = get_schedule("cosine")
    diffusion = EuclideanDiffusion(schedule, prediction=prediction, t_min=0.01)

    def irreducible(t: float) -> float:
        a2 = float(schedule.alpha2(torch.tensor(t, dtype=F64)))
        per_entry = a2 * c / (a2 * c + 1 - a2) if prediction == "eps" else c * (1 - a2) / (a2 * c + 1 - a2)
        return float(per_entry.mean())

    expected = scipy.integrate.quad(irreducible, 0.01, 1)[0] / 0.99
    g = torch.Generator().manual_seed(4)
    x0 = MEANS[0] + c.sqrt() * torch.randn(60000, 3, dtype=F64, generator=g)
    exact = ExactMixtureModel("cosine", prediction, **mixture)
    loss = diffusion.loss(exact, x0, generator=torch.Generator().manual_seed(5), tag="context")
    assert abs(float(loss) - expected) < 0.03 * expected, (float(loss), expected)

    def perturbed(x_t, t, **context):
        return exact(x_t, t, **context) + 0.1

    worse = diffusion.loss(perturbed, x0, generator=torch.Generator().manual_seed(5), tag="context")
    torch.testing.assert_close(worse - loss, torch.tensor(0.01, dtype=F64), rtol=0.05, atol=0)


def test_float32_by_default():
    batch = torch.tensor([0, 0, 1, 1, 1])
    model = ExactCenteredModel("cosine", "eps", torch.ones(3))
    for sampler in ("ancestral", "heun"):
        x = EuclideanDiffusion(center=True).sample(model, (5, 3), batch, steps=4, sampler=sampler)
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
    loss = EuclideanDiffusion(center=True).loss(model, torch.randn(5, 3), batch)
    assert loss.dtype == torch.float32 and loss > 0


def test_bad_input():
    with pytest.raises(ValueError, match="schedule"):
        EuclideanDiffusion("quadratic")
    with pytest.raises(ValueError, match="prediction"):
        EuclideanDiffusion(prediction="v")
    with pytest.raises(ValueError, match="t_min"):
        EuclideanDiffusion(t_min=0.0)
    diffusion = EuclideanDiffusion()
    model = ExactCenteredModel("cosine", "eps", torch.ones(3))
    with pytest.raises(ValueError, match="sampler"):
        diffusion.sample(model, (4, 3), torch.zeros(4, dtype=torch.long), steps=5, sampler="dpm")
    with pytest.raises(ValueError, match="steps"):
        diffusion.sample(model, (4, 3), torch.zeros(4, dtype=torch.long), steps=0)
    with pytest.raises(ValueError, match="batch"):
        diffusion.loss(model, torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        EuclideanDiffusion(center=True).loss(model, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="shape"):
        diffusion.sample(model, (4.0, 3), steps=2)
    with pytest.raises(ValueError, match="model"):
        diffusion.loss(lambda x, t, batch: x[:, :2], torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="t must"):
        diffusion.noise(torch.zeros(4, 3), torch.ones(3))
