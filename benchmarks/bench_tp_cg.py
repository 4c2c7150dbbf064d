"""Channel-wise tensor product (the NequIP/MACE message) on CPU: liequiv's CG backend against e3nn 0.6, same run.

``x1 = 16x0e + 16x1o + 16x2e + ... (l <= L, parity (-1)^l)`` ⊗ ``x2 = Y(r̂) = 0e + 1o + ... + Lp`` -> every path with
``l_out <= L`` (one output block per path, sorted, as MACE), ``uvu`` with per-sample weights, float32. Both modules get
the same instructions, inputs and weights; the outputs are checked equal before timing. Times are medians over
``--repeats`` runs after a warm-up, the two libraries alternating run by run (so that both see the same load on a
shared machine); ``fwd+bwd`` takes gradients for x1, x2 and the weights.

    python benchmarks/bench_tp_cg.py                   # batch 10000, L = 1 2 4
    python benchmarks/bench_tp_cg.py --batch 1000 --L 1 2 --repeats 3    # quick
"""

from __future__ import annotations

import argparse
import statistics
import time

import e3nn
import torch
from e3nn import o3

from liequiv.o3.irreps import Irreps
from liequiv.o3.tensor_product.interface import ChannelwiseTensorProduct


def _median_ms(fns: dict, repeats: int) -> dict:
    """Median wall-clock milliseconds of each callable, calling them in turn ``repeats`` times after a warm-up."""
    for fn in fns.values():
        fn()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def bench(L: int, batch: int, mul: int, repeats: int, dtype: torch.dtype) -> list[tuple]:
    irreps1 = Irreps([(mul, (l, (-1) ** l)) for l in range(L + 1)])
    irreps2 = Irreps.spherical_harmonics(L)
    ours = ChannelwiseTensorProduct(irreps1, irreps2, lmax_out=L, weights="per_sample").to(dtype)
    instr = [(i.i_in1, i.i_in2, i.i_out, i.connection_mode, i.has_weight) for i in ours.instructions]
    ref = o3.TensorProduct(irreps1, irreps2, str(ours.irreps_out), instr, shared_weights=False, internal_weights=False)
    ref = ref.to(dtype)
    assert ref.weight_numel == ours.weight_numel

    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(batch, irreps1.dim, generator=g, dtype=dtype)
    x2 = torch.randn(batch, irreps2.dim, generator=g, dtype=dtype)
    w = torch.randn(batch, ours.weight_numel, generator=g, dtype=dtype)
    grad = torch.randn(batch, ours.irreps_out.dim, generator=g, dtype=dtype)
    with torch.no_grad():
        err = (ours(x1[:256], x2[:256], w[:256]) - ref(x1[:256], x2[:256], w[:256])).abs().max().item()
    rows = []
    for name in ("fwd", "fwd+bwd"):
        runs = {}
        for label, mod in (("e3nn", ref), ("ours", ours)):
            if name == "fwd":

                def run(mod=mod):
                    with torch.no_grad():
                        mod(x1, x2, w)

            else:
                a, b, c = (t.clone().requires_grad_() for t in (x1, x2, w))

                def run(mod=mod, a=a, b=b, c=c):
                    out = mod(a, b, c)
                    torch.autograd.grad(out, (a, b, c), grad)

            runs[label] = run
        times = _median_ms(runs, repeats)
        rows.append((L, len(ours.instructions), ours.irreps_out.dim, name, times["e3nn"], times["ours"],
                     times["e3nn"] / times["ours"], err))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--mul", type=int, default=16)
    p.add_argument("--L", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--float64", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.float64 else torch.float32
    print(f"channel-wise TP, batch {args.batch}, mul {args.mul}, {dtype}, CPU, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, e3nn {e3nn.__version__}; medians of {args.repeats}, alternating")
    head = ("L", "paths", "d_out", "pass", "e3nn ms", "ours ms", "e3nn/ours", "max|diff|")
    print("{:>2} {:>5} {:>5} {:>8} {:>9} {:>9} {:>9} {:>9}".format(*head))
    for L in args.L:
        for row in bench(L, args.batch, args.mul, args.repeats, dtype):
            print("{:>2} {:>5} {:>5} {:>8} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.1e}".format(*row), flush=True)


if __name__ == "__main__":
    main()
