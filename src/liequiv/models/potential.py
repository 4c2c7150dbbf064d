r"""A tensor-product interatomic potential: NequIP-like at ``correlation=1``, MACE-like at 2-3, on any backend.

For atoms with elements ``z_i`` and positions ``x_i``, edges ``j -> i`` within the cutoff, ``r_ij = x_i - x_j``
(receiver minus sender, plus the periodic shift when given)::

    h_i^0 = Embedding(z_i)                                              C x 0e
    h^t   = Interaction_t(h^{t-1}, Y(r̂_ij), Bessel(|r_ij|) · u(|r_ij|))   t = 1..layers  (liequiv.nn.interaction)
    ε_i   = Σ_t Readout_t(h_i^t)                                        linear on the scalars; an MLP for the last
    E     = Σ_i (scale · ε_i + shift + E0[z_i])                         per structure
    F_i   = -∂E/∂x_i                                                    by autograd

``correlation=1`` uses no many-body product (NequIP's interaction); ``correlation ≥ 2`` inserts MACE's symmetric
contraction (``tp_backend="cg"`` or ``"cueq"``) or its Gaunt counterpart (``"gaunt_grid"``/``"gaunt_fourier"``) of
that order after the message. ``"cueq"`` computes ``"cg"``'s message through NVIDIA's cuEquivariance (a GPU
kernel; the same function and weights as ``"cg"``). Hidden layers end in a gate (unlike MACE, whose product is the
only nonlinearity), the last layer keeps only ``C x 0e``. All features have natural parity (``0e, 1o, 2e, …``), as
MACE's defaults, so with every backend the model uses exactly the paths ``l1 + l2 + l3`` even; ``"cg"`` and
``"cueq"`` weight each path separately, the Gaunt backends per degree. ``E0`` (per-element reference energies),
``scale`` and ``shift`` are buffers, set
from the training set (``set_statistics``), and saved with the weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_input_dtypes
from liequiv.nn.graph import check_edge_index, scatter_sum
from liequiv.nn.interaction import TP_BACKENDS, Interaction, natural_irreps
from liequiv.nn.many_body import GauntContraction, SymmetricContraction
from liequiv.nn.mlp import MLP
from liequiv.nn.radial import BesselBasis, PolynomialCutoff
from liequiv.o3 import spherical_harmonics

__all__ = ["EDGE_BLOCK", "MIN_DISTANCE", "TensorProductPotential"]

MIN_DISTANCE = 0.1  # Å: closer atoms are refused (a sign of broken input, and the basis diverges at r = 0)
EDGE_BLOCK = 1 << 15  # edges per block recomputed in the backward (bounded memory for large structures)


class TensorProductPotential(nn.Module):
    """Energy and forces of atomic structures (see the module docstring).

    Args:
        elements: atomic numbers the model knows (the one-hot order).
        channels: ``C``, channels of every feature.
        lmax: degree of the edge harmonics and of the messages ``A``.
        node_lmax: degree of the hidden node features (MACE's ``max_L``; default ``min(lmax, 1)``).
        layers: interaction blocks.
        correlation: order ``ν`` of the many-body product (1: none).
        cutoff: radius of the neighbourhood, Å; ``num_basis`` Bessel functions with a polynomial envelope
            of order ``envelope_p``.
        tp_backend: ``"cg"``, ``"gaunt_grid"``, ``"gaunt_fourier"`` or ``"cueq"`` (needs cuequivariance-torch).
        radial_hidden: hidden widths of the radial MLPs; ``readout_hidden``: of the last readout MLP.

    Attribute ``edge_block`` (default ``EDGE_BLOCK``; None: never): a call with more edges processes them in blocks
    of this many, recomputed in the backward (see :mod:`liequiv.nn.interaction`), so that the memory of energies,
    forces and stress stays bounded per edge.
    """

    def __init__(self, elements: Sequence[int], *, channels: int = 64, lmax: int = 3, node_lmax: int | None = None,
                 layers: int = 2, correlation: int = 3, cutoff: float = 5.0, num_basis: int = 8,
                 envelope_p: int = 6, tp_backend: str = "cg", radial_hidden: tuple[int, ...] = (64, 64, 64),
                 readout_hidden: int = 16) -> None:
        super().__init__()
        elements = [int(z) for z in elements]
        if not elements or len(set(elements)) != len(elements) or not all(1 <= z <= 118 for z in elements):
            raise ValueError(f"elements must be distinct atomic numbers in 1..118, got {elements}")
        if tp_backend not in TP_BACKENDS:
            raise ValueError(f"tp_backend must be one of {TP_BACKENDS}, got {tp_backend!r}")
        for name, value, low in (("channels", channels, 1), ("lmax", lmax, 0), ("layers", layers, 1),
                                 ("correlation", correlation, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        node_lmax = min(lmax, 1) if node_lmax is None else node_lmax
        if not 0 <= node_lmax <= lmax:
            raise ValueError(f"node_lmax must lie in [0, lmax = {lmax}], got {node_lmax}")
        self.elements = tuple(elements)
        self.cutoff, self.tp_backend, self.correlation = float(cutoff), tp_backend, correlation
        n_el = len(elements)
        species_of = torch.full((119,), -1, dtype=torch.long)
        species_of[torch.tensor(elements)] = torch.arange(n_el)
        self.register_buffer("species_of", species_of, persistent=False)
        self.register_buffer("reference_energies", torch.zeros(n_el, dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(0.0, dtype=torch.float64))

        self.embedding = nn.Linear(n_el, channels, bias=False)
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialCutoff(cutoff, envelope_p)
        self.lmax = lmax
        message = natural_irreps(channels, lmax)
        hidden = natural_irreps(channels, node_lmax)
        scalars = natural_irreps(channels, 0)
        self.interactions = nn.ModuleList()
        self.readouts = nn.ModuleList()
        irreps = scalars
        for t in range(layers):
            last = t == layers - 1
            out = scalars if last else hidden
            # without a many-body product, the messages keep only the degrees of the layer's output (as NequIP)
            product, kept = None, natural_irreps(channels, out.lmax)
            if correlation > 1:
                block = GauntContraction if tp_backend.startswith("gaunt") else SymmetricContraction
                product, kept = block(message, kept, correlation, n_el), message
            self.interactions.append(Interaction(irreps, out, lmax, kept, num_basis, n_el,
                                                 radial_hidden=tuple(radial_hidden), backend=tp_backend,
                                                 product=product, gate=not last))
            self.readouts.append(MLP([channels, readout_hidden, 1]) if last else nn.Linear(channels, 1))
            irreps = out
        self.channels = channels
        self.edge_block: int | None = EDGE_BLOCK

    def extra_repr(self) -> str:
        paths = "paths l1 + l2 + l3 even only (natural parity)"
        weights = "weights per degree (Gaunt)" if self.tp_backend.startswith("gaunt") else "a weight per path"
        return (f"elements={list(self.elements)}, cutoff={self.cutoff}, tp_backend={self.tp_backend!r}: {paths}, "
                f"{weights}, correlation={self.correlation}")

    @torch.no_grad()
    def set_statistics(self, *, reference_energies: Sequence[float] | Tensor | None = None,
                       avg_num_neighbors: float | None = None, scale: float | None = None,
                       shift: float | None = None) -> None:
        """Per-element ``E0`` [num_elements] (eV), the average neighbour count ``n̄``, and the energy scale and
        shift per atom, all from the training set."""
        if reference_energies is not None:
            e0 = torch.as_tensor(reference_energies, dtype=torch.float64).reshape(-1)
            if e0.shape[0] != len(self.elements) or not torch.isfinite(e0).all():
                raise ValueError(f"reference_energies needs {len(self.elements)} finite values, got {e0.tolist()}")
            self.reference_energies.copy_(e0)
        for name, value in (("avg_num_neighbors", avg_num_neighbors), ("scale", scale), ("shift", shift)):
            if value is None:
                continue
            if not math.isfinite(value) or (name != "shift" and value <= 0):
                raise ValueError(f"{name} must be finite{' and positive' if name != 'shift' else ''}, got {value}")
            if name == "avg_num_neighbors":
                for block in self.interactions:
                    block.avg_num_neighbors.fill_(value)
            else:
                getattr(self, name).fill_(value)

    def species(self, numbers: Tensor) -> Tensor:
        """Atomic numbers ``[N]`` -> indices into ``elements`` ``[N]``; ValueError for an unknown element."""
        if numbers.dtype not in (torch.int64, torch.int32) or numbers.ndim != 1:
            raise TypeError(f"numbers must be an integer tensor [N], got {numbers.dtype} {tuple(numbers.shape)}")
        known = (numbers >= 0) & (numbers < 119)
        species = self.species_of[numbers.long().clamp(0, 118)]
        if not bool((known & (species >= 0)).all()):
            unknown = sorted({int(z) for z, s, k in zip(numbers, species, known) if not k or s < 0})
            raise ValueError(f"unknown element(s) {unknown}; this model knows {list(self.elements)}")
        return species

    def forward(self, numbers: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor | None = None,
                shifts: Tensor | None = None, *, num_graphs: int | None = None, compute_forces: bool = True,
                training: bool | None = None, cell: Tensor | None = None,
                compute_stress: bool = False) -> dict[str, Tensor]:
        """``numbers [N]``, ``pos [N, 3]`` (Å), ``edge_index [2, E]``, ``batch [N]``, ``shifts [E, 3]`` ->
        ``{"energy": [B], "node_energy": [N], "forces": [N, 3]}`` (eV, eV/Å).

        With ``compute_stress``, also ``"stress" [B, 3, 3]`` (eV/Å³, ASE's sign: positive under tension)
        ``= (1/V) ∂E/∂ε`` for a symmetric strain ``ε`` of each structure applied to its positions and shifts
        (``x -> x (I + ε)``), with ``V = |det cell|`` from ``cell [B, 3, 3]`` (ValueError for a zero volume).
        Forces need autograd: do not call under ``torch.inference_mode()``. ``training`` (default: the module's
        mode) keeps the graph of the forces and stress, so that a loss on them can be differentiated.
        """
        species = self.species(numbers)
        n = species.shape[0]
        if not isinstance(pos, Tensor) or not pos.is_floating_point() or pos.shape != (n, 3):
            raise ValueError(f"pos must be a floating tensor [{n}, 3], got {getattr(pos, 'shape', pos)}")
        check_input_dtypes(self, pos=pos)
        if not bool(torch.isfinite(pos).all()):
            raise ValueError("pos has non-finite coordinates")
        src, dst = check_edge_index(edge_index, n)
        batch = pos.new_zeros(n, dtype=torch.long) if batch is None else batch
        if batch.shape != (n,):
            raise ValueError(f"batch must have shape [{n}], got {tuple(batch.shape)}")
        num_graphs = (int(batch.max()) + 1 if n else 0) if num_graphs is None else num_graphs
        create_graph = self.training if training is None else training
        if compute_stress:
            volume = self._volume(cell, num_graphs, pos)
            compute_forces = True
        if compute_forces:
            if torch.is_inference_mode_enabled():
                raise RuntimeError("forces need autograd: evaluate outside torch.inference_mode()")
            if not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
        with torch.set_grad_enabled(compute_forces or torch.is_grad_enabled()):
            strained = pos
            if compute_stress:  # x -> x (I + ε): the gradient at ε = 0 is V σ
                strain = pos.new_zeros(num_graphs, 3, 3, requires_grad=True)
                symmetric = 0.5 * (strain + strain.transpose(1, 2))
                strained = pos + torch.einsum("ni,nij->nj", pos, symmetric.index_select(0, batch))
            vectors = strained.index_select(0, dst) - strained.index_select(0, src)
            if shifts is not None:
                if shifts.shape != vectors.shape:
                    raise ValueError(f"shifts must have shape {tuple(vectors.shape)}, got {tuple(shifts.shape)}")
                shifts = shifts.to(pos.dtype)
                if compute_stress:
                    shifts = shifts + torch.einsum("ei,eij->ej", shifts, symmetric.index_select(0, batch[src]))
                vectors = vectors + shifts
            lengths = torch.linalg.vector_norm(vectors, dim=-1)
            if lengths.numel() and not torch.compiler.is_compiling() and bool(lengths.min() < MIN_DISTANCE):
                k = int(lengths.argmin())
                raise ValueError(f"atoms {int(src[k])} and {int(dst[k])} are {float(lengths[k].detach()):.3g} Å apart, "
                                 f"closer than {MIN_DISTANCE} Å")
            node_energy = self.atomic_energies(species, vectors, lengths, edge_index, edge_block=self.edge_block)
            energy = scatter_sum(node_energy, batch, num_graphs)
            out = {"energy": energy, "node_energy": node_energy}
            if compute_forces:
                inputs = (pos, strain) if compute_stress else (pos,)
                grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph, allow_unused=True)
                out["forces"] = -grads[0] if grads[0] is not None else torch.zeros_like(pos)
                if compute_stress:
                    d_strain = grads[1] if grads[1] is not None else torch.zeros_like(strain)
                    out["stress"] = d_strain / volume[:, None, None]
        return out

    @staticmethod
    def _volume(cell: Tensor | None, num_graphs: int, pos: Tensor) -> Tensor:
        """``|det cell|`` ``[B]`` in pos's dtype; ValueError for a missing, misshapen or zero-volume cell."""
        if cell is None or tuple(cell.shape) not in ((num_graphs, 3, 3), (3, 3)):
            raise ValueError(f"compute_stress needs cell [{num_graphs}, 3, 3], got "
                             f"{None if cell is None else tuple(cell.shape)}")
        volume = torch.linalg.det(cell.to(pos.dtype).detach().expand(num_graphs, 3, 3)).abs()
        if not bool((volume > 1e-9).all()):
            raise ValueError(f"compute_stress needs cells of non-zero volume, got volumes {volume.tolist()} Å³")
        return volume

    def atomic_energies(self, species: Tensor, vectors: Tensor, lengths: Tensor, edge_index: Tensor, *,
                        edge_block: int | None = None) -> Tensor:
        """``[N]``: ``scale · ε_i + shift + E0[z_i]`` from the edge vectors ``[E, 3]`` and their lengths ``[E]``
        (``edge_block``: see :class:`~liequiv.nn.Interaction`)."""
        dtype = vectors.dtype
        node_attrs = nn.functional.one_hot(species, len(self.elements)).to(dtype)
        edge_sh = spherical_harmonics(self.lmax, vectors)
        edge_basis = self.basis(lengths)
        edge_envelope = self.envelope(lengths)
        h = self.embedding(node_attrs)
        energy = vectors.new_zeros(species.shape[0])
        for interaction, readout in zip(self.interactions, self.readouts):
            h = interaction(h, node_attrs, species, edge_index, edge_sh, edge_basis, edge_envelope,
                            edge_block=edge_block)
            energy = energy + readout(h[:, : self.channels]).squeeze(-1)
        e0 = self.reference_energies.to(dtype).index_select(0, species)
        return self.scale.to(dtype) * energy + self.shift.to(dtype) + e0

