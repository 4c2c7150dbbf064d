"""Drawing N-body futures with a trained GeoTDM-style model: time per trajectory and accuracy against the number of
denoising steps.

GeoTDM samples with 1,000 ancestral (DDPM) steps; the deterministic samplers of ``liequiv.generative`` (DDIM, Heun
on the probability-flow ODE) need fewer. For each sampler and step count this script draws ``k`` futures of the first
``--trajectories`` test trajectories with the checkpoint of ``liequiv train trajectory --model geotdm`` and prints
the wall time per generated trajectory (median over ``--repeats``), its ratio to the 1,000-step ancestral sampler
measured in the same run, and minADE / minFDE over the ``k`` futures::

    liequiv train trajectory --model geotdm                     # writes runs/trajectory-geotdm-s0/best.pt
    python benchmarks/bench_trajectory_sampling.py --markdown docs/benchmarks/trajectory-sampling.md
    python benchmarks/bench_trajectory_sampling.py --quick      # fewer steps and trajectories
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import markdown_tables
from liequiv.data.nbody import NBodyTrajectoryDataset, collate_nbody
from liequiv.train.trajectory import load_geotdm, min_displacement_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/trajectory-geotdm-s0")
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 trajectories, 1 repeat, fewer step counts")
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = [("ancestral", 1000), ("ancestral", 100), ("ddim", 100), ("ddim", 50), ("ddim", 20), ("ddim", 10),
                ("heun", 25), ("heun", 10)]
    if args.quick:
        args.trajectories, args.repeats = 20, 1
        settings = [("ancestral", 1000), ("ddim", 50), ("ddim", 10)]
    model, task = load_geotdm(Path(args.run_dir) / "best.pt")
    test = NBodyTrajectoryDataset("test", kind="charged", **task.frames)
    batch = collate_nbody([test[i] for i in range(min(args.trajectories, len(test)))])
    n = int(batch["batch"].max()) + 1
    rows, reference = [], None
    for sampler, steps in settings:
        times, errors = [], None
        for repeat in range(args.repeats):
            start = time.perf_counter()
            drawn = model.sample(batch["pos"], batch["charges"], batch["edge_index"], batch["batch"], k=args.k,
                                 steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(repeat))
            times.append((time.perf_counter() - start) / (n * args.k))
            errors = min_displacement_errors(drawn, batch["target"], batch["batch"])
        per_trajectory = statistics.median(times)
        reference = reference or per_trajectory
        ade, fde = (float(errors[key][0] / errors[key][1]) for key in ("ade", "fde"))
        rows.append([sampler, str(steps), f"{per_trajectory * 1e3:.2f}", f"{reference / per_trajectory:.1f}×",
                     f"{ade:.4f}", f"{fde:.4f}"])
        print(" | ".join(rows[-1]), flush=True)
    header = ["sampler", "steps", "ms per trajectory", "speed-up vs 1,000 ancestral", f"minADE (k={args.k})",
              f"minFDE (k={args.k})"]
    text = markdown_tables.table(header, rows, ["l", "r", "r", "r", "r", "r"])
    if args.markdown:
        intro = (f"Checkpoint `{args.run_dir}/best.pt`; {n} test trajectories, k = {args.k} futures each, "
                 f"{args.threads} thread(s); time per generated trajectory, median of {args.repeats} repeats; "
                 f"minADE / minFDE of the last repeat.")
        markdown_tables.write(args.markdown, "Sampling N-body futures: steps, time and accuracy", intro, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
