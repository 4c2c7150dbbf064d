import math

import mpmath
import numpy as np
import pytest
import torch

from liequiv.generative import igso3
from liequiv.generative.igso3 import (
    SWITCH_SIGMA,
    igso3_angle_density,
    igso3_density,
    igso3_log_density,
    igso3_score,
    sample_igso3,
)
from liequiv.groups import SO3

F64 = torch.float64
EDGE_ANGLES = [0.0, 1e-12, 1e-8, 1e-4, 0.01, 0.5, 1.0, 2.0, 3.0, math.pi - 1e-8, math.pi]


def reference_log_density(angle: float, sigma: float) -> float:
    """log f by the character series in mpmath, with enough terms and digits for the tail at ω = π."""
    terms = int(math.sqrt(math.pi**2 / sigma**4 + 100 / sigma**2)) + 10
    with mpmath.workdps(int(2.2 / sigma**2) + 30):
        w, s = mpmath.mpf(angle), mpmath.mpf(sigma)
        weights = [(2 * l + 1) * mpmath.exp(-l * (l + 1) * s**2 / 2) for l in range(terms)]
        if w == 0:
            value = mpmath.fsum(c * (2 * l + 1) for l, c in enumerate(weights))
        else:
            value = mpmath.fsum(c * mpmath.sin((l + 0.5) * w) for l, c in enumerate(weights)) / mpmath.sin(w / 2)
        return float(mpmath.log(value))


def series_cdf(angle: torch.Tensor, sigma: float, terms: int = 400) -> torch.Tensor:
    """The angle CDF in closed form: ∫₀^ω χ_l(s)(1 - cos s)/π ds = (sin(lω)/l - sin((l+1)ω)/(l+1))/π."""
    l = torch.arange(1, terms, dtype=F64)
    weights = (2 * l + 1) * torch.exp(-l * (l + 1) * sigma**2 / 2)
    w = angle[..., None]
    tail = (weights * (torch.sin(l * w) / l - torch.sin((l + 1) * w) / (l + 1))).sum(-1)
    return (angle - torch.sin(angle) + tail) / math.pi


def gauss_legendre(fn, lo: float, hi: float, points: int = 200) -> torch.Tensor:
    nodes, weights = (torch.as_tensor(v, dtype=F64) for v in np.polynomial.legendre.leggauss(points))
    return (hi - lo) / 2 * (fn((hi + lo) / 2 + (hi - lo) / 2 * nodes) * weights).sum()


# ------------------------------------------------------------------ density


@pytest.mark.parametrize("sigma", [0.1, 0.3, 0.7, 1.0, 1.19, 1.2, 1.5, 3.0, 8.0])
def test_log_density_matches_high_precision_series(sigma):
    angle = torch.tensor(EDGE_ANGLES, dtype=F64)
    expected = torch.tensor([reference_log_density(w, sigma) for w in EDGE_ANGLES], dtype=F64)
    torch.testing.assert_close(igso3_log_density(angle, sigma), expected, rtol=1e-14, atol=2e-15)


def test_the_two_forms_agree_to_float64_precision_around_the_switch():
    angle = torch.linspace(0, math.pi, 2001, dtype=F64)
    for sigma in [1.0, 1.1, SWITCH_SIGMA, 1.3, 1.5]:
        wrapped = igso3._wrapped_log_density(angle, sigma)
        character = torch.log(igso3._series(angle, sigma))
        assert (wrapped - character).abs().max() < 5e-15, sigma
        score_wrapped = igso3._wrapped_score_factor(angle, sigma)
        score_series = igso3._series_score_factor(angle, sigma)
        assert ((score_wrapped - score_series).abs() / score_series.abs().clamp_min(1)).max() < 1e-13, sigma
    below = torch.tensor(math.nextafter(SWITCH_SIGMA, 0), dtype=F64)
    assert (igso3_log_density(angle, below) - igso3_log_density(angle, SWITCH_SIGMA)).abs().max() < 5e-15


@pytest.mark.parametrize("sigma", [0.002, 0.05, 0.3, 1.0, 1.2, 2.0, 5.0])
def test_density_integrates_to_one_and_mean_trace_is_closed_form(sigma):
    top = min(math.pi, 40 * sigma)
    mass = gauss_legendre(lambda w: igso3_angle_density(w, sigma), 0, top)
    trace = gauss_legendre(lambda w: (1 + 2 * torch.cos(w)) * igso3_angle_density(w, sigma), 0, top)
    assert abs(mass.item() - 1) < 1e-13
    assert abs(trace.item() - 3 * math.exp(-sigma**2)) < 1e-13  # E[tr R] = E[χ₁] = 3 exp(-σ²)


def test_small_and_large_sigma_limits():
    sigma = 1e-3
    angle = torch.linspace(1e-6, 8 * sigma, 101, dtype=F64)
    chi3 = math.sqrt(2 / math.pi) * angle**2 / sigma**3 * torch.exp(-(angle**2) / (2 * sigma**2))
    torch.testing.assert_close(igso3_angle_density(angle, sigma), chi3, rtol=1e-5, atol=0)
    angle = torch.linspace(0, math.pi, 101, dtype=F64)
    torch.testing.assert_close(igso3_density(angle, 7.0), torch.ones_like(angle), rtol=1e-15, atol=0)
    assert torch.isfinite(igso3_log_density(angle, 1e-6)).all()
    assert torch.isfinite(igso3_log_density(angle, 1e6)).all()


def test_density_of_a_rotation_is_invariant_under_conjugation():
    g = torch.Generator().manual_seed(0)
    R, Q = SO3.random((200,), generator=g, dtype=F64), SO3.random((200,), generator=g, dtype=F64)
    for sigma in [0.2, 1.0, 2.5]:
        before = igso3_log_density(R, sigma)
        after = igso3_log_density(Q @ R @ Q.inverse(), sigma)
        assert (before - after).abs().max() < 1e-10
        angle = torch.linalg.vector_norm(R.log(), dim=-1)
        torch.testing.assert_close(before, igso3_log_density(angle, sigma), rtol=1e-13, atol=1e-13)


def test_gradients_are_finite_at_the_edges():
    for sigma in [1e-4, 0.01, 0.5, SWITCH_SIGMA, 3.0, 50.0]:
        angle = torch.tensor(EDGE_ANGLES, dtype=F64, requires_grad=True)
        sigma_t = torch.full_like(angle, sigma, requires_grad=True)
        grad_angle, grad_sigma = torch.autograd.grad(igso3_log_density(angle, sigma_t).sum(), (angle, sigma_t))
        assert torch.isfinite(grad_angle).all() and torch.isfinite(grad_sigma).all(), sigma
        scale = 1e-12 * max(1, sigma**-2)
        assert abs(grad_angle[0]) < scale and abs(grad_angle[-1]) < scale  # f is even at 0 and symmetric about π
        params = SO3.identity((1,), dtype=F64).params.requires_grad_()
        (grad_q,) = torch.autograd.grad(igso3_log_density(SO3(params), sigma).sum(), params)
        assert torch.isfinite(grad_q).all()


# ------------------------------------------------------------------ score


def _autograd_score(rotvec: torch.Tensor, sigma: float) -> torch.Tensor:
    delta = torch.zeros_like(rotvec, requires_grad=True)
    log_f = igso3_log_density(SO3.exp(rotvec).plus(delta), sigma)
    (grad,) = torch.autograd.grad(log_f.sum(), delta)
    return grad


@pytest.mark.parametrize("sigma", [0.05, 0.4, 1.1, SWITCH_SIGMA, 2.0, 4.0])
def test_score_is_the_right_frame_gradient_of_the_log_density(sigma):
    g = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=F64), dim=-1)
    angle = torch.linspace(1e-3, math.pi - 1e-3, 64, dtype=F64)[:, None]
    rotvec = axis * angle
    score = igso3_score(rotvec, sigma)
    torch.testing.assert_close(score, _autograd_score(rotvec, sigma), rtol=1e-9, atol=1e-9 / sigma**2)
    # central differences of log f along R ⊕ h v
    v = torch.randn(64, 3, generator=g, dtype=F64)
    h = 1e-6 * min(sigma, 1.0)
    R = SO3.exp(rotvec)
    fd = (igso3_log_density(R.plus(h * v), sigma) - igso3_log_density(R.plus(-h * v), sigma)) / (2 * h)
    torch.testing.assert_close((score * v).sum(-1), fd, rtol=1e-5, atol=1e-5 / sigma**2)
    assert ((score * rotvec).sum(-1) <= 0).all()  # towards the identity


def test_score_at_the_edges():
    zero = torch.zeros(3, dtype=F64)
    at_pi = torch.tensor([0.0, 0.0, math.pi], dtype=F64)
    tiny = torch.tensor([1e-12, 0.0, 0.0], dtype=F64)
    for sigma in [1e-4, 0.3, SWITCH_SIGMA, 3.0, 100.0]:
        assert (igso3_score(zero, sigma) == 0).all()
        assert igso3_score(at_pi, sigma).abs().max() < 1e-12 * max(1, sigma**-2)  # f is symmetric about π
        # near the identity the score is -τ/σ² (1 + O(σ²)) for small σ
        assert torch.isfinite(igso3_score(tiny, sigma)).all()
    torch.testing.assert_close(igso3_score(tiny, 1e-3), -tiny / 1e-6, rtol=1e-6, atol=0)
    torch.testing.assert_close(igso3_score(at_pi * 0.5, 100.0), torch.zeros(3, dtype=F64), rtol=0, atol=1e-300)


# ------------------------------------------------------------------ sampling


@pytest.mark.parametrize("sigma", [0.05, 0.0731, 0.3333, 0.77, 1.0, 1.234, 2.1, 5.9])
def test_sampler_quantiles_match_the_closed_form_cdf(sigma):
    """The angle drawn for |ε| = z has CDF F_χ₃(z): the table's inverse, checked against the closed-form CDF."""
    z = torch.linspace(0.01, 9, 1500, dtype=F64)
    angle = sigma * igso3._rho(z, sigma) * z
    chi3_cdf, _ = igso3._chi3_cdf_sf(z)
    assert (series_cdf(angle, sigma) - chi3_cdf).abs().max() < 3e-6


@pytest.mark.parametrize("sigma", [2e-3, 6e-3])
def test_sampler_quantiles_below_the_table(sigma):
    """Below the table's first σ, ρ = 1 + (ρ(σ₀) - 1)(σ/σ₀)²: checked against the CDF by quadrature."""
    z = torch.linspace(0.05, 7, 200, dtype=F64)
    angle = sigma * igso3._rho(z, sigma) * z
    nodes, weights = (torch.as_tensor(v, dtype=F64) for v in np.polynomial.legendre.leggauss(60))
    points = angle[:, None] / 2 * (nodes + 1)
    cdf = angle / 2 * (igso3_angle_density(points, sigma) * weights).sum(-1)
    chi3_cdf, _ = igso3._chi3_cdf_sf(z)
    assert (cdf - chi3_cdf).abs().max() < 1e-9


@pytest.mark.parametrize("sigma", [1e-3, 0.05, 0.5, 1.3, 3.0, 10.0])
def test_sampled_angles_pass_kolmogorov_smirnov_and_axes_are_uniform(sigma):
    n = 200_000
    rotvec = sample_igso3(sigma, (n,), generator=torch.Generator().manual_seed(2), dtype=F64)
    angle = torch.linalg.vector_norm(rotvec, dim=-1)
    assert angle.max() <= math.pi + 1e-12
    # the KS statistic sup |F_n - F|, on a grid fine enough that F moves by < 1e-4 between points
    grid = torch.linspace(0, min(math.pi, 12 * sigma), 4001, dtype=F64)
    if sigma < 0.01:  # the χ₃ limit, F(ω) = erf(x/√2) - √(2/π) x exp(-x²/2) with x = ω/σ
        cdf, _ = igso3._chi3_cdf_sf(grid / sigma)
    else:
        cdf = series_cdf(grid, sigma)
    empirical = torch.searchsorted(angle.sort().values, grid, right=True) / n
    assert (empirical - cdf).abs().max().item() < 1.95 / math.sqrt(n)  # the critical value at level 1e-3
    axis = torch.nn.functional.normalize(rotvec, dim=-1)
    assert axis.mean(0).abs().max() < 5 / math.sqrt(n)
    torch.testing.assert_close(axis.T @ axis / n, torch.eye(3, dtype=F64) / 3, rtol=0, atol=5 / math.sqrt(n))


@pytest.mark.parametrize("sigma", [0.2, 0.8, 1.5])
def test_sampled_mean_trace(sigma):
    n = 200_000
    rotvec = sample_igso3(sigma, (n,), generator=torch.Generator().manual_seed(3), dtype=F64)
    trace = 1 + 2 * torch.cos(torch.linalg.vector_norm(rotvec, dim=-1))
    expected = 3 * math.exp(-sigma**2)
    assert abs(trace.mean().item() - expected) < 5 * trace.std().item() / math.sqrt(n)


def test_per_element_sigma_equals_scalar_sigma_and_float32_matches():
    sigma = torch.tensor([0.004, 0.05, 0.9, 1.3, 4.0, 9.0], dtype=F64)
    per_element = sample_igso3(sigma[:, None], (6, 1000), generator=torch.Generator().manual_seed(4))
    assert per_element.shape == (6, 1000, 3) and per_element.dtype == F64
    for i, s in enumerate(sigma.tolist()):
        scalar = sample_igso3(s, (6, 1000), generator=torch.Generator().manual_seed(4), dtype=F64)[i]
        torch.testing.assert_close(per_element[i], scalar, rtol=1e-12, atol=1e-14)
    z = torch.linspace(0, 9, 500, dtype=F64)
    for s in sigma.tolist():
        torch.testing.assert_close(igso3._rho(z.float(), s), igso3._rho(z, s).float(), rtol=1e-6, atol=0)
    angle = torch.linspace(0, math.pi, 50)
    for s in [0.05, 1.0, SWITCH_SIGMA, 3.0]:
        torch.testing.assert_close(igso3_log_density(angle, s), igso3_log_density(angle.double(), s).float(),
                                   rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan, math.inf, torch.tensor([0.5, -0.1]),
                                   torch.tensor(math.nan)])
def test_bad_sigma_is_a_value_error(sigma):
    angle = torch.ones(2)
    with pytest.raises(ValueError, match="sigma"):
        igso3_log_density(angle, sigma)
    with pytest.raises(ValueError, match="sigma"):
        sample_igso3(sigma, (2,))
    with pytest.raises(ValueError, match="sigma"):
        igso3_score(torch.ones(2, 3), sigma)


def test_bad_types_and_shapes():
    with pytest.raises(TypeError, match="sigma"):
        igso3_log_density(torch.ones(2), "1.0")
    with pytest.raises(TypeError, match="sigma"):
        igso3_log_density(torch.ones(2), True)
    with pytest.raises(TypeError, match="angle"):
        igso3_log_density(torch.ones(2, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="rotvec"):
        igso3_score(torch.ones(2, 4), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        sample_igso3(torch.ones(3), (2,))
    with pytest.raises(TypeError, match="batch_shape"):
        sample_igso3(1.0, 5)
