"""Training throughput and inference latency of every N-body model, in one run, as ratios to EGNN.

    python benchmarks/bench_nbody.py [--steps 20] [--repeats 5] [--threads 1]
    python benchmarks/bench_nbody.py --steps 10 --repeats 5 --markdown docs/benchmarks/nbody.md

No peer library ships these models as a package, so EGNN (the field's baseline) is the reference: the
table gives each model's median time and its ratio to EGNN's, all measured in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import markdown_tables
from liequiv.data.nbody import NBodyDataset, collate_nbody
from liequiv.train.loop import TrainConfig
from liequiv.train.tasks import NBodyTask


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    task = NBodyTask()
    data = NBodyDataset("train", max_samples=args.batch_size * args.steps)
    batches = [collate_nbody([data[i] for i in range(j * args.batch_size, (j + 1) * args.batch_size)])
               for j in range(args.steps)]
    single = collate_nbody([data[0]])
    rows = []
    for name in task.models:
        config = TrainConfig(model=name, **{k: v for k, v in task.defaults(name).items() if k != "threads"})
        model = task.build_model(config, None)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

        def train_steps(model=model, optimizer=optimizer) -> None:
            model.train()
            for batch in batches:
                loss = ((task.predict(model, batch) - task.target(batch)) ** 2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        def infer(batch, model=model) -> None:
            model.eval()
            with torch.no_grad():
                task.predict(model, batch)

        train = _median_seconds(train_steps, args.repeats)
        batch_latency = _median_seconds(lambda m=model: infer(batches[0], m), args.repeats * 4)
        single_latency = _median_seconds(lambda m=model: infer(single, m), args.repeats * 4)
        rows.append((name, sum(p.numel() for p in model.parameters()), args.steps * args.batch_size / train,
                     batch_latency * 1e3, single_latency * 1e3))

    reference = {r[0]: r for r in rows}["egnn"]
    summary = (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch_size}, "
               f"medians of {args.repeats} repeats")
    print(summary)
    print(f"{'model':<10} {'params':>9} {'train samples/s':>16} {'vs EGNN':>8} {'batch ms':>9} {'vs EGNN':>8} "
          f"{'1 graph ms':>11}")
    cells = []
    for name, params, throughput, batch_ms, single_ms in rows:
        print(f"{name:<10} {params:>9,} {throughput:>16,.0f} {throughput / reference[2]:>7.2f}x {batch_ms:>9.2f} "
              f"{batch_ms / reference[3]:>7.2f}x {single_ms:>11.2f}")
        cells.append([name, f"{params:,}", f"{throughput:,.0f}", f"{throughput / reference[2]:.2f}×",
                      f"{batch_ms:.1f}", f"{batch_ms / reference[3]:.2f}×", f"{single_ms:.2f}"])
    if args.markdown:
        header = ["model", "parameters", "train samples/s", "vs EGNN", f"batch-{args.batch_size} inference ms",
                  "vs EGNN", "1 system ms"]
        markdown_tables.write(args.markdown, "N-body models", summary + ". No peer library ships these models as a "
                              "package, so EGNN is the reference.", markdown_tables.table(header, cells))

if __name__ == "__main__":
    main()
