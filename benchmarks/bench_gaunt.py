"""Gaunt products: grid and 2D-Fourier implementations against the dense contraction, time versus L.

    python benchmarks/bench_gaunt.py [--n 1024] [--L 2,4,6,8,12] [--repeats 5] [--threads 0] [--clock wall|cpu]
                                     [--quick]

The operation is the full product of two signals with every degree ``0..L`` (``L1 = L2 = lmax_out = L``) on
``--n`` rows (batch x channels) of float32 on the CPU:

* ``grid``: :func:`liequiv.o3.gaunt.gaunt_product_grid` (exact Gauss-Legendre quadrature, separable transforms);
* ``fourier``: :func:`liequiv.o3.gaunt.gaunt_product_fourier` (2D Fourier on the torus, FFT convolution);
* ``dense``: ``einsum("ni,nj,ijk->nk", x1, x2, G)`` with the dense Gaunt tensor ``G [(L+1)^2]^3``, the
  Clebsch-Gordan-style contraction of the same operation (``O(L^6)`` per row).

A second table is the other regime of the Price of Freedom paper: one degree per input (``l ⊗ l -> l``, even
``l``), where the dense path needs only the ``[2l+1]^3`` block, against the same Gaunt products on signals
that carry only that degree. Each cell is the median of ``--repeats`` after a warm-up, all three
implementations round-robin; the ``slope`` row is the exponent ``p`` of a least-squares fit ``time ∝ L^p`` over
the L values. Before timing, the three are checked to agree in float64.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from liequiv.o3.gaunt import gaunt_coefficients, gaunt_product_fourier, gaunt_product_grid, gaunt_tensor

IMPLEMENTATIONS = ("grid", "fourier", "dense")


def cross_check() -> None:
    g = torch.Generator().manual_seed(1)
    for L in (2, 4, 6):
        x1 = torch.randn(8, (L + 1) ** 2, dtype=torch.float64, generator=g)
        x2 = torch.randn(8, (L + 1) ** 2, dtype=torch.float64, generator=g)
        grid = gaunt_product_grid(x1, x2, L)
        torch.testing.assert_close(gaunt_product_fourier(x1, x2, L), grid, atol=1e-10, rtol=0)
        torch.testing.assert_close(
            torch.einsum("ni,nj,ijk->nk", x1, x2, gaunt_tensor(L, L, L)), grid, atol=1e-10, rtol=0
        )
    print("cross-check passed (float64, L = 2, 4, 6): grid == fourier == dense")


def _full(L: int, n: int, backward: bool) -> dict[str, Callable[[], None]]:
    g = torch.Generator().manual_seed(L)
    x1 = torch.randn(n, (L + 1) ** 2, generator=g).requires_grad_(backward)
    x2 = torch.randn(n, (L + 1) ** 2, generator=g).requires_grad_(backward)
    G = gaunt_tensor(L, L, L, dtype=torch.float32)
    fns = {
        "grid": lambda: gaunt_product_grid(x1, x2, L),
        "fourier": lambda: gaunt_product_fourier(x1, x2, L),
        "dense": lambda: torch.einsum("ni,nj,ijk->nk", x1, x2, G),
    }
    return {name: _mode(fn, backward) for name, fn in fns.items()}


def _single(l: int, n: int, backward: bool) -> dict[str, Callable[[], None]]:
    g = torch.Generator().manual_seed(l)
    a = torch.randn(n, 2 * l + 1, generator=g).requires_grad_(backward)
    b = torch.randn(n, 2 * l + 1, generator=g).requires_grad_(backward)
    block = gaunt_coefficients(l, l, l).float()
    pad = torch.zeros(n, l * l)

    def signal(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([pad, v], -1)

    fns = {
        "grid": lambda: gaunt_product_grid(signal(a), signal(b), l)[:, l * l :],
        "fourier": lambda: gaunt_product_fourier(signal(a), signal(b), l)[:, l * l :],
        "dense": lambda: torch.einsum("ni,nj,ijk->nk", a, b, block),
    }
    return {name: _mode(fn, backward) for name, fn in fns.items()}


def _mode(fn: Callable[[], torch.Tensor], backward: bool) -> Callable[[], None]:
    if not backward:

        def forward() -> None:
            with torch.no_grad():
                fn()

        return forward

    def forward_backward() -> None:
        fn().sum().backward()

    return forward_backward


def _medians_ms(runners: dict[str, Callable[[], None]], repeats: int, clock: Callable[[], float]) -> dict[str, float]:
    for run in runners.values():  # warm-up (also builds and caches the tables)
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = clock()
            run()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def _table(title: str, make: Callable, Ls: list[int], n: int, repeats: int, clock: Callable[[], float]) -> None:
    print(f"\n{title}")
    header = (
        f"{'L':>4} {'mode':<8} " + " ".join(f"{name:>10}" for name in IMPLEMENTATIONS) + "   dense/grid  dense/fourier"
    )
    print(header)
    print("-" * len(header))
    for backward in (False, True):
        rows = []
        for L in Ls:
            t = _medians_ms(make(L, n, backward), repeats, clock)
            rows.append(t)
            print(
                f"{L:>4} {'fwd+bwd' if backward else 'fwd':<8} "
                + " ".join(f"{t[name]:>10.3f}" for name in IMPLEMENTATIONS)
                + f"   {t['dense'] / t['grid']:>9.2f}x {t['dense'] / t['fourier']:>13.2f}x",
                flush=True,
            )
        if len(Ls) >= 2:
            slopes = [np.polyfit(np.log(Ls), np.log([r[name] for r in rows]), 1)[0] for name in IMPLEMENTATIONS]
            print(f"{'slope':>4} {'fwd+bwd' if backward else 'fwd':<8} " + " ".join(f"{s:>10.2f}" for s in slopes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1024, help="rows (batch x channels)")
    parser.add_argument("--L", default="2,4,6,8,12")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 rows, L = 2, 4, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.n, args.L, args.repeats = 64, "2,4", 2
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    Ls = [int(s) for s in args.L.split(",")]

    cross_check()
    print(
        f"torch {torch.__version__}; {torch.get_num_threads()} thread(s); n = {args.n:,} rows, float32 on CPU; "
        f"{args.clock} clock, medians of {args.repeats} (ms); slope = exponent p of time ∝ L^p"
    )
    _table("full product: every degree 0..L in both inputs and the output", _full, Ls, args.n, args.repeats, clock)
    even = sorted({L - L % 2 for L in Ls if L > 0})
    _table("one path: degree l ⊗ degree l -> degree l (l even)", _single, even, args.n, args.repeats, clock)


if __name__ == "__main__":
    main()
