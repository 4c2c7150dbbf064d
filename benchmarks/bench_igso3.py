"""IGSO(3) density and sampling: liequiv against a straightforward truncated series, in one run, as ratios.

    python benchmarks/bench_igso3.py [--n 1000000] [--repeats 5] [--threads 1] [--clock wall|cpu] [--quick]
    python benchmarks/bench_igso3.py --clock cpu --markdown docs/benchmarks/igso3.md

The peer is the textbook evaluation, written here: the density as the character series
``f(ω) = Σ_{l<L} (2l + 1) exp(-l(l + 1) σ²/2) sin((l + ½)ω) / sin(ω/2)`` with a fixed ``L = 200`` terms (enough for
σ ≥ 0.05 in float64), summed term by term; sampling by inverse CDF computed per call from that series: the angle
density on a uniform grid of 1,000 angles in [0, π], its cumulative trapezoid sum, and linear interpolation of
uniform levels in it, with a uniform axis (as FrameDiff does). liequiv evaluates the series (10 terms) or its
wrapped Gaussian form below σ = 1.2, and samples through its table of quantiles (built once per dtype and device;
the one-off build is timed separately and excluded from the medians).

Before timing, the script checks that the two densities agree, and measures how far the distribution of each
sampler's angles is from the exact one: the largest |F(ω(u)) - u| over the uniform levels u, where ω(u) is the
sampler's map from a level to an angle and F the closed-form CDF
``F(ω) = (ω - sin ω + Σ_l (2l+1) e^(-l(l+1)σ²/2) (sin(lω)/l - sin((l+1)ω)/(l+1))) / π`` (float64, 400 terms).

Each cell is the median over ``--repeats`` after two warm-up calls, the two implementations running round-robin.
The ratio columns are ``series time / liequiv time``: above 1 means liequiv is faster.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

import markdown_tables
from liequiv.generative import igso3
from liequiv.generative.igso3 import igso3_density, sample_igso3
from timing import medians_ms

SIGMAS = (0.1, 0.5, 1.5)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SERIES_TERMS = 200
GRID_POINTS = 1000


# ------------------------------------------------------------------ the peer


def series_density(angle: torch.Tensor, sigma: float) -> torch.Tensor:
    """The truncated character series with ``SERIES_TERMS`` terms, summed term by term."""
    half = torch.sin(angle / 2)
    total = torch.zeros_like(angle)
    for l in range(SERIES_TERMS):
        total += (2 * l + 1) * math.exp(-l * (l + 1) * sigma**2 / 2) * torch.sin((l + 0.5) * angle)
    return total / half


def series_quantile(u: torch.Tensor, sigma: float) -> torch.Tensor:
    """Angles ``[...]`` at uniform levels ``u`` by inverse CDF of the series on a grid, computed in this call."""
    dtype = u.dtype
    grid = torch.linspace(0, math.pi, GRID_POINTS, dtype=dtype)[1:]  # the density's 0/0 at ω = 0 is left out
    pdf = series_density(grid, sigma) * (1 - torch.cos(grid)) / math.pi
    grid, pdf = torch.cat([grid.new_zeros(1), grid]), torch.cat([pdf.new_zeros(1), pdf])
    cdf = torch.cat([pdf.new_zeros(1), ((pdf[1:] + pdf[:-1]) / 2 * grid.diff()).cumsum(0)])
    cdf = cdf / cdf[-1]
    i = torch.searchsorted(cdf, u).clamp(1, GRID_POINTS - 1)
    lo, hi = cdf[i - 1], cdf[i]
    return torch.lerp(grid[i - 1], grid[i], ((u - lo) / (hi - lo).clamp_min(torch.finfo(dtype).tiny)).clamp(0, 1))


def series_sample(sigma: float, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Rotation vectors ``[n, 3]``: the angle by ``series_quantile`` of uniform levels, a uniform axis."""
    angle = series_quantile(torch.rand(n, generator=generator, dtype=dtype), sigma)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator, dtype=dtype), dim=-1)
    return axis * angle[:, None]


# ------------------------------------------------------------------ checks


def exact_cdf(angle: torch.Tensor, sigma: float, terms: int = 400) -> torch.Tensor:
    l = torch.arange(1, terms, dtype=torch.float64)
    weights = (2 * l + 1) * torch.exp(-l * (l + 1) * sigma**2 / 2)
    w = angle[..., None]
    tail = (weights * (torch.sin(l * w) / l - torch.sin((l + 1) * w) / (l + 1))).sum(-1)
    return (angle - torch.sin(angle) + tail) / math.pi


def quantile_errors(sigma: float, dtype: torch.dtype) -> tuple[float, float]:
    """max |F(ω(u)) - u| over 20,001 levels u of each sampler's map from a uniform level to an angle (F exact):
    how far the CDF of the drawn angles is from the exact one. liequiv draws u = F_χ₃(|ε|), so its levels are
    those of |ε| on a grid (``igso3._rho`` is its map from |ε| to the angle)."""
    z = torch.linspace(0.01, 6.5, 20_001, dtype=torch.float64)
    chi3_cdf = torch.erf(z / math.sqrt(2)) - math.sqrt(2 / math.pi) * z * torch.exp(-z * z / 2)
    ours = (sigma * igso3._rho(z.to(dtype), sigma) * z.to(dtype)).double()
    u = torch.linspace(1e-6, 1 - 1e-6, 20_001, dtype=torch.float64)
    peer = series_quantile(u.to(dtype), sigma).double()
    return (exact_cdf(ours, sigma) - chi3_cdf).abs().max().item(), (exact_cdf(peer, sigma) - u).abs().max().item()


def cross_check() -> dict[tuple[float, str], tuple[float, float]]:
    """Densities agree; returns the quantile errors of the two samplers per (σ, dtype)."""
    errors = {}
    for name, dtype in DTYPES.items():
        angle = torch.linspace(1e-3, math.pi, 4097, dtype=dtype)
        for sigma in SIGMAS:
            ours, peer = igso3_density(angle, sigma), series_density(angle, sigma)
            tol = 1e-12 if dtype == torch.float64 else 1e-4
            torch.testing.assert_close(ours, peer, rtol=tol, atol=tol * peer.abs().max().item(),
                                       msg=lambda m, w=f"density at σ = {sigma} ({name})": f"{w}: {m}")
            errors[sigma, name] = quantile_errors(sigma, dtype)
    print(f"cross-check passed: densities agree (float64 1e-12, float32 1e-4 relative to the maximum) at σ = {SIGMAS}")
    return errors


def _runners(op: str, sigma: float, n: int, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    g = torch.Generator().manual_seed(1)
    if op == "density":
        angle = torch.rand(n, generator=g, dtype=dtype) * math.pi
        return {"liequiv": lambda: igso3_density(angle, sigma), "series": lambda: series_density(angle, sigma)}
    return {"liequiv": lambda: sample_igso3(sigma, (n,), generator=g, dtype=dtype),
            "series": lambda: series_sample(sigma, n, g, dtype)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="angles or samples per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10,000 elements, 3 repeats")
    parser.add_argument("--markdown", default=None, help="also write the tables to this markdown file")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 10_000, 3
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time

    igso3._quantile_table.cache_clear()
    start = clock()
    igso3._quantile_table()
    build_ms = 1e3 * (clock() - start)
    errors = cross_check()
    summary = (f"torch {torch.__version__}; {torch.get_num_threads()} thread(s); n = {args.n:,} on CPU; "
               f"{args.clock} clock, medians of {args.repeats} (ms); ratio = series / liequiv (> 1: liequiv "
               f"faster). liequiv's quantile table, built once per process, took {build_ms:.0f} ms (not timed below).")
    print(summary)
    header = f"{'op':<8} {'sigma':>5} {'dtype':<8} {'liequiv':>9} {'series':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    rows = []
    for op in ("density", "sample"):
        for sigma in SIGMAS:
            for name, dtype in DTYPES.items():
                times = medians_ms(_runners(op, sigma, args.n, dtype), args.repeats, clock)
                ours, peer = times["liequiv"], times["series"]
                print(f"{op:<8} {sigma:>5} {name:<8} {ours:>9.1f} {peer:>9.1f} {peer / ours:>6.2f}x", flush=True)
                rows.append([op, f"{sigma}", name, f"{ours:.1f}", f"{peer:.1f}", f"{peer / ours:.2f}×"])
    print("\nCDF error of the drawn angles, max |F(ω(u)) - u| over the uniform levels u (F exact):")
    accuracy = []
    for (sigma, name), (ours, peer) in errors.items():
        print(f"  σ = {sigma:<4} {name:<8} liequiv {ours:.1e}   series on a grid {peer:.1e}")
        accuracy.append([f"{sigma}", name, f"{ours:.1e}", f"{peer:.1e}"])
    if args.markdown:
        body = (markdown_tables.table(["op", "σ", "dtype", "liequiv ms", "series ms", "ratio"], rows,
                                      ["l", "r", "l", "r", "r", "r"])
                + "\n\nCDF error of the drawn angles, max |F(ω(u)) - u| over the uniform levels u (F exact):\n\n"
                + markdown_tables.table(["σ", "dtype", "liequiv", "series on a grid"], accuracy,
                                        ["r", "l", "r", "r"]))
        markdown_tables.write(args.markdown, "IGSO(3): liequiv and a truncated series", summary, body)


if __name__ == "__main__":
    main()
