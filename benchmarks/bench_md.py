r"""Molecular dynamics through ASE on the CPU: liequiv's ``LiequivCalculator`` against mace-torch's ``MACECalculator``.

MD steps per second of ASE's velocity Verlet (1 fs, Maxwell-Boltzmann velocities at 300 K, seeded), one calculator
call a step (each library's own neighbour list, energy, forces, and for periodic cells the stress, which both
calculators compute whenever the cell is periodic), on fcc Cu supercells (a = 3.61 Å, periodic, rattled by 0.05 Å)
of 108, 1,000 and 10,000 atoms and on an aspirin molecule (not periodic, first), float32, one thread. The models are
untrained (seeded; a step's cost does not depend on the weights) and matched as in ``bench_potential.py``: 64
channels, edge harmonics up to lmax 3, hidden features ``64x0e + 64x1o``, 2 layers, correlation 3, cutoff 5 Å,
8 Bessel functions; both know H, C, O and Cu.

    python benchmarks/bench_md.py                                   # Cu 108, 1,000, 10,000 and aspirin
    python benchmarks/bench_md.py --quick                           # Cu 108 and aspirin, short
    python benchmarks/bench_md.py --cu-sizes 108,1000 --threads 2 --markdown docs/benchmarks/md.md

Each library runs in its own worker process (this file with ``--worker liequiv|mace``), so that the peak memory
(max RSS, reported after each structure) is each library's own; structures go from small to large, so a worker
killed for memory loses only the largest. MACE lives in its own virtual environment because mace-torch pins e3nn
0.4.4: create ``.peers/mace`` as the docstring of ``bench_potential.py`` says (``--mace-python`` points elsewhere;
without it MACE is skipped with a note). Each timing runs enough steps to last about ``--min-seconds``; the workers
take turns within every repeat; the tables give medians over repeats (fewer for large cells, within ``--budget``
seconds per model and structure). ``--malloc keep`` keeps glibc from unmapping large freed blocks (see
``bench_potential.py``: otherwise every step of a large cell page-faults its big temporaries again).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import markdown_tables
from bench_potential import MALLOC_KEEP, PEERS, PeerProcess, _torch_dtype, aspirin, mace_model

ELEMENTS = (1, 6, 8, 29)
CU_LATTICE = 3.61  # Å
CU_REPEATS = {108: (3, 3, 3), 1000: (5, 5, 10), 10000: (10, 10, 25)}  # the cubic 4-atom cell repeated
CONFIG = {"channels": 64, "lmax": 3, "layers": 2, "correlation": 3, "cutoff": 5.0, "num_basis": 8, "envelope_p": 6,
          "avg_num_neighbors": 30.0}  # the normalisation only; it does not change the cost


def structures(cu_sizes: list[int]) -> list[dict]:
    """Aspirin, then Cu supercells of the given atom counts (keys of ``CU_REPEATS``): numbers, positions, cell, pbc."""
    from ase.build import bulk

    numbers, positions = aspirin()
    out = [{"name": "aspirin", "numbers": numbers, "positions": positions, "cell": np.zeros((3, 3)),
            "pbc": [False] * 3}]
    for n in cu_sizes:
        atoms = bulk("Cu", "fcc", a=CU_LATTICE, cubic=True).repeat(CU_REPEATS[n])
        atoms.rattle(0.05, seed=0)
        out.append({"name": f"Cu-{n}", "numbers": atoms.numbers, "positions": atoms.positions,
                    "cell": atoms.cell.array, "pbc": [True] * 3})
    return out


def calculator(library: str, dtype: str):
    """The ASE calculator of ``library``'s matched model in ``dtype``."""
    if library == "liequiv":
        import torch

        from liequiv.calculators import LiequivCalculator
        from liequiv.models import TensorProductPotential

        torch.manual_seed(0)
        model = TensorProductPotential(ELEMENTS, channels=CONFIG["channels"], lmax=CONFIG["lmax"], node_lmax=1,
                                       layers=CONFIG["layers"], correlation=CONFIG["correlation"],
                                       cutoff=CONFIG["cutoff"], num_basis=CONFIG["num_basis"],
                                       envelope_p=CONFIG["envelope_p"])
        model.set_statistics(avg_num_neighbors=CONFIG["avg_num_neighbors"])
        return LiequivCalculator(model.to(_torch_dtype(dtype)))
    from mace.calculators import MACECalculator

    return MACECalculator(models=mace_model(CONFIG, ELEMENTS, dtype), device="cpu", default_dtype=dtype)


def worker(library: str, structures_path: str) -> None:
    """JSON lines on stdin -> JSON lines on the original stdout (library prints go to stderr)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import ase
    import torch
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    with open(structures_path) as f:
        cells = json.load(f)
    calc, dynamics = None, None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "setup":
                torch.set_num_threads(request["threads"])
                calc = calculator(library, request["dtype"])
                reply = {"ok": True}
            elif request["op"] == "load":
                s = cells[request["k"]]
                atoms = ase.Atoms(numbers=s["numbers"], positions=s["positions"], cell=s["cell"], pbc=s["pbc"])
                atoms.calc = calc
                MaxwellBoltzmannDistribution(atoms, temperature_K=300.0, rng=np.random.default_rng(0))
                dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
                reply = {"ok": True}
            elif request["op"] == "run":
                start = time.perf_counter()
                dynamics.run(request["steps"])
                seconds = (time.perf_counter() - start) / request["steps"]
                forces = dynamics.atoms.get_forces()
                if not np.isfinite(forces).all():
                    raise RuntimeError("non-finite forces")
                reply = {"seconds": seconds,
                         "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
            elif request["op"] == "quit":
                break
            else:
                reply = {"error": f"unknown op {request['op']!r}"}
        except Exception as error:  # reported to the main process, which marks the cell as failed
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")


def _time(worker: PeerProcess, k: int, steps: int) -> tuple[float | None, float | None, str | None]:
    reply = worker.request(op="run", k=k, steps=steps)
    return reply.get("seconds"), reply.get("max_rss_gb"), reply.get("error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Cu 108 and aspirin, 3 repeats")
    parser.add_argument("--cu-sizes", default="108,1000,10000", help=f"comma-separated, from {sorted(CU_REPEATS)}")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="each timing runs steps for about this long")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per model and structure")
    parser.add_argument("--mace-python", default=str(PEERS / "mace" / "bin" / "python"))
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    parser.add_argument("--malloc", choices=("default", "keep"), default="default",
                        help="keep: glibc malloc keeps freed memory mapped, in every worker (see bench_potential.py)")
    parser.add_argument("--worker", choices=("liequiv", "mace"), help=argparse.SUPPRESS)
    parser.add_argument("--structures", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.structures)
        return
    if args.malloc == "keep" and any(os.environ.get(k) != v for k, v in MALLOC_KEEP.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **MALLOC_KEEP))  # glibc reads at start
    if args.quick:
        args.cu_sizes, args.repeats, args.min_seconds, args.budget = "108", 3, 0.3, 10.0
    sizes = [int(n) for n in args.cu_sizes.split(",") if n]
    if not set(sizes) <= set(CU_REPEATS) or args.threads < 1 or args.repeats < 1:
        parser.error(f"--cu-sizes from {sorted(CU_REPEATS)}, --threads and --repeats >= 1")

    cells = structures(sorted(sizes))
    tmp = tempfile.TemporaryDirectory(prefix="bench_md-")
    path = str(Path(tmp.name) / "structures.json")
    with open(path, "w") as f:
        json.dump([{k: np.asarray(v).tolist() if k != "name" else v for k, v in s.items()} for s in cells], f)
    script = str(Path(__file__).resolve())
    workers = {"liequiv": PeerProcess("liequiv", sys.executable, [script, "--worker", "liequiv", "--structures", path])}
    if Path(args.mace_python).exists():
        workers["MACE"] = PeerProcess("MACE", args.mace_python, [script, "--worker", "mace", "--structures", path])
    else:
        print(f"MACE skipped: no python at {args.mace_python} (see the docstring)")
    for name, w in workers.items():
        reply = w.request(op="setup", dtype=args.dtype, threads=args.threads)
        if "error" in reply:
            raise SystemExit(f"{name} setup failed: {reply['error']}")

    rows = []
    for k, s in enumerate(cells):
        n = len(s["numbers"])
        result = {"name": s["name"], "atoms": n}
        steps, times, rss = {}, {name: [] for name in workers}, {}
        for name, w in workers.items():  # load, warm up, and size the timings
            w.request(op="load", k=k)
            seconds, _, error = _time(w, k, 1)
            seconds, _, error = (seconds, None, error) if error else _time(w, k, 1)
            if error:
                print(f"{s['name']}: {name} failed: {error}", flush=True)
                continue
            steps[name] = max(1, math.ceil(args.min_seconds / seconds))
        repeats = args.repeats
        for r in range(repeats):
            for name in list(steps):
                seconds, peak, error = _time(workers[name], k, steps[name])
                if error:
                    print(f"{s['name']}: {name} failed: {error}", flush=True)
                    del steps[name]
                    continue
                times[name].append(seconds)
                rss[name] = peak
            spent = max((sum(t) * steps.get(name, 1) for name, t in times.items()), default=0.0)
            if spent > args.budget and r >= 1:
                break
        for name in workers:
            result[name] = statistics.median(times[name]) if times[name] else None
            result[f"{name} rss"] = rss.get(name)
        rows.append(result)
        print(f"{s['name']}: " + ", ".join(f"{name} {_fmt(result[name], n)} ({len(times[name])} repeats)"
                                           for name in workers), flush=True)
    for w in workers.values():
        w.close()

    header = ["structure", "atoms", *(f"{name}: ms/step (µs/atom)" for name in workers),
              *(f"{name} max RSS (GB)" for name in workers)]
    if "MACE" in workers:
        header.append("MACE / liequiv")
    cells_out = []
    for row in rows:
        line = [row["name"], f"{row['atoms']:,}", *(_fmt(row[name], row["atoms"]) for name in workers),
                *("—" if row[f"{name} rss"] is None else f"{row[f'{name} rss']:.2f}" for name in workers)]
        if "MACE" in workers:
            line.append("—" if not (row["MACE"] and row["liequiv"]) else f"{row['MACE'] / row['liequiv']:.2f}")
        cells_out.append(line)
    table = markdown_tables.table(header, cells_out)
    print(table)
    if args.markdown:
        markdown_tables.write(args.markdown, "Molecular dynamics through ASE: liequiv and MACE",
                              f"Velocity Verlet steps, {args.dtype}, {args.threads} thread(s), medians; ratio = MACE "
                              "time / liequiv time (above 1: liequiv faster). Matched untrained models (see the "
                              "script's docstring); max RSS is each worker process's peak so far.", table)


def _fmt(seconds: float | None, atoms: int) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.4g} ({seconds / atoms * 1e6:.4g})"


if __name__ == "__main__":
    main()
