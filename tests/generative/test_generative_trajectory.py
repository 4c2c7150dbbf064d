"""TrajectoryDiffusion (GeoTDM-style): the prior, the frame and scale of the denoiser, equivariance, sampling with
a known denoiser, minADE/minFDE, and the task end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from liequiv.data.nbody import NBodyConfig
from liequiv.generative.trajectory import TrajectoryDiffusion, constant_velocity_prior
from liequiv.groups import SO3
from liequiv.nn.graph import fully_connected_edges
from liequiv.train.loop import TrainConfig, fit
from liequiv.train.trajectory import TrajectoryTask, load_geotdm, min_displacement_errors, sample_futures

DT = torch.float64


def _batch(n_graphs=3, n=4, history=4, horizon=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = n_graphs * n
    return {"past": torch.randn(rows, history, 3, generator=g, dtype=DT),
            "future": torch.randn(rows, horizon, 3, generator=g, dtype=DT),
            "charges": torch.randint(0, 2, (rows, 1), generator=g).to(DT) * 2 - 1,
            "edge_index": fully_connected_edges(n, n_graphs), "batch": torch.arange(n_graphs).repeat_interleave(n)}


def _model(**kw):
    torch.manual_seed(0)
    model = TrajectoryDiffusion(4, 6, hidden=16, layers=2, heads=2, scale=0.7, **kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.03 * torch.randn_like(p))
    return model


def test_constant_velocity_prior_closed_form():
    past = torch.tensor([[[0.0, 0, 0], [1, 2, 3], [2, 3, 5]]])
    expected = torch.tensor([[[3.0, 4, 7], [4, 5, 9]]])
    torch.testing.assert_close(constant_velocity_prior(past, 2), expected)
    with pytest.raises(ValueError, match="history >= 2"):
        constant_velocity_prior(past[:, :1], 2)


def test_denoiser_frame_scale_and_equivariance():
    model = _model()
    b = _batch()
    cond, mean = model._frame(b["past"], b["batch"])
    centre = b["past"][:, -1] - cond[:, -1]
    # the frame: the past relative to the centre of its last frame (the same for all nodes of a system)
    for graph in range(3):
        rows = b["batch"] == graph
        torch.testing.assert_close(centre[rows], b["past"][rows, -1].mean(0).expand(4, 3))
    x_t, t = torch.randn(12, 6, 3, dtype=DT), torch.rand(3, dtype=DT)[b["batch"]]
    ctx = {"batch": b["batch"], "node_features": b["charges"], "edge_index": b["edge_index"]}
    out = model._denoise(x_t, t, cond=cond, mean=mean, **ctx)
    scale = model.scale
    moved = model.denoiser(mean + scale * x_t, t, cond=cond, node_features=b["charges"], edge_index=b["edge_index"])
    torch.testing.assert_close(out, x_t + moved / scale)  # x0-prediction: the moved noisy future, in units of scale
    g = torch.Generator().manual_seed(1)
    for sign in (1, -1):
        rot = SO3.random((), generator=g, dtype=DT).as_matrix() * sign
        shift = torch.randn(3, generator=g, dtype=DT)
        cond2, mean2 = model._frame(b["past"] @ rot.T + shift, b["batch"])
        torch.testing.assert_close(cond2, cond @ rot.T)
        out2 = model._denoise(x_t @ rot.T, t, cond=cond2, mean=mean2, **ctx)
        assert (out2 - out @ rot.T).abs().max() < 1e-10
    eps_model = _model(prediction="eps")
    torch.testing.assert_close(eps_model._denoise(x_t, t, cond=cond, mean=mean, **ctx),
                               eps_model.denoiser(mean + eps_model.scale * x_t, t, cond=cond,
                                                  node_features=b["charges"], edge_index=b["edge_index"]))


def test_loss_targets_the_scaled_deviation_from_the_prior():
    model = _model()
    b = _batch()
    seen = {}
    model._denoise = lambda x_t, t, **ctx: seen.setdefault("x0", torch.zeros_like(x_t))
    # with t = t_min the noisy input is almost x0; read x0 through the diffusion's own noise call instead
    cond, mean = model._frame(b["past"], b["batch"])
    centre = b["past"][:, -1] - cond[:, -1]
    expected_x0 = (b["future"] - centre[:, None] - mean) / model.scale
    loss = model(b["past"], b["charges"], b["future"], b["edge_index"], b["batch"])
    # a model predicting x0 = 0 pays the mean square of the true x0
    torch.testing.assert_close(loss, expected_x0.square().mean())


def test_sampling_with_a_known_denoiser_gives_the_prior_in_world_coordinates():
    model = _model()
    b = _batch()
    model._denoise = lambda x_t, t, **ctx: torch.zeros_like(x_t)  # x̂0 = 0: the future is the prior mean
    for sampler in ("ddim", "ancestral"):  # both land on x̂0 at t = 0 (an ODE step only approaches it)
        drawn = model.sample(b["past"], b["charges"], b["edge_index"], b["batch"], k=3, steps=4, sampler=sampler)
        assert drawn.shape == (3, 12, 6, 3)
        expected = constant_velocity_prior(b["past"], 6)  # translation-equivariant: the same in any frame
        torch.testing.assert_close(drawn, expected.expand(3, -1, -1, -1), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="k must be"):
        model.sample(b["past"], b["charges"], b["edge_index"], b["batch"], k=0)


def test_samples_of_one_system_do_not_see_the_others():
    model = _model()
    b = _batch()
    drawn = model.sample(b["past"], b["charges"], b["edge_index"], b["batch"], k=2, steps=3,
                         generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(drawn).all() and (drawn[0] - drawn[1]).abs().max() > 1e-3
    changed = b["past"].clone()
    changed[:4] += 1.0  # move the first system only
    again = model.sample(changed, b["charges"], b["edge_index"], b["batch"], k=2, steps=3,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again[:, 4:], drawn[:, 4:])  # same noise, same other systems
    torch.testing.assert_close(again[:, :4], drawn[:, :4] + 1.0)  # and a translated first system


def test_min_displacement_errors_by_hand():
    target = torch.zeros(2, 2, 3)
    batch = torch.zeros(2, dtype=torch.long)
    first = torch.tensor([[[1.0, 0, 0], [3, 0, 0]], [[1, 0, 0], [1, 0, 0]]])  # ADE 6/4, FDE 4/2
    second = torch.tensor([[[0.0, 2, 0], [0, 2, 0]], [[0, 2, 0], [0, 0, 0]]])  # ADE 6/4... FDE 2/2
    second[1, 0, 1] = 0.0  # ADE (2 + 2 + 0 + 0) / 4 = 1, FDE (2 + 0) / 2 = 1
    errors = min_displacement_errors(torch.stack([first, second]), target, batch)
    assert errors["ade"].tolist() == [1.0, 1.0] and errors["fde"].tolist() == [1.0, 1.0]
    errors = min_displacement_errors(first[None], target, batch)
    assert errors["ade"].tolist() == [1.5, 1.0] and errors["fde"].tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="samples must be"):
        min_displacement_errors(first, target, batch)


def test_geotdm_through_the_task(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LIEQUIV_CACHE", str(tmp_path / "cache"))
    small = NBodyConfig.preset("charged", split_sizes=(60, 20, 20), n_train=60, n_steps=1600)
    task = TrajectoryTask(small)
    config = TrainConfig(task="trajectory", model="geotdm", **task.defaults("geotdm"))
    config.extra.update({"history": 5, "horizon": 10, "sample_steps": 3, "k": 2, "valid_size": 8, "test_size": 8})
    config.epochs, config.eval_every, config.batch_size, config.hidden = 2, 1, 20, 16
    config.run_dir, config.plots = str(tmp_path / "run"), False
    metrics = fit(task, config, log=lambda s: None)
    assert metrics["best_epoch"] in (1, 2)
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("test_ade", "test_fde"))
    assert "train_diffusion_mse" in metrics["history"][0]
    best = tmp_path / "run" / "best.pt"
    model, loaded_task = load_geotdm(best, small)
    assert loaded_task.frames == {"history": 5, "horizon": 10, "start": 0} and loaded_task.sampling["k"] == 2
    trained_scale = torch.load(best, weights_only=True)["model"]["scale"]
    assert model.scale == trained_scale and abs(float(trained_scale) - 1.0) > 1e-3  # from the data, not the default
    drawn = sample_futures(best, tmp_path / "sample", trajectories=3, k=2, steps=3, nbody_config=small)
    assert drawn["trajectories"] == 3 and torch.isfinite(torch.tensor(drawn["ade"]))
    assert {p.name for p in (tmp_path / "sample").iterdir()} == {"samples.npz", "samples.png", "metrics.json"}
    with pytest.raises(ValueError, match="trajectories must lie"):
        sample_futures(best, tmp_path / "sample", trajectories=0, nbody_config=small)


def test_k_copies_keep_their_graphs():
    model = _model()
    b = _batch()
    seen = []
    denoise = model.denoiser.forward
    model.denoiser.forward = lambda *a, **kw: seen.append(kw["edge_index"]) or denoise(*a, **kw)
    model.sample(b["past"], b["charges"], b["edge_index"], b["batch"], k=3, steps=1)
    edges = seen[0]
    assert edges.shape == (2, 3 * b["edge_index"].shape[1])
    assert (torch.bincount(edges[1], minlength=36) == 3).all()  # every copy of every node hears its 3 neighbours
    assert (edges[0] // 4 == edges[1] // 4).all()  # within its own system and copy
