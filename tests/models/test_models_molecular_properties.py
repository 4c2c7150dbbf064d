"""Property regressors: EGNN's QM9 node features in closed form; E(3) and permutation invariance; sum pooling."""

from __future__ import annotations

import pytest
import torch

from liequiv.models.molecular_properties import PropertyEGNN, PropertyPONITA, atom_type_features

DT = torch.float64


def _molecules(seed: int = 0):
    """Two molecules (5 and 3 atoms), fully connected: numbers, pos, edge_index, batch."""
    g = torch.Generator().manual_seed(seed)
    numbers = torch.tensor([6, 1, 1, 1, 1, 8, 1, 1])
    pos = torch.randn(8, 3, generator=g, dtype=DT) * 1.5
    edges = [(i, j) for block in (range(5), range(5, 8)) for i in block for j in block if i != j]
    return numbers, pos, torch.tensor(edges).T, torch.tensor([0] * 5 + [1] * 3)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "egnn":
        return PropertyEGNN(15, hidden=16, layers=3).to(DT)
    return PropertyPONITA(15, hidden=16, layers=2, num_ori=12).to(DT)


def test_atom_type_features_closed_form():
    features = atom_type_features(torch.tensor([6, 1, 9]))
    assert features.shape == (3, 15)
    expected = torch.zeros(3, 5, 3)
    expected[0, 1] = torch.tensor([1.0, 6 / 9, 36 / 81])
    expected[1, 0] = torch.tensor([1.0, 1 / 9, 1 / 81])
    expected[2, 4] = torch.tensor([1.0, 1.0, 1.0])
    torch.testing.assert_close(features, expected.reshape(3, 15).to(features.dtype))
    with pytest.raises(ValueError, match=r"unknown element\(s\) \[17\]"):
        atom_type_features(torch.tensor([6, 17]))


@pytest.mark.parametrize("name", ["egnn", "ponita"])
def test_translation_permutation_invariance_and_pooling(name):
    model = _model(name)
    numbers, pos, edge_index, batch = _molecules()
    features = atom_type_features(numbers).to(DT)
    out = model(features, pos, edge_index, batch)
    assert out.shape == (2,) and out.dtype == DT and (out[0] - out[1]).abs() > 1e-6
    shifted = model(features, pos + torch.tensor([3.0, -1.0, 2.0], dtype=DT), edge_index, batch)
    torch.testing.assert_close(shifted, out, rtol=0, atol=1e-10)
    perm = torch.tensor([2, 0, 4, 1, 3, 7, 5, 6])  # within each molecule
    inverse = torch.argsort(perm)
    permuted = model(features[perm], pos[perm], inverse[edge_index], batch[perm])
    torch.testing.assert_close(permuted, out, rtol=0, atol=1e-10)
    first = model(features[:5], pos[:5], edge_index[:, :20], batch[:5])  # the first molecule alone
    torch.testing.assert_close(first, out[:1], rtol=0, atol=1e-10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "every parameter is used"


def test_egnn_is_o3_invariant():
    model = _model("egnn")
    numbers, pos, edge_index, batch = _molecules(seed=1)
    features = atom_type_features(numbers).to(DT)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=DT))
    q = q * torch.tensor([1.0, 1.0, -torch.linalg.det(q).sign()], dtype=DT)  # a reflection: det -1
    assert torch.linalg.det(q) < 0
    out = model(features, pos, edge_index, batch)
    torch.testing.assert_close(model(features, pos @ q.T, edge_index, batch), out, rtol=0, atol=1e-10)


def test_ponita_rotation_error_shrinks_with_the_grid():
    """Rotations are exact only up to the sphere quadrature: the error falls as the grid grows."""
    numbers, pos, edge_index, batch = _molecules(seed=3)
    features = atom_type_features(numbers).to(DT)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(4), dtype=DT))
    errors = []
    for num_ori in (4, 64):
        torch.manual_seed(0)
        model = PropertyPONITA(15, hidden=16, layers=2, num_ori=num_ori).to(DT)
        with torch.no_grad():
            out = model(features, pos, edge_index, batch)
            errors.append(float((model(features, pos @ q.T, edge_index, batch) - out).abs().max() / out.abs().max()))
    assert errors[1] < errors[0] / 3
