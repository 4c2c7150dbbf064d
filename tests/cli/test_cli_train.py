"""The ``liequiv`` command: the README's main job in small, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from liequiv.cli import main


def test_train_nbody_end_to_end(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "liequiv", "train", "nbody", "--model", "egnn", "--epochs", "2", "--train-size", "300",
           "--hidden", "16", "--layers", "2", "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch    2/2" in done.stdout and "test mse" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "egnn" and len(metrics["history"]) == 2
    # predicting no motion (x30) scores about 0.27 on this split: two short epochs already beat it clearly
    assert metrics["test_mse"] < 0.2
    for name in ("learning_curves.png", "prediction.png", "best.pt", "last.pt", "config.json"):
        assert (run_dir / name).exists(), name


def test_unknown_names_fail_clearly(capsys) -> None:
    assert main(["train", "nbody", "--model", "transformer"]) == 2
    assert "unknown model 'transformer'" in capsys.readouterr().err
    assert main(["train", "qm9"]) == 2
    assert "unknown task 'qm9'" in capsys.readouterr().err


def test_help_lists_the_train_command(capsys) -> None:
    assert main([]) == 0
    assert "train" in capsys.readouterr().out
