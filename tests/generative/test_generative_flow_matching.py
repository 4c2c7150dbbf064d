import itertools

import pytest
import scipy.integrate
import torch

from liequiv.generative.flow_matching import EuclideanFlowMatching, minibatch_ot_coupling
from mixture_testing import MEANS, assert_centered_samples, assert_mixture_samples, posterior_means

F64 = torch.float64


class ExactMixtureVelocity:
    """The exact velocity ``E[x_1 - x_0 | x_t]`` of the linear path from N(0, I) to the test mixture
    (``x_t = t x_1 + (1 - t) x_0``: the mixture perturbed with ``a = t``, ``s = 1 - t``)."""

    def __init__(self, **mixture: torch.Tensor) -> None:
        self.mixture = mixture

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, *, tag: str) -> torch.Tensor:
        assert tag == "context" and t.shape == x_t.shape[:1]
        data, noise = posterior_means(x_t, t, 1 - t, **self.mixture)
        return data - noise


def exact_centered_velocity(scale: torch.Tensor):
    """Data ``N(0, scale_k² P)``, noise ``N(0, P)``: ``x_t ~ N(0, (t² s_k² + (1 - t)²) P)`` and
    ``E[x_1 - x_0 | x_t] = (t s_k² - (1 - t)) x_t / (t² s_k² + (1 - t)²)``."""

    def velocity(x_t: torch.Tensor, t: torch.Tensor, *, batch: torch.Tensor) -> torch.Tensor:
        t = t[:, None]
        return (t * scale**2 - (1 - t)) * x_t / (t**2 * scale**2 + (1 - t) ** 2)

    return velocity


@pytest.mark.parametrize(("method", "steps"), [("euler", 100), ("heun", 20)])
def test_exact_velocity_samples_the_mixture(method, steps):
    flow = EuclideanFlowMatching()
    x = flow.sample(ExactMixtureVelocity(), (3000, 3), steps=steps, method=method, dtype=F64,
                    generator=torch.Generator().manual_seed(0), tag="context")
    assert_mixture_samples(x)


def test_euler_and_heun_solve_one_ode():
    flow = EuclideanFlowMatching()

    def run(method, steps):
        return flow.sample(ExactMixtureVelocity(), (200, 3), steps=steps, method=method, dtype=F64,
                           generator=torch.Generator().manual_seed(1), tag="context")

    reference = run("heun", 200)
    for method, steps, bound in [("heun", 50, 0.002), ("euler", 400, 0.01)]:
        error = float((run(method, steps) - reference).norm(dim=-1).quantile(0.9))
        assert error < bound, (method, error)


@pytest.mark.parametrize(("method", "steps"), [("euler", 100), ("heun", 20)])
def test_centered_samples(method, steps):
    n, samples = 5, 2000
    scale = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    batch = torch.arange(samples).repeat_interleave(n)
    flow = EuclideanFlowMatching(center=True)
    x = flow.sample(exact_centered_velocity(scale), (n * samples, 3), batch, steps=steps, method=method, dtype=F64,
                    generator=torch.Generator().manual_seed(2)).view(samples, n, 3)
    assert_centered_samples(x, scale)


def test_velocity_outputs_are_projected_when_centering():
    n, samples = 4, 30
    batch = torch.arange(samples).repeat_interleave(n)
    exact = exact_centered_velocity(torch.ones(3, dtype=F64))

    def shifted(x_t, t, *, batch):
        return exact(x_t, t, batch=batch) + torch.tensor([1.0, -2.0, 0.5], dtype=F64) * (1 + batch[:, None] % 3)

    flow = EuclideanFlowMatching(center=True)
    x, y = (flow.sample(model, (n * samples, 3), batch, steps=10, method="heun", dtype=F64,
                        generator=torch.Generator().manual_seed(3)) for model in (exact, shifted))
    torch.testing.assert_close(x, y, rtol=0, atol=1e-12)


def test_path_is_the_linear_interpolation():
    flow = EuclideanFlowMatching(coupling="independent", center=True)
    batch = torch.tensor([1, 0, 0, 1, 1])
    x1 = torch.randn(5, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(4)) + 3
    t = torch.tensor([0.25, 0.75], dtype=F64)
    x_t, u = flow.path(x1, t, batch, generator=torch.Generator().manual_seed(5))
    centered = x1 - torch.stack([x1[batch == b].mean(0) for b in range(2)])[batch]
    x0 = centered - u
    for b in range(2):
        assert x0[batch == b].sum(0).abs().max() < 1e-13  # the noise is centered
    torch.testing.assert_close(x_t, (1 - t[batch, None, None]) * x0 + t[batch, None, None] * centered, rtol=0,
                               atol=1e-14)


def test_exact_velocity_loss_is_the_irreducible_error():
    """Data N(μ, diag(c)), independent coupling: Var(x_1 - x_0 | x_t) per entry is c / (t² c + (1 - t)²)."""
    c = torch.tensor([0.25, 1.0, 2.25], dtype=F64)
    mixture = {"weights": torch.ones(1, dtype=F64), "means": MEANS[:1], "covs": torch.diag(c)[None]}
    expected = scipy.integrate.quad(lambda t: float((c / (t**2 * c + (1 - t) ** 2)).mean()), 0, 1)[0]
    x1 = MEANS[0] + c.sqrt() * torch.randn(60000, 3, dtype=F64, generator=torch.Generator().manual_seed(6))
    flow = EuclideanFlowMatching(coupling="independent")
    exact = ExactMixtureVelocity(**mixture)
    loss = flow.loss(exact, x1, generator=torch.Generator().manual_seed(7), tag="context")
    assert abs(float(loss) - expected) < 0.03 * expected, (float(loss), expected)
    worse = flow.loss(lambda x, t, **context: exact(x, t, **context) + 0.1, x1,
                      generator=torch.Generator().manual_seed(7), tag="context")
    torch.testing.assert_close(worse - loss, torch.tensor(0.01, dtype=F64), rtol=0.2, atol=0)  # 0.1² + noise


def _brute_force_best_cost(data: torch.Tensor, noise: torch.Tensor) -> float:
    """The least total squared distance over all pairings of the samples ``[G, ...]``."""
    return min(float((data - noise[list(p)]).square().sum()) for p in itertools.permutations(range(len(data))))


def test_ot_coupling_is_the_best_permutation_among_equal_sizes():
    """Six samples of 3 rows and three of 2, interleaved: the coupling permutes noise samples only within a size
    and attains the brute-force minimum of the total squared distance."""
    sizes = [3, 2, 3, 3, 2, 3, 3, 2, 3]
    batch = torch.cat([torch.full((n,), b) for b, n in enumerate(sizes)])[torch.randperm(sum(sizes),
                                                                                        generator=torch.Generator()
                                                                                        .manual_seed(8))]
    g = torch.Generator().manual_seed(9)
    data = torch.randn(len(batch), 2, dtype=F64, generator=g) * 2
    noise = torch.randn(len(batch), 2, dtype=F64, generator=g)
    coupled = minibatch_ot_coupling(noise, data, batch)

    def by_sample(x, size):
        return torch.stack([x[batch == b] for b, n in enumerate(sizes) if n == size])

    for size in (2, 3):
        d, z, c = by_sample(data, size), by_sample(noise, size), by_sample(coupled, size)
        matches = [[torch.equal(ci, zj) for zj in z] for ci in c]
        assert all(sum(m) == 1 for m in matches) and len({m.index(True) for m in matches}) == len(z)  # a permutation
        assert abs(float((d - c).square().sum()) - _brute_force_best_cost(d, z)) < 1e-12
        assert float((d - c).square().sum()) < float((d - z).square().sum())


def test_loss_trains_on_the_ot_coupling():
    """The noise behind the model's input, (x_t - t x_1) / (1 - t), is optimally paired with the data."""
    g = torch.Generator().manual_seed(10)
    x1 = torch.randn(7, 3, dtype=F64, generator=g) * 3
    seen = {}

    def recorder(x_t, t):
        seen.update(x_t=x_t, t=t)
        return torch.zeros_like(x_t)

    EuclideanFlowMatching(coupling="ot").loss(recorder, x1, generator=g)
    t = seen["t"][:, None]
    noise = (seen["x_t"] - t * x1) / (1 - t)
    assert abs(float((x1 - noise).square().sum()) - _brute_force_best_cost(x1, noise)) < 1e-9


def test_bad_input():
    with pytest.raises(ValueError, match="coupling"):
        EuclideanFlowMatching(coupling="sinkhorn")
    flow = EuclideanFlowMatching()
    model = exact_centered_velocity(torch.ones(3))
    with pytest.raises(ValueError, match="method"):
        flow.sample(model, (4, 3), torch.zeros(4, dtype=torch.long), steps=5, method="rk4")
    with pytest.raises(ValueError, match="steps"):
        flow.sample(model, (4, 3), torch.zeros(4, dtype=torch.long), steps=0)
    with pytest.raises(ValueError, match="batch"):
        flow.loss(model, torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        EuclideanFlowMatching(center=True).sample(model, (4, 3), steps=2)
    with pytest.raises(ValueError, match="t must"):
        flow.path(torch.zeros(4, 3), torch.ones(3))
    with pytest.raises(ValueError, match="noise and data"):
        minibatch_ot_coupling(torch.zeros(4, 3), torch.zeros(4, 2))
