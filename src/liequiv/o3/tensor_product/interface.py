"""Tensor products of O(3) irreps: the shared bookkeeping (instructions, normalization, weights), one backend a module.

A tensor product is a sum of *paths*. Path ``(i1, i2, i_out, mode, has_weight)`` couples block ``i1`` of ``x1``
(``mul1 × ir1``) with block ``i2`` of ``x2`` (``mul2 × ir2``) into block ``i_out`` (``mul_out × ir_out``) with the
Clebsch-Gordan tensor ``C`` of :func:`liequiv.o3.wigner.clebsch_gordan` (e3nn's ``wigner_3j``)::

    uvw:  out[w, k] += a Σ_{u,v,i,j} W[u, v, w] C[i, j, k] x1[u, i] x2[v, j]      (fully connected)
    uvu:  out[u, k] += a Σ_{v,i,j}   W[u, v]    C[i, j, k] x1[u, i] x2[v, j]      (channel-wise; mul_out = mul1)
    uuu:  out[u, k] += a Σ_{i,j}     W[u]       C[i, j, k] x1[u, i] x2[u, j]      (element-wise)

with ``W = 1`` for paths without weights. The constant ``a`` is e3nn's (``irrep_normalization="component"``,
``path_normalization="element"`` by default): ``a = sqrt(path_weight · dim(ir_out) / Σ fan-in)``, where the fan-in of
a path is ``mul1·mul2`` (uvw), ``mul2`` (uvu) or ``1`` (uuu), summed over the paths into the same output block
(``"element"``), or the fan-in of the path times their number (``"path"``). Inputs of unit variance per component give
outputs of unit variance per component. The result equals ``e3nn.o3.TensorProduct`` with the same instructions and
weights, and the flat weight vector has e3nn's layout (paths in instruction order, each ``path_shape`` row-major), so
one weight tensor can be fed to both.

Large batches on the CPU are computed in chunks of rows (``chunk_bytes``, default: the backend's preference) so that
output-sized temporaries stay small: cache-friendly, and below malloc's mmap threshold, which otherwise makes every
call page-fault its temporaries afresh (measured: up to 2x on CPU at 10k samples). On a GPU the whole batch is one
chunk (measured on an H100: chunks of CPU size made the L = 8 channel-wise product 20x slower, all launch overhead).

Backends (``backend=``): ``"cg"`` (:mod:`liequiv.o3.tensor_product.cg`) is exact for every path; ``"gaunt_grid"`` and
``"gaunt_fourier"`` (:mod:`liequiv.o3.tensor_product.gaunt`) compute the even paths only, with Gaunt coefficients and
no per-path weights, in ``O(L^3)`` (see there for what they accept); ``"cueq"`` (:mod:`liequiv.o3.tensor_product.cueq`)
runs channel-wise products through NVIDIA's cuEquivariance (optional dependency). Others register with
:func:`register_backend`.

Example::

    >>> from liequiv.o3.irreps import Irreps
    >>> tp = FullyConnectedTensorProduct("8x0e + 8x1o", "0e + 1o", "8x0e + 8x1o")
    >>> tp(torch.randn(5, 32), torch.randn(5, 4)).shape
    torch.Size([5, 32])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from liequiv.o3.irreps import Irrep, Irreps, check_features

__all__ = [
    "ChannelwiseTensorProduct",
    "ElementwiseTensorProduct",
    "FullyConnectedTensorProduct",
    "Instruction",
    "TensorProduct",
    "TensorProductSpec",
    "available_backends",
    "register_backend",
]

CONNECTION_MODES = ("uvw", "uvu", "uuu")
# large batches are computed in chunks whose output-sized temporaries take at most this many bytes (None: never)
CHUNK_BYTES: int | None = 16 << 20
WEIGHT_MODES = ("shared", "per_sample", None)


class Instruction(NamedTuple):
    """One path. ``path_weight`` is the user's factor on input and the final constant ``a`` after normalization."""

    i_in1: int
    i_in2: int
    i_out: int
    connection_mode: str
    has_weight: bool
    path_weight: float = 1.0
    path_shape: tuple[int, ...] = ()


class TensorProductSpec(NamedTuple):
    """Everything a backend needs: irreps, normalized instructions, and the weight layout."""

    irreps_in1: Irreps
    irreps_in2: Irreps
    irreps_out: Irreps
    instructions: tuple[Instruction, ...]
    shared_weights: bool
    weight_numel: int
    weight_offsets: tuple[int, ...]  # start of each instruction's weights in the flat vector (-1: no weights)


_BACKENDS: dict[str, Callable[[TensorProductSpec], nn.Module]] = {}


def register_backend(name: str, factory: Callable[[TensorProductSpec], nn.Module]) -> None:
    """Register ``factory(spec) -> nn.Module`` whose ``forward(x1 [Z, d1], x2 [Z, d2], weight)`` returns ``[Z, d_out]``.

    ``weight`` is ``None`` (no weighted path), ``[weight_numel]`` (shared) or ``[Z, weight_numel]`` (per sample).
    The factory raises ``ValueError`` for instructions it cannot compute.
    """
    _BACKENDS[name] = factory


def available_backends() -> list[str]:
    """Names accepted by ``TensorProduct(backend=...)``."""
    _load_builtin_backends()
    return sorted(_BACKENDS)


def _load_builtin_backends() -> None:
    from liequiv.o3.tensor_product import cg, cueq, gaunt  # noqa: F401  (register themselves on first import)


def _path_shape(mode: str, mul1: int, mul2: int, mul_out: int) -> tuple[int, ...]:
    return {"uvw": (mul1, mul2, mul_out), "uvu": (mul1, mul2), "uuu": (mul1,)}[mode]


def _fan_in(mode: str, mul1: int, mul2: int) -> int:
    return {"uvw": mul1 * mul2, "uvu": mul2, "uuu": 1}[mode]


def derive_instructions(
    irreps_in1: Irreps, irreps_in2: Irreps, irreps_out: Irreps, connection: str, has_weight: bool
) -> list[tuple]:
    """All paths allowed by the selection rules (``ir_out ∈ ir1 ⊗ ir2``) and, for uvu/uuu, by the multiplicities."""
    out = []
    for i1, (mul1, ir1) in enumerate(irreps_in1):
        for i2, (mul2, ir2) in enumerate(irreps_in2):
            products = ir1 * ir2
            for io, (mul_out, ir_out) in enumerate(irreps_out):
                if ir_out not in products:
                    continue
                if connection == "uvu" and mul_out != mul1:
                    continue
                if connection == "uuu" and not mul1 == mul2 == mul_out:
                    continue
                out.append((i1, i2, io, connection, has_weight))
    return out


def normalize_instructions(
    irreps_in1: Irreps,
    irreps_in2: Irreps,
    irreps_out: Irreps,
    instructions: Iterable[Sequence[Any]],
    irrep_normalization: str = "component",
    path_normalization: str = "element",
) -> tuple[Instruction, ...]:
    """Check the instructions and replace each ``path_weight`` by e3nn's normalization constant ``a``."""
    if irrep_normalization not in ("component", "norm", "none"):
        raise ValueError(f"irrep_normalization must be 'component', 'norm' or 'none', got {irrep_normalization!r}")
    if path_normalization not in ("element", "path", "none"):
        raise ValueError(f"path_normalization must be 'element', 'path' or 'none', got {path_normalization!r}")
    parsed = []
    for raw in instructions:
        ins = tuple(raw)
        if len(ins) not in (5, 6):
            raise ValueError(f"an instruction is (i_in1, i_in2, i_out, mode, has_weight[, path_weight]), got {raw!r}")
        i1, i2, io, mode, has_weight = ins[:5]
        path_weight = float(ins[5]) if len(ins) == 6 else 1.0
        if mode not in CONNECTION_MODES:
            raise ValueError(f"connection mode must be one of {CONNECTION_MODES}, got {mode!r} in {raw!r}")
        for idx, irreps, name in ((i1, irreps_in1, "i_in1"), (i2, irreps_in2, "i_in2"), (io, irreps_out, "i_out")):
            if not isinstance(idx, int) or not 0 <= idx < len(irreps):
                raise ValueError(f"{name}={idx!r} out of range for irreps {irreps} in instruction {raw!r}")
        (mul1, ir1), (mul2, ir2), (mul_out, ir_out) = irreps_in1[i1], irreps_in2[i2], irreps_out[io]
        if ir_out not in ir1 * ir2:
            raise ValueError(f"{ir1} x {ir2} does not contain {ir_out} (instruction {raw!r})")
        if mode == "uvu" and mul_out != mul1:
            raise ValueError(f"uvu needs mul_out == mul1, got {mul_out} != {mul1} (instruction {raw!r})")
        if mode == "uuu" and not mul1 == mul2 == mul_out:
            raise ValueError(f"uuu needs mul1 == mul2 == mul_out, got {mul1}, {mul2}, {mul_out} (instruction {raw!r})")
        if mode == "uvw" and not has_weight:
            raise ValueError(f"uvw paths must have weights (instruction {raw!r})")
        parsed.append(Instruction(i1, i2, io, mode, bool(has_weight), path_weight,
                                  _path_shape(mode, mul1, mul2, mul_out)))

    out = []
    for ins in parsed:
        (mul1, ir1), (mul2, _), (_, ir_out) = irreps_in1[ins.i_in1], irreps_in2[ins.i_in2], irreps_out[ins.i_out]
        d2 = irreps_in2[ins.i_in2].ir.dim
        alpha = {"component": ir_out.dim, "norm": ir1.dim * d2, "none": 1}[irrep_normalization]
        same_out = [i for i in parsed if i.i_out == ins.i_out]
        if path_normalization == "element":
            x = sum(_fan_in(i.connection_mode, irreps_in1[i.i_in1].mul, irreps_in2[i.i_in2].mul) for i in same_out)
        elif path_normalization == "path":
            x = _fan_in(ins.connection_mode, mul1, mul2) * len(same_out)
        else:
            x = 1
        if x > 0:
            alpha /= x
        alpha *= ins.path_weight
        out.append(ins._replace(path_weight=math.sqrt(alpha)))
    return tuple(out)


def _weight_offsets(instructions: Sequence[Instruction]) -> tuple[tuple[int, ...], int]:
    offsets, n = [], 0
    for ins in instructions:
        if ins.has_weight:
            offsets.append(n)
            n += math.prod(ins.path_shape)
        else:
            offsets.append(-1)
    return tuple(offsets), n


class TensorProduct(nn.Module):
    r"""Bilinear, O(3)-equivariant map ``(x1 [..., d1], x2 [..., d2]) -> [..., d_out]`` (see the module docstring).

    Args:
        irreps_in1, irreps_in2, irreps_out: the irreps of ``x1``, ``x2`` and the output.
        instructions: e3nn-style ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])``; if None, every path
            allowed by the selection rules with ``connection`` as mode (and, for uvu/uuu, matching multiplicities).
        connection: ``"uvw"``, ``"uvu"`` or ``"uuu"``, for the derived instructions.
        weights: ``"shared"`` (a trainable ``weight`` parameter of ``weight_numel`` entries, drawn N(0, 1) as e3nn,
            used when ``forward`` gets no ``weight``), ``"per_sample"`` (``forward`` needs
            ``weight [..., weight_numel]``, broadcast with the batch) or ``None`` (no weighted paths; only for
            derived instructions).
        irrep_normalization: ``"component"`` (default), ``"norm"`` or ``"none"``, as e3nn.
        path_normalization: ``"element"`` (default) or ``"path"`` (or ``"none"``), as e3nn.
        backend: ``"cg"`` (default, every path), ``"gaunt_grid"`` or ``"gaunt_fourier"`` (even paths, Gaunt
            coefficients, no weights: :mod:`liequiv.o3.tensor_product.gaunt`), or a name given to
            :func:`register_backend`.

    ``weight_numel`` is the size of the flat weight vector, in e3nn's layout; ``instructions`` holds the normalized
    instructions (``path_weight`` is the constant ``a``).
    """

    def __init__(
        self,
        irreps_in1: Any,
        irreps_in2: Any,
        irreps_out: Any,
        instructions: Iterable[Sequence[Any]] | None = None,
        connection: str = "uvw",
        weights: str | None = "shared",
        path_normalization: str = "element",
        irrep_normalization: str = "component",
        backend: str = "cg",
    ) -> None:
        super().__init__()
        if weights not in WEIGHT_MODES:
            raise ValueError(f"weights must be 'shared', 'per_sample' or None, got {weights!r}")
        if connection not in CONNECTION_MODES:
            raise ValueError(f"connection must be one of {CONNECTION_MODES}, got {connection!r}")
        self.irreps_in1 = Irreps(irreps_in1)
        self.irreps_in2 = Irreps(irreps_in2)
        self.irreps_out = Irreps(irreps_out)
        if instructions is None:
            if connection == "uvw" and weights is None:
                raise ValueError("uvw paths need weights: pass weights='shared' or 'per_sample'")
            instructions = derive_instructions(
                self.irreps_in1, self.irreps_in2, self.irreps_out, connection, weights is not None
            )
        self.instructions = normalize_instructions(
            self.irreps_in1, self.irreps_in2, self.irreps_out, instructions, irrep_normalization, path_normalization
        )
        offsets, numel = _weight_offsets(self.instructions)
        if numel > 0 and weights is None:
            raise ValueError("the instructions have weighted paths but weights=None")
        self.weight_numel = numel
        self.weight_offsets = offsets
        self.shared_weights = weights != "per_sample"
        self.weights_mode = weights
        self.irrep_normalization = irrep_normalization
        self.path_normalization = path_normalization
        self.backend_name = backend
        # large batches run in chunks whose output-sized temporaries take at most this many bytes (None: the
        # backend's choice, 0: never): cache-friendly, and below malloc's mmap threshold, so that the temporaries of
        # each call do not page-fault fresh memory
        self.chunk_bytes: int | None = None
        spec = TensorProductSpec(
            self.irreps_in1, self.irreps_in2, self.irreps_out, self.instructions, self.shared_weights, numel, offsets
        )
        _load_builtin_backends()
        if backend not in _BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: {available_backends()}")
        self.backend = _BACKENDS[backend](spec)
        if weights == "shared" and numel > 0:
            self.weight = nn.Parameter(torch.randn(numel))
        else:
            self.register_parameter("weight", None)

    def __repr__(self) -> str:
        npath = sum(math.prod(i.path_shape) for i in self.instructions)
        return (
            f"{type(self).__name__}({self.irreps_in1.simplify()} x {self.irreps_in2.simplify()} -> "
            f"{self.irreps_out.simplify()} | {npath} paths | {self.weight_numel} weights | {self.backend_name})"
        )

    def forward(self, x1: Tensor, x2: Tensor, weight: Tensor | None = None) -> Tensor:
        """``x1 [..., d1]``, ``x2 [..., d2]`` (and ``weight [..., weight_numel]`` per sample, or ``[weight_numel]``
        to override the shared one) -> ``[..., d_out]``; batch dimensions broadcast."""
        check_features(x1, self.irreps_in1, "x1")
        check_features(x2, self.irreps_in2, "x2")
        if x1.dtype != x2.dtype:
            raise TypeError(f"x1 and x2 must have the same dtype, got {x1.dtype} and {x2.dtype}")
        shapes = [x1.shape[:-1], x2.shape[:-1]]
        if self.weight_numel == 0:
            w = None
        else:
            w = self.weight if weight is None else weight
            if w is None:
                raise ValueError("this TensorProduct has per-sample weights: pass weight [..., weight_numel]")
            if w.ndim < 1 or w.shape[-1] != self.weight_numel:
                raise ValueError(f"weight must have shape [..., {self.weight_numel}], got {tuple(w.shape)}")
            if self.shared_weights:
                if w.ndim != 1:
                    raise ValueError(f"shared weights must have shape [{self.weight_numel}], got {tuple(w.shape)}")
            else:
                shapes.append(w.shape[:-1])
            w = w.to(x1.dtype)
        batch = torch.broadcast_shapes(*shapes)
        z = math.prod(batch)
        x1 = x1.expand(*batch, x1.shape[-1]).reshape(z, x1.shape[-1])
        x2 = x2.expand(*batch, x2.shape[-1]).reshape(z, x2.shape[-1])
        if w is not None and not self.shared_weights:
            w = w.expand(*batch, w.shape[-1]).reshape(z, w.shape[-1])
        rows = self._chunk_rows(x1.element_size()) if x1.device.type == "cpu" else z
        if z <= rows:
            out = self.backend(x1, x2, w)
        else:  # bounded temporaries: cache-friendly, and below malloc's mmap threshold (no page faults per call)
            n = -(-z // rows)
            ws = w.split(rows) if w is not None and not self.shared_weights else [w] * n
            out = torch.cat([self.backend(a, b, c) for a, b, c in zip(x1.split(rows), x2.split(rows), ws)])
        return out.reshape(*batch, self.irreps_out.dim)

    def _chunk_rows(self, itemsize: int) -> int:
        """Rows per chunk so that a temporary of the output's size stays within ``chunk_bytes``."""
        budget = self.chunk_bytes if self.chunk_bytes is not None else getattr(self.backend, "chunk_bytes", 0)
        if not budget:
            return 1 << 62
        per_row = max(self.irreps_out.dim, self.irreps_in1.dim, self.irreps_in2.dim, 1) * itemsize
        return max(1, budget // per_row)

    def weight_view(self, weight: Tensor, i: int) -> Tensor:
        """The weights of instruction ``i`` in ``weight [..., weight_numel]``, shaped ``[..., *path_shape]``."""
        ins = self.instructions[i]
        if not ins.has_weight:
            raise ValueError(f"instruction {i} has no weights")
        start = self.weight_offsets[i]
        n = math.prod(ins.path_shape)
        return weight[..., start : start + n].reshape(*weight.shape[:-1], *ins.path_shape)


class FullyConnectedTensorProduct(TensorProduct):
    """All paths ``ir_out ∈ ir1 ⊗ ir2`` in ``uvw`` mode, each with ``mul1 · mul2 · mul_out`` weights (e3nn's)."""

    def __init__(self, irreps_in1: Any, irreps_in2: Any, irreps_out: Any, **kwargs: Any) -> None:
        kwargs.setdefault("weights", "shared")
        super().__init__(irreps_in1, irreps_in2, irreps_out, None, connection="uvw", **kwargs)


def channelwise_irreps_out(
    irreps_in1: Any, irreps_in2: Any, filter_ir_out: Any = None, lmax_out: int | None = None, sort: bool = True
) -> tuple[Irreps, list[tuple]]:
    """NequIP/MACE message irreps: one output block ``mul1 × ir_out`` per path ``ir1 ⊗ ir2 -> ir_out``, sorted.

    Returns ``(irreps_out, instructions)`` with uvu instructions (``has_weight=True``).
    """
    irreps_in1, irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
    keep = None if filter_ir_out is None else {Irrep(ir) for ir in _as_irrep_list(filter_ir_out)}
    mid, instr = [], []
    for i1, (mul1, ir1) in enumerate(irreps_in1):
        for i2, (_, ir2) in enumerate(irreps_in2):
            for ir_out in ir1 * ir2:
                if keep is not None and ir_out not in keep:
                    continue
                if lmax_out is not None and ir_out.l > lmax_out:
                    continue
                instr.append((i1, i2, len(mid), "uvu", True))
                mid.append((mul1, ir_out))
    irreps_mid = Irreps(mid)
    if sort:
        irreps_mid, p, _ = irreps_mid.sort()
        instr = [(a, b, p[c], m, t) for a, b, c, m, t in instr]
    return irreps_mid, instr


def _as_irrep_list(x: Any) -> list[Irrep]:
    if isinstance(x, (str, Irreps)):
        return [mul_ir.ir for mul_ir in Irreps(x)]
    if isinstance(x, Irrep):
        return [x]
    return [Irrep(i) for i in x]


class ChannelwiseTensorProduct(TensorProduct):
    """Channel-wise (``uvu``) product, the NequIP/MACE message ``x1 ⊗ Y(r̂)``: each channel ``u`` of ``x1`` is coupled
    with ``x2`` separately, one weight per channel and path.

    Without ``irreps_out`` the output has one block ``mul1 × ir_out`` per path (sorted by irrep, as MACE/NequIP),
    restricted to ``filter_ir_out`` and ``l <= lmax_out`` when given; with ``irreps_out``, every allowed path into a
    block of multiplicity ``mul1`` is used. ``weights`` defaults to ``"per_sample"`` (weights from a radial network).
    """

    def __init__(
        self,
        irreps_in1: Any,
        irreps_in2: Any,
        irreps_out: Any = None,
        filter_ir_out: Any = None,
        lmax_out: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("weights", "per_sample")
        if irreps_out is None:
            has_weight = kwargs["weights"] is not None
            irreps_out, instr = channelwise_irreps_out(irreps_in1, irreps_in2, filter_ir_out, lmax_out)
            instr = [(*i[:4], has_weight) for i in instr]
            super().__init__(irreps_in1, irreps_in2, irreps_out, instr, **kwargs)
        else:
            if filter_ir_out is not None or lmax_out is not None:
                raise ValueError("pass either irreps_out or filter_ir_out / lmax_out")
            super().__init__(irreps_in1, irreps_in2, irreps_out, None, connection="uvu", **kwargs)


class ElementwiseTensorProduct(TensorProduct):
    """``uuu`` product of two inputs with the same number of channels: channel ``u`` of ``x1`` with channel ``u`` of
    ``x2``, every ``ir_out ∈ ir1 ⊗ ir2`` (or those in ``filter_ir_out``), no weights by default. As e3nn, the inputs
    are simplified and their blocks split so that channels line up."""

    def __init__(self, irreps_in1: Any, irreps_in2: Any, filter_ir_out: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("weights", None)
        irreps_in1 = list(Irreps(irreps_in1).simplify())
        irreps_in2 = list(Irreps(irreps_in2).simplify())
        keep = None if filter_ir_out is None else set(_as_irrep_list(filter_ir_out))
        if sum(m for m, _ in irreps_in1) != sum(m for m, _ in irreps_in2):
            raise ValueError("ElementwiseTensorProduct needs the same number of channels (num_irreps) in both inputs")
        i = 0
        while i < len(irreps_in1):
            (mul1, ir1), (mul2, ir2) = irreps_in1[i], irreps_in2[i]
            if mul1 < mul2:
                irreps_in2[i] = (mul1, ir2)
                irreps_in2.insert(i + 1, (mul2 - mul1, ir2))
            elif mul2 < mul1:
                irreps_in1[i] = (mul2, ir1)
                irreps_in1.insert(i + 1, (mul1 - mul2, ir1))
            i += 1
        out, instr = [], []
        has_weight = kwargs["weights"] is not None
        for i, ((mul, ir1), (_, ir2)) in enumerate(zip(irreps_in1, irreps_in2)):
            for ir in ir1 * ir2:
                if keep is not None and ir not in keep:
                    continue
                instr.append((i, i, len(out), "uuu", has_weight))
                out.append((mul, ir))
        super().__init__(Irreps(irreps_in1), Irreps(irreps_in2), Irreps(out), instr, **kwargs)
