"""Spherical harmonics of degrees 0..lmax: liequiv against e3nn (and sphericart when installed), in one run.

    python benchmarks/bench_harmonics.py [--n 100000] [--lmax 1,2,...,16] [--repeats 7] [--threads 0]
                                         [--clock wall|cpu] [--quick]

Every call maps ``--n`` float32 vectors on the CPU to ``[n, (lmax+1)^2]`` with ``normalize=True`` and the
"component" normalization, in two modes: ``fwd`` alone (under ``torch.no_grad``) and ``fwd+bwd``
(``y = sh(x)`` with ``x.requires_grad`` then ``y.backward(cotangent)``, a fixed random cotangent).

* ``liequiv``: :func:`liequiv.o3.harmonics.spherical_harmonics` (hand-written backward, the default).
* ``autograd``: the same forward with torch's autograd instead of the hand backward (``fwd+bwd`` only).
* ``e3nn``: ``e3nn.o3.SphericalHarmonics(range(lmax+1), True, "component")`` built once outside the timed
  region (its best case: the functional ``e3nn.o3.spherical_harmonics`` rebuilds and scripts the module on
  every call). e3nn stops at ``lmax = 12``.
* ``sphericart``: ``sphericart.torch.SphericalHarmonics(lmax)`` (C++ kernels) on the permuted vector
  ``(z, x, y)``, which is e3nn's basis with the "integral" normalization (same work up to a constant). Skipped
  when ``pip install sphericart sphericart-torch`` was not done.

Before timing, the libraries are checked to agree (float64). They run round-robin within each repeat, so a
change of machine load hits all of them alike; each cell is the median of ``--repeats`` after two warm-up calls.
Ratio columns are ``peer time / liequiv time`` (above 1: liequiv faster). ``--threads 0`` keeps torch's default.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import e3nn
import torch
from e3nn import o3

import liequiv.o3.harmonics as harmonics_module
from liequiv.o3.harmonics import spherical_harmonics

try:  # optional peer
    import sphericart.torch as sphericart_torch
except Exception:  # any import failure (missing, ABI mismatch) means: skip it
    sphericart_torch = None

E3NN_LMAX = 12


def _ours(lmax: int, hand: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        previous = harmonics_module._USE_HAND_BACKWARD
        harmonics_module._USE_HAND_BACKWARD = hand
        try:
            return spherical_harmonics(lmax, x)
        finally:
            harmonics_module._USE_HAND_BACKWARD = previous

    return fn


def _e3nn(lmax: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if lmax > E3NN_LMAX:
        return None
    return o3.SphericalHarmonics(list(range(lmax + 1)), True, normalization="component")


def _sphericart(lmax: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if sphericart_torch is None:
        return None
    module = sphericart_torch.SphericalHarmonics(lmax)
    return lambda x: module(x[:, [2, 0, 1]])


def cross_check() -> None:
    x = torch.randn(2000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for lmax in (1, 4, 8, 12):
        ours = spherical_harmonics(lmax, x)
        torch.testing.assert_close(ours, _e3nn(lmax)(x), atol=1e-10, rtol=0)
        sc = _sphericart(lmax)
        if sc is not None:
            torch.testing.assert_close(ours, math.sqrt(4 * math.pi) * sc(x), atol=1e-10, rtol=0)
    names = "e3nn" + (" == sphericart" if sphericart_torch is not None else "")
    print(f"cross-check passed (float64, lmax 1, 4, 8, 12): liequiv == {names}")


def _runner(fn: Callable | None, x: torch.Tensor, backward: bool) -> Callable[[], None] | None:
    if fn is None:
        return None
    if not backward:

        def forward() -> None:
            with torch.no_grad():
                fn(x)

        return forward
    leaf = x.detach().clone().requires_grad_()
    with torch.no_grad():
        shape = fn(x).shape
    cotangent = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)

    def forward_backward() -> None:
        leaf.grad = None
        fn(leaf).backward(cotangent)

    return forward_backward


def _medians_ms(runners: dict[str, Callable[[], None]], repeats: int, clock: Callable[[], float]) -> dict[str, float]:
    for run in runners.values():  # warm-up
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():  # round-robin
            start = clock()
            run()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--lmax", default=",".join(str(l) for l in (*range(1, 9), 10, 12, 16)))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 vectors, lmax 1, 4, 13, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats, args.lmax = 5_000, 3, "1,4,13"
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    cross_check()
    peers = f"e3nn {e3nn.__version__}" + (", sphericart-torch" if sphericart_torch is not None else ", no sphericart")
    print(
        f"torch {torch.__version__}, {peers}; {torch.get_num_threads()} thread(s); n = {args.n:,} float32 vectors "
        f"on CPU; {args.clock} clock, medians of {args.repeats} (ms); ratio = peer / liequiv (> 1: liequiv faster)"
    )
    header = (
        f"{'lmax':>4} {'mode':<8} {'liequiv':>9} {'autograd':>9} {'ratio':>7} {'e3nn':>9} {'ratio':>7} "
        f"{'sphericart':>10} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    x = torch.randn(args.n, 3, generator=torch.Generator().manual_seed(0))
    for lmax in (int(s) for s in args.lmax.split(",")):
        for backward in (False, True):
            fns = {
                "liequiv": _ours(lmax),
                "autograd": _ours(lmax, hand=False) if backward else None,
                "e3nn": _e3nn(lmax),
                "sphericart": _sphericart(lmax),
            }
            runners = {k: r for k, fn in fns.items() if (r := _runner(fn, x, backward)) is not None}
            times = _medians_ms(runners, args.repeats, clock)
            ours = times["liequiv"]
            row = f"{lmax:>4} {'fwd+bwd' if backward else 'fwd':<8} {ours:>9.2f}"
            for name, width in (("autograd", 9), ("e3nn", 9), ("sphericart", 10)):
                row += (
                    f" {'-':>{width}} {'-':>7}"
                    if name not in times
                    else (f" {times[name]:>{width}.2f} {times[name] / ours:>6.2f}x")
                )
            print(row, flush=True)


if __name__ == "__main__":
    main()
