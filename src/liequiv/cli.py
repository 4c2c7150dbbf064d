"""The ``liequiv`` command line: ``liequiv train nbody --model egnn`` (also under ``torchrun -m liequiv``),
``liequiv md --checkpoint runs/.../best.pt --structure cu``, ``liequiv sample trajectory --checkpoint ...``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable

from liequiv import __version__

_DEFAULTS = "defaults: a small configuration that trains in a few minutes on 2 CPU cores"


def _number(kind: type, accept: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse ``type``: ``kind(text)`` where it is finite and ``accept(value)`` holds, else an error saying
    ``expected`` (argparse adds the flag's name)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    return parse


_POSITIVE_INT = _number(int, lambda v: v > 0, "a positive integer")
_NON_NEGATIVE_INT = _number(int, lambda v: v >= 0, "a non-negative integer")
_POSITIVE = _number(float, lambda v: v > 0, "a positive number")
_NON_NEGATIVE = _number(float, lambda v: v >= 0, "a non-negative number")
_DECAY = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liequiv", description="Symmetry-aware deep learning on geometric data.")
    parser.add_argument("--version", action="version", version=f"liequiv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")
    train = commands.add_parser("train", help="train a model on a built-in task", description=_DEFAULTS)
    train.add_argument("task", nargs="?", default="nbody", help="task name (default: nbody)")
    train.add_argument("--model", default=None, help="model name (default: the task's first: egnn, tp-potential)")
    train.add_argument("--epochs", type=_POSITIVE_INT, default=None, help="training epochs")
    train.add_argument("--batch-size", type=_POSITIVE_INT, default=None,
                       help="global batch size (split over processes)")
    train.add_argument("--lr", type=_POSITIVE, default=None, help="Adam learning rate")
    train.add_argument("--weight-decay", type=_NON_NEGATIVE, default=None, help="Adam weight decay")
    train.add_argument("--hidden", type=_POSITIVE_INT, default=None, help="hidden width")
    train.add_argument("--layers", type=_POSITIVE_INT, default=None, help="number of layers")
    train.add_argument("--seed", type=_NON_NEGATIVE_INT, default=None, help="random seed")
    train.add_argument("--train-size", type=_POSITIVE_INT, default=None, help="use only the first N training samples")
    train.add_argument("--eval-every", type=_POSITIVE_INT, default=None, help="validate every N epochs")
    train.add_argument("--run-dir", default=None, help="output directory (default: runs/<task>-<model>-s<seed>)")
    train.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pt")
    train.add_argument("--no-plots", action="store_true", help="skip the figures")
    train.add_argument("--threads", type=_POSITIVE_INT, default=None, help="torch intra-op threads per process")
    train.add_argument("--device", default=None, help="cpu (default) or cuda (under torchrun: each process its GPU)")
    train.add_argument("--ema-decay", type=_DECAY, default=None, help="EMA of the weights (e.g. 0.99)")
    train.add_argument("--clip-grad", type=_POSITIVE, default=None, help="clip the gradient norm")
    train.add_argument("--lr-patience", type=_NON_NEGATIVE_INT, default=None,
                       help="evaluations without improvement before the LR is reduced")
    train.add_argument("--lr-schedule", default=None, choices=("plateau", "cosine"),
                       help="plateau (with --lr-patience) or cosine annealing to 0 over the epochs")
    md17 = train.add_argument_group("md17, materials (interatomic potentials)")
    md17.add_argument("--molecule", default=None, help="one of the ten rMD17 molecules (default: ethanol)")
    md17.add_argument("--material", default=None, help="materials: cu | cuni (EMT-labelled, default cu)")
    md17.add_argument("--data", default=None, help="extended XYZ / ASE-readable file with energies and forces")
    md17.add_argument("--energy-key", default=None, help="info key of the energies in --data")
    md17.add_argument("--forces-key", default=None, help="array key of the forces in --data")
    md17.add_argument("--split", type=_POSITIVE_INT, nargs=3, default=None, metavar=("TRAIN", "VALID", "TEST"),
                      help="frames per split (default 1000 200 1000; 80/10/10 %% of --data)")
    md17.add_argument("--tp-backend", default=None, help="cg | gaunt_grid | gaunt_fourier | cueq")
    md17.add_argument("--correlation", type=_POSITIVE_INT, default=None, help="many-body order (1: NequIP-like)")
    md17.add_argument("--lmax", type=_NON_NEGATIVE_INT, default=None, help="degree of the edge harmonics and messages")
    md17.add_argument("--node-lmax", type=_NON_NEGATIVE_INT, default=None, help="degree of the hidden node features")
    md17.add_argument("--cutoff", type=_POSITIVE, default=None, help="neighbour cutoff, Å")
    md17.add_argument("--energy-weight", type=_NON_NEGATIVE, default=None, help="weight of the energy loss")
    md17.add_argument("--forces-weight", type=_NON_NEGATIVE, default=None, help="weight of the force loss")
    md17.add_argument("--stress-weight", type=_NON_NEGATIVE, default=None, help="materials: weight of the stress loss")
    md17.add_argument("--dtype", default=None, help="float32 | float64")
    qm9 = train.add_argument_group("qm9 (property regression; also --cutoff, --lmax, ... for --model potential)")
    qm9.add_argument("--target", default=None, help="mu | alpha | homo | lumo | gap | r2 | zpve | U0 | U | H | G | Cv")
    qm9.add_argument("--valid-size", type=_POSITIVE_INT, default=None, help="use only the first N validation molecules")
    qm9.add_argument("--test-size", type=_POSITIVE_INT, default=None, help="use only the first N test molecules")
    registration = train.add_argument_group("registration")
    registration.add_argument("--view", default=None, choices=("full", "halfspace", "hpr"),
                              help="what each cloud sees of the shape (default full)")
    registration.add_argument("--visible", type=_POSITIVE, default=None, help="kept fraction of a halfspace view")
    registration.add_argument("--max-angle", type=_POSITIVE, default=None, help="largest rotation, degrees (<= 180)")
    registration.add_argument("--sampling", default=None, choices=("shared", "independent"),
                              help="both views cut from one draw of surface points (default) or from two")
    digits = train.add_argument_group("digits")
    digits.add_argument("--resolution", type=_POSITIVE_INT, default=None,
                        help="image scale r: 28r pixels, kernels and blur scaled by r (default 1)")
    digits.add_argument("--rotations", type=_POSITIVE_INT, default=None, help="angles of the group samples (8)")
    digits.add_argument("--stretches", type=_POSITIVE_INT, default=None,
                        help="Monte Carlo stretches per angle, GL+(2) and SL(2) (2)")
    digits.add_argument("--quadrature", default=None, choices=("monte-carlo", "grid"),
                        help="stretches drawn (default) or on a product grid of --scales × (1 + --shears)")
    digits.add_argument("--scales", type=_POSITIVE_INT, default=None, help="grid: isotropic log-scales, GL+(2) (1)")
    digits.add_argument("--shears", type=_NON_NEGATIVE_INT, default=None,
                        help="grid: directions of the traceless stretch (0)")
    digits.add_argument("--max-log-scale", type=_POSITIVE, default=None,
                        help="largest log singular value of the samples (0.5)")
    md = commands.add_parser("md", help="molecular dynamics with a trained potential (ASE)")
    md.add_argument("--checkpoint", required=True, help="best.pt or last.pt of liequiv train md17 | materials")
    md.add_argument("--structure", required=True, help="a file ASE reads, cu, cuni, or an rMD17 molecule name")
    md.add_argument("--ensemble", default="nve", choices=("nve", "nvt"), help="velocity Verlet or Langevin")
    md.add_argument("--temperature", type=_NON_NEGATIVE, default=300.0, help="initial / thermostat temperature, K")
    md.add_argument("--timestep", type=_POSITIVE, default=0.5, help="fs")
    md.add_argument("--steps", type=_POSITIVE_INT, default=1000)
    md.add_argument("--friction", type=_NON_NEGATIVE, default=0.01, help="Langevin friction, 1/fs")
    md.add_argument("--log-every", type=_POSITIVE_INT, default=10, help="steps between logged and written frames")
    md.add_argument("--max-temperature", type=_POSITIVE, default=None, help="stop above this, K (max(2000, 5 T))")
    md.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0)
    md.add_argument("--device", default="cpu")
    md.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    md.add_argument("--out", default="runs/md", help="output directory")
    sample = commands.add_parser("sample", help="draw samples from a trained generative model")
    sample.add_argument("task", choices=("trajectory", "qm9"),
                        help="trajectory: N-body futures (geotdm); qm9: molecules (qm9gen)")
    sample.add_argument("--checkpoint", required=True,
                        help="best.pt of liequiv train trajectory --model geotdm, or of liequiv train qm9gen")
    sample.add_argument("--n", type=_POSITIVE_INT, default=None,
                        help="test trajectories to continue (default 10) or molecules to generate (default 1000)")
    sample.add_argument("--k", type=_POSITIVE_INT, default=5, help="trajectory: futures drawn for each")
    sample.add_argument("--steps", type=_POSITIVE_INT, default=None,
                        help="denoising / integration steps (default: 50 for trajectory, the run's for qm9)")
    sample.add_argument("--sampler", default=None, choices=("ancestral", "ddim", "euler", "heun"),
                        help="default: ddim for trajectory, the run's for qm9")
    sample.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0)
    sample.add_argument("--regressor", default=None,
                        help="qm9, conditional generators: best.pt of liequiv train qm9 of the same target")
    sample.add_argument("--out", default="runs/sample", help="output directory")
    return parser


def _sample(args: argparse.Namespace) -> int:
    if args.task == "qm9":
        from liequiv.train.qm9_generation import sample_molecules

        metrics = sample_molecules(args.checkpoint, args.out, n=args.n or 1000, steps=args.steps,
                                   sampler=args.sampler, seed=args.seed, regressor=args.regressor)
    else:
        from liequiv.train.trajectory import sample_futures

        metrics = sample_futures(args.checkpoint, args.out, trajectories=args.n or 10, k=args.k,
                                 steps=args.steps or 50, sampler=args.sampler or "ddim", seed=args.seed)
    print(json.dumps(metrics, indent=2))
    return 0


def _md(args: argparse.Namespace) -> int:
    import torch

    from liequiv.calculators import LiequivCalculator
    from liequiv.md import build_structure, run_md

    calculator = LiequivCalculator.from_checkpoint(args.checkpoint, device=args.device,
                                                   dtype=getattr(torch, args.dtype))
    summary = run_md(build_structure(args.structure, args.seed), calculator, args.out, ensemble=args.ensemble,
                     temperature_K=args.temperature, timestep_fs=args.timestep, steps=args.steps,
                     friction_per_fs=args.friction, log_every=args.log_every,
                     max_temperature_K=args.max_temperature, seed=args.seed)
    print(json.dumps(summary, indent=2))
    if summary["stopped"]:
        print(f"liequiv md: stopped at step {summary['stopped']['step']}: {summary['stopped']['reason']}",
              file=sys.stderr)
        return 1
    return 0


_EXTRA = {"molecule": "molecule", "material": "material", "stress_weight": "stress_weight",
          "data": "data", "energy_key": "energy_key", "forces_key": "forces_key",
          "split": "sizes", "tp_backend": "tp_backend", "correlation": "correlation", "lmax": "lmax",
          "node_lmax": "node_lmax", "cutoff": "cutoff", "energy_weight": "energy_weight",
          "forces_weight": "forces_weight", "dtype": "dtype", "target": "target", "valid_size": "valid_size",
          "test_size": "test_size", "view": "view", "visible": "visible", "max_angle": "max_angle",
          "sampling": "sampling", "resolution": "resolution", "rotations": "rotations", "stretches": "stretches",
          "quadrature": "quadrature", "scales": "scales", "shears": "shears", "max_log_scale": "max_log_scale"}


def _train(args: argparse.Namespace) -> int:
    from liequiv.train.loop import NonFiniteLossError, TrainConfig, fit
    from liequiv.train.tasks import get_task

    task = get_task(args.task)
    args.model = args.model or task.models[0]
    if args.model not in task.models:
        raise ValueError(f"unknown model {args.model!r} for task {args.task!r}; choose from {', '.join(task.models)}")
    config = TrainConfig(task=args.task, model=args.model, **task.defaults(args.model))
    for name in ("epochs", "batch_size", "lr", "weight_decay", "hidden", "layers", "seed", "train_size", "eval_every",
                 "threads", "ema_decay", "clip_grad", "lr_patience", "lr_schedule", "device"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    for arg, key in _EXTRA.items():
        value = getattr(args, arg)
        if value is None:
            continue
        if key not in config.extra:
            raise ValueError(f"--{arg.replace('_', '-')} is not an option of task {args.task!r}")
        config.extra[key] = value
    label = "-".join(str(config.extra[k]) for k in ("molecule", "material", "target", "tp_backend")
                     if config.extra.get(k))
    if config.extra.get("correlation"):
        label += f"-c{config.extra['correlation']}"
    config.run_dir = args.run_dir or f"runs/{args.task}-{label + '-' if label else ''}{args.model}-s{config.seed}"
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
        return {"md": _md, "sample": _sample}.get(args.command, _train)(args)
    except ValueError as error:
        print(f"liequiv {args.command}: error: {error}", file=sys.stderr)
        return 2
