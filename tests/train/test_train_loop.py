"""The training loop: learning, files written, exact resume, clear errors, and 2-process DDP = 1 process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from liequiv.train.checkpoint import load_checkpoint
from liequiv.train.distributed import DistributedContext
from liequiv.train.loop import (
    NonFiniteLossError,
    TrainConfig,
    evaluate,
    fit,
    metric,
    reduce_metrics,
    resolve_device,
    to_device,
)
from train_toy import Line, Scale, ScaleTask, ToyTask


def _config(run_dir: Path, **kwargs) -> TrainConfig:
    base = {"task": "toy", "model": "egnn", **ToyTask().defaults("egnn"), "run_dir": str(run_dir), "plots": False}
    base.update(kwargs)
    return TrainConfig(**base)


def test_fit_learns_and_writes_its_files(tmp_path: Path) -> None:
    metrics = fit(ToyTask(), _config(tmp_path, epochs=6, plots=True), log=lambda s: None)
    history = metrics["history"]
    assert history[-1]["train_mse"] < 0.7 * history[0]["train_mse"]
    for name in ("config.json", "metrics.json", "last.pt", "best.pt", "learning_curves.png", "prediction.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_mse"] == pytest.approx(metrics["test_mse"])
    assert saved["parameters"] > 0 and saved["environment"]["torch"] == torch.__version__


def _line_mse(weight: float, data: Line) -> float:
    """The MSE of ``y = weight · x`` on ``data``, summed in Python."""
    return sum((weight * x - y) ** 2 for x, y in zip(data.x.tolist(), data.y.tolist(), strict=True)) / len(data)


@pytest.mark.parametrize("ema_decay", [None, 0.5])
def test_test_metrics_and_best_pt_come_from_the_best_epoch(tmp_path: Path, ema_decay: float | None) -> None:
    task = ScaleTask()
    config = TrainConfig(task="scale", model="scale", **task.defaults("scale"), run_dir=str(tmp_path), plots=False,
                         ema_decay=ema_decay)
    metrics = fit(task, config, log=lambda s: None)
    val = [record["val_mse"] for record in metrics["history"]]
    best_epoch = 1 + val.index(min(val))
    assert 1 < best_epoch < config.epochs  # w passes 0.3 mid-run (3 without EMA, 4 with it): the end is worse
    assert metrics["best_epoch"] == best_epoch and metrics["best_val_mse"] == min(val)
    best = load_checkpoint(tmp_path / "best.pt", task="scale", model="scale")
    weight = float(best["model"]["weight"])
    assert best["epoch"] == best_epoch
    _, valid, test = task.datasets(config)
    assert _line_mse(weight, valid) == pytest.approx(min(val), rel=1e-12)  # best.pt holds the best epoch's weights
    assert metrics["test_mse"] == pytest.approx(_line_mse(weight, test), rel=1e-12)  # and they are tested
    last = load_checkpoint(tmp_path / "last.pt", task="scale", model="scale")
    last_weight = float(last["ema"]["module.weight"] if ema_decay else last["model"]["weight"])
    assert _line_mse(last_weight, test) > 10 * metrics["test_mse"]  # the last weights would score much worse


def test_evaluate_is_the_mse_over_all_samples() -> None:
    task, model, data = ScaleTask(), Scale(), Line(7, 0.3, seed=3)
    model.weight.data.fill_(0.5)
    loader = DataLoader(data, batch_size=3, collate_fn=task.collate)  # batches of 3, 3 and 1 samples
    assert evaluate(task, model, loader, DistributedContext()) == {"mse": pytest.approx(_line_mse(0.5, data),
                                                                                        rel=1e-14)}


def test_reduce_metrics_divides_sums_by_counts_and_roots_rmse() -> None:
    totals = {"mse": torch.tensor([3.0, 4.0]), "force_rmse": torch.tensor([18.0, 2.0])}
    assert reduce_metrics(totals, DistributedContext()) == {"force_rmse": 3.0, "mse": 0.75}


def test_device_cpu_trains_as_the_default(tmp_path: Path) -> None:
    default = fit(ToyTask(), _config(tmp_path / "a", epochs=2), log=lambda s: None)
    explicit = fit(ToyTask(), _config(tmp_path / "b", epochs=2, device="cpu"), log=lambda s: None)
    assert explicit["test_mse"] == default["test_mse"]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["device"] == "cpu"
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        fit(ToyTask(), _config(tmp_path / "c", epochs=1, device="gpu"), log=lambda s: None)


def test_devices_metrics_and_batches() -> None:
    assert resolve_device("cpu", DistributedContext()) == torch.device("cpu")
    for bad in ("gpu", "tpu", "meta", ""):
        with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
            resolve_device(bad, DistributedContext())
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="this torch sees no GPU"):
            resolve_device("cuda", DistributedContext())
    pair = metric(torch.tensor(2.5, dtype=torch.float32, requires_grad=True) * 2, 4)
    assert pair.dtype == torch.float64 and not pair.requires_grad and pair.tolist() == [5.0, 4.0]
    moved = to_device({"x": torch.ones(2), "name": "a"}, torch.device("meta"))
    assert moved["x"].device.type == "meta" and moved["name"] == "a"


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = fit(ToyTask(), _config(tmp_path / "a", epochs=4), log=lambda s: None)
    fit(ToyTask(), _config(tmp_path / "b", epochs=2), log=lambda s: None)
    resumed = fit(ToyTask(), _config(tmp_path / "b", epochs=4, resume=True), log=lambda s: None)
    for a, b in zip(straight["history"], resumed["history"], strict=True):
        assert a["train_mse"] == pytest.approx(b["train_mse"], rel=1e-12, abs=0)
        assert a["val_mse"] == pytest.approx(b["val_mse"], rel=1e-12, abs=0)
    assert straight["test_mse"] == pytest.approx(resumed["test_mse"], rel=1e-12)


def test_cosine_schedule_anneals_the_rate_and_resumes(tmp_path: Path) -> None:
    straight = fit(ToyTask(), _config(tmp_path / "a", epochs=4, lr_schedule="cosine"), log=lambda s: None)
    assert [r["lr"] for r in straight["history"]] == pytest.approx(
        [_config(tmp_path).lr * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)], rel=1e-12)
    fit(ToyTask(), _config(tmp_path / "b", epochs=4, lr_schedule="cosine"), log=lambda s: None)
    resumed = fit(ToyTask(), _config(tmp_path / "b", epochs=6, lr_schedule="cosine", resume=True),
                  log=lambda s: None)
    assert [r["lr"] for r in resumed["history"][4:]] == pytest.approx(
        [_config(tmp_path).lr * (1 + math.cos(math.pi * e / 6)) / 2 for e in (4, 5)], rel=1e-12)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        fit(ToyTask(), _config(tmp_path / "c", lr_schedule="step"), log=lambda s: None)


def test_checkpoint_of_another_model_and_missing_checkpoint(tmp_path: Path) -> None:
    fit(ToyTask(), _config(tmp_path, epochs=1), log=lambda s: None)
    with pytest.raises(ValueError, match="written for task 'toy' and model 'egnn'"):
        fit(ToyTask(), _config(tmp_path, model="broken", resume=True), log=lambda s: None)
    with pytest.raises(ValueError, match="no checkpoint"):
        fit(ToyTask(), _config(tmp_path / "empty", resume=True), log=lambda s: None)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        fit(ToyTask(), _config(tmp_path, resume=True), log=lambda s: None)


def test_nan_loss_stops_with_the_step(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        fit(ToyTask(), _config(tmp_path, model="broken"), log=lambda s: None)


_DDP_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from train_toy import ToyTask
from liequiv.train.loop import TrainConfig, fit
config = TrainConfig(task="toy", model="egnn", epochs=2, batch_size=8, lr=1e-3, hidden=16, layers=2,
                     run_dir={run_dir!r}, plots=False, threads=1)
fit(ToyTask(), config, log=lambda s: None)
"""


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    """torchrun --nproc_per_node=2 with the gloo backend follows the 1-process run with the same global batch."""
    tests = str(Path(__file__).resolve().parents[1])
    runs = {}
    for nproc in (1, 2):
        run_dir = tmp_path / f"p{nproc}"
        script = tmp_path / f"ddp{nproc}.py"
        script.write_text(_DDP_SCRIPT.format(tests=tests, run_dir=str(run_dir)))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
               str(29500 + nproc + os.getpid() % 1000), str(script)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[nproc] = json.loads((run_dir / "metrics.json").read_text())
    assert runs[2]["world_size"] == 2
    for a, b in zip(runs[1]["history"], runs[2]["history"], strict=True):
        assert a["train_mse"] == pytest.approx(b["train_mse"], rel=1e-5)
        assert a["val_mse"] == pytest.approx(b["val_mse"], rel=1e-5)
    assert runs[1]["test_mse"] == pytest.approx(runs[2]["test_mse"], rel=1e-5)
