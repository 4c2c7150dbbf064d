"""SO(3) and SE(3) exp, log, compose and act: liequiv against pypose and roma, in one run.

    python benchmarks/bench_groups.py [--n 1000000] [--repeats 7] [--threads 2] [--quick]

float32 on the CPU, forward and forward+backward (the sum of the output, backpropagated to the inputs).
Each cell is the median over ``--repeats`` timed calls after a warm-up; the ratio column is the peer's
time divided by ours (> 1: liequiv is faster). The inputs of every library are the same numbers (all
three use scalar-last quaternions and (ρ, θ) tangents), and the outputs are checked to agree first.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pypose as pp
import roma
import torch

from liequiv.groups import SE3, SO3

Op = Callable[[], torch.Tensor]


def _median_ms(run: Op, backward: bool, inputs: list[torch.Tensor], repeats: int) -> float:
    def once() -> None:
        out = run()
        if backward:
            for x in inputs:
                x.grad = None
            out.sum().backward()

    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _cases(n: int) -> dict[str, dict[str, tuple[Op, list[torch.Tensor]]]]:
    """op name -> library -> (a closure computing a tensor, its leaf inputs)."""
    g = torch.Generator().manual_seed(0)
    w = (0.5 * torch.randn(n, 3, generator=g)).requires_grad_()
    tau = (0.5 * torch.randn(n, 6, generator=g)).requires_grad_()
    q1 = SO3.random((n,), generator=g).params.requires_grad_()
    q2 = SO3.random((n,), generator=g).params.requires_grad_()
    x1 = SE3.random((n,), generator=g).params.requires_grad_()
    x2 = SE3.random((n,), generator=g).params.requires_grad_()
    p = torch.randn(n, 3, generator=g).requires_grad_()
    # pypose wants LieTensor leaves
    pw, ptau = pp.so3(w.detach().clone()).requires_grad_(), pp.se3(tau.detach().clone()).requires_grad_()
    pq1, pq2 = pp.SO3(q1.detach().clone()).requires_grad_(), pp.SO3(q2.detach().clone()).requires_grad_()
    px1, px2 = pp.SE3(x1.detach().clone()).requires_grad_(), pp.SE3(x2.detach().clone()).requires_grad_()
    return {
        "SO3 exp": {"liequiv": (lambda: SO3.exp(w).params, [w]), "pypose": (lambda: pw.Exp().tensor(), [pw]),
                    "roma": (lambda: roma.rotvec_to_unitquat(w), [w])},
        "SO3 log": {"liequiv": (lambda: SO3(q1).log(), [q1]), "pypose": (lambda: pq1.Log().tensor(), [pq1]),
                    "roma": (lambda: roma.unitquat_to_rotvec(q1), [q1])},
        "SO3 compose": {"liequiv": (lambda: (SO3(q1) @ SO3(q2)).params, [q1, q2]),
                        "pypose": (lambda: (pq1 @ pq2).tensor(), [pq1, pq2]),
                        "roma": (lambda: roma.quat_product(q1, q2), [q1, q2])},
        "SO3 act": {"liequiv": (lambda: SO3(q1).act(p), [q1, p]), "pypose": (lambda: pq1.Act(p), [pq1, p]),
                    "roma": (lambda: roma.quat_action(q1, p, is_normalized=True), [q1, p])},
        "SE3 exp": {"liequiv": (lambda: SE3.exp(tau).params, [tau]), "pypose": (lambda: ptau.Exp().tensor(), [ptau])},
        "SE3 log": {"liequiv": (lambda: SE3(x1).log(), [x1]), "pypose": (lambda: px1.Log().tensor(), [px1])},
        "SE3 compose": {"liequiv": (lambda: (SE3(x1) @ SE3(x2)).params, [x1, x2]),
                        "pypose": (lambda: (px1 @ px2).tensor(), [px1, px2])},
        "SE3 act": {"liequiv": (lambda: SE3(x1).act(p), [x1, p]), "pypose": (lambda: px1.Act(p), [px1, p])},
    }


def _comparable(x: torch.Tensor, op: str) -> torch.Tensor:
    """Group outputs as matrices (q and -q are the same rotation); vectors as they are."""
    if "exp" in op or "compose" in op:
        return (SO3 if op.startswith("SO3") else SE3)(x).as_matrix()
    return x


def check_agreement() -> None:
    for op, libraries in _cases(1000).items():
        ours = _comparable(libraries["liequiv"][0]().detach(), op)
        for name, (run, _) in libraries.items():
            if (_comparable(run().detach(), op) - ours).abs().max() > 1e-4:
                raise AssertionError(f"{op}: liequiv and {name} disagree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10,000 elements, 3 repeats: a smoke run")
    args = parser.parse_args()
    n, repeats = (10_000, 3) if args.quick else (args.n, args.repeats)
    torch.set_num_threads(args.threads)
    check_agreement()
    print(f"torch {torch.__version__}, pypose {pp.__version__}, roma {roma.__version__}, {torch.get_num_threads()} "
          f"threads, n = {n:,}, float32, median of {repeats} (ms); ratio = peer time / liequiv time")
    print(f"{'op':<12} {'pass':<9} {'liequiv':>9} {'pypose':>9} {'ratio':>7} {'roma':>9} {'ratio':>7}")
    for op, libraries in _cases(n).items():
        for backward in (False, True):
            times = {name: _median_ms(run, backward, inputs, repeats) for name, (run, inputs) in libraries.items()}
            ours = times["liequiv"]
            cells = [f"{times['pypose']:>9.1f} {times['pypose'] / ours:>6.2f}x"]
            cells.append(f"{times['roma']:>9.1f} {times['roma'] / ours:>6.2f}x" if "roma" in times else "")
            print(f"{op:<12} {'fwd+bwd' if backward else 'fwd':<9} {ours:>9.1f} " + " ".join(cells))


if __name__ == "__main__":
    main()
