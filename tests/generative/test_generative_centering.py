import pytest
import scipy.linalg
import torch

from liequiv.generative.centering import (
    centered_gaussian_log_density,
    centered_noise,
    check_batch,
    remove_mean,
    sample_dims,
)
from liequiv.symmetry.checker import check_equivariance

BATCH = torch.tensor([2, 0, 1, 2, 0, 2, 2, 1, 0, 2])  # unsorted; sizes 3, 2, 5


def test_remove_mean_matches_per_sample_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, 3, dtype=torch.float64, generator=g) + 5
    centered = remove_mean(x, BATCH)
    for b in range(3):
        rows = BATCH == b
        torch.testing.assert_close(centered[rows], x[rows] - x[rows].mean(0), rtol=0, atol=1e-14)
        assert centered[rows].sum(0).abs().max() < 1e-12
    torch.testing.assert_close(remove_mean(centered, BATCH), centered, rtol=0, atol=1e-14)
    assert torch.equal(remove_mean(x, None), torch.zeros_like(x))  # batch=None: every row a sample


def test_centered_noise_covariance_is_the_projector():
    n, samples = 4, 20000
    g = torch.Generator().manual_seed(1)
    batch = torch.arange(samples).repeat_interleave(n)
    eps = centered_noise((n * samples, 3), batch, dtype=torch.float64, generator=g)
    per_sample = eps.view(samples, n, 3)
    assert per_sample.sum(1).abs().max() < 1e-12
    cov = torch.einsum("bik,bjk->ij", per_sample, per_sample) / (3 * samples)
    projector = torch.eye(n, dtype=torch.float64) - 1 / n
    torch.testing.assert_close(cov, projector, rtol=0, atol=0.03)


def test_log_density_matches_helmert_coordinates():
    """In orthonormal coordinates of the subspace (the Helmert basis), the centered Gaussian is N(0, I)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 2, 3, dtype=torch.float64, generator=g)
    expected = []
    for b in range(3):
        rows = remove_mean(x, BATCH)[BATCH == b]
        helmert = torch.as_tensor(scipy.linalg.helmert(rows.shape[0]), dtype=torch.float64)  # [n - 1, n]
        z = torch.einsum("ij,j...->i...", helmert, rows)
        expected.append(torch.distributions.Normal(0.0, 1.0).log_prob(z).sum())
    torch.testing.assert_close(centered_gaussian_log_density(x, BATCH), torch.stack(expected), rtol=1e-13, atol=0)
    torch.testing.assert_close(sample_dims(x.shape, BATCH, center=True), torch.tensor([12, 6, 24]))
    torch.testing.assert_close(sample_dims(x.shape, BATCH, center=False), torch.tensor([18, 12, 30]))


def test_log_density_is_invariant_under_rigid_motions_and_permutations():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 3, dtype=torch.float64, generator=g)
    batch = torch.zeros(7, dtype=torch.long)
    report = check_equivariance(lambda pos: centered_gaussian_log_density(pos, batch), x, "E(3) x S_n",
                                "pos, perm(0)", "scalar", n_samples=8, generator=g)
    assert report.passed and report.max_abs_error < 1e-10, str(report)


def test_log_density_detects_a_non_invariant_change():
    """The invariance test is not vacuous: scaling one coordinate changes the density."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(7, 3, dtype=torch.float64, generator=g)
    batch = torch.zeros(7, dtype=torch.long)
    stretched = x * torch.tensor([1.0, 1.0, 1.5], dtype=torch.float64)
    assert (centered_gaussian_log_density(x, batch) - centered_gaussian_log_density(stretched, batch)).abs() > 1e-3


def test_check_batch_bad_input():
    assert check_batch(None, 4)[1] == 4
    with pytest.raises(TypeError, match="batch"):
        check_batch(torch.zeros(4), 4)
    with pytest.raises(ValueError, match="batch"):
        check_batch(torch.zeros(3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="batch"):
        check_batch(torch.tensor([0, -1, 0, 0]), 4)
    with pytest.raises(ValueError, match="batch"):
        remove_mean(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long))
