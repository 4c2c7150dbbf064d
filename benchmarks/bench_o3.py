"""O(3) kernels of liequiv against e3nn 0.6 (and sphericart), float32 on the CPU, every library in the same run.

    python benchmarks/bench_o3.py [--section a,b,c,d] [--threads 1] [--repeats 7] [--clock wall|cpu] [--budget 10]
                                  [--n 100000] [--lmax 1,...,8,10,12,16] [--L 1,2,4,6,8]
                                  [--tp-batch 10000] [--tp-mul 16] [--mimo-batch 256] [--mimo-mul 16] [--quick]

Each section times two modes: ``fwd`` (under ``torch.no_grad``) and ``fwd+bwd`` (the forward on leaf copies of the
inputs, then ``torch.autograd.grad`` of a fixed random cotangent with respect to every input).

(a) Spherical harmonics of degrees ``0..lmax`` of ``--n`` vectors, ``normalize=True``, "component" normalization:
    ``liequiv.o3.harmonics.spherical_harmonics`` against ``e3nn.o3.SphericalHarmonics(range(lmax+1), True,
    "component")`` built once (e3nn stops at lmax 12: skipped beyond) and ``sphericart.torch.SphericalHarmonics(lmax)``
    applied to ``(z, x, y)`` (e3nn's basis with the "integral" normalization, i.e. ours / sqrt(4 pi); skipped when
    sphericart-torch is not installed).
(b) Channel-wise tensor product (the NequIP/MACE message): ``x1 = M x 0e + M x 1o + ... + M x L(-1)^L`` (``M`` =
    ``--tp-mul``) ⊗ ``Y = Irreps.spherical_harmonics(L)``, every path with ``l_out <= L`` (one output block per
    path), ``uvu`` with per-sample weights, ``--tp-batch`` rows: ``ChannelwiseTensorProduct(x1, Y, lmax_out=L)``
    (backend "cg") against ``e3nn.o3.TensorProduct`` with the same instructions and output irreps
    (``shared_weights=False, internal_weights=False``).
(c) "MIMO" full product of two signals of degrees ``0..L`` (the "Price of Freedom" setting): ``x1``, ``x2`` and the
    output are ``C x 0e + C x 1o + ... + C x L(-1)^L`` (``C`` = ``--mimo-mul``), connection ``uuu``, every path with
    ``l1 + l2 + l3`` even (the set the Gaunt coefficients allow), no weights, ``--mimo-batch`` rows:
    ``TensorProduct(..., backend=B)`` for B in "cg", "gaunt_grid", "gaunt_fourier" (those registered) against
    ``e3nn.o3.TensorProduct`` with the same instructions.
(d) Scaling with L, from the timings of (b) and (c): the exponent ``p`` of a least-squares fit of
    ``log time = p log L + c`` over ``L >= 2``, and ``time(L=8) / time(L=4)``.

Before timing, each section checks in float64 on a few rows that the libraries agree: (a) liequiv == e3nn ==
sqrt(4 pi) sphericart, (b) liequiv == e3nn, (c) cg == e3nn and gaunt_grid == gaunt_fourier (the Gaunt backends use
Gaunt instead of Clebsch-Gordan coefficients, so they differ from cg by a factor per path). Within each repeat the
libraries run round-robin, so a change of machine load hits all of them alike; each cell is the median of
``--repeats`` calls after two warm-up calls. A library whose second warm-up call takes longer than
``--budget / --repeats`` seconds is timed with fewer repeats (at least one; the cell is marked ``*``). Ratio columns
are ``peer time / liequiv time`` (above 1: liequiv faster). ``--threads 0`` keeps torch's default thread count.
``--quick`` is a smoke test on tiny sizes, a few seconds (options given with it override its sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, NamedTuple

import e3nn
import numpy as np
import torch
from e3nn import o3
from torch import nn

import markdown_tables
from liequiv.o3.harmonics import spherical_harmonics
from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import ChannelwiseTensorProduct, TensorProduct, available_backends

try:  # optional peer
    import sphericart.torch as sphericart_torch

    SPHERICART = f"sphericart-torch {importlib.metadata.version('sphericart-torch')}"
except Exception:  # any import failure (missing, ABI mismatch) means: skip it
    sphericart_torch = None
    SPHERICART = "no sphericart-torch"

E3NN_SH_LMAX = 12
TP_BACKENDS = ("cg", "gaunt_grid", "gaunt_fourier")
MODES = ("fwd", "fwd+bwd")
CHECK_ROWS = 16
DEVICE = torch.device("cpu")  # of the timed calls (--device)
QUICK = {"repeats": 3, "budget": 1.0, "n": 2_000, "lmax": [1, 2, 13], "L": [1, 2, 4]}
QUICK |= {"tp_batch": 100, "tp_mul": 4, "mimo_batch": 8, "mimo_mul": 4}

Runner = Callable[[], None]
# (section, library, mode) -> {L: milliseconds}, the input of section (d)
Scaling = dict[tuple[str, str, str], dict[int, float]]


class Timing(NamedTuple):
    ms: float
    capped: bool  # fewer calls than --repeats (budget)

    def __str__(self) -> str:
        return f"{self.ms:.3f}" + ("*" if self.capped else "")


class Timer(NamedTuple):
    repeats: int
    budget_s: float
    clock: Callable[[], float]

    def medians(self, runners: dict[str, Runner]) -> dict[str, Timing]:
        """Median time of each runner; round-robin within a repeat, after two warm-up calls (the second measured)."""
        counts = {}
        for name, run in runners.items():
            run()
            start = self.clock()
            run()
            elapsed = max(self.clock() - start, 1e-9)
            counts[name] = max(1, min(self.repeats, int(self.budget_s / elapsed)))
        times: dict[str, list[float]] = {name: [] for name in runners}
        for r in range(self.repeats):
            for name, run in runners.items():
                if r < counts[name]:
                    start = self.clock()
                    run()
                    times[name].append(self.clock() - start)
        return {
            name: Timing(1e3 * statistics.median(t), counts[name] < self.repeats) for name, t in times.items()
        }


class Table:
    """Fixed-width markdown table, printed row by row; ``Table.lines`` keeps every table printed (``--markdown``)."""

    lines: ClassVar[list[str]] = []

    def __init__(self, title: str, columns: Sequence[tuple[str, int]]) -> None:
        self.widths = [max(width, len(name)) for name, width in columns]
        self._print(f"\n{title}\n")
        self.row(*(name for name, _ in columns))
        self._print("|" + "|".join("-" * (w + 1) + ":" for w in self.widths) + "|")

    def row(self, *cells: object) -> None:
        self._print("| " + " | ".join(f"{c!s:>{w}}" for c, w in zip(cells, self.widths, strict=True)) + " |")

    @classmethod
    def _print(cls, line: str) -> None:
        print(line, flush=True)
        cls.lines.append(line)


def _ratio(peer: Timing | None, ours: Timing) -> str:
    return "-" if peer is None else f"{peer.ms / ours.ms:.2f}x"


def _runner(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], mode: str) -> Runner:
    if mode == "fwd":

        def forward() -> None:
            with torch.no_grad():
                fn(*inputs)

        return forward
    leaves = tuple(t.detach().clone().requires_grad_() for t in inputs)
    with torch.no_grad():
        shape = fn(*inputs).shape
    cotangent = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=inputs[0].dtype).to(DEVICE)

    def forward_backward() -> None:
        torch.autograd.grad(fn(*leaves), leaves, cotangent)

    return forward_backward


def _randn(rows: int, dims: Sequence[int], dtype: torch.dtype = torch.float32, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, d, generator=g, dtype=dtype) for d in dims]


def _timed_inputs(rows: int, dims: Sequence[int]) -> list[torch.Tensor]:
    """float32 inputs of the timed calls, on ``--device``."""
    return [t.to(DEVICE) for t in _randn(rows, dims)]


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _check_agree(
    make: Callable[[], dict[str, nn.Module]], pairs: Sequence[tuple[str, str]], dims: Sequence[int]
) -> None:
    """Each pair of the modules built by ``make`` agrees in float64 on ``CHECK_ROWS`` rows.

    The modules are built with float64 as default dtype: e3nn's compiled modules keep the dtype of their constants
    through ``.double()``.
    """
    with _default_dtype(torch.float64):
        modules = {name: m.double() for name, m in make().items()}
    inputs = _randn(CHECK_ROWS, dims, torch.float64, seed=1)
    for a, b in pairs:
        try:
            torch.testing.assert_close(modules[a](*inputs), modules[b](*inputs), atol=1e-10, rtol=1e-10)
        except AssertionError as error:
            raise AssertionError(f"cross-check failed: {a} != {b}") from error


# ---------------------------------------------------------------------------------------------------- (a) harmonics


def _sphericart(lmax: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if sphericart_torch is None or DEVICE.type != "cpu":
        return None
    module = sphericart_torch.SphericalHarmonics(lmax)
    return lambda x: module(x[:, [2, 0, 1]])


def _harmonics_fns(lmax: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    fns: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
        "liequiv": functools.partial(spherical_harmonics, lmax, normalize=True, normalization="component"),
        "e3nn": (
            o3.SphericalHarmonics(list(range(lmax + 1)), True, normalization="component")
            if lmax <= E3NN_SH_LMAX
            else None
        ),
        "sphericart": _sphericart(lmax),
    }
    return {name: fn for name, fn in fns.items() if fn is not None}


def section_harmonics(args: argparse.Namespace, timer: Timer) -> None:
    fns = {lmax: _harmonics_fns(lmax) for lmax in args.lmax}
    (x64,) = _randn(1000, [3], torch.float64, seed=1)
    for lmax_fns in fns.values():
        ours = lmax_fns["liequiv"](x64)
        if "e3nn" in lmax_fns:
            torch.testing.assert_close(lmax_fns["e3nn"](x64), ours, atol=1e-10, rtol=1e-10)
        if "sphericart" in lmax_fns:
            torch.testing.assert_close(math.sqrt(4 * math.pi) * lmax_fns["sphericart"](x64), ours, atol=1e-9, rtol=1e-9)
    peers = "e3nn (lmax <= 12)" + (" == sqrt(4 pi) sphericart" if sphericart_torch is not None else "")
    print(f"\n(a) cross-check passed (float64, 1,000 vectors, lmax {args.lmax}): liequiv == {peers}")

    table = Table(
        f"(a) spherical harmonics 0..lmax of {args.n:,} vectors, ms",
        [("lmax", 4), ("mode", 7), ("liequiv", 9), ("e3nn", 9), ("e3nn/liequiv", 0), ("sphericart", 0),
         ("sphericart/liequiv", 0)],
    )
    (x,) = _timed_inputs(args.n, [3])
    for lmax, lmax_fns in fns.items():
        for mode in MODES:
            t = timer.medians({name: _runner(fn, (x,), mode) for name, fn in lmax_fns.items()})
            ours = t["liequiv"]
            e3, sc = t.get("e3nn"), t.get("sphericart")
            table.row(lmax, mode, ours, e3 or "-", _ratio(e3, ours), sc or "-", _ratio(sc, ours))


# ----------------------------------------------------------------------------------------- (b) channel-wise product


def _channelwise(L: int, mul: int) -> dict[str, nn.Module]:
    irreps1 = Irreps([(mul, (l, (-1) ** l)) for l in range(L + 1)])
    irreps2 = Irreps.spherical_harmonics(L)
    ours = ChannelwiseTensorProduct(irreps1, irreps2, lmax_out=L)
    instructions = [(i.i_in1, i.i_in2, i.i_out, i.connection_mode, i.has_weight) for i in ours.instructions]
    ref = o3.TensorProduct(
        str(irreps1), str(irreps2), str(ours.irreps_out), instructions, shared_weights=False, internal_weights=False
    )
    assert ref.weight_numel == ours.weight_numel
    return {"liequiv": ours, "e3nn": ref}


def section_channelwise(args: argparse.Namespace, timer: Timer, scaling: Scaling) -> None:
    modules = {L: _channelwise(L, args.tp_mul) for L in args.L}
    for L, m in modules.items():
        ours = m["liequiv"]
        dims = (ours.irreps_in1.dim, ours.irreps_in2.dim, ours.weight_numel)
        _check_agree(functools.partial(_channelwise, L, args.tp_mul), [("liequiv", "e3nn")], dims)
    print(f"\n(b) cross-check passed (float64, {CHECK_ROWS} rows, L {args.L}): liequiv == e3nn")

    table = Table(
        f"(b) channel-wise TP {args.tp_mul}x(0e+1o+...+L) ⊗ Y(0..L) -> l_out <= L, uvu, per-sample weights, "
        f"batch {args.tp_batch:,}, ms",
        [("L", 2), ("paths", 5), ("d_out", 5), ("mode", 7), ("liequiv", 9), ("e3nn", 9), ("e3nn/liequiv", 0)],
    )
    for L, m in modules.items():
        ours = m["liequiv"]
        inputs = _timed_inputs(args.tp_batch, (ours.irreps_in1.dim, ours.irreps_in2.dim, ours.weight_numel))
        for mode in MODES:
            t = timer.medians({name: _runner(module.to(DEVICE), inputs, mode) for name, module in m.items()})
            for name, timing in t.items():
                scaling.setdefault(("b", name, mode), {})[L] = timing.ms
            table.row(L, len(ours.instructions), ours.irreps_out.dim, mode, t["liequiv"], t["e3nn"],
                      _ratio(t["e3nn"], t["liequiv"]))


# --------------------------------------------------------------------------------------------- (c) MIMO full product


def _mimo(L: int, mul: int, backends: Sequence[str]) -> dict[str, nn.Module]:
    irreps = Irreps([(mul, (l, (-1) ** l)) for l in range(L + 1)])
    instructions = [
        (l1, l2, l3, "uuu", False)
        for l1 in range(L + 1)
        for l2 in range(L + 1)
        for l3 in range(abs(l1 - l2), min(l1 + l2, L) + 1)
        if (l1 + l2 + l3) % 2 == 0
    ]
    modules: dict[str, nn.Module] = {
        b: TensorProduct(irreps, irreps, irreps, instructions=instructions, weights=None, backend=b) for b in backends
    }
    e3 = str(irreps)
    modules["e3nn"] = o3.TensorProduct(e3, e3, e3, instructions, shared_weights=False, internal_weights=False)
    return modules


def section_mimo(args: argparse.Namespace, timer: Timer, scaling: Scaling) -> None:
    registered = available_backends()
    backends = [b for b in TP_BACKENDS if b in registered]
    missing = [b for b in TP_BACKENDS if b not in registered]
    if missing:
        print(f"\n(c) backends not registered, skipped: {', '.join(missing)}")
    pairs = [("cg", "e3nn")] if "cg" in backends else []
    if "gaunt_grid" in backends and "gaunt_fourier" in backends:
        pairs.append(("gaunt_grid", "gaunt_fourier"))
    modules = {L: _mimo(L, args.mimo_mul, backends) for L in args.L}
    for L, m in modules.items():
        dim = m["e3nn"].irreps_in1.dim
        _check_agree(functools.partial(_mimo, L, args.mimo_mul, backends), pairs, (dim, dim))
    checked = ", ".join(f"{a} == {b}" for a, b in pairs)
    print(f"\n(c) cross-check passed (float64, {CHECK_ROWS} rows, L {args.L}): {checked}")

    libraries = [*backends, "e3nn"]
    table = Table(
        f"(c) MIMO full product {args.mimo_mul}x(0e+1o+...+L) ⊗ same -> same, uuu, all paths with l1+l2+l3 even, "
        f"no weights, batch {args.mimo_batch:,}, ms",
        [("L", 2), ("paths", 5), ("mode", 7), *((name, 9) for name in libraries),
         *((f"e3nn/{b}", 0) for b in backends)],
    )
    for L, m in modules.items():
        dim = m["e3nn"].irreps_in1.dim
        inputs = _timed_inputs(args.mimo_batch, (dim, dim))
        for mode in MODES:
            t = timer.medians({name: _runner(m[name].to(DEVICE), inputs, mode) for name in libraries})
            for name, timing in t.items():
                scaling.setdefault(("c", name, mode), {})[L] = timing.ms
            table.row(L, len(m["e3nn"].instructions), mode, *(t[name] for name in libraries),
                      *(_ratio(t["e3nn"], t[b]) for b in backends))


# ------------------------------------------------------------------------------------------------------ (d) scaling


def section_scaling(scaling: Scaling) -> None:
    table = Table(
        "(d) scaling with L: time ∝ L^p fitted on log-log over L >= 2",
        [("section", 7), ("library", 13), ("mode", 7), ("L fitted", 12), ("p", 5), ("t(8)/t(4)", 0)],
    )
    for (section, library, mode), times in scaling.items():
        Ls = sorted(L for L in times if L >= 2)
        p = f"{np.polyfit(np.log(Ls), np.log([times[L] for L in Ls]), 1)[0]:.2f}" if len(Ls) >= 2 else "-"
        ratio = f"{times[8] / times[4]:.2f}" if 4 in times and 8 in times else "-"
        table.row(section, library, mode, ",".join(map(str, Ls)) or "-", p, ratio)


# ---------------------------------------------------------------------------------------------------------- main


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 0: torch's default")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timed calls per library and cell")
    parser.add_argument("--n", type=int, default=100_000, help="(a) vectors")
    parser.add_argument("--lmax", type=_ints, default=[*range(1, 9), 10, 12, 16], help="(a) degrees")
    parser.add_argument("--L", type=_ints, default=[1, 2, 4, 6, 8], help="(b), (c) degrees")
    parser.add_argument("--tp-batch", type=int, default=10_000, help="(b) rows")
    parser.add_argument("--tp-mul", type=int, default=16, help="(b) channels per degree of x1")
    parser.add_argument("--mimo-batch", type=int, default=256, help="(c) rows")
    parser.add_argument("--mimo-mul", type=int, default=16, help="(c) channels per degree")
    parser.add_argument("--device", default="cpu", help="where the timed calls run (cross-checks stay on the CPU)")
    parser.add_argument("--markdown", default=None, help="also write the tables to this markdown file")
    parser.add_argument("--quick", action="store_true", help=f"smoke test, defaults: {QUICK}")
    args = parser.parse_args()
    if args.quick:  # new defaults; options given on the command line still win
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    sections = set(args.section.split(","))
    if not sections <= set("abcd"):
        parser.error(f"--section takes a subset of a,b,c,d, got {args.section!r}")
    if "d" in sections and not sections & {"b", "c"}:
        parser.error("section d fits the timings of sections b and c: select b and/or c with it")
    if args.threads:
        torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    if DEVICE.type == "cuda":  # time finished kernels
        def clock() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
    timer = Timer(args.repeats, args.budget, clock)

    summary = (
        f"torch {torch.__version__}, e3nn {e3nn.__version__}, {SPHERICART}; {torch.get_num_threads()} thread(s); "
        f"{args.clock} clock; float32 on {DEVICE}"
        + (f" ({torch.cuda.get_device_name(DEVICE)})" if DEVICE.type == "cuda" else "")
        + f"; medians of {args.repeats} (ms; * = fewer, budget {args.budget:g} s); "
        "ratio = peer / liequiv (> 1: liequiv faster)"
    )
    print(summary)
    scaling: Scaling = {}
    if "a" in sections:
        section_harmonics(args, timer)
    if "b" in sections:
        section_channelwise(args, timer, scaling)
    if "c" in sections:
        section_mimo(args, timer, scaling)
    if "d" in sections:
        section_scaling(scaling)
    if args.markdown:
        title = "O(3) kernels: liequiv, e3nn and sphericart"
        markdown_tables.write(args.markdown, title, summary, "\n".join(Table.lines))


if __name__ == "__main__":
    main()
