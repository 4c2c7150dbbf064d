"""Rⁿ under addition: the family of classes ``Rn.of(n)``, and the group checks for dimensions other than 3.

The generic suite (test_groups_axioms.py) runs everything on R³; here the same maps are checked for R¹ and R⁵.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

import liequiv.groups.rn as rn_module
from liequiv.groups import Rn
from liequiv.groups.base import LieGroup

DT = torch.float64


def test_rn_is_vector_addition() -> None:
    R3 = Rn.of(3)
    assert R3 is Rn.of(3) and R3.__name__ == "R3" and issubclass(R3, Rn)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g, dtype=DT), torch.randn(5, 3, generator=g, dtype=DT)
    torch.testing.assert_close((R3(a) @ R3(b)).params, a + b)
    torch.testing.assert_close(R3(a).act(b), a + b)
    torch.testing.assert_close(R3(a).minus(R3(b)), a - b)
    torch.testing.assert_close(R3(a).inverse().params, -a)
    torch.testing.assert_close(R3.exp(a).log(), a, atol=0, rtol=0)
    torch.testing.assert_close(R3(a).interpolate(R3(b), 0.25).params, 0.75 * a + 0.25 * b)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_rn_group_maps(n: int) -> None:
    G = Rn.of(n)
    assert (G.param_dim, G.tangent_dim, G.matrix_dim, G.point_dim) == (n, n, n + 1, n)
    g = torch.Generator().manual_seed(n)
    X, Y = G.random((4,), generator=g, dtype=DT), G.random((4,), generator=g, dtype=DT)
    p = torch.randn(4, n, generator=g, dtype=DT)
    m = X.as_matrix()  # [[I, t], [0, 1]]
    torch.testing.assert_close(m[:, :n, :n], torch.eye(n, dtype=DT).expand(4, n, n), atol=0, rtol=0)
    torch.testing.assert_close(m[:, :n, n], X.params, atol=0, rtol=0)
    torch.testing.assert_close((X @ Y).as_matrix(), m @ Y.as_matrix())
    torch.testing.assert_close(torch.linalg.matrix_exp(G.hat(X.params)), m)
    torch.testing.assert_close(G.vee(G.hat(X.params)), X.params, atol=0, rtol=0)
    torch.testing.assert_close(G.from_matrix(m).params, X.params, atol=0, rtol=0)
    homogeneous = torch.cat([p, torch.ones(4, 1, dtype=DT)], -1)
    torch.testing.assert_close(X.act(p), (m @ homogeneous[..., None])[:, :n, 0])
    eye = torch.eye(n, dtype=DT).expand(4, n, n)
    for jac in (X.adjoint(), G.jr(p), G.jl_inv(p), *X.jac_act(p), *X.jac_compose(Y), X.jac_log(frame="left")):
        torch.testing.assert_close(jac, eye, atol=0, rtol=0)
    torch.testing.assert_close(X.jac_inverse(), -eye, atol=0, rtol=0)


def test_rn_from_matrix_checks() -> None:
    m = torch.eye(4, dtype=DT)
    m[0, 1] = 0.5
    with pytest.raises(ValueError, match=r"\[\[I, t\], \[0, 1\]\]"):
        Rn.of(3).from_matrix(m)
    torch.testing.assert_close(Rn.of(3).from_matrix(m, project=True).params, torch.zeros(3, dtype=DT))


def test_rn_bad_dimensions_and_the_bare_family() -> None:
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="positive integer"):
            Rn.of(bad)
    with pytest.raises(TypeError, match=r"Rn.of\(n\)"):
        Rn(torch.zeros(3))
    with pytest.raises(TypeError, match=r"Rn.of\(n\)"):
        Rn.identity()
    with pytest.raises(ValueError, match="shape"):
        Rn.of(2)(torch.zeros(3))


def test_rn_classes_are_importable_and_elements_pickle() -> None:
    assert rn_module.R7 is Rn.of(7)
    with pytest.raises(AttributeError):
        rn_module.R0  # noqa: B018
    X = Rn.of(4).random((3,), generator=torch.Generator().manual_seed(0), dtype=DT)
    Y = pickle.loads(pickle.dumps(X))
    assert type(Y) is Rn.of(4) and torch.equal(Y.params, X.params)
    assert not hasattr(X, "__dict__")  # __slots__ all the way down, as LieGroup
    # in a fresh interpreter, where Rn.of(4) has never been called
    code = "import pickle, sys; X = pickle.loads(sys.stdin.buffer.read()); print(type(X).__name__, tuple(X.shape))"
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(X), capture_output=True, check=True)
    assert out.stdout.decode().strip() == "R4 (3,)"


def test_rn_is_a_lie_group_in_isinstance_checks() -> None:
    X = Rn.of(2).identity((2,))
    assert isinstance(X, Rn) and isinstance(X, LieGroup)
    assert not isinstance(X, Rn.of(3))
    with pytest.raises(TypeError, match="must be a R2"):
        X @ Rn.of(3).identity((2,))
