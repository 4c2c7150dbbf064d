"""Scatter reductions and the MLP against direct computations."""

from __future__ import annotations

import pytest
import torch

from liequiv.nn import MLP, scatter_mean, scatter_sum
from liequiv.nn.graph import check_edge_index


def test_scatter_sum_and_mean_match_loops() -> None:
    values = torch.randn(7, 2, 3, dtype=torch.float64)
    index = torch.tensor([0, 2, 2, 3, 0, 2, 3])
    total, mean = scatter_sum(values, index, 5), scatter_mean(values, index, 5)
    for t in range(5):
        rows = values[index == t]
        torch.testing.assert_close(total[t], rows.sum(0))
        torch.testing.assert_close(mean[t], rows.mean(0) if len(rows) else torch.zeros(2, 3, dtype=torch.float64))


def test_check_edge_index() -> None:
    assert check_edge_index(torch.zeros(2, 0, dtype=torch.long), 0).shape == (2, 0)
    with pytest.raises(ValueError, match="shape"):
        check_edge_index(torch.zeros(3, 4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        check_edge_index(torch.tensor([[0, 1], [5, 0]]), 5)


def test_mlp_structure_and_errors() -> None:
    mlp = MLP([3, 8, 2], last_bias=False)
    assert [type(m).__name__ for m in mlp] == ["Linear", "SiLU", "Linear"]
    assert mlp[-1].bias is None and mlp(torch.zeros(4, 3)).shape == (4, 2)
    assert isinstance(MLP([3, 4], last_activation=True)[-1], torch.nn.SiLU)
    with pytest.raises(ValueError, match="dims"):
        MLP([3])
