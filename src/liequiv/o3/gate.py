"""Gate nonlinearity (e3nn's ``nn.Gate``): activations on scalars, and irreps scaled by activated scalar gates.

``Gate(irreps_scalars, act_scalars, irreps_gates, act_gates, irreps_gated)`` maps the input to

    ``act_scalars(scalars) ⊕ act_gates(gates) · gated``

with one activation per block of ``irreps_scalars`` / ``irreps_gates`` and one gate scalar per copy of
``irreps_gated``. As in e3nn, the input layout is ``irreps_in``: the simplified concatenation
``scalars + gates + gated`` *sorted by irrep* (stable), e.g. ``"8x0e+4x0o"``, ``"6x0e"``, ``"4x1o+2x2e"`` give
``irreps_in = 4x0o+14x0e+4x1o+2x2e`` (the 8 ``0e`` scalars before the 6 gates). The output is the unsorted
concatenation ``irreps_out``.

Parity: an even activation of a ``0o`` scalar is ``0e``, an odd one stays ``0o``, any other is refused; a gated
irrep's parity is multiplied by its gate's output parity.

Every activation is normalized as e3nn's ``normalize2mom``: ``f -> c f`` with ``E[(c f(z))²] = 1`` for
``z ~ N(0, 1)``. Here ``c`` is computed deterministically by Gauss-Legendre quadrature in float64 (accurate to
~1e-15 for smooth activations and for kinks at integers, e.g. ReLU); e3nn estimates it by Monte Carlo (10⁶
samples), so outputs agree with e3nn's only to ~1e-3 relative.

Example::

    >>> gate = Gate("8x0e", [torch.nn.functional.silu], "2x0e", [torch.sigmoid], "2x1o")
    >>> gate.irreps_in, gate.irreps_out
    (10x0e+2x1o, 8x0e+2x1o)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from liequiv.o3.irreps import Irrep, Irreps, check_features

__all__ = ["Gate"]

_QUADRATURE_RANGE = 12  # integrate the normal density over [-12, 12]: the tails weigh ~4e-33
_QUADRATURE_NODES_PER_UNIT = 20
_PARITY_GRID = torch.linspace(0, 10, 256, dtype=torch.float64)
_PARITY_ATOL = 1e-5  # on the normalized activation, as e3nn


@functools.cache
def _normal_quadrature() -> tuple[Tensor, Tensor]:
    """Nodes and weights ``[n]`` (float64) with ``Σ w f(z) ≈ E[f(z)]``, ``z ~ N(0, 1)``.

    Composite Gauss-Legendre on unit panels, so a function smooth between integers is integrated to double precision.
    """
    t, w = np.polynomial.legendre.leggauss(_QUADRATURE_NODES_PER_UNIT)
    left = np.arange(-_QUADRATURE_RANGE, _QUADRATURE_RANGE)[:, None]
    nodes = (left + (t + 1) / 2).ravel()
    weights = np.tile(w / 2, 2 * _QUADRATURE_RANGE) * np.exp(-nodes**2 / 2) / math.sqrt(2 * math.pi)
    return torch.from_numpy(nodes), torch.from_numpy(weights)


def _normalize2mom_constant(act: Callable[[Tensor], Tensor]) -> float:
    """``c = E[act(z)²]^{-1/2}`` for ``z ~ N(0, 1)``, by quadrature in float64."""
    nodes, weights = _normal_quadrature()
    with torch.no_grad():
        values = act(nodes.clone()).to(torch.float64)
    if values.shape != nodes.shape:
        raise ValueError(f"activation {act!r} must act elementwise: [n] -> [n], got shape {tuple(values.shape)}")
    second_moment = float((values * values * weights).sum())
    if not math.isfinite(second_moment) or second_moment <= 0:
        raise ValueError(f"activation {act!r} has second moment {second_moment} under N(0, 1); it must be positive "
                         "and finite to be normalized")
    return second_moment**-0.5


class _ScalarActivation(nn.Module):
    """``x [..., mul] -> c act(x)`` for one block ``mul x ir`` of scalars; ``act=None`` is the identity.

    Attributes: ``cst`` (the normalization ``c``, 1 for None) and ``ir_out`` (the output irrep).
    """

    def __init__(self, act: Callable[[Tensor], Tensor] | None, ir: Irrep, name: str) -> None:
        super().__init__()
        if act is not None and not callable(act):
            raise TypeError(f"{name} must be callable or None, got {type(act).__name__}")
        self.act = act
        self.cst = 1.0 if act is None else _normalize2mom_constant(act)
        self.ir_out = ir if act is None or ir.p == 1 else Irrep(0, self._parity(act, name, ir))

    def _parity(self, act: Callable[[Tensor], Tensor], name: str, ir: Irrep) -> int:
        """+1 if ``act`` is even, -1 if odd (checked on a grid); ValueError otherwise."""
        with torch.no_grad():
            positive = self.cst * act(_PARITY_GRID.clone()).to(torch.float64)
            negative = self.cst * act(-_PARITY_GRID).to(torch.float64)
        if (positive - negative).abs().max() < _PARITY_ATOL:
            return 1
        if (positive + negative).abs().max() < _PARITY_ATOL:
            return -1
        raise ValueError(f"{name} = {act!r} acts on odd scalars ({ir}) but is neither even nor odd, which would break "
                         "parity equivariance")

    def forward(self, x: Tensor) -> Tensor:
        if self.act is None:
            return x
        return self.act(x) * self.cst


def _scalar_activations(irreps: Irreps, acts: Any, name_irreps: str, name_acts: str) -> nn.ModuleList:
    """One normalized activation per block of the scalars ``irreps``, after checking ``acts``."""
    if not isinstance(acts, Sequence):
        raise TypeError(f"{name_acts} must be a list of activations (one per block of {name_irreps}), "
                        f"got {type(acts).__name__}")
    if len(acts) != len(irreps):
        raise ValueError(f"{name_acts} needs one activation (or None) per block of {name_irreps} = {irreps} "
                         f"({len(irreps)}), got {len(acts)}")
    if any(ir.l != 0 for _, ir in irreps):
        raise ValueError(f"{name_irreps} must contain only scalars (l = 0), got {irreps}")
    return nn.ModuleList(
        _ScalarActivation(act, ir, f"{name_acts}[{i}]") for i, ((_, ir), act) in enumerate(zip(irreps, acts)))


class Gate(nn.Module):
    """``x [..., irreps_in.dim] -> [..., irreps_out.dim]``, equivariant under O(3) (see the module docstring).

    Args:
        irreps_scalars: scalars (``l = 0``) passed through ``act_scalars``.
        act_scalars: one activation (elementwise callable, or None for the identity) per block of irreps_scalars.
        irreps_gates: gate scalars (``l = 0``), one per copy of irreps_gated, passed through ``act_gates``.
        act_gates: one activation (or None) per block of irreps_gates.
        irreps_gated: irreps multiplied by their activated gate.

    Activations must accept a float64 CPU tensor (to compute their normalization and parity).

    Attributes:
        irreps_in: the input layout: the simplified parts concatenated, sorted by irrep and simplified, as e3nn.
        irreps_out: activated scalars (per block) + gated irreps with their parity times their gate's.
        irreps_scalars, irreps_gates, irreps_gated: the three parts, simplified.
        act_scalars, act_gates: the normalized activations; ``act_scalars[i].cst`` is block i's constant.
    """

    def __init__(self, irreps_scalars: Any, act_scalars: Sequence[Callable[[Tensor], Tensor] | None],
                 irreps_gates: Any, act_gates: Sequence[Callable[[Tensor], Tensor] | None], irreps_gated: Any) -> None:
        super().__init__()
        irreps_scalars, irreps_gates, irreps_gated = Irreps(irreps_scalars), Irreps(irreps_gates), Irreps(irreps_gated)
        self.act_scalars = _scalar_activations(irreps_scalars, act_scalars, "irreps_scalars", "act_scalars")
        self.act_gates = _scalar_activations(irreps_gates, act_gates, "irreps_gates", "act_gates")
        if irreps_gates.num_irreps != irreps_gated.num_irreps:
            raise ValueError(f"irreps_gates needs one gate per copy of irreps_gated = {irreps_gated} "
                             f"({irreps_gated.num_irreps}), got {irreps_gates} ({irreps_gates.num_irreps})")
        self._scalar_muls = [mul for mul, _ in irreps_scalars]
        self._gate_muls = [mul for mul, _ in irreps_gates]
        self.irreps_scalars = irreps_scalars.simplify()
        self.irreps_gates = irreps_gates.simplify()
        self.irreps_gated = irreps_gated.simplify()

        # input layout: the concatenation sorted by irrep; input_index gathers it back into concatenation order
        concatenated = self.irreps_scalars + self.irreps_gates + self.irreps_gated
        sorted_irreps, position, _ = concatenated.sort()
        sorted_starts = [s.start for s in sorted_irreps.slices()]
        self.irreps_in = sorted_irreps.simplify()
        input_index = torch.cat([torch.arange(sorted_starts[position[i]], sorted_starts[position[i]] + mul_ir.dim)
                                 for i, mul_ir in enumerate(concatenated)] or [torch.zeros(0, dtype=torch.long)])
        self._input_is_sorted = bool(torch.equal(input_index, torch.arange(concatenated.dim)))
        self.register_buffer("input_index", input_index, persistent=False)
        self._split_dims = [self.irreps_scalars.dim, self.irreps_gates.dim, self.irreps_gated.dim]

        scalars_out = Irreps([(mul, act.ir_out) for (mul, _), act in zip(irreps_scalars, self.act_scalars)])
        gates_out = Irreps([(mul, act.ir_out) for (mul, _), act in zip(irreps_gates, self.act_gates)]).simplify()
        self.irreps_out = scalars_out + self._gated_out(gates_out)
        gate_of_component = [c for c, l in enumerate(self.irreps_gated.ls) for _ in range(2 * l + 1)]
        self.register_buffer("gate_index", torch.tensor(gate_of_component, dtype=torch.long), persistent=False)

    def _gated_out(self, gates_out: Irreps) -> Irreps:
        """Gated irreps times gate parities, in e3nn's blocks: split wherever a gated or a gate block ends."""
        ends = sorted({*accumulate(mul for mul, _ in self.irreps_gated), *accumulate(mul for mul, _ in gates_out)})
        gated_irs = [ir for mul, ir in self.irreps_gated for _ in range(mul)]
        gate_parities = [ir.p for mul, ir in gates_out for _ in range(mul)]
        blocks, start = [], 0
        for end in ends:
            blocks.append((end - start, Irrep(gated_irs[start].l, gated_irs[start].p * gate_parities[start])))
            start = end
        return Irreps(blocks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out})"

    def forward(self, x: Tensor) -> Tensor:
        """``x [..., irreps_in.dim]`` -> ``[..., irreps_out.dim]``."""
        check_features(x, self.irreps_in)
        if not self._input_is_sorted:
            x = x.index_select(-1, self.input_index)
        scalars, gates, gated = x.split(self._split_dims, -1)
        outs = [act(block) for act, block in zip(self.act_scalars, scalars.split(self._scalar_muls, -1))]
        if gated.shape[-1] > 0:
            gates = torch.cat([act(block) for act, block in zip(self.act_gates, gates.split(self._gate_muls, -1))], -1)
            outs.append(gated * gates.index_select(-1, self.gate_index))
        if not outs:
            return x.new_zeros(*x.shape[:-1], 0)
        return torch.cat(outs, -1)
