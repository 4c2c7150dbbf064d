"""Molecule generation (EDM-style): samplers recover a known distribution from its exact denoiser, the loss has its
known values and is E(3)-invariant, the conditioning reaches the denoiser, helpers and bad inputs."""

import pytest
import torch

from liequiv.generative.molecules import (
    MoleculeDiffusion,
    MoleculeFlowMatching,
    atom_count_distribution,
    atom_features,
    element_index,
)
from liequiv.generative.schedules import get_schedule
from liequiv.models.edm_denoiser import EDMDenoiser

F64 = torch.float64
TAU = 0.02  # standard deviation of the test features around their means


def index_in_molecule(batch: torch.Tensor) -> torch.Tensor:
    """Position of each atom within its molecule (atoms of a molecule consecutive)."""
    starts = torch.cumsum(torch.bincount(batch), 0) - torch.bincount(batch)
    return torch.arange(len(batch)) - starts[batch]


def expected_elements(batch: torch.Tensor) -> torch.Tensor:
    """The test molecules' elements: atom k of every molecule is element ``(k + 1) % 5`` (C, N, O, F, H, ...)."""
    return (index_in_molecule(batch) + 1) % 5


class GaussianMolecules:
    """Exact denoisers of the test distribution: positions ``N(0, s_m² P)`` per coordinate (``P`` the centering
    projector of molecule m; ``s_m`` = the condition, or 1), features ``N(μ, τ² I)`` with ``μ`` the features of
    :func:`expected_elements`. Each block is Gaussian, so ``E[x_0 | x_t] = μ + α v (x_t - α μ) / (α² v + σ²)``
    (diffusion, data variance v) and ``E[x_1 - x_0 | x_t] = μ + (t v - (1 - t)) / ((1 - t)² + t² v) (x_t - t μ)``
    (flow matching with independent noise)."""

    def __init__(self, kind: str, schedule: str = "cosine", prediction: str = "eps", tau: float = TAU) -> None:
        self.kind, self.schedule, self.prediction, self.tau = kind, get_schedule(schedule), prediction, tau

    def __call__(self, pos, h, t, batch, condition):
        mean_h = atom_features(expected_elements(batch), dtype=h.dtype)
        var_pos = (torch.ones_like(t) if condition is None else condition.square())[batch, None]
        t = t[batch, None]
        if self.kind == "flow":
            def velocity(x, mean, var):
                return mean + (t * var - (1 - t)) / ((1 - t) ** 2 + t**2 * var) * (x - t * mean)

            return velocity(pos, 0.0, var_pos), velocity(h, mean_h, self.tau**2)
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)

        def predict(x, mean, var):
            x0 = mean + alpha * var * (x - alpha * mean) / (alpha**2 * var + sigma**2)
            return x0 if self.prediction == "x0" else (x - alpha * x0) / sigma

        return predict(pos, 0.0, var_pos), predict(h, mean_h, self.tau**2)


def make_generator(kind: str, prediction: str | None = "eps", tau: float = TAU):
    if kind == "diffusion":
        return MoleculeDiffusion(GaussianMolecules(kind, "cosine", prediction, tau), schedule="cosine",
                                 prediction=prediction)
    return MoleculeFlowMatching(GaussianMolecules(kind, tau=tau))


DETERMINISTIC = [("diffusion", "ddim", 200, "eps", 0.05), ("diffusion", "ddim", 200, "x0", 0.05),
                 ("diffusion", "euler", 200, "eps", 0.01), ("diffusion", "heun", 50, "x0", 0.01),
                 ("flow", "euler", 200, None, 0.05), ("flow", "heun", 50, None, 0.002)]


@pytest.mark.parametrize(("kind", "sampler", "steps", "prediction", "tolerance"), DETERMINISTIC)
def test_deterministic_samplers_follow_the_exact_flow_map(kind, sampler, steps, prediction, tolerance):
    """For Gaussian data the probability-flow ODE is affine: it keeps ``(x_t - E x_t) / std(x_t)``, so the sample
    started from the noise ``z`` is ``μ + std(data) z`` (flow matching, noise at t = 0) or
    ``μ + std(data) (x_T - α_T μ) / std(x_T)`` with ``x_T = σ_T z`` (diffusion, from ``T = 1 - t_min``). The
    condition sets each molecule's position scale."""
    n_atoms = torch.tensor([3, 6, 1, 4] * 5)
    scale = torch.tensor([0.5, 2.0, 1.0, 1.5], dtype=F64).repeat(5)
    tau = 0.3
    model = make_generator(kind, prediction, tau)
    pos, h, batch = model.sample_state(n_atoms, steps, sampler, scale, generator=torch.Generator().manual_seed(0),
                                       dtype=F64)
    z = model.process.sample_noise((len(batch), 8), batch, dtype=F64, generator=torch.Generator().manual_seed(0))
    mean_h, s = atom_features(expected_elements(batch), dtype=F64), scale[batch, None]
    if kind == "diffusion":
        t_max = torch.tensor(1 - model.process.t_min, dtype=F64)
        alpha, sigma = model.process.schedule.alpha(t_max), model.process.schedule.sigma(t_max)
        x_max = sigma * z
        expected_pos = s * x_max[:, :3] / (alpha**2 * s**2 + sigma**2).sqrt()
        expected_h = mean_h + tau * (x_max[:, 3:] - alpha * mean_h) / (alpha**2 * tau**2 + sigma**2).sqrt()
    else:
        expected_pos, expected_h = s * z[:, :3], mean_h + tau * z[:, 3:]
    assert (pos - expected_pos).abs().max() < tolerance and (h - expected_h).abs().max() < tolerance
    assert pos[batch == 2].abs().max() < 1e-12  # a single atom sits at its centre of mass


def test_ancestral_sampler_recovers_gaussian_molecules():
    """The stochastic sampler: zero centre of mass, position second moments ``Σ_i x_i x_iᵀ = s² (n - 1) I`` per
    molecule in the mean over molecules, elements (the argmax of the features) those of the distribution."""
    n_atoms = torch.tensor([6] * 300)
    scale = torch.tensor([1.0, 2.0], dtype=F64).repeat(150)
    pos, elements, batch = make_generator("diffusion").sample(n_atoms, 300, "ancestral", scale, dtype=F64,
                                                              generator=torch.Generator().manual_seed(1))
    assert torch.equal(batch, torch.repeat_interleave(torch.arange(len(n_atoms)), n_atoms))
    assert torch.equal(elements, expected_elements(batch))
    assert torch.zeros(len(n_atoms), 3, dtype=F64).index_add_(0, batch, pos).abs().max() < 1e-10
    moments = torch.zeros(len(n_atoms), 3, 3, dtype=F64).index_add_(0, batch, pos[:, :, None] * pos[:, None, :])
    normalized = (moments / (scale**2 * (n_atoms - 1))[:, None, None]).mean(0)  # I in expectation
    # sampling errors (standard deviations) about 0.02 for the trace / 3, 0.04 for the entries; the sampler's own
    # bias (it ignores the variance of x_0 given x_t) is about -0.02 at 300 steps
    assert abs(normalized.trace() / 3 - 1) < 0.08 and (normalized - torch.eye(3, dtype=F64)).abs().max() < 0.15


class ZeroDenoiser:
    def __call__(self, pos, h, t, batch, condition):
        return torch.zeros_like(pos), torch.zeros_like(h)


class PointMass:
    """Exact predictions for data that is a single fixed molecule ``x_1`` (centered): ``x_0`` is the molecule,
    ``ε = (x_t - α x_0) / σ`` (diffusion) and the velocity ``(x_1 - x_t) / (1 - t)`` (flow matching)."""

    def __init__(self, pos: torch.Tensor, h: torch.Tensor, kind: str, prediction: str | None = None) -> None:
        self.x = torch.cat([pos - pos.mean(0), h], 1)
        self.kind, self.prediction, self.schedule = kind, prediction, get_schedule("polynomial")

    def __call__(self, pos, h, t, batch, condition):
        x, x_t, t = self.x.repeat(len(t), 1), torch.cat([pos, h], 1), t[batch, None]
        if self.kind == "flow":
            out = (x - x_t) / (1 - t)
        elif self.prediction == "eps":
            out = (x_t - self.schedule.alpha(t) * x) / self.schedule.sigma(t)
        else:
            out = x
        return out[:, :3], out[:, 3:]


def molecules(g: torch.Generator, sizes=(3, 5, 4, 7)):
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = 1.5 * torch.randn(len(batch), 3, dtype=F64, generator=g) + 3.0
    elements = torch.randint(0, 5, (len(batch),), generator=g)
    return pos, elements, batch


@pytest.mark.parametrize("charge", [False, True])
def test_loss_of_the_zero_eps_prediction_is_two(charge):
    """ε-target of unit variance per degree of freedom: each of the two normalized MSEs is 1 in expectation."""
    g = torch.Generator().manual_seed(2)
    pos, elements, batch = molecules(g, sizes=(2, 3, 9) * 2000)
    loss = MoleculeDiffusion(ZeroDenoiser(), charge=charge).loss(pos, elements, batch, generator=g)
    assert abs(float(loss) - 2.0) < 0.03  # sampling error about 0.01


@pytest.mark.parametrize(("kind", "prediction"), [("diffusion", "eps"), ("diffusion", "x0"), ("flow", None)])
def test_loss_of_the_exact_point_mass_prediction_is_zero(kind, prediction):
    """Copies of one molecule, translated: the exact prediction of each molecule's own time has zero loss."""
    g = torch.Generator().manual_seed(3)
    pos, elements, batch = molecules(g, sizes=(5,) * 3)
    same = torch.arange(15) % 5
    denoiser = PointMass(pos[:5], atom_features(elements[:5], dtype=F64), kind, prediction)
    model = (MoleculeDiffusion(denoiser, prediction=prediction) if kind == "diffusion"
             else MoleculeFlowMatching(denoiser))
    shifts = torch.randn(3, 3, dtype=F64, generator=g)[batch]
    assert float(model.loss(pos[same] + shifts, elements[same], batch, generator=g)) < 1e-20


def test_denoiser_position_output_is_projected():
    """A constant shift of the denoiser's position output is projected away: the samples stay as they were."""
    def shifted(pos, h, t, batch, condition):
        out_pos, out_h = exact(pos, h, t, batch, condition)
        return out_pos + torch.tensor([1.0, -2.0, 0.5], dtype=F64), out_h

    exact, n_atoms = GaussianMolecules("diffusion"), torch.tensor([3, 4])
    samples = [MoleculeDiffusion(denoiser, schedule="cosine").sample_state(
        n_atoms, 10, "ddim", generator=torch.Generator().manual_seed(8), dtype=F64)[0] for denoiser in (exact, shifted)]
    assert (samples[0] - samples[1]).abs().max() < 1e-12


def random_orthogonal(generator: torch.Generator, det: float) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) * det > 0 else -q


@pytest.mark.parametrize(("kind", "prediction", "det"),
                         [("diffusion", "eps", 1.0), ("diffusion", "x0", -1.0), ("flow", None, -1.0)])
def test_loss_is_e3_invariant(kind, prediction, det, monkeypatch):
    """Rotating (or reflecting) and translating the molecules, with the noise rotated alike, leaves the loss as it
    is: the noisy state rotates, the equivariant denoiser's output and the target rotate with it."""
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    denoiser = EDMDenoiser(5, hidden=16, layers=2).double()
    model = (MoleculeDiffusion(denoiser, prediction=prediction) if kind == "diffusion"
             else MoleculeFlowMatching(denoiser))
    pos, elements, batch = molecules(g)
    q, shift = random_orthogonal(g, det), 4 * torch.randn(3, dtype=F64, generator=g)
    loss = model.loss(pos, elements, batch, generator=torch.Generator().manual_seed(5)).detach()
    noise = model.process.sample_noise

    def rotated_noise(*args, **kwargs):
        eps = noise(*args, **kwargs)
        return torch.cat([eps[:, :3] @ q.T, eps[:, 3:]], 1)

    monkeypatch.setattr(model.process, "sample_noise", rotated_noise)
    moved = model.loss(pos @ q.T + shift, elements, batch, generator=torch.Generator().manual_seed(5)).detach()
    assert float(loss) > 0.1 and abs(float(moved - loss)) < 1e-10


def test_loss_backpropagates_to_the_denoiser():
    g = torch.Generator().manual_seed(6)
    denoiser = EDMDenoiser(6, hidden=8, layers=2, condition=True)
    pos, elements, batch = molecules(g)
    model = MoleculeFlowMatching(denoiser, charge=True, coupling="ot")
    model(pos.float(), elements, batch, torch.randn(4)).backward()
    assert all(p.grad is not None for p in denoiser.parameters())


def test_atom_count_distribution():
    dist = atom_count_distribution(torch.tensor([3, 5, 3, 3]))
    assert torch.allclose(dist.probs, torch.tensor([0, 0, 0, 0.75, 0, 0.25], dtype=F64))
    draws = dist.sample((2000,))
    assert set(draws.tolist()) == {3, 5} and abs(float((draws == 3).double().mean()) - 0.75) < 0.05
    with pytest.raises(ValueError, match="≥ 1"):
        atom_count_distribution(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="int64"):
        atom_count_distribution(torch.tensor([3.0]))


def test_element_index_and_features():
    elements = element_index(torch.tensor([1, 6, 7, 8, 9, 1]))
    assert elements.tolist() == [0, 1, 2, 3, 4, 0]
    features = atom_features(elements, charge=True, dtype=F64)
    assert features.shape == (6, 6)
    assert torch.equal(features[:, :5], 0.25 * torch.eye(5, dtype=F64)[[0, 1, 2, 3, 4, 0]])
    assert torch.allclose(features[:, 5], torch.tensor([0.1, 0.6, 0.7, 0.8, 0.9, 0.1], dtype=F64))
    with pytest.raises(ValueError, match="H, C, N, O, F"):
        element_index(torch.tensor([6, 17]))
    with pytest.raises(TypeError, match="numbers"):
        element_index(torch.tensor([6.0]))
    with pytest.raises(ValueError, match="elements"):
        atom_features(torch.tensor([5]))


def test_bad_inputs():
    g = torch.Generator().manual_seed(7)
    pos, elements, batch = molecules(g)
    model = MoleculeDiffusion(ZeroDenoiser())
    with pytest.raises(ValueError, match="condition must have shape"):
        model.loss(pos, elements, batch, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="condition must have shape"):
        model.sample(torch.tensor([3, 4]), 2, "ddim", torch.zeros(2, 1))
    with pytest.raises(ValueError, match="same A"):
        model.loss(pos, elements[:-1], batch)
    with pytest.raises(TypeError, match="n_atoms"):
        model.sample(torch.tensor([3.0]), 2, "ddim")
    with pytest.raises(ValueError, match="n_atoms"):
        model.sample(torch.tensor([3, 0]), 2, "ddim")
    with pytest.raises(ValueError, match="sampler"):
        model.sample(torch.tensor([3]), 2, "rk4")
    with pytest.raises(ValueError, match="method"):
        MoleculeFlowMatching(ZeroDenoiser()).sample(torch.tensor([3]), 2, "ancestral")
    with pytest.raises(TypeError, match="denoiser"):
        MoleculeDiffusion(None)
