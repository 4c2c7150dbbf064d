"""Optional CPU kernels in C++, compiled on first use with the machine's compiler and loaded through ``ctypes``.

A kernel source is a plain C++ file with ``extern "C"`` functions on raw pointers (no Python or torch headers, so it
compiles in seconds); it may include headers of its own folder. :func:`load` compiles it once per text (with
those headers), compiler and CPU (``-O3 -march=native``, OpenMP when the compiler has it) into ``$LIEQUIV_CACHE``
(default ``~/.cache/liequiv``) and returns
the library, or ``None`` when no compiler works or ``LIEQUIV_NATIVE=0`` is set: every caller then runs its plain
torch path, which computes the same values. Concurrent first calls (``torchrun``, test workers) are safe: each
compiles to a temporary name and renames it into place.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["enabled", "load", "ptr", "threads"]

_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c++17", "-fno-math-errno")


def enabled() -> bool:
    """False when ``LIEQUIV_NATIVE`` is ``0`` (read at each call, so tests can switch it). The kernels are torch
    operators (:mod:`liequiv.o3.kernels`), so they also run under ``torch.compile``."""
    return os.environ.get("LIEQUIV_NATIVE", "1") != "0"


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def _cpu_key() -> str:
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _compile(cxx: str, source: Path, target: Path, flags: tuple[str, ...]) -> str | None:
    """Compile ``source`` to ``target`` atomically; the compiler's message on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        run = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            return run.stderr[-2000:] or f"{cxx} exited with {run.returncode}"
        os.replace(tmp, target)
        return None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@functools.cache
def _load(source: Path) -> ctypes.CDLL | None:
    cxx = _compiler()
    if cxx is None:
        warnings.warn(f"liequiv: no C++ compiler found; {source.name} runs in plain torch", stacklevel=3)
        return None
    cache = Path(os.environ.get("LIEQUIV_CACHE", Path.home() / ".cache" / "liequiv")) / "native"
    text = b"".join(f.read_bytes() for f in [source, *sorted(source.parent.glob("*.h"))])  # and its local headers
    error = ""
    for flags in ((*_FLAGS, "-fopenmp"), _FLAGS):  # without OpenMP where the compiler lacks it
        key = hashlib.sha256(b"\0".join([text, cxx.encode(), " ".join(flags).encode(), _cpu_key().encode()]))
        target = cache / f"{source.stem}-{key.hexdigest()[:16]}.so"
        if not target.exists():
            error = _compile(cxx, source, target, flags) or ""
            if error:
                continue
        try:
            return ctypes.CDLL(str(target))
        except OSError as exc:
            error = str(exc)
    warnings.warn(f"liequiv: could not build {source.name} ({error.strip()}); it runs in plain torch", stacklevel=3)
    return None


def load(source: Path) -> ctypes.CDLL | None:
    """The compiled library of the C++ file ``source``, or ``None`` (disabled, or no working compiler)."""
    return _load(source) if enabled() else None


def ptr(t: Tensor) -> int:
    """The data pointer of a contiguous CPU tensor, for a kernel argument (declared ``ctypes.c_void_p``)."""
    if not (t.is_cpu and t.is_contiguous()):
        raise ValueError("native kernels take contiguous CPU tensors")
    return t.data_ptr()


def threads() -> int:
    """torch's intra-op thread count, handed to the kernels' OpenMP loops."""
    return torch.get_num_threads()
