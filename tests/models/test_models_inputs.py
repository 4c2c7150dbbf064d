"""Inputs in another dtype than the model's parameters are refused with both dtypes named, by every model."""

from __future__ import annotations

import pytest
import torch

from dynamics_testing import random_systems
from liequiv.models import EGNN, GNN, PONITA, PONITAR3, FrameAveragedGNN, LinearDynamics, TensorProductPotential
from liequiv.models.inputs import check_input_dtypes, parameter_dtype

DYNAMICS_MODELS = {
    "egnn": lambda: EGNN(hidden=8, layers=1),
    "ponita": lambda: PONITA(hidden=8, layers=1, num_ori=4),
    "ponita-r3": lambda: PONITAR3(hidden=8, layers=1),
    "fa-gnn": lambda: FrameAveragedGNN(hidden=8, layers=1),
    "gnn": lambda: GNN(hidden=8, layers=1),
    "linear": lambda: LinearDynamics(dt=0.1),
}


@pytest.mark.parametrize("name", DYNAMICS_MODELS)
def test_dynamics_models_name_both_dtypes(name: str) -> None:
    model = DYNAMICS_MODELS[name]().float()
    pos, vel, charges, edge_index, batch = random_systems(n_graphs=2, n=4)  # float64
    with pytest.raises(TypeError, match="pos is float64 but the model's parameters are float32"):
        model(pos, vel.float(), charges.float(), edge_index, batch)
    with pytest.raises(TypeError, match="vel is float64 but the model's parameters are float32"):
        model(pos.float(), vel, charges.float(), edge_index, batch)
    with pytest.raises(TypeError, match="node_features is float32 but the model's parameters are float64"):
        model.double()(pos, vel, charges.float(), edge_index, batch)
    assert model(pos, vel, charges, edge_index, batch).dtype == torch.float64  # matching dtypes pass


def test_potential_names_both_dtypes() -> None:
    torch.manual_seed(0)
    model = TensorProductPotential((1, 8), channels=4, lmax=1, layers=1, cutoff=3.0, radial_hidden=(8,))
    numbers = torch.tensor([8, 1, 1])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)
    edge_index = torch.tensor([[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]])
    with pytest.raises(TypeError, match="pos is float64 but the model's parameters are float32"):
        model(numbers, pos, edge_index)
    assert model(numbers, pos.float(), edge_index)["energy"].dtype == torch.float32


def test_check_input_dtypes() -> None:
    model = torch.nn.Linear(2, 2).double()
    assert parameter_dtype(model) == torch.float64 and parameter_dtype(torch.nn.ReLU()) is None
    check_input_dtypes(model, x=torch.zeros(2, dtype=torch.float64), index=torch.zeros(2, dtype=torch.long), y=None)
    check_input_dtypes(torch.nn.ReLU(), x=torch.zeros(2))  # no parameters: nothing to compare with
    with pytest.raises(TypeError, match="x is float32 but the model's parameters are float64"):
        check_input_dtypes(model, x=torch.zeros(2))
