"""Radial bases and the cutoff envelope: closed forms, orthonormality, smoothness at the cutoff, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liequiv.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff

DT = torch.float64


def test_bessel_orthonormal_on_the_ball() -> None:
    cutoff = 4.0
    basis = BesselBasis(cutoff, 6)
    t, w = np.polynomial.legendre.leggauss(200)  # ∫_0^c f(r) dr by Gauss-Legendre
    r = torch.tensor(cutoff * (t + 1) / 2, dtype=DT)
    weights = torch.tensor(w * cutoff / 2, dtype=DT)
    b = basis(r)
    gram = torch.einsum("r,rn,rm->nm", weights * r**2, b, b)
    assert (gram - torch.eye(6, dtype=DT)).abs().max() < 1e-12


def test_bessel_closed_form_and_trainable() -> None:
    r = torch.tensor([0.3, 1.7, 4.9], dtype=DT)
    b = BesselBasis(5.0, 3)(r)
    n = torch.arange(1, 4, dtype=DT)
    expected = math.sqrt(2 / 5.0) * torch.sin(n * math.pi * r[:, None] / 5.0) / r[:, None]
    assert torch.allclose(b, expected, atol=1e-14)
    trainable = BesselBasis(5.0, 3, trainable=True)
    assert sum(p.numel() for p in trainable.parameters()) == 3
    assert len(list(BesselBasis(5.0, 3).parameters())) == 0


def test_gaussian_basis() -> None:
    g = GaussianBasis(4.0, 5)
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=DT)
    out = g(r)
    assert torch.allclose(out.diagonal(), torch.ones(5, dtype=DT))  # each centre peaks at its own position
    assert torch.allclose(out[0, 1], torch.tensor(math.exp(-0.5), dtype=DT))  # width = spacing


def test_envelope_values_and_derivatives_at_the_cutoff() -> None:
    env = PolynomialCutoff(3.0, p=6)
    r = torch.tensor([0.0, 3.0, 3.5], dtype=DT, requires_grad=True)
    u = env(r)
    assert u.tolist() == [1.0, 0.0, 0.0]
    (d1,) = torch.autograd.grad(u.sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    d1 = d1.detach()
    assert abs(float(d1[1])) < 1e-12 and abs(float(d2[1])) < 1e-10
    assert abs(float(d1[0])) < 1e-12  # flat at the origin too (x^p)
    inner = torch.linspace(0, 3.0, 50, dtype=DT)[:-1]
    assert bool((env(inner) > 0).all()) and bool((env(inner).diff() <= 0).all())


@pytest.mark.parametrize("make", [lambda: BesselBasis(0.0), lambda: BesselBasis(5.0, 0), lambda: GaussianBasis(-1.0),
                                  lambda: GaussianBasis(5.0, 4, start=6.0), lambda: PolynomialCutoff(5.0, 0),
                                  lambda: BesselBasis(float("nan"))])
def test_bad_arguments(make) -> None:
    with pytest.raises(ValueError):
        make()
