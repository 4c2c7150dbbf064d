"""Affine group convolution: forward + backward time of the digits models against the number of group samples, and
against a plain CNN of the same parameter count, in one run, as ratios.

    python benchmarks/bench_affine.py [--batch 64] [--repeats 5] [--threads 1] [--quick]
    python benchmarks/bench_affine.py --markdown docs/benchmarks/affine.md

Every model is the digits task's (widths 8, 16; 28 × 28 images; ``liequiv train digits``): ``AffineCNN`` on
R² ⋊ GL+(2), R² ⋊ SL(2) and R² ⋊ SO(2) with K group samples (K rotations for SO(2); 8 rotations times K / 8
stretches for GL+(2) and SL(2)), and ``matching_plain_cnn`` of the GL+(2) model's size. One step is a forward pass
of a batch, the cross-entropy loss and its backward pass. Each cell is the median over ``--repeats`` after two
warm-up calls, all models running round-robin so that machine load hits them alike; ``× CNN`` is the model's time
over the CNN's (the cost of the group), and ``per sample`` that ratio divided by K.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import markdown_tables
from liequiv.models.affine import AffineCNN, matching_plain_cnn
from timing import medians_ms

SAMPLES = (8, 16, 32, 64)


def _step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor):
    def run() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: K = 8 and 16, batch 8, 3 repeats")
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    samples = SAMPLES[:2] if args.quick else SAMPLES
    if args.quick:
        args.batch, args.repeats = 8, 3
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, labels = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))

    cnn = matching_plain_cnn(AffineCNN("glplus"))
    runners = {("cnn", 0): _step(cnn, images, labels)}
    count = {"cnn": sum(p.numel() for p in cnn.parameters())}
    for group in ("glplus", "sl", "so2"):
        for k in samples:
            model = AffineCNN(group, num_samples=k, rotations=None if group == "so2" else 8)
            runners[(group, k)] = _step(model, images, labels)
            count[group] = sum(p.numel() for p in model.parameters())
    times = medians_ms(runners, args.repeats, time.perf_counter)

    base = times[("cnn", 0)]
    summary = (f"torch {torch.__version__}; {torch.get_num_threads()} thread(s); batch {args.batch} of 28 × 28; "
               f"wall clock, medians of {args.repeats} (ms) of forward + backward; the CNN ({count['cnn']:,} "
               f"parameters) takes {base:.2f} ms.")
    print(summary)
    print(f"{'group':<8} {'params':>7} {'K':>4} {'ms':>9} {'x CNN':>8} {'per sample':>11}")
    rows = []
    for (group, k), ms in times.items():
        if group == "cnn":
            continue
        ratio = ms / base
        print(f"{group:<8} {count[group]:>7,} {k:>4} {ms:>9.1f} {ratio:>7.1f}x {ratio / k:>10.2f}x")
        rows.append([group, f"{count[group]:,}", str(k), f"{ms:.1f}", f"{ratio:.1f}×", f"{ratio / k:.2f}×"])
    if args.markdown:
        body = markdown_tables.table(["group", "parameters", "samples K", "ms", "× CNN", "per sample"], rows)
        markdown_tables.write(args.markdown, "Affine group convolution: cost against samples and a CNN",
                              __doc__.split("\n\n")[2] + "\n\n" + summary, body)


if __name__ == "__main__":
    main()
