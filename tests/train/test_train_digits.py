"""The digits task: its test sweep, the augmentation of cnn-aug, and a short run of every model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from liequiv.data.digits import load_digits_split
from liequiv.train.digits import DigitsTask, probe_map
from liequiv.train.loop import TrainConfig, fit


def _config(model: str, tmp_path, **overrides) -> tuple[DigitsTask, TrainConfig]:
    task = DigitsTask()
    extra = {**task.defaults(model)["extra"], "rotations": 4, "stretches": 1, "magnitudes": [0.0, 1.0],
             **overrides.pop("extra", {})}
    defaults = {**task.defaults(model), "epochs": 1, "train_size": 64, "hidden": 4, "plots": False,
                "run_dir": str(tmp_path / model), **overrides, "extra": extra}
    config = TrainConfig(task="digits", model=model, **defaults)
    task.configure(config)
    return task, config


def test_the_test_set_sweeps_the_magnitudes_then_the_probes(tmp_path):
    task, config = _config("cnn", tmp_path, extra={"probes": ["rot90", "scale0.8"]})
    _, _, test = task.datasets(config)
    images, labels = load_digits_split("test")
    n = len(labels)
    assert len(test) == 4 * n
    assert torch.allclose(test.tensors[0][:n], images, atol=1e-6)  # magnitude 0: upright
    assert (test.tensors[0][n:2 * n] - images).abs().amax((1, 2, 3)).min() > 0.05  # magnitude 1: every digit moved
    # f(R(90°)⁻¹ p), p = (column, row) about the centre, is a quarter turn of the pixel grid
    assert torch.allclose(test.tensors[0][2 * n:3 * n], torch.rot90(images, -1, (-2, -1)), atol=1e-6)
    # scaled by 0.8 about the centre: ∫ f(A⁻¹ p) dp = det A ∫ f, the mass of every digit times 0.64
    mass = test.tensors[0][3 * n:].sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert torch.allclose(mass, torch.full_like(mass, 0.64), rtol=0.01)
    assert torch.equal(test.tensors[1], labels.repeat(4))
    assert torch.equal(test.tensors[2], torch.arange(4).repeat_interleave(n))
    batch = task.collate([test[i] for i in (0, 1, n, 2 * n, 3 * n)])

    class Constant(nn.Module):  # predicts class 0 everywhere
        def forward(self, x):
            return torch.zeros(len(x), 10).index_fill_(1, torch.tensor([0]), 1.0)

    _, metrics = task.loss(Constant().eval(), batch)
    wrong = (batch["labels"] != 0).double()
    assert metrics["error"].tolist() == [float(wrong[:3].sum()), 3.0]  # the sweep only
    assert metrics["error_m0.00"].tolist() == [float(wrong[:2].sum()), 2.0]
    assert metrics["error_m1.00"].tolist() == [float(wrong[2]), 1.0]
    assert metrics["error_rot90"].tolist() == [float(wrong[3]), 1.0]
    assert metrics["error_scale0.8"].tolist() == [float(wrong[4]), 1.0]


def test_probe_maps_are_the_named_linear_maps():
    c = math.sqrt(0.5)
    assert torch.allclose(probe_map("rot45"), torch.tensor([[c, -c], [c, c]], dtype=torch.float64), atol=1e-15)
    assert torch.equal(probe_map("scale1.25"), 1.25 * torch.eye(2, dtype=torch.float64))
    P = probe_map("stretch2@45")  # symmetric, eigenvalues √2 and 1/√2 along (1, 1) and (1, -1)
    assert torch.allclose(P @ torch.tensor([1.0, 1.0], dtype=torch.float64), math.sqrt(2) * torch.ones(2,
                                                                                                    dtype=torch.float64))
    assert torch.allclose(P, P.T) and float(torch.linalg.det(P)) == pytest.approx(1.0)
    for bad in ("rot", "shear0.2", "scale-1", "stretch0", "stretch2@x"):
        with pytest.raises(ValueError, match="probe must be rot<degrees>"):
            probe_map(bad)
    with pytest.raises(ValueError, match="probe must be"):
        DigitsTask().configure(TrainConfig(task="digits", model="cnn", extra={"probes": ["flip"]}))


def test_resolution_scales_images_kernels_and_blur(tmp_path):
    task, config = _config("glplus", tmp_path, extra={"resolution": 2, "rotations": 8, "stretches": 2})
    train, _, test = task.datasets(config)
    assert train.tensors[0].shape[-2:] == (56, 56) and test.tensors[0].shape[-2:] == (56, 56)
    upright, _ = load_digits_split("train", size=56, digit_size=40)
    assert torch.equal(train.tensors[0], upright)
    model = task.build_model(config, train)
    assert model.lift.kernel.radius == 6.0 and model.blur == 2.0
    assert model.sampler.num_samples == 16 and model.sampler.rotations == 8
    cnn = task.build_model(_config("cnn", tmp_path, extra={"resolution": 2})[1], train)
    assert cnn.convs[0].kernel_size == (9, 9) and cnn.blur == 2.0


def test_cnn_aug_trains_on_warped_digits_and_evaluates_upright(tmp_path):
    seen = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(len(x), 10, requires_grad=True)

    images, labels = load_digits_split("valid")
    batch = {"images": images[:8], "labels": labels[:8]}
    for model, warped in (("cnn-aug", True), ("cnn", False)):
        task, _ = _config(model, tmp_path)
        recorder = Recorder()
        task.loss(recorder.train(), batch)
        task.loss(recorder.eval(), batch)
        assert ((seen[-2] - images[:8]).abs().max() > 0.05) == warped
        assert torch.equal(seen[-1], images[:8])


@pytest.mark.parametrize("model", DigitsTask.models)
def test_each_model_runs_and_reports_the_sweep(tmp_path, model):
    task, config = _config(model, tmp_path)
    metrics = fit(task, config, log=lambda s: None)
    for key in ("test_error", "test_error_m0.00", "test_error_m1.00"):
        assert 0 <= metrics[key] <= 1
    assert metrics["test_error"] == pytest.approx((metrics["test_error_m0.00"] + metrics["test_error_m1.00"]) / 2)


def test_grid_quadrature_builds_the_product_grid(tmp_path):
    options = {"quadrature": "grid", "rotations": 4, "scales": 3, "shears": 2, "max_log_scale": 0.6}
    task, config = _config("glplus", tmp_path, extra=options)
    model = task.build_model(config, None)
    sampler = model.sampler
    assert (sampler.quadrature, sampler.num_samples, sampler.scales, sampler.shears) == ("grid", 36, 3, 2)
    assert model.lift.max_log_scale == 0.6
    log_scales = torch.linalg.det(sampler.eval()().matrix).log() / 2
    assert log_scales.round(decimals=5).unique().tolist() == pytest.approx([-0.3, 0.0, 0.3])
    with pytest.raises(ValueError, match="scales and shears are options of --quadrature grid"):
        task.build_model(_config("glplus", tmp_path, extra={"scales": 3})[1], None)
    with pytest.raises(ValueError, match="scales must be 1 for group 'sl'"):
        task.build_model(_config("sl", tmp_path, extra=options)[1], None)


def test_unknown_model_and_bad_magnitudes(tmp_path):
    task, _ = _config("cnn", tmp_path)
    with pytest.raises(ValueError, match="unknown model 'vit' for task 'digits'"):
        task.build_model(TrainConfig(task="digits", model="vit"), None)
    with pytest.raises(ValueError, match="magnitudes must be numbers in"):
        _config("cnn", tmp_path, extra={"magnitudes": [2.0]})
