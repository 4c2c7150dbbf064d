"""Bindings of the compiled CPU kernels of :mod:`liequiv.o3` (``csrc/*.cpp``) and the ``liequiv`` operator library.

Every kernel is an ``extern "C"`` function ``<name>_f32`` / ``<name>_f64`` (the dtype of its tensors) returning
``void``, whose arguments are flat (no structures): data pointers (contiguous CPU tensors), sizes (``int64``),
degrees (``int``) and, last, the number of OpenMP threads. :data:`_ABI` declares all of them; :func:`kernel` returns
one for a dtype. A library is cached under a hash of its source text (:mod:`liequiv.native`), so a changed signature
is always a new library, never a stale one read with the new declarations.

The kernels are exposed as operators ``torch.ops.liequiv.*``, defined in :data:`LIBRARY` next to their math
(:mod:`liequiv.o3.harmonics`, :mod:`liequiv.o3.tensor_product.cg`, :mod:`liequiv.o3.gaunt`): a CPU
implementation calling the kernel, a fake implementation (shapes and dtypes, for ``torch.compile`` and
``torch.export``) and an autograd formula whose backward is again an operator. Eager calls skip the dispatcher
(:class:`Operator`): it would add more than the smallest kernels cost.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import _C, Tensor

from liequiv import native

__all__ = ["LIBRARY", "Operator", "available", "define", "kernel", "ptr", "supports", "threads"]

_CSRC = Path(__file__).with_name("csrc")
_P, _I64, _I32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


_CHANNELWISE_HEAD = [_P, _I64, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _P, _I64]  # tables, sizes, x1, x2, w, w_ld
# one operand of the grid product: data, D, base, step, scale, L, table, phi
_GRID_OPERAND = [_P, _I64, _P, _P, _P, _I32, _P, _P]

# source -> {kernel name: argument types without the dtype suffix}; every kernel returns void
_ABI: dict[str, dict[str, list]] = {
    "harmonics": {
        # v, out, n, lmax, scale (float64 [lmax+1]), threads
        "harmonics_forward": [_P, _P, _I64, _I32, _P, _I32],
        # v, g, grad_v, n, lmax, scale, threads
        "harmonics_backward": [_P, _P, _P, _I64, _I32, _P, _I32],
    },
    "channelwise": {
        # head, out, n, threads
        "channelwise_forward": [*_CHANNELWISE_HEAD, _P, _I64, _I32],
        # head, g, gx1, gx2, gw, n, threads
        "channelwise_backward": [*_CHANNELWISE_HEAD, _P, _P, _P, _P, _I64, _I32],
        # head, g, a1, a2, aw, gg, gx1, gx2, gw, n, threads
        "channelwise_double_backward": [*_CHANNELWISE_HEAD, _P, _P, _P, _P, _P, _P, _P, _P, _I64, _I32],
    },
    "grid_product": {
        # x, y, out (each an operand), Z, C, n_beta, n_alpha, threads
        "grid_product": [*_GRID_OPERAND * 3, _I64, _I64, _I32, _I32, _I32],
    },
}

LIBRARY = torch.library.Library("liequiv", "DEF")


@functools.cache
def _bind(source: str) -> dict[tuple[str, torch.dtype], Callable[..., None]] | None:
    lib = native.load(_CSRC / f"{source}.cpp")
    if lib is None:
        return None
    functions = {}
    for name, argtypes in _ABI[source].items():
        for dtype, suffix in _SUFFIX.items():
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes, fn.restype = argtypes, None
            functions[name, dtype] = fn
    return functions


@torch.compiler.assume_constant_result
def _built(source: str) -> bool:
    return _bind(source) is not None


def available(source: str) -> bool:
    """Whether the kernels of ``csrc/<source>.cpp`` run: ``LIEQUIV_NATIVE`` is not ``0`` and they are built (once;
    constant under ``torch.compile``)."""
    return native.enabled() and _built(source)


def kernel(source: str, name: str, dtype: torch.dtype) -> Callable[..., None]:
    """The kernel ``name`` of ``csrc/<source>.cpp`` for float32 or float64 tensors (check :func:`available`)."""
    return _bind(source)[name, dtype]


def supports(t: Tensor) -> bool:
    """Whether the kernels take ``t``'s device and dtype (CPU, float32 or float64)."""
    return t.device.type == "cpu" and t.dtype in _SUFFIX


ptr = native.ptr
threads = native.threads

# the checks of Operator.__call__
_compiling = torch.compiler.is_compiling
_dispatch_modes = _C._len_torch_dispatch_stack  # fake tensors, torch.export, make_fx, ...
_transforms = _C._are_functorch_transforms_active
_wrapped = _C._functorch.is_functorch_wrapped_tensor


class Operator:
    """A ``liequiv::`` operator, called the cheapest way that records what the call needs.

    Traced calls go through the dispatcher, so that the graph holds the operator: under ``torch.compile``, under
    ``torch.func`` transforms, under a dispatch mode (``torch.export``, ``make_fx``, fake tensors), or with a tensor
    subclass. Eager calls skip it (it costs more than the smallest kernels): without a gradient to record they call
    the CPU implementation, else an ``autograd.Function`` made of the same implementation and the same autograd
    formula as the operator's registration.
    """

    __slots__ = ("apply", "cpu", "op")

    def __init__(self, op: torch._ops.OpOverload, cpu: Callable[..., object], function: type | None) -> None:
        self.op, self.cpu = op, cpu
        # Function.apply less its Python wrapper, which only serves torch.func (its transforms and wrapped tensors,
        # sent to the dispatcher here) and a separate setup_context (_function has none)
        self.apply = None if function is None else super(torch.autograd.Function, function).apply

    def __call__(self, *args: object) -> object:
        # is_compiling first: Dynamo takes it as a constant and traces none of the checks after it
        if _compiling() or _dispatch_modes() or _transforms():
            return self.op(*args)
        record = False
        for a in args:
            if isinstance(a, Tensor):
                if type(a) is not Tensor or _wrapped(a):
                    return self.op(*args)
                record = record or a.requires_grad
        if record and self.apply is not None and torch.is_grad_enabled():
            return self.apply(*args)
        return self.cpu(*args)


def _function(
    cpu: Callable[..., object], backward: Callable[..., object], setup_context: Callable[..., None], lists: bool
) -> type:
    """The ``autograd.Function`` of eager calls: the operator's implementation and autograd formula. Its ``forward``
    takes ``ctx`` and runs ``setup_context`` itself: a separate ``setup_context`` would make every ``apply`` bind
    the arguments to ``forward``'s signature (``inspect``), which costs more than a small kernel. ``lists``: the
    operator takes lists of tensors, for which the formula gives one gradient per element and the Function one."""

    def forward(ctx, *args):
        output = cpu(*args)
        setup_context(ctx, args, output)
        return output

    def vjp(ctx, *grads):
        return tuple(None if isinstance(g, list) else g for g in backward(ctx, *grads))

    return type("EagerOperator", (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(vjp if lists else backward),
    })


def define(
    schema: str,
    cpu: Callable[..., object],
    fake: Callable[..., object],
    backward: Callable[..., object] | None = None,
    setup_context: Callable[..., None] | None = None,
) -> Operator:
    """Define ``liequiv::<schema>`` with its CPU implementation, its fake (shapes, dtypes) and, when given, its
    autograd formula (see ``torch.library.register_autograd``); returns it as an :class:`Operator`."""
    name = schema.split("(", 1)[0]
    LIBRARY.define(schema)
    LIBRARY.impl(name, cpu, "CPU")
    torch.library.register_fake(f"liequiv::{name}", fake, lib=LIBRARY)
    function = None
    if backward is not None:
        torch.library.register_autograd(f"liequiv::{name}", backward, setup_context=setup_context, lib=LIBRARY)
        function = _function(cpu, backward, setup_context, "Tensor[]" in schema)
    return Operator(getattr(torch.ops.liequiv, name).default, cpu, function)
