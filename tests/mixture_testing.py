"""Known answers for the generative tests: a Gaussian mixture in R³ and its exact denoisers and velocities.

Data ``x ~ Σ_k w_k N(μ_k, Σ_k)`` perturbed by ``x_t = a x + s ε`` (``ε ~ N(0, I)``): given component k,
``x_t ~ N(a μ_k, C_k)`` with ``C_k = a² Σ_k + s² I``, and the posterior means are linear,
``E[x | x_t, k] = μ_k + a Σ_k C_k⁻¹ (x_t - a μ_k)``, ``E[ε | x_t, k] = s C_k⁻¹ (x_t - a μ_k)``; the mixture's are
their averages under the responsibilities ``∝ w_k N(x_t; a μ_k, C_k)``. Flow matching's linear path
``x_t = (1 - t) ε + t x`` is the case ``a = t``, ``s = 1 - t``, with velocity ``E[x - ε | x_t]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
MEANS = torch.tensor([[3.0, 0.0, 0.0], [-3.0, 1.0, 0.0], [0.0, -3.0, 2.5]], dtype=torch.float64)
_FACTORS = torch.tensor([[[0.6, 0.0, 0.0], [0.2, 0.4, 0.0], [0.0, 0.1, 0.5]],
                         [[0.4, 0.0, 0.0], [0.0, 0.7, 0.0], [-0.2, 0.0, 0.3]],
                         [[0.5, 0.0, 0.0], [0.1, 0.5, 0.0], [0.1, -0.1, 0.4]]], dtype=torch.float64)
COVS = _FACTORS @ _FACTORS.mT  # [3, 3, 3], correlated, well inside the gaps between the means


def posterior_means(x_t: Tensor, a: Tensor, s: Tensor, weights: Tensor = WEIGHTS, means: Tensor = MEANS,
                    covs: Tensor = COVS) -> tuple[Tensor, Tensor]:
    """``(E[x | x_t], E[ε | x_t])`` for ``x_t = a x + s ε``; ``x_t [N, 3]``, ``a, s [N]``. In the eigenbasis
    ``Σ_k = U_k diag(λ_k) U_kᵀ``, ``C_k = U_k diag(a² λ_k + s²) U_kᵀ``."""
    lam, u = torch.linalg.eigh(covs)  # [K, 3], [K, 3, 3]
    a, s = a[:, None, None], s[:, None, None]
    centred = torch.einsum("kji,nkj->nki", u, x_t[:, None] - a * means)  # [N, K, 3] in the eigenbases
    var_t = a**2 * lam + s**2
    solved = centred / var_t  # U_kᵀ C_k⁻¹ (x_t - a μ_k)
    log_resp = weights.log() - 0.5 * (centred * solved).sum(-1) - 0.5 * var_t.log().sum(-1)
    resp = log_resp.softmax(-1)[..., None]  # [N, K, 1]
    to_data = torch.einsum("kij,nkj->nki", u, solved)  # C_k⁻¹ (x_t - a μ_k)
    x_mean = (resp * (means + a * torch.einsum("kij,nkj->nki", covs, to_data))).sum(1)
    eps_mean = (resp * s * to_data).sum(1)
    return x_mean, eps_mean


def assert_mixture_samples(x: Tensor, *, extra_tolerance: float = 0.0) -> None:
    """``x [n, 3]`` matches the mixture's weights, means and covariances within 4.5 standard errors (plus
    ``extra_tolerance`` in each)."""
    n = x.shape[0]
    assert torch.isfinite(x).all()
    log_resp = torch.stack([torch.distributions.MultivariateNormal(m, c).log_prob(x) for m, c in zip(MEANS, COVS)], -1)
    labels = (log_resp + WEIGHTS.log()).argmax(-1)
    fractions = torch.bincount(labels, minlength=3).double() / n
    bound = 4.5 * (WEIGHTS * (1 - WEIGHTS) / n).sqrt() + extra_tolerance
    assert ((fractions - WEIGHTS).abs() <= bound).all(), (fractions, WEIGHTS)
    for k in range(3):
        xs = x[labels == k]
        m = xs.shape[0]
        var = COVS[k].diagonal()
        mean_error = (xs.mean(0) - MEANS[k]).abs()
        assert (mean_error <= 4.5 * (var / m).sqrt() + extra_tolerance).all(), (k, mean_error)
        cov_error = (torch.cov(xs.T) - COVS[k]).abs()
        cov_se = ((var[:, None] * var[None, :] + COVS[k] ** 2) / m).sqrt()
        assert (cov_error <= 4.5 * cov_se + extra_tolerance).all(), (k, cov_error)


def assert_centered_samples(x: torch.Tensor, scale: torch.Tensor) -> None:
    """``x [B, n, d]``: each sample's mean is 0 to 1e-12; the covariance ``[n d, n d]`` is ``P ⊗ diag(scale²)``
    within 4.5 standard errors (``Var(x_a x_b) = C_aa C_bb + C_ab²`` for a centered Gaussian)."""
    samples, n, d = x.shape
    assert x.mean(1).abs().max() < 1e-12
    flat = x.reshape(samples, n * d)
    cov = flat.T @ flat / samples
    expected = torch.kron(torch.eye(n, dtype=torch.float64) - 1 / n, torch.diag(scale**2))
    var = expected.diagonal()
    standard_error = ((var[:, None] * var[None, :] + expected**2) / samples).sqrt()
    assert ((cov - expected).abs() <= 4.5 * standard_error).all(), ((cov - expected) / standard_error).abs().max()
