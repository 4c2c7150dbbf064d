"""The ``liequiv`` command: the README's main job in small, its flags, and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from liequiv.cli import main
from liequiv.data.nbody import NBodyConfig, NBodyDataset
from liequiv.train import tasks
from train_toy import ToyTask

# The published charged preset, with 300 training trajectories (the first 300 of the published split) and
# 200 validation and test ones: a few seconds to generate.
SMALL_NBODY = NBodyConfig.preset("charged", split_sizes=(300, 200, 200), n_train=300)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """``liequiv train toy``: the loop's toy task (64 four-point graphs, seconds per run) as a built-in task."""
    monkeypatch.setitem(tasks.TASKS, "toy", ToyTask)


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    """``liequiv train`` sets torch's thread count of its process; give the test process its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_train_nbody_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(tasks.NBodyTask, "datasets",
                        lambda self, config: tuple(NBodyDataset(split, config=SMALL_NBODY)
                                                   for split in ("train", "valid", "test")))
    run_dir = tmp_path / "run"
    argv = ["train", "nbody", "--model", "egnn", "--epochs", "2", "--train-size", "300", "--hidden", "16",
            "--layers", "2", "--run-dir", str(run_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch    2/2" in out and "test mse" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "egnn" and len(metrics["history"]) == 2
    test = NBodyDataset("test", config=SMALL_NBODY)
    no_motion = float((test.pos - test.target).square().mean())  # predicting x40 = x30: about 0.27
    assert metrics["test_mse"] < 0.75 * no_motion  # two short epochs already beat it clearly
    for name in ("learning_curves.png", "prediction.png", "best.pt", "last.pt", "config.json"):
        assert (run_dir / name).exists(), name


def test_unknown_names_fail_clearly(capsys) -> None:
    assert main(["train", "nbody", "--model", "transformer"]) == 2
    assert "unknown model 'transformer'" in capsys.readouterr().err
    assert main(["train", "qm7"]) == 2
    assert "unknown task 'qm7'" in capsys.readouterr().err


def test_help_lists_the_train_command(capsys) -> None:
    assert main([]) == 0
    assert "train" in capsys.readouterr().out


def test_no_plots_writes_no_figures(tmp_path: Path, toy: None) -> None:
    assert main(["train", "toy", "--epochs", "1", "--hidden", "8", "--no-plots", "--run-dir", str(tmp_path)]) == 0
    assert not list(tmp_path.glob("*.png"))
    for name in ("metrics.json", "config.json", "best.pt", "last.pt"):
        assert (tmp_path / name).exists(), name


def test_resume_continues_from_the_last_epoch(tmp_path: Path, toy: None, capsys) -> None:
    argv = ["train", "toy", "--hidden", "8", "--no-plots", "--run-dir", str(tmp_path)]
    assert main([*argv, "--epochs", "1"]) == 0
    first = json.loads((tmp_path / "metrics.json").read_text())["history"]
    capsys.readouterr()
    assert main([*argv, "--epochs", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resumed from {tmp_path / 'last.pt'} at epoch 1" in out
    assert "epoch    1/2" not in out and "epoch    2/2" in out  # the first epoch is not trained again
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2] and history[0] == first[0]


def test_non_finite_loss_exits_with_status_1(tmp_path: Path, toy: None, capsys) -> None:
    assert main(["train", "toy", "--model", "broken", "--no-plots", "--run-dir", str(tmp_path)]) == 1
    assert "liequiv train: stopped: training loss is nan at epoch 1, step 1" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path, toy: None, capsys) -> None:
    assert main(["train", "toy", "--device", "cuda", "--no-plots", "--run-dir", str(tmp_path)]) != 0
    assert "device 'cuda': this torch sees no GPU" in capsys.readouterr().err


BAD_NUMBERS = [  # flag, value, what the error says is expected
    ("--epochs", "0", "a positive integer"), ("--epochs", "-3", "a positive integer"),
    ("--epochs", "2.5", "a positive integer"), ("--batch-size", "0", "a positive integer"),
    ("--lr", "0", "a positive number"), ("--lr", "-1e-3", "a positive number"), ("--lr", "nan", "a positive number"),
    ("--lr", "inf", "a positive number"), ("--weight-decay", "-1e-5", "a non-negative number"),
    ("--hidden", "0", "a positive integer"), ("--layers", "0", "a positive integer"),
    ("--seed", "-1", "a non-negative integer"), ("--train-size", "0", "a positive integer"),
    ("--eval-every", "0", "a positive integer"), ("--threads", "0", "a positive integer"),
    ("--ema-decay", "0", "a number in (0, 1)"), ("--ema-decay", "1", "a number in (0, 1)"),
    ("--clip-grad", "0", "a positive number"), ("--lr-patience", "-1", "a non-negative integer"),
    ("--correlation", "0", "a positive integer"), ("--lmax", "-1", "a non-negative integer"),
    ("--node-lmax", "-1", "a non-negative integer"), ("--cutoff", "0", "a positive number"),
    ("--cutoff", "five", "a positive number"), ("--energy-weight", "-1", "a non-negative number"),
    ("--forces-weight", "-0.5", "a non-negative number"), ("--resolution", "0", "a positive integer"),
    ("--rotations", "-2", "a positive integer"), ("--stretches", "1.5", "a positive integer"),
]


@pytest.mark.parametrize(("flag", "value", "expected"), BAD_NUMBERS)
def test_numeric_flags_out_of_range_are_refused(flag: str, value: str, expected: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "md17", f"{flag}={value}"])  # "=": argparse reads "-1e-5" alone as a flag
    assert stop.value.code == 2
    assert f"argument {flag}: must be {expected}, got {value}" in capsys.readouterr().err


def test_split_sizes_must_be_positive(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "md17", "--split", "10", "0", "5"])
    assert stop.value.code == 2
    assert "argument --split: must be a positive integer, got 0" in capsys.readouterr().err


def test_numeric_flags_at_their_bounds_are_accepted() -> None:
    from liequiv.cli import build_parser

    args = build_parser().parse_args(["train", "md17", "--seed", "0", "--weight-decay", "0", "--lr-patience", "0",
                                      "--lmax", "0", "--node-lmax", "0", "--energy-weight", "0", "--ema-decay",
                                      "0.99", "--lr", "1e-3", "--epochs", "1", "--split", "3", "1", "1"])
    assert (args.seed, args.lr_patience, args.lmax, args.node_lmax, args.epochs) == (0, 0, 0, 0, 1)
    assert (args.weight_decay, args.energy_weight, args.ema_decay, args.lr) == (0.0, 0.0, 0.99, 1e-3)
    assert args.split == [3, 1, 1] and isinstance(args.seed, int) and isinstance(args.lr, float)


def test_loss_weights_both_zero_are_refused(tmp_path: Path, capsys) -> None:
    argv = ["train", "md17", "--energy-weight", "0", "--forces-weight", "0", "--run-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "energy_weight and forces_weight must be non-negative and not both zero" in capsys.readouterr().err
