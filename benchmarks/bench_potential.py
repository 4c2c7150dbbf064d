r"""Interatomic potentials on CPU: liequiv's TensorProductPotential against MACE (mace-torch) and NequIP (nequip).

Energy + forces inference and one training step (forward, forces with ``create_graph``, backward of
``mean((E/N)²) + 100·mean(F²)``; no optimizer step) on an aspirin molecule and water boxes of ~20 to ~5,000
atoms, in atoms per second, as medians over repeats in which the models take turns.

    python benchmarks/bench_potential.py                      # full run (float32 and float64, 1 thread)
    python benchmarks/bench_potential.py --quick              # smoke run: small structures, few repeats
    python benchmarks/bench_potential.py --sizes 20,500 --dtype float32 --threads 1,2 --repeats 7
    python benchmarks/bench_potential.py --profile            # torch.profiler table of liequiv (aspirin, train step)

Peers. mace-torch pins e3nn 0.4.4 and nequip needs e3nn 0.6, so each peer lives in its own virtual environment
and runs as a worker subprocess (this same file, ``--peer mace|nequip``) of that environment's python. Create them
with (install torch==2.13.0 first: an unpinned torch would pull a CUDA build; pip keeps the CPU wheel after)::

    python3.11 -m venv .peers/mace                   # in the repository root (git ignores .peers/)
    .peers/mace/bin/pip install torch==2.13.0
    .peers/mace/bin/pip install mace-torch            # got mace-torch 0.3.16, e3nn 0.4.4
    python3.11 -m venv .peers/nequip
    .peers/nequip/bin/pip install torch==2.13.0
    .peers/nequip/bin/pip install nequip              # got nequip 0.19.1, e3nn 0.6.0
    .peers/mace/bin/python -c "import torch; print(torch.__version__)"   # check: 2.13.0+cpu

(``--mace-python``/``--nequip-python`` point elsewhere; a peer whose python is missing is skipped with a note.)

Matched models (defaults: channels C = 64, lmax L = 3, 2 layers, correlation 3, cutoff 5 Å, 8 Bessel functions,
polynomial envelope p = 6, radial MLPs 3 × 64, hidden node features ``C x 0e + C x 1o``, last layer ``C x 0e``):

* liequiv ``TensorProductPotential(elements=[1, 6, 8], channels=C, lmax=L, node_lmax=1, layers=2,
  correlation=3, tp_backend="cg")``, plus extra columns at ``correlation=1`` (NequIP-like) and with the Gaunt
  backends ``"gaunt_grid"`` and ``"gaunt_fourier"`` (correlation 3). ``--node-lmax K`` gives liequiv hidden
  features up to degree K (NequIP's full-degree setting at K = L; no matched peer, so with ``--peers ""``).
* MACE: ``mace.modules.ScaleShiftMACE`` exactly as ``mace_run_train --model MACE`` builds it (first interaction
  ``RealAgnosticInteractionBlock``, then ``RealAgnosticResidualInteractionBlock``, ``hidden_irreps C x 0e + C x 1o``,
  ``max_ell=L``, ``correlation=3``, ``MLP_irreps 16x0e``, ``radial_MLP [64, 64, 64]``, ``use_reduced_cg=False``
  as the CLI's default); inputs from its own pipeline (``config_from_atoms`` -> ``AtomicData.from_config`` ->
  ``torch_geometric.DataLoader``), called as its calculator does (``model(batch.to_dict(), training=...)``).
* NequIP (correlation 1 by design, so its matched liequiv model is ``correlation=1``): nequip's own builder
  ``nequip.model.FullNequIPGNNModel`` (the builder under ``NequIPGNNModel``; ``NequIPGNNModel(l_max=L)`` would make
  every hidden feature go up to L, 2-3 times the features of the others) with edge harmonics up to L, hidden
  irreps ``C x 0e + C x 1o`` then ``C x 0e``, 2 layers, ``num_bessels=8``, ``polynomial_cutoff_p=6``, radial MLP
  depth 3 width 64, type embedding C; inputs from ``from_ase`` + ``ChemicalSpeciesToAtomTypeMapper`` +
  ``NeighborListTransform``, called as its ASE calculator does (``model(data)``, eager mode, not
  ``nequip-compile``d). Its data stay float64 (nequip's convention) and the model runs in ``model_dtype``.

What is timed: the model call only (and the loss and backward for a training step), for every library alike;
neighbour lists and batches are built once, outside the timing, each by the library's own pipeline (the edge
counts agree). Each timing is the mean of enough back-to-back calls to last ≥ 50 ms (one call for large
structures); a repeat times every model once, in turn, and the table gives the median over repeats (fewer for
large structures, within ``--budget`` seconds per model and cell). Before timing, each model's forces are checked
against central finite differences of its energy (aspirin, float64) and the parameter counts are printed.
Limits for a 24 GB, 2-core machine (flags change them): training steps up to 600 atoms (liequiv's took ~12 GB at
2,000 atoms in float32), float64 up to 600 atoms (liequiv was killed for memory at 2,000 atoms in float64), the
``gaunt_fourier`` column up to 120 atoms (48 s a training step at 500 atoms). ``--json`` is rewritten after every
cell, and ``--tables-from`` prints the tables of such a file (also of a run that was killed).

Memory allocator (``--malloc``). glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh
``mmap`` pages and unmaps them on free, so every call of a large model page-faults and zeroes its big
temporaries again; how often depends on the process's history, and timings of ~500 atoms and more moved by up to
2.3× (liequiv), 1.5× (MACE) and 1.4× (NequIP) between runs. ``--malloc keep`` sets ``MALLOC_MMAP_MAX_=0`` and a
huge ``MALLOC_TRIM_THRESHOLD_`` for this process (it re-executes itself) and the workers: memory stays mapped and
the timings are steadier and lower. ``default`` is what a user gets without such settings.

Structures: aspirin (RDKit from SMILES ``CC(=O)Oc1ccccc1C(=O)O`` with hydrogens, ETKDGv3 seed 0, no relaxation);
water boxes of rigid molecules (O-H 0.9572 Å, H-O-H 104.52°) placed at random (seeded) in a cube of the
volume of liquid water at 1 g/cm³ (29.9 Å³ a molecule), non-periodic, with O-O ≥ 2.5 Å and all intermolecular
distances ≥ 1.6 Å. ``--sizes`` gives approximate atom counts (rounded to whole molecules). In these non-periodic
boxes the edges per atom grow with the size (12.7 at 21 atoms, 31 at 501, 38 at 2,001: fewer atoms at the surface),
so a flat cost per edge shows as a falling rate in atoms per second.

CPU only: the ``cueq`` backend (cuEquivariance) is for GPUs, and there it would be measured against MACE with
cuEquivariance; this machine has none.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import markdown_tables

ELEMENTS = (1, 6, 8)
SYMBOLS = ("H", "C", "O")
ASPIRIN_SMILES = "CC(=O)Oc1ccccc1C(=O)O"
WATER_VOLUME = 18.015 / 6.02214076e23 * 1e24  # Å³ per molecule at 1 g/cm³ (29.9)
FORCE_WEIGHT = 100.0
MIN_CALL_SECONDS = 0.05  # one timing averages back-to-back calls until it lasts this long
PEERS = Path(__file__).resolve().parents[1] / ".peers"  # the peers' virtual environments
MALLOC_KEEP = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}  # --malloc keep


# ----------------------------------------------------------------------------------------------------------
# Structures (made in liequiv's environment; RDKit is needed for aspirin only).
TITLE = "Interatomic potentials: liequiv, MACE and NequIP"


def aspirin() -> tuple[np.ndarray, np.ndarray]:
    """Aspirin's atomic numbers [21] and positions [21, 3] (Å): RDKit, explicit hydrogens, ETKDGv3 seed 0."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(ASPIRIN_SMILES))
    params = AllChem.ETKDGv3()
    params.randomSeed = 0
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError("RDKit could not embed aspirin")
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    return numbers, mol.GetConformer().GetPositions().astype(np.float64)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def water_box(n_atoms: int, seed: int = 0, min_oo: float = 2.5, min_any: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """``round(n_atoms / 3)`` water molecules at random in a cube at 1 g/cm³ (non-periodic), seeded.

    Random sequential placement (uniform oxygen position, uniform rotation) with O-O ≥ ``min_oo`` and all
    intermolecular distances ≥ ``min_any``; a cell grid keeps each test local. Atoms are ordered O, H, H per
    molecule.
    """
    n_mol = max(1, round(n_atoms / 3))
    rng = np.random.default_rng(seed)
    side = (n_mol * WATER_VOLUME) ** (1 / 3)
    angle = math.radians(104.52) / 2
    local = 0.9572 * np.array([[0.0, 0.0, 0.0], [math.sin(angle), 0.0, math.cos(angle)],
                               [-math.sin(angle), 0.0, math.cos(angle)]])
    cell = max(min_oo, 2 * 0.9572 + min_any)  # any conflicting pair lies in neighbouring cells
    grid: dict[tuple[int, int, int], list[int]] = {}
    positions: list[np.ndarray] = []  # per molecule [3, 3]
    attempts = 0
    while len(positions) < n_mol:
        attempts += 1
        if attempts > 2000 * n_mol:
            raise RuntimeError(f"could not place {n_mol} water molecules (placed {len(positions)})")
        mol = rng.uniform(0.0, side, size=3) + local @ _random_rotation(rng).T
        key = tuple(int(c) for c in np.floor(mol[0] / cell))
        near = [m for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
                for m in grid.get((key[0] + dx, key[1] + dy, key[2] + dz), ())]
        if near:
            others = np.stack([positions[m] for m in near])  # [k, 3, 3]
            if np.linalg.norm(others[:, 0] - mol[0], axis=-1).min() < min_oo:
                continue
            d = np.linalg.norm(others.reshape(-1, 1, 3) - mol[None], axis=-1)
            if d.min() < min_any:
                continue
        grid.setdefault(key, []).append(len(positions))
        positions.append(mol)
    numbers = np.tile(np.array([8, 1, 1], dtype=np.int64), n_mol)
    return numbers, np.concatenate(positions).astype(np.float64)


def make_structures(sizes: list[int], seed: int = 0) -> list[dict]:
    structures = [{"name": "aspirin", "numbers": None, "positions": None}]
    structures[0]["numbers"], structures[0]["positions"] = aspirin()
    for k, size in enumerate(sizes):
        numbers, positions = water_box(size, seed + k)
        structures.append({"name": f"water-{len(numbers)}", "numbers": numbers, "positions": positions})
    return structures


def save_structures(path: str | os.PathLike, structures: list[dict]) -> None:
    arrays = {"names": np.array([s["name"] for s in structures])}
    for k, s in enumerate(structures):
        arrays[f"numbers_{k}"], arrays[f"positions_{k}"] = s["numbers"], s["positions"]
    np.savez(path, **arrays)


def load_structures(path: str | os.PathLike) -> list[dict]:
    with np.load(path) as data:
        return [{"name": str(name), "numbers": data[f"numbers_{k}"], "positions": data[f"positions_{k}"]}
                for k, name in enumerate(data["names"])]


# ----------------------------------------------------------------------------------------------------------
# Runners: one per model; each builds its model and inputs, times one call, checks its forces.

def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[name]


def _loss(energy, forces, n_atoms: int):
    """The training loss on zero targets (the values do not matter for the cost)."""
    return (energy / n_atoms).square().mean() + FORCE_WEIGHT * forces.square().mean()


class Runner:
    """A model on the structures: ``setup(dtype)``, then ``call(k, mode)`` runs one call (``"infer"``: energy
    and forces; ``"train"``: zero_grad, forward, forces with create_graph, loss, backward)."""

    name = ""

    def __init__(self, structures: list[dict], config: dict) -> None:
        self.structures, self.config = structures, config
        self.model = None
        self.inputs: dict[int, object] = {}

    def setup(self, dtype: str) -> None:
        raise NotImplementedError

    def n_edges(self, k: int) -> int:
        raise NotImplementedError

    def energy_forces(self, k: int, positions: np.ndarray | None = None, train: bool = False):
        raise NotImplementedError

    def call(self, k: int, mode: str) -> None:
        if mode == "infer":
            self.energy_forces(k)
        else:
            for p in self.model.parameters():
                p.grad = None
            energy, forces = self.energy_forces(k, train=True)
            _loss(energy, forces, len(self.structures[k]["numbers"])).backward()

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def finite_difference_check(self, k: int = 0, h: float = 1e-4) -> dict:
        """Max |F - (-dE/dx by central differences)| over 9 components of structure k (float64 expected)."""
        positions = self.structures[k]["positions"]
        _, forces = self.energy_forces(k)
        forces = forces.detach().double().numpy()
        errors = []
        for atom in sorted({0, len(positions) // 2, len(positions) - 1}):
            for axis in range(3):
                plus, minus = positions.copy(), positions.copy()
                plus[atom, axis] += h
                minus[atom, axis] -= h
                e_plus = float(self.energy_forces(k, plus)[0].detach().sum())
                e_minus = float(self.energy_forces(k, minus)[0].detach().sum())
                errors.append(abs(forces[atom, axis] + (e_plus - e_minus) / (2 * h)))
        return {"max_abs_error": max(errors), "max_abs_force": float(np.abs(forces).max())}


class LiequivRunner(Runner):
    def __init__(self, structures, config, correlation: int = 3, backend: str = "cg") -> None:
        super().__init__(structures, config)
        self.correlation, self.backend = correlation, backend
        self.name = "liequiv" + ("" if backend == "cg" else f" {backend}") + ("" if correlation == 3 else
                                                                            f" ν={correlation}")

    def setup(self, dtype: str) -> None:
        import torch

        from liequiv.data.atoms import collate_atoms
        from liequiv.models import TensorProductPotential

        torch.manual_seed(0)
        c = self.config
        self.dtype = _torch_dtype(dtype)
        model = TensorProductPotential(elements=list(ELEMENTS), channels=c["channels"], lmax=c["lmax"],
                                       node_lmax=c["node_lmax"],
                                       layers=c["layers"], correlation=self.correlation, cutoff=c["cutoff"],
                                       num_basis=c["num_basis"], tp_backend=self.backend)
        model.set_statistics(avg_num_neighbors=c["avg_num_neighbors"])
        self.model = model.to(self.dtype)
        self.inputs = {}
        for k, s in enumerate(self.structures):
            sample = {"numbers": torch.from_numpy(s["numbers"]), "pos": torch.from_numpy(s["positions"])}
            batch = collate_atoms([sample], c["cutoff"])
            batch["pos"], batch["shifts"] = batch["pos"].to(self.dtype), batch["shifts"].to(self.dtype)
            self.inputs[k] = batch

    def n_edges(self, k: int) -> int:
        return int(self.inputs[k]["edge_index"].shape[1])

    def energy_forces(self, k, positions=None, train=False):
        import torch

        b = self.inputs[k]
        pos = b["pos"] if positions is None else torch.from_numpy(positions).to(self.dtype)
        self.model.train(train)
        out = self.model(b["numbers"], pos, b["edge_index"], b["batch"], b["shifts"], num_graphs=1)
        return out["energy"], out["forces"]


def mace_model(config: dict, elements, dtype: str):
    """``mace.modules.ScaleShiftMACE`` matched to liequiv's potential (see the docstring), seeded, in ``dtype``
    (also made torch's default dtype, as ``mace_run_train --default_dtype`` does)."""
    import mace  # noqa: F401  (first: it sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, which e3nn 0.4.4 needs)
    import torch
    from e3nn import o3
    from mace import modules

    torch.set_default_dtype(_torch_dtype(dtype))
    torch.manual_seed(0)
    c = config
    return modules.ScaleShiftMACE(
        r_max=c["cutoff"], num_bessel=c["num_basis"], num_polynomial_cutoff=c["envelope_p"], max_ell=c["lmax"],
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=c["layers"], num_elements=len(elements),
        hidden_irreps=o3.Irreps(f"{c['channels']}x0e + {c['channels']}x1o"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(elements)), avg_num_neighbors=c["avg_num_neighbors"],
        atomic_numbers=list(elements), correlation=c["correlation"], gate=modules.gate_dict["silu"],
        radial_MLP=[64, 64, 64], use_reduced_cg=False, atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    ).to(_torch_dtype(dtype))


class MaceRunner(Runner):
    name = "MACE"

    def setup(self, dtype: str) -> None:
        import ase
        import mace  # noqa: F401  (first: it sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, which e3nn 0.4.4 needs)
        from mace import data as mace_data
        from mace import tools
        from mace.tools import torch_geometric

        c = self.config
        z_table = tools.AtomicNumberTable(list(ELEMENTS))
        self.model = mace_model(c, ELEMENTS, dtype)
        self.inputs = {}
        self._make = {}
        for k, s in enumerate(self.structures):
            def make(positions, numbers=s["numbers"]):
                config = mace_data.config_from_atoms(ase.Atoms(numbers=numbers, positions=positions))
                loader = torch_geometric.dataloader.DataLoader(
                    [mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=c["cutoff"])],
                    batch_size=1, shuffle=False, drop_last=False)
                return next(iter(loader)).to_dict()

            self._make[k] = make
            self.inputs[k] = make(s["positions"])

    def n_edges(self, k: int) -> int:
        return int(self.inputs[k]["edge_index"].shape[1])

    def energy_forces(self, k, positions=None, train=False):
        data = dict(self.inputs[k]) if positions is None else self._make[k](positions)
        data["positions"] = data["positions"].detach()
        self.model.train(train)
        out = self.model(data, training=train, compute_force=True)
        return out["energy"], out["forces"]


class NequipRunner(Runner):
    name = "NequIP"

    def setup(self, dtype: str) -> None:
        import ase
        import torch
        from nequip.data import AtomicDataDict, from_ase
        from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
        from nequip.model import FullNequIPGNNModel
        from nequip.utils.global_state import set_global_state

        set_global_state()
        c = self.config
        hidden = f"{c['channels']}x0e + {c['channels']}x1o"
        sh = " + ".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(c["lmax"] + 1))
        self.model = FullNequIPGNNModel(
            seed=0, model_dtype=dtype, type_names=list(SYMBOLS), r_max=c["cutoff"],
            radial_mlp_depth=[3] * c["layers"], radial_mlp_width=[64] * c["layers"],
            feature_irreps_hidden=[hidden] * (c["layers"] - 1) + [f"{c['channels']}x0e"], irreps_edge_sh=sh,
            type_embed_num_features=c["channels"], num_bessels=c["num_basis"], polynomial_cutoff_p=c["envelope_p"],
            avg_num_neighbors=c["avg_num_neighbors"], per_type_energy_scales=1.0,
            per_type_energy_shifts={s: 0.0 for s in SYMBOLS})
        transforms = [ChemicalSpeciesToAtomTypeMapper(model_type_names=list(SYMBOLS),
                                                      chemical_species_to_atom_type_map={s: s for s in SYMBOLS}),
                      NeighborListTransform(r_max=c["cutoff"])]
        self.inputs, self._make = {}, {}
        self.keys = AtomicDataDict
        for k, s in enumerate(self.structures):
            def make(positions, numbers=s["numbers"]):
                data = from_ase(ase.Atoms(numbers=numbers, positions=positions))
                for t in transforms:
                    data = t(data)
                return data

            self._make[k] = make
            self.inputs[k] = make(s["positions"])
        self.torch = torch

    def n_edges(self, k: int) -> int:
        return int(self.inputs[k][self.keys.EDGE_INDEX_KEY].shape[1])

    def energy_forces(self, k, positions=None, train=False):
        data = dict(self.inputs[k]) if positions is None else self._make[k](positions)
        data[self.keys.POSITIONS_KEY] = data[self.keys.POSITIONS_KEY].detach()
        self.model.train(train)
        out = self.model(data)
        return out[self.keys.TOTAL_ENERGY_KEY], out[self.keys.FORCE_KEY]


RUNNERS = {"mace": MaceRunner, "nequip": NequipRunner}


def time_call(runner: Runner, k: int, mode: str, number: int) -> float:
    """Seconds per call, averaged over ``number`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        runner.call(k, mode)
    return (time.perf_counter() - start) / number


# ----------------------------------------------------------------------------------------------------------
# Peer worker: JSON lines on stdin, JSON lines back on the original stdout (library prints go to stderr).

def worker(peer: str, structures_path: str, config: dict) -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import torch

    runner = RUNNERS[peer](load_structures(structures_path), config)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "threads":
                torch.set_num_threads(request["n"])
                reply = {"ok": True}
            elif op == "setup":
                runner.setup(request["dtype"])
                reply = {"parameters": runner.parameters(),
                         "edges": [runner.n_edges(k) for k in range(len(runner.structures))],
                         "versions": _versions(peer)}
            elif op == "fd":
                reply = runner.finite_difference_check()
            elif op == "time":
                reply = {"seconds": time_call(runner, request["k"], request["mode"], request["number"])}
            elif op == "quit":
                break
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as error:  # reported to the main process, which marks the cell as failed
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")


def _versions(peer: str) -> dict:
    from importlib.metadata import version

    import torch

    names = {"mace": "mace-torch", "nequip": "nequip", "liequiv": "liequiv"}
    result = {"torch": torch.__version__, peer: version(names[peer])}
    try:
        result["e3nn"] = version("e3nn")
    except Exception:
        pass
    return result


class PeerProcess:
    """A worker subprocess in a peer's venv, used like a Runner through ``request``."""

    def __init__(self, name: str, python: str, argv: list[str]) -> None:
        """Run ``python *argv`` (a benchmark script in its worker mode) for the peer called ``name``."""
        self.name, self.max_atoms = name, None
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        env.pop("PYTHONPATH", None)
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen([python, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, bufsize=1, env=env)

    def request(self, **request) -> dict:
        if self.process.poll() is not None:
            return {"error": f"worker exited with {self.process.returncode} (log: {self.log.name})"}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            return {"error": f"worker exited with {self.process.returncode} (killed? out of memory?) "
                             f"(log: {self.log.name})"}
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"op": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()


class LocalModel:
    """liequiv (in this process), with the same ``request`` interface as a peer worker."""

    def __init__(self, runner: LiequivRunner, max_atoms: int | None = None) -> None:
        self.runner, self.name, self.max_atoms = runner, runner.name, max_atoms

    def request(self, **request) -> dict:
        import torch

        op = request["op"]
        try:
            if op == "threads":
                torch.set_num_threads(request["n"])
                return {"ok": True}
            if op == "setup":
                self.runner.setup(request["dtype"])
                return {"parameters": self.runner.parameters(),
                        "edges": [self.runner.n_edges(k) for k in range(len(self.runner.structures))]}
            if op == "fd":
                return self.runner.finite_difference_check()
            if op == "time":
                return {"seconds": time_call(self.runner, request["k"], request["mode"], request["number"])}
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
        return {"error": f"unknown op {op!r}"}

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------------------
# Main: set up, check, time in turns, print tables.

def _fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _fmt_rate(atoms: int, seconds: float | None) -> str:
    return "—" if seconds is None else f"{atoms / seconds:,.0f}"


def _fmt_ratio(peer: float | None, ours: float | None) -> str:
    return "—" if peer is None or ours is None else f"{peer / ours:.2f}"


def print_tables(results: list[dict], structures: list[dict], models: list[str], edges: list[int]) -> str:
    """The markdown tables (returned and printed): ms per call, atoms/s, and the ratios peer / liequiv (and
    liequiv's ``cg`` / ``gaunt_grid``)."""
    lines = []
    cells = sorted({(r["dtype"], r["threads"], r["mode"]) for r in results},
                   key=lambda c: (c[0], c[1], c[2] != "infer"))
    pairs = [(peer, ours) for peer, ours in (("MACE", "liequiv"), ("NequIP", "liequiv ν=1"),
                                             ("liequiv", "liequiv gaunt_grid")) if peer in models and ours in models]
    for dtype, threads, mode in cells:
        what = "energy + forces" if mode == "infer" else "training step"
        lines.append(f"\n### {what}, {dtype}, {threads} thread{'s' if threads > 1 else ''}: ms per call "
                     f"(atoms/s)\n")
        header = ["structure", "atoms", "edges", *models, *[f"{p} / {o}" for p, o in pairs]]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for k, s in enumerate(structures):
            got = {r["model"]: r["median_s"] for r in results
                   if (r["dtype"], r["threads"], r["mode"], r["k"]) == (dtype, threads, mode, k)}
            if not got:
                continue
            n = len(s["numbers"])
            row = [s["name"], str(n), str(edges[k])]
            row += [f"{_fmt_ms(got.get(m))} ({_fmt_rate(n, got.get(m))})" if got.get(m) else "—" for m in models]
            row += [_fmt_ratio(got.get(p), got.get(o)) for p, o in pairs]
            lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def profile_liequiv(structures: list[dict], config: dict, dtype: str, rows: int) -> None:
    """torch.profiler's top operators of liequiv's training step on structure 0 (aspirin)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    runner = LiequivRunner(structures, config)
    runner.setup(dtype)
    for _ in range(3):
        runner.call(0, "train")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        for _ in range(10):
            runner.call(0, "train")
    print(f"\nliequiv {structures[0]['name']}, {dtype}, training step, 10 calls, {torch.get_num_threads()} thread(s):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 20,100, float32, 3 repeats")
    parser.add_argument("--sizes", default="20,100,500,2000,5000", help="approximate atoms of the water boxes")
    parser.add_argument("--dtype", default="float32,float64", help="comma-separated: float32, float64")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=7, help="repeats (fewer for large structures, see --budget)")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per model and cell before repeats drop")
    parser.add_argument("--modes", default="infer,train")
    parser.add_argument("--max-train-atoms", type=int, default=600,
                        help="training steps only up to this size (liequiv needs ~12 GB at 2,000 atoms, float32)")
    parser.add_argument("--max-atoms-float64", type=int, default=600,
                        help="float64 only up to this size (liequiv was killed for memory at 2,000 atoms, 24 GB box)")
    parser.add_argument("--fourier-max-atoms", type=int, default=120,
                        help="the gaunt_fourier column only up to this size (it is the slowest by far)")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--lmax", type=int, default=3)
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--node-lmax", type=int, default=1,
                        help="degree of liequiv's hidden features (the peers have 0e + 1o: others need --peers '')")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--no-extra", action="store_true", help="leave out liequiv ν=1 and the Gaunt backends")
    parser.add_argument("--peers", default="mace,nequip")
    parser.add_argument("--mace-python", default=str(PEERS / "mace" / "bin" / "python"))
    parser.add_argument("--nequip-python", default=str(PEERS / "nequip" / "bin" / "python"))
    parser.add_argument("--json", default=None, help="also write all timings to this JSON file (after every cell)")
    parser.add_argument("--tables-from", metavar="JSON", help="only print the tables of an earlier --json file")
    parser.add_argument("--markdown", default=None, help="also write the tables to this markdown file")
    parser.add_argument("--profile", action="store_true", help="only profile liequiv (aspirin, training step)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--malloc", choices=("default", "keep"), default="default",
                        help="keep: glibc malloc never returns memory to the OS (MALLOC_MMAP_MAX_=0, "
                             "MALLOC_TRIM_THRESHOLD_ huge), for this process and the workers; see the docstring")
    # worker mode (internal)
    parser.add_argument("--peer", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--structures", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer:
        worker(args.peer, args.structures, json.loads(args.config))
        return
    if args.tables_from:
        tables_from_json(args.tables_from, args.markdown)
        return
    if args.node_lmax != 1 and args.peers:
        parser.error("--node-lmax other than 1 has no matched peer model: add --peers ''")
    if args.malloc == "keep" and any(os.environ.get(k) != v for k, v in MALLOC_KEEP.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **MALLOC_KEEP))  # glibc reads at start

    import torch

    if args.quick:
        args.sizes, args.dtype, args.repeats, args.budget = "20,100", "float32", 3, 3.0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dtypes = [d for d in args.dtype.split(",") if d]
    threads = [int(t) for t in args.threads.split(",") if t]
    modes = [m for m in args.modes.split(",") if m]
    torch.set_num_threads(threads[0])
    torch.set_num_interop_threads(1)

    start = time.perf_counter()
    structures = make_structures(sizes, args.seed)
    from liequiv.data.atoms import average_num_neighbors  # the normalisation only; it does not change the cost

    avg = average_num_neighbors([{"pos": torch.from_numpy(structures[0]["positions"])}], 5.0)
    config = {"channels": args.channels, "lmax": args.lmax, "node_lmax": args.node_lmax, "layers": args.layers,
              "correlation": args.correlation, "cutoff": 5.0, "num_basis": 8, "envelope_p": 6, "avg_num_neighbors": avg}
    print(f"structures in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{s['name']} ({len(s['numbers'])} atoms)" for s in structures), flush=True)
    if args.profile:
        profile_liequiv(structures, config, dtypes[0], 25)
        return

    tmp = tempfile.TemporaryDirectory(prefix="bench_potential-")
    structures_path = str(Path(tmp.name) / "structures.npz")
    save_structures(structures_path, structures)

    models = [LocalModel(LiequivRunner(structures, config, args.correlation, "cg"))]
    for peer in [p for p in args.peers.split(",") if p]:
        python = getattr(args, f"{peer}_python")
        if not Path(python).exists():
            print(f"note: {peer} skipped: no python at {python} (see the docstring to create its venv)")
            continue
        models.append(PeerProcess(RUNNERS[peer].name, python, [str(Path(__file__).resolve()), "--peer", peer,
                                                                   "--structures", structures_path,
                                                                   "--config", json.dumps(config)]))
    if not args.no_extra:
        models += [LocalModel(LiequivRunner(structures, config, 1, "cg")),
                   LocalModel(LiequivRunner(structures, config, args.correlation, "gaunt_grid")),
                   LocalModel(LiequivRunner(structures, config, args.correlation, "gaunt_fourier"),
                              max_atoms=args.fourier_max_atoms)]
    names = [m.name for m in models]
    hidden = "+".join(f"{args.channels}x{l}{'eo'[l % 2]}" for l in range(args.node_lmax + 1))
    config_text = (f"C={args.channels}, lmax={args.lmax}, hidden {hidden}, "
                   f"layers={args.layers}, correlation={args.correlation} (ν=1 for NequIP and 'liequiv ν=1'), "
                   f"cutoff 5 Å, 8 Bessel")
    print(f"models: {', '.join(names)}; {config_text}", flush=True)

    results: list[dict] = []
    edges: list[int] = []
    info: dict[str, dict] = {}
    try:
        # forces against finite differences (aspirin, float64) and parameter counts, once per model
        for m in models:
            reply = m.request(op="setup", dtype="float64")
            if "error" in reply:
                print(f"{m.name}: setup failed: {reply['error']}", flush=True)
                continue
            fd = m.request(op="fd")
            info[m.name] = {"parameters": reply["parameters"], "versions": reply.get("versions"), "fd": fd}
            v = reply.get("versions") or {}
            print(f"  {m.name}: {reply['parameters']:,} parameters"
                  + (f" ({', '.join(f'{a} {b}' for a, b in v.items())})" if v else "")
                  + "; forces vs central differences (aspirin, float64, 9 components): "
                  + (fd["error"] if "error" in fd else
                     f"max |F - F_fd| = {fd['max_abs_error']:.1e} eV/Å (max |F| = {fd['max_abs_force']:.1e})"),
                  flush=True)
        for dtype in dtypes:
            active = []
            for m in models:
                if m.name not in info:
                    continue
                reply = m.request(op="setup", dtype=dtype)
                if "error" in reply:
                    print(f"{m.name} {dtype}: setup failed: {reply['error']}", flush=True)
                    continue
                active.append(m)
                edges = edges or reply["edges"]
                if reply["edges"] != edges:
                    print(f"note: {m.name} has edge counts {reply['edges']}, liequiv {edges}")
            for n_threads in threads:
                for m in active:
                    m.request(op="threads", n=n_threads)
                torch.set_num_threads(n_threads)
                for k, s in enumerate(structures):
                    n_atoms = len(s["numbers"])
                    if dtype == "float64" and n_atoms > args.max_atoms_float64:
                        continue
                    for mode in modes:
                        if mode == "train" and n_atoms > args.max_train_atoms:
                            continue
                        cell = [m for m in active if m.max_atoms is None or n_atoms <= m.max_atoms]
                        results += _time_cell(cell, k, mode, args, dict(dtype=dtype, threads=n_threads, mode=mode,
                                                                        k=k, n_atoms=n_atoms, structure=s["name"]))
                        if args.json:  # after every cell, so that a crash (out of memory) keeps what was measured
                            _write_json(args.json, config, info, results, structures, names, edges)
    finally:
        for m in models:
            m.close()
    intro = (f"Model call only (neighbour lists outside the timing); training step = zero_grad + forward + forces "
             f"(create_graph) + loss + backward, no optimizer step. Ratios above 1: liequiv faster. {config_text}.")
    print(f"\nall timings in {time.perf_counter() - start:.0f} s. {intro}")
    text = print_tables(results, structures, names, edges)
    if args.markdown:
        markdown_tables.write(args.markdown, TITLE, intro, text)
    if args.json:
        _write_json(args.json, config, info, results, structures, names, edges)


def _write_json(path, config, info, results, structures, names, edges) -> None:
    Path(path).write_text(json.dumps({
        "config": config, "models": info, "names": names, "edges": edges, "results": results,
        "structures": [{"name": s["name"], "numbers": s["numbers"].tolist()} for s in structures]}, indent=1))


def tables_from_json(path: str, markdown: str | None) -> None:
    """Print (and write) the tables of a JSON file written by ``--json`` (also one of a run that crashed)."""
    data = json.loads(Path(path).read_text())
    text = print_tables(data["results"], data["structures"], data["names"], data["edges"])
    if markdown:
        markdown_tables.write(markdown, TITLE, f"The timings of {Path(path).name}; configuration: {data['config']}.",
                              text)


def _time_cell(models: list, k: int, mode: str, args, meta: dict) -> list[dict]:
    """Median seconds per call of every model on one structure and mode; the models take turns in each repeat."""
    numbers, failed = {}, {}
    warm = {}
    for m in models:  # warm-up: two calls (one above a second), the last sets how many calls make one timing
        for _ in range(2):
            reply = m.request(op="time", k=k, mode=mode, number=1)
            if "error" in reply:
                failed[m.name] = reply["error"]
                print(f"{m.name} {meta['structure']} {mode} {meta['dtype']}: {reply['error']}", flush=True)
                break
            if reply["seconds"] > 1.0:
                break
        if m.name in failed:
            continue
        warm[m.name] = reply["seconds"]
        numbers[m.name] = max(1, math.ceil(MIN_CALL_SECONDS / max(reply["seconds"], 1e-6)))
    live = [m for m in models if m.name in warm]
    if not live:
        return []
    slowest = max(warm.values())
    repeats = max(min(args.repeats, 3), min(args.repeats, int(args.budget / max(slowest, 1e-9))))
    times = {m.name: [] for m in live}
    for _ in range(repeats):
        for m in live:
            if m.name in failed:
                continue
            reply = m.request(op="time", k=k, mode=mode, number=numbers[m.name])
            if "error" in reply:
                failed[m.name] = reply["error"]
                print(f"{m.name} {meta['structure']} {mode}: {reply['error']}", flush=True)
                continue
            times[m.name].append(reply["seconds"])
    out = []
    summary = []
    for m in live:
        if times[m.name]:
            median = statistics.median(times[m.name])
            out.append(dict(meta, model=m.name, median_s=median, times_s=times[m.name], calls=numbers[m.name]))
            summary.append(f"{m.name} {_fmt_ms(median)} ms")
    print(f"  {meta['dtype']} {meta['threads']}t {meta['mode']:5s} {meta['structure']:12s} ({repeats} repeats): "
          + ", ".join(summary), flush=True)
    return out


if __name__ == "__main__":
    main()
