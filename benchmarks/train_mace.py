r"""Train MACE (mace-torch's own ``mace_run_train``) on the data liequiv trains on, and report liequiv's metrics.

Two modes, in two environments (mace-torch pins e3nn 0.4.4; see bench_potential.py for the venv):

1. ``--export`` (liequiv's venv): write liequiv's train/valid/test split of a molecule as extended XYZ files
   (``REF_energy`` in the comment line, a ``REF_forces`` column: the keys MACE recommends)::

       python benchmarks/train_mace.py --export ethanol --sizes 1000,200,1000 --out-dir runs/mace/ethanol

   The frames are those of ``liequiv.data.molecules.molecule_datasets(molecule, sizes, split_seed)`` (cached in
   ``~/.cache/liequiv``; a molecule not yet cached is generated first, which takes minutes).

2. training (MACE's venv): run ``mace.cli.run_train`` in this process on those files, then evaluate the saved
   model on the test file and write the metrics (energy MAE in meV per structure, force MAE and RMSE in meV/Å
   over force components, as in liequiv's ``metrics.json``) to ``--out``::

       .peers/mace/bin/python benchmarks/train_mace.py --train runs/mace/ethanol/train.xyz \
           --valid runs/mace/ethanol/valid.xyz --test runs/mace/ethanol/test.xyz --epochs 50 \
           --out runs/mace/mace-ethanol.json

Recipe (defaults match liequiv's ``liequiv train md17`` defaults where the two differ, MACE's rMD17 recipe
otherwise): ``--model MACE`` (ScaleShiftMACE: E0s by least squares on the training set, "average"; scale = RMS of
the training forces), 32 channels, ``max_ell 2``, hidden ``32x0e + 32x1o`` (max_L 1), correlation 3, 2
interactions, r_max 5 Å, 8 Bessel functions, polynomial envelope p = 6 (liequiv's; MACE's CLI default is 5);
loss "weighted" with energy weight 1 (on energy per atom) and force weight 100; batch 5, Adam with AMSGrad,
lr 0.01, MACE's weight decay 5e-7, EMA 0.99, ReduceLROnPlateau with factor 0.8 and patience 5 epochs (liequiv's;
MACE's default is 50), gradient clipping 10, validation every epoch, float32 (liequiv's default; MACE's CLI
default is float64), one thread, seed 0. No SWA/stage two. ``--channels``, ``--max-ell``, ``--correlation``,
``--dtype``, ``--patience``, ``--lr`` change these; ``--mace-arg=--flag=value`` passes anything else through.

Cost here (2-core AMD EPYC, 1 thread, float32, the defaults): an epoch on 1,000 ethanol frames (200 steps)
took 15.3-15.9 s of optimisation and 17 s with the validation on 200 frames; a 2-epoch run took 67 s of wall time
in all (setup, E0s, the final error tables on train/valid/test and the test evaluation included).

The JSON also holds the wall time, the seconds per epoch (the sum of MACE's per-step optimisation times per
epoch, from its results file, and the wall clock of the whole run divided by the epochs), the parameter count and
the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def export(molecule: str, sizes: tuple[int, int, int], split_seed: int, out_dir: Path) -> None:
    """Write liequiv's split of ``molecule`` to ``out_dir/{train,valid,test}.xyz`` (REF_energy, REF_forces)."""
    from liequiv.data.atoms import write_extxyz
    from liequiv.data.molecules import molecule_datasets

    sets = molecule_datasets(molecule, sizes, split_seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, dataset in sets.items():
        frames = [{"numbers": item["numbers"].numpy(), "positions": item["pos"].numpy(),
                   "energy": item["energy"].numpy(), "forces": item["forces"].numpy()}
                  for item in (dataset[i] for i in range(len(dataset)))]
        path = out_dir / f"{split}.xyz"
        write_extxyz(path, frames, energy_key="REF_energy", forces_key="REF_forces")
        print(f"{path}: {len(frames)} frames")


def _reference(atoms, energy_key: str, forces_key: str) -> tuple[float, np.ndarray]:
    """A frame's reference energy and forces from info/arrays, or from its calculator for 'energy'/'forces'."""
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = atoms.info[energy_key] if energy_key in atoms.info else results[energy_key]
    forces = atoms.arrays[forces_key] if forces_key in atoms.arrays else results[forces_key]
    return float(energy), np.asarray(forces, dtype=np.float64)


def evaluate(model_path: Path, test_file: str, energy_key: str, forces_key: str, r_max: float, dtype: str,
             batch_size: int = 50) -> dict:
    """Energy MAE (meV per structure) and force MAE / RMSE (meV/Å over components) of a saved MACE model."""
    import ase.io
    import mace  # noqa: F401  (first: it sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, which e3nn 0.4.4 needs)
    import torch
    from mace import data as mace_data
    from mace import tools
    from mace.tools import torch_geometric

    torch.set_default_dtype({"float32": torch.float32, "float64": torch.float64}[dtype])
    model = torch.load(model_path, map_location="cpu", weights_only=False).eval()
    z_table = tools.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    images = ase.io.read(test_file, index=":")
    refs = [_reference(atoms, energy_key, forces_key) for atoms in images]
    data = [mace_data.AtomicData.from_config(mace_data.config_from_atoms(atoms), z_table=z_table, cutoff=r_max)
            for atoms in images]
    loader = torch_geometric.dataloader.DataLoader(data, batch_size=batch_size, shuffle=False, drop_last=False)
    energies, forces = [], []
    for batch in loader:
        out = model(batch.to_dict(), training=False, compute_force=True)
        energies.append(out["energy"].detach().double().numpy())
        forces.append(out["forces"].detach().double().numpy())
    energies, forces = np.concatenate(energies), np.concatenate(forces)
    ref_e = np.array([e for e, _ in refs])
    ref_f = np.concatenate([f for _, f in refs])
    de, df = (energies - ref_e) * 1000, (forces - ref_f) * 1000
    return {"test_energy_mae": float(np.abs(de).mean()), "test_force_mae": float(np.abs(df).mean()),
            "test_force_rmse": float(np.sqrt(np.square(df).mean())), "test_frames": len(images),
            "parameters": int(sum(p.numel() for p in model.parameters()))}


def _epoch_seconds(results_file: Path) -> list[float]:
    """Per-epoch sums of MACE's per-step optimisation times ("mode": "opt" lines of its results file)."""
    per_epoch: dict[int, float] = {}
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("mode") == "opt" and entry.get("epoch") is not None:
                per_epoch[entry["epoch"]] = per_epoch.get(entry["epoch"], 0.0) + float(entry["time"])
    return [per_epoch[k] for k in sorted(per_epoch)]


def train(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    name = args.name
    mace_args = [
        "mace_run_train", f"--name={name}", f"--work_dir={work}", f"--seed={args.seed}", "--device=cpu",
        f"--default_dtype={args.dtype}", f"--train_file={args.train}", f"--valid_file={args.valid}",
        f"--test_file={args.test}", f"--energy_key={args.energy_key}", f"--forces_key={args.forces_key}",
        "--E0s=average", "--model=MACE", f"--num_channels={args.channels}", f"--max_L={args.max_L}",
        f"--max_ell={args.max_ell}", f"--correlation={args.correlation}", f"--num_interactions={args.layers}",
        f"--r_max={args.r_max}", "--num_radial_basis=8", f"--num_cutoff_basis={args.envelope_p}",
        "--loss=weighted", f"--energy_weight={args.energy_weight}", f"--forces_weight={args.forces_weight}",
        f"--batch_size={args.batch_size}", f"--valid_batch_size={args.batch_size * 2}", f"--lr={args.lr}",
        "--ema", f"--ema_decay={args.ema_decay}", "--amsgrad", "--scheduler=ReduceLROnPlateau", "--lr_factor=0.8",
        f"--scheduler_patience={args.patience}", "--clip_grad=10.0", f"--max_num_epochs={args.epochs}",
        "--eval_interval=1", "--error_table=TotalMAE", "--num_workers=0", *args.mace_arg,
    ]
    print(" ".join(mace_args), flush=True)
    from mace.cli.run_train import main as run_train

    argv, sys.argv = sys.argv, mace_args
    start = time.perf_counter()
    try:
        run_train()
    finally:
        sys.argv = argv
    wall = time.perf_counter() - start
    model_path = work / f"{name}.model"
    metrics = evaluate(model_path, args.test, args.energy_key, args.forces_key, args.r_max, args.dtype)
    epochs = _epoch_seconds(work / "results" / f"{name}_run-{args.seed}_train.txt")
    from importlib.metadata import version

    metrics.update({
        "model": "MACE (mace-torch ScaleShiftMACE via mace_run_train)", "epochs": args.epochs,
        "train_file": str(args.train), "valid_file": str(args.valid), "test_file": str(args.test),
        "wall_seconds": wall, "wall_seconds_per_epoch": wall / max(args.epochs, 1),
        "optimisation_seconds_per_epoch": epochs, "threads": args.threads, "dtype": args.dtype,
        "mace_args": mace_args[1:], "model_path": str(model_path),
        "versions": {"mace-torch": version("mace-torch"), "e3nn": version("e3nn"), "torch": torch.__version__},
        "units": "energy MAE meV per structure; force MAE/RMSE meV/Å over force components (as liequiv)",
    })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(metrics, indent=1))
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("mace_args",)}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", metavar="MOLECULE", help="liequiv's venv: write the split of MOLECULE as extxyz")
    parser.add_argument("--sizes", default="1000,200,1000", help="--export: train,valid,test frames")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".", help="--export: folder for train.xyz, valid.xyz, test.xyz")
    parser.add_argument("--train")
    parser.add_argument("--valid")
    parser.add_argument("--test")
    parser.add_argument("--out", default="mace_metrics.json", help="metrics JSON")
    parser.add_argument("--work-dir", default="runs/mace-work", help="MACE's work_dir (checkpoints, logs, model)")
    parser.add_argument("--name", default="mace")
    parser.add_argument("--energy-key", default="REF_energy")
    parser.add_argument("--forces-key", default="REF_forces")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--patience", type=int, default=5, help="ReduceLROnPlateau patience, epochs")
    parser.add_argument("--energy-weight", type=float, default=1.0)
    parser.add_argument("--forces-weight", type=float, default=100.0)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--max-ell", type=int, default=2)
    parser.add_argument("--max-L", type=int, default=1, help="degree of the hidden node features")
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--r-max", type=float, default=5.0)
    parser.add_argument("--envelope-p", type=int, default=6)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mace-arg", action="append", default=[], help="extra mace_run_train argument (repeat)")
    args = parser.parse_args()
    if args.export:
        sizes = tuple(int(s) for s in args.sizes.split(","))
        if len(sizes) != 3:
            parser.error("--sizes needs three numbers: train,valid,test")
        export(args.export, sizes, args.split_seed, Path(args.out_dir))
        return
    missing = [f"--{k}" for k in ("train", "valid", "test") if not getattr(args, k)]
    if missing:
        parser.error(f"training needs {', '.join(missing)} (or --export MOLECULE)")
    for path in (args.train, args.valid, args.test):
        if not os.path.exists(path):
            parser.error(f"no such file: {path}")
    train(args)


if __name__ == "__main__":
    main()
