"""SO(3) and SE(3) exp, log, compose and act: liequiv against pypose and roma, in one run, as ratios to liequiv.

    python benchmarks/bench_groups.py [--n 1000000] [--repeats 7] [--threads 1] [--clock wall|cpu] [--quick]
    python benchmarks/bench_groups.py --clock cpu --repeats 5 --markdown docs/benchmarks/groups.md

Every operation runs on ``--n`` float32 elements on the CPU, in two modes: ``fwd`` is the forward pass alone
(inference, under ``torch.no_grad``), ``fwd+bwd`` is ``y = op(inputs)`` with ``requires_grad`` on every input
followed by ``y.backward(cotangent)`` with a fixed random cotangent. The three libraries get the same numbers:
pypose's quaternions are xyzw like ours and roma's, its SE(3) parameters are (t, q) like ours and its se(3)
tangent is (ρ, θ) like ours. Group wrappers (``SO3(q)``, ``pp.SO3(q)``) are built once outside the timed
region, as one holds parameters; ``SO3.exp(x)`` and ``pp.so3(x).Exp()`` take plain tensors and are timed whole.

Before timing, the script checks that the libraries agree on the same inputs (values: liequiv == pypose ==
roma, float64 and float32, including tiny and zero angles; gradients: liequiv == roma's autograd, both
Euclidean — pypose's backward returns tangent-space gradients of its LieTensors, so only its values are
compared). The libraries run round-robin within each repeat, so a change in machine load hits all of them
alike; each cell is the median over ``--repeats`` after two warm-up calls. ``--clock cpu`` times this
thread's CPU time instead of wall time (steadier on a shared machine; with one thread they agree).

The ratio columns are ``peer time / liequiv time``: above 1 means liequiv is faster.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pypose as pp
import roma
import torch

import markdown_tables
from liequiv.groups import SE3, SO3
from timing import medians_ms

OPS = ("exp", "log", "compose", "act")
LIBRARIES = ("liequiv", "pypose", "roma")
Make = Callable[[str, str, list[torch.Tensor]], "Callable[[], torch.Tensor] | None"]


def _inputs(group: str, op: str, n: int, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """Raw tensors in the layout all three libraries share; rotation angles spread over [0, 3.1]."""
    g = torch.Generator().manual_seed(seed)
    cls = SO3 if group == "SO3" else SE3

    def tangent() -> torch.Tensor:
        axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)
        theta = axis * (torch.rand(n, 1, generator=g, dtype=dtype) * 3.1)
        return theta if group == "SO3" else torch.cat([torch.randn(n, 3, generator=g, dtype=dtype), theta], -1)

    def element() -> torch.Tensor:
        return cls.random((n,), generator=g, dtype=dtype).params.contiguous()

    if op == "exp":
        return [tangent()]
    if op == "log":
        return [element()]
    if op == "compose":
        return [element(), element()]
    return [element(), torch.randn(n, 3, generator=g, dtype=dtype)]


def _liequiv(group: str, op: str, inputs: list[torch.Tensor]) -> Callable[[], torch.Tensor]:
    cls = SO3 if group == "SO3" else SE3
    if op == "exp":
        (x,) = inputs
        return lambda: cls.exp(x).params
    if op == "log":
        X = cls(inputs[0])
        return lambda: X.log()
    if op == "compose":
        X, Y = cls(inputs[0]), cls(inputs[1])
        return lambda: (X @ Y).params
    X, p = cls(inputs[0]), inputs[1]
    return lambda: X.act(p)


def _pypose(group: str, op: str, inputs: list[torch.Tensor]) -> Callable[[], torch.Tensor]:
    lie, algebra = (pp.SO3, pp.so3) if group == "SO3" else (pp.SE3, pp.se3)
    if op == "exp":
        (x,) = inputs
        return lambda: algebra(x).Exp().tensor()
    if op == "log":
        X = lie(inputs[0])
        return lambda: X.Log().tensor()
    if op == "compose":
        X, Y = lie(inputs[0]), lie(inputs[1])
        return lambda: (X @ Y).tensor()
    X, p = lie(inputs[0]), inputs[1]
    return lambda: X.Act(p)


def _roma(group: str, op: str, inputs: list[torch.Tensor]) -> Callable[[], torch.Tensor] | None:
    if group != "SO3":
        return None
    if op == "exp":
        return lambda: roma.rotvec_to_unitquat(inputs[0])
    if op == "log":
        return lambda: roma.unitquat_to_rotvec(inputs[0])
    if op == "compose":
        return lambda: roma.quat_product(inputs[0], inputs[1])
    return lambda: roma.quat_action(inputs[0], inputs[1], is_normalized=True)


MAKERS: dict[str, Make] = {"liequiv": _liequiv, "pypose": _pypose, "roma": _roma}


def _w_nonnegative(x: torch.Tensor) -> torch.Tensor:
    """Group parameters with the quaternion's w ≥ 0, so that q and -q (the same rotation) compare equal."""
    q = x[..., -4:]
    return torch.cat([x[..., :-4], torch.where(q[..., 3:] < 0, -q, q)], -1)


def _tangential(grad: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The part of a quaternion gradient along the unit sphere: off it, equally valid formulas differ."""
    return grad - (grad * q).sum(-1, keepdim=True) * q


def cross_check(n: int = 4096) -> None:
    """Values of all three libraries, and our gradients against roma's, on identical inputs."""
    # pypose evaluates (1 - cos θ)/θ² in closed form down to θ = eps, losing ~eps/θ² there: 1e-7 in float64
    for dtype, tol in ((torch.float64, 1e-7), (torch.float32, 2e-4)):
        for group in ("SO3", "SE3"):
            for op in OPS:
                inputs = _inputs(group, op, n, dtype, seed=1)
                if op == "exp":  # tiny and zero angles, where the series branches are taken
                    inputs[0][: n // 8, -3:] *= 1e-5
                    inputs[0][0, -3:] = 0
                ours = _liequiv(group, op, inputs)()
                for name in ("pypose", "roma"):
                    make = MAKERS[name](group, op, inputs)
                    if make is None:
                        continue
                    a, b = ours, make()
                    if op in ("exp", "compose"):
                        a, b = _w_nonnegative(a), _w_nonnegative(b)
                    torch.testing.assert_close(a, b, atol=tol, rtol=tol,
                                               msg=lambda m, w=f"{group}.{op} vs {name} ({dtype})": f"{w}: {m}")
                if group != "SO3":
                    continue
                grads = []
                cotangent = torch.randn(ours.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
                for name in ("liequiv", "roma"):
                    leaves = [t.detach().clone().requires_grad_() for t in inputs]
                    MAKERS[name](group, op, leaves)().backward(cotangent)
                    grads.append([t.grad for t in leaves])
                for leaf, g_ours, g_roma in zip(inputs, *grads):
                    if op != "exp" and leaf.shape[-1] == 4:
                        g_ours, g_roma = _tangential(g_ours, leaf), _tangential(g_roma, leaf)
                    torch.testing.assert_close(g_ours, g_roma, atol=10 * tol, rtol=10 * tol,
                                               msg=lambda m, w=f"SO3.{op} gradient vs roma ({dtype})": f"{w}: {m}")
    print(f"cross-check passed on {n} elements, float64 and float32: liequiv == pypose == roma (values), "
          "liequiv == roma (gradients)")


def _runner(name: str, group: str, op: str, inputs: list[torch.Tensor], backward: bool) -> Callable[[], None] | None:
    if not backward:
        fn = MAKERS[name](group, op, inputs)
        if fn is None:
            return None

        def forward() -> None:
            with torch.no_grad():
                fn()

        return forward
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    fn = MAKERS[name](group, op, leaves)
    if fn is None:
        return None
    with torch.no_grad():
        shape = fn().shape
    cotangent = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=inputs[0].dtype)

    def forward_backward() -> None:
        for t in leaves:
            t.grad = None
        fn().backward(cotangent)

    return forward_backward




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="elements per operation")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10,000 elements, 3 repeats")
    parser.add_argument("--groups", default="SO3,SE3")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 10_000, 3
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time

    cross_check()
    summary = (f"torch {torch.__version__}, pypose {pp.__version__}, roma {roma.__version__}; "
               f"{torch.get_num_threads()} thread(s); n = {args.n:,} float32 on CPU; {args.clock} clock, "
               f"medians of {args.repeats} (ms); ratio = peer / liequiv (> 1: liequiv faster)")
    print(summary)
    rows = []
    header = (f"{'group':<5} {'op':<8} {'mode':<8} {'liequiv':>9} {'pypose':>9} {'ratio':>7} "
              f"{'roma':>9} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    for group in args.groups.split(","):
        for op in args.ops.split(","):
            inputs = _inputs(group, op, args.n, torch.float32)
            for backward in (False, True):
                runners = {name: _runner(name, group, op, inputs, backward) for name in LIBRARIES}
                times = medians_ms({k: v for k, v in runners.items() if v is not None}, args.repeats, clock)
                ours = times["liequiv"]
                mode = "fwd+bwd" if backward else "fwd"
                row = f"{group:<5} {op:<8} {mode:<8} {ours:>9.1f}"
                cells = [f"{group} {op}", mode, f"{ours:.1f}"]
                for name in ("pypose", "roma"):
                    row += (f" {'-':>9} {'-':>7}" if name not in times
                            else f" {times[name]:>9.1f} {times[name] / ours:>6.2f}x")
                    cells += ["", ""] if name not in times else [f"{times[name]:.1f}", f"{times[name] / ours:.2f}×"]
                print(row, flush=True)
                rows.append(cells)
    if args.markdown:
        header = ["op", "mode", "liequiv ms", "pypose ms", "ratio", "roma ms", "ratio"]
        markdown_tables.write(args.markdown, "Lie groups: liequiv, pypose and roma", summary,
                       markdown_tables.table(header, rows, ["l", "l"] + ["r"] * 5))


if __name__ == "__main__":
    main()
