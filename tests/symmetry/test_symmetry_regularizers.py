"""Soft-equivariance regularizers: zero when equivariant, differentiable, strengths that find a broken symmetry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liequiv.symmetry import as_group
from liequiv.symmetry.regularizers import SoftEquivarianceRegularizer, equivariance_error

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cubic(v: torch.Tensor) -> torch.Tensor:
    return v * (v * v).sum(-1, keepdim=True)


def test_zero_for_equivariant_and_positive_for_broken() -> None:
    x = torch.randn(32, 3, generator=_gen(), dtype=DT)
    assert equivariance_error(_cubic, x, "O(3)", "1o", "1o", 4, generator=_gen()) < 1e-25
    shift = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    assert equivariance_error(lambda v: v + shift, x, "SO(2)", "1o", "1o", 4, generator=_gen()) < 1e-25
    broken = equivariance_error(lambda v: v + shift, x, "SO(3)", "1o", "1o", 4, generator=_gen())
    # f(R v) - R f(v) = s - R s for every point: R = mean_g |s - R_g s|² / 3, with the same 4 rotations
    rot = as_group("SO(3)").sample(4, generator=_gen(), dtype=DT).rotation
    expected = (shift - rot @ shift).square().sum(-1).mean() / 3
    assert abs(float(broken) - float(expected)) < 1e-14 and float(expected) > 0.1


def _constant_pseudoscalar(value: float):
    """A function of vectors ``[N, 3]`` returning ``value`` ``[N, 1]`` declared a pseudoscalar: under O(3) with two
    samples (one proper, one improper) its error is exactly (0 + (2 value)²) / 2 = 2 value², whatever the rotations."""
    return lambda v: torch.full_like(v[:, :1], value)


def test_error_of_a_constant_pseudoscalar_is_exact() -> None:
    x = torch.randn(5, 3, generator=_gen(), dtype=DT)
    err = equivariance_error(_constant_pseudoscalar(1.5), x, "O(3)", "1o", "0o", 2, generator=_gen())
    assert abs(float(err) - 2 * 1.5**2) < 1e-14


def test_strengths_and_running_violations_follow_their_updates() -> None:
    """Errors R_t = 2, 8, 18 in turn (constants 1, 2, 3), level 1, dual step 0.5, momentum 0.75, by hand:

    λ_t = max(0, λ_{t-1} + 0.5 (R_t - 1)):   0.5, 4, 12.5
    v_t = 0.75 v_{t-1} + 0.25 R_t:          0.5, 2.375, 6.28125
    penalty_t = λ_{t-1} R_t:                0, 4, 72
    and a fourth step with R = 0 lowers λ by 0.5 and decays v by 0.75 (the buffers are float32).
    """
    reg = SoftEquivarianceRegularizer({"O(3)": "O(3)"}, "1o", "0o", levels=1.0, dual_step=0.5, n_samples=2,
                                      momentum=0.75)
    x = torch.randn(5, 3, generator=_gen(), dtype=DT)
    penalties, strengths, violations = [], [], []
    for value in (1.0, 2.0, 3.0, 0.0):
        penalties.append(float(reg(_constant_pseudoscalar(value), x, generator=_gen())))
        strengths.append(reg.strengths["O(3)"])
        violations.append(reg.violations["O(3)"])
    assert penalties == pytest.approx([0.0, 4.0, 72.0, 0.0], rel=1e-12, abs=1e-12)
    assert strengths == pytest.approx([0.5, 4.0, 12.5, 12.0], rel=1e-6)
    assert violations == pytest.approx([0.5, 2.375, 6.28125, 0.75 * 6.28125], rel=1e-6)


def test_differentiable_with_the_right_gradient() -> None:
    """f(v) = v + b: R = mean_g mean |b - R_g b|², whose gradient in b is 2/(3) mean_g (I - R_g)ᵀ(I - R_g) b."""
    x = torch.randn(8, 3, generator=_gen(1), dtype=DT)
    b = torch.tensor([0.3, -0.2, 0.5], dtype=DT, requires_grad=True)
    err = equivariance_error(lambda v: v + b, x, "SO(3)", "1o", "1o", 3, generator=_gen(2))
    err.backward()
    rot = as_group("SO(3)").sample(3, generator=_gen(2), dtype=DT).rotation
    diff = torch.eye(3, dtype=DT) - rot
    expected = (2 / 3) * (diff.mT @ diff @ b.detach()).mean(0)
    assert torch.allclose(b.grad, expected, atol=1e-12)


def test_tuned_strengths_separate_an_exact_from_a_broken_symmetry() -> None:
    """Data symmetric under rotations about z but not under all rotations: y = v + ½ v_z² e_z."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only add overhead on a shared CI machine
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 3))
        reg = SoftEquivarianceRegularizer({"z-rotations": "SO(2)", "rotations": "SO(3)"}, "1o", "1o",
                                          levels=1e-2, dual_step=2.0)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        ez = torch.tensor([0.0, 0.0, 1.0])
        gen = _gen(3)
        for _ in range(200):
            x = torch.randn(128, 3, generator=gen)
            y = x + 0.5 * x[:, 2:] ** 2 * ez
            loss = (model(x) - y).pow(2).mean() + reg(model, x, generator=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    strengths, violations = reg.strengths, reg.violations
    assert strengths["rotations"] > 1.0, strengths  # measured ≈ 3.4 (seeds 0-2)
    assert strengths["z-rotations"] < 0.1 * strengths["rotations"], strengths  # measured 0
    assert violations["z-rotations"] < 0.5 * violations["rotations"], violations  # measured ≈ 0.0013 vs 0.011
    # evaluation mode does not move the strengths
    reg.eval()
    before = reg.strengths
    reg(model, torch.randn(16, 3, generator=gen))
    assert reg.strengths == before


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="symmetries"):
        SoftEquivarianceRegularizer({}, "1o", "1o")
    with pytest.raises(ValueError, match="levels"):
        SoftEquivarianceRegularizer({"a": "SO(3)"}, "1o", "1o", levels={"b": 0.1})
    with pytest.raises(ValueError, match="dual_step"):
        SoftEquivarianceRegularizer({"a": "SO(3)"}, "1o", "1o", dual_step=-1.0)
    with pytest.raises(ValueError, match="unknown group"):
        SoftEquivarianceRegularizer({"a": "SU(3)"}, "1o", "1o")
