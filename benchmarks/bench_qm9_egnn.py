"""Training throughput of EGNN on QM9 (molecules per second): liequiv's against the reference implementation of
Satorras et al. (github.com/vgsatorras/egnn, its ``qm9/`` model), on the same molecules, same batches, same
thread count, in one process.

    git clone https://github.com/vgsatorras/egnn /path/to/egnn      # the reference; nothing else to install
    python benchmarks/bench_qm9_egnn.py --reference /path/to/egnn [--batches 10] [--repeats 5] [--threads 1]
    python benchmarks/bench_qm9_egnn.py --reference /path/to/egnn --markdown docs/benchmarks/qm9-egnn.md

Both models are the paper's QM9 configuration (7 layers, 128 features, attention, node features one-hot × charge
powers 0..2, no node attributes) and train with Adam on the L1 loss of the normalized target; the script checks
that they have the same number of parameters. The reference pads every batch to its largest molecule and runs the
dense fully connected graph with masks (its collate function); liequiv runs the fully connected graph of each
molecule without padding. Both are timed round-robin (each repeat runs every model's steps once); the ratio is
liequiv's throughput over the reference's.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import markdown_tables
from liequiv.data.qm9 import QM9Dataset, collate_qm9
from liequiv.models.molecular_properties import QM9_ELEMENTS
from liequiv.train.loop import TrainConfig
from liequiv.train.qm9 import QM9Task
from timing import medians_ms

CHARGE_POWER = 2


def reference_batch(samples: list[dict], target: torch.Tensor) -> dict:
    """The reference's batch layout (its collate function): padded to the batch's largest molecule."""
    n = max(len(s["numbers"]) for s in samples)
    b = len(samples)
    charges = torch.zeros(b, n)
    positions = torch.zeros(b, n, 3)
    for i, s in enumerate(samples):
        charges[i, : len(s["numbers"])] = s["numbers"].float()
        positions[i, : len(s["numbers"])] = s["pos"].float()
    atom_mask = charges > 0
    edge_mask = (atom_mask[:, None] & atom_mask[:, :, None]) & ~torch.eye(n, dtype=torch.bool)[None]
    one_hot = charges[..., None] == torch.tensor(QM9_ELEMENTS, dtype=torch.float32)
    return {"charges": charges, "positions": positions, "atom_mask": atom_mask, "edge_mask": edge_mask.view(-1, 1),
            "one_hot": one_hot, "target": target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="a checkout of github.com/vgsatorras/egnn")
    parser.add_argument("--batches", type=int, default=10, help="training steps per timing")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sys.path.insert(0, args.reference)
    from qm9 import utils as reference_utils
    from qm9.models import EGNN as ReferenceEGNN

    data = QM9Dataset("train", target="homo", train_size=args.batches * args.batch_size)
    chunks = [[data[i] for i in range(j * args.batch_size, (j + 1) * args.batch_size)] for j in range(args.batches)]
    ours_batches = [collate_qm9(chunk) for chunk in chunks]
    targets = torch.cat([b["target"] for b in ours_batches])
    mean, mad = targets.mean(), (targets - targets.mean()).abs().mean()
    theirs_batches = [reference_batch(chunk, b["target"]) for chunk, b in zip(chunks, ours_batches, strict=True)]
    atoms = sum(len(b["numbers"]) for b in ours_batches)
    padded = sum(b["charges"].numel() for b in theirs_batches)

    task = QM9Task()
    config = TrainConfig(task="qm9", model="egnn", **{**task.defaults("egnn"), "hidden": 128, "layers": 7})
    ours = task.build_model(config, data)
    theirs = ReferenceEGNN(in_node_nf=len(QM9_ELEMENTS) * (CHARGE_POWER + 1), in_edge_nf=0, hidden_nf=128,
                           n_layers=7, coords_weight=1.0, attention=1, node_attr=0)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in (("liequiv", ours), ("reference", theirs))}
    if params["liequiv"] != params["reference"]:
        raise SystemExit(f"the models differ in size: {params}")
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in (("liequiv", ours),
                                                                                   ("reference", theirs))}

    def train_ours() -> None:
        for batch in ours_batches:
            y = ours(batch["numbers"], batch["pos"], batch["edge_index"], batch["batch"], batch["target"].shape[0])
            loss = (y - (batch["target"] - ours.mean) / ours.mad).abs().mean()
            optimizers["liequiv"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["liequiv"].step()

    def train_theirs() -> None:
        for batch in theirs_batches:
            b, n = batch["charges"].shape
            nodes = reference_utils.preprocess_input(batch["one_hot"].float(), batch["charges"], CHARGE_POWER,
                                                     float(max(QM9_ELEMENTS)), "cpu").view(b * n, -1)
            edges = reference_utils.get_adj_matrix(n, b, "cpu")
            pred = theirs(h0=nodes, x=batch["positions"].view(b * n, 3), edges=edges, edge_attr=None,
                          node_mask=batch["atom_mask"].view(b * n, 1).float(),
                          edge_mask=batch["edge_mask"].float(), n_nodes=n)
            loss = (pred - (batch["target"] - mean) / mad).abs().mean()
            optimizers["reference"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["reference"].step()

    ms = medians_ms({"liequiv": train_ours, "reference": train_theirs}, args.repeats, time.perf_counter)
    molecules = args.batches * args.batch_size
    rate = {name: molecules / (t / 1e3) for name, t in ms.items()}
    summary = (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.batches} batches of "
               f"{args.batch_size} training molecules ({atoms} atoms; {padded} padded slots in the reference's "
               f"layout), medians of {args.repeats} round-robin repeats, {params['liequiv']:,} parameters each")
    print(summary)
    cells = []
    for name in ("reference", "liequiv"):
        ratio = rate[name] / rate["reference"]
        print(f"{name:<10} {ms[name]:>10.1f} ms {rate[name]:>10.1f} molecules/s {ratio:>6.2f}x")
        cells.append([name, f"{ms[name]:,.0f}", f"{rate[name]:,.0f}", f"{ratio:.2f}×"])
    if args.markdown:
        body = markdown_tables.table(["implementation", f"ms per {args.batches} steps", "molecules/s",
                                      "vs reference"], cells)
        markdown_tables.write(args.markdown, "EGNN on QM9: training throughput", summary + ".", body)


if __name__ == "__main__":
    main()
