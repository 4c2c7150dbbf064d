"""The ``liequiv`` command line: ``liequiv train nbody --model egnn`` (also under ``torchrun -m liequiv``)."""

from __future__ import annotations

import argparse
import sys

from liequiv import __version__

_DEFAULTS = "defaults: a small configuration that trains in a few minutes on 2 CPU cores"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liequiv", description="Symmetry-aware deep learning on geometric data.")
    parser.add_argument("--version", action="version", version=f"liequiv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")
    train = commands.add_parser("train", help="train a model on a built-in task", description=_DEFAULTS)
    train.add_argument("task", nargs="?", default="nbody", help="task name (default: nbody)")
    train.add_argument("--model", default="egnn", help="model name (default: egnn)")
    train.add_argument("--epochs", type=int, default=None, help="training epochs")
    train.add_argument("--batch-size", type=int, default=None, help="global batch size (split over processes)")
    train.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    train.add_argument("--weight-decay", type=float, default=None)
    train.add_argument("--hidden", type=int, default=None, help="hidden width")
    train.add_argument("--layers", type=int, default=None, help="number of layers")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--train-size", type=int, default=None, help="use only the first N training samples")
    train.add_argument("--eval-every", type=int, default=None, help="validate every N epochs")
    train.add_argument("--run-dir", default=None, help="output directory (default: runs/<task>-<model>-s<seed>)")
    train.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pt")
    train.add_argument("--no-plots", action="store_true", help="skip the figures")
    train.add_argument("--threads", type=int, default=None, help="torch intra-op threads per process")
    return parser


def _train(args: argparse.Namespace) -> int:
    from liequiv.train.loop import NonFiniteLossError, TrainConfig, fit
    from liequiv.train.tasks import get_task

    task = get_task(args.task)
    if args.model not in task.models:
        raise ValueError(f"unknown model {args.model!r} for task {args.task!r}; choose from {', '.join(task.models)}")
    config = TrainConfig(task=args.task, model=args.model, **task.defaults(args.model))
    for name in ("epochs", "batch_size", "lr", "weight_decay", "hidden", "layers", "seed", "train_size", "eval_every",
                 "threads"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    config.run_dir = args.run_dir or f"runs/{args.task}-{args.model}-s{config.seed}"
    config.resume, config.plots = args.resume, not args.no_plots
    try:
        fit(task, config)
    except NonFiniteLossError as error:
        print(f"liequiv train: stopped: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _train(args)
    except ValueError as error:
        print(f"liequiv {args.command}: error: {error}", file=sys.stderr)
        return 2
