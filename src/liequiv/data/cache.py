"""A small on-disk cache for generated arrays (``np.savez`` files keyed by a hash of the generator's parameters).

The cache lives in ``$LIEQUIV_CACHE`` if set, else ``~/.cache/liequiv``. A file that is missing, unreadable,
truncated, lacks an expected array, or was written for other parameters is regenerated, with a message on
stderr. Files are written to a temporary name and renamed into place, so concurrent writers (several
training processes) never leave a half-written file behind. A cache that cannot be written still gives the data
(with a message); a generator that returns fewer arrays than required is a ``ValueError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

PARAMS_KEY = "__params__"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``cache_dir`` if given, else ``$LIEQUIV_CACHE``, else ``~/.cache/liequiv``."""
    if cache_dir is None:
        cache_dir = os.environ.get("LIEQUIV_CACHE") or Path.home() / ".cache" / "liequiv"
    return Path(cache_dir).expanduser()


def params_json(params: Mapping) -> str:
    """Canonical JSON of a parameter mapping (sorted keys), the thing that is hashed."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)


def params_hash(params: Mapping, length: int = 16) -> str:
    """A short hex digest of ``params`` (SHA-256 of its canonical JSON)."""
    return hashlib.sha256(params_json(params).encode()).hexdigest()[:length]


def _read(path: Path, params: str, required: Iterable[str]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}  # reading every member checks its CRC
    stored = arrays.pop(PARAMS_KEY, None)
    if stored is None or str(stored) != params:
        raise ValueError("it was written for other parameters")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise KeyError(f"it lacks {missing}")
    return arrays


def _write(path: Path, arrays: Mapping[str, np.ndarray], params: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{PARAMS_KEY: np.array(params)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cached_arrays(path: str | os.PathLike, params: Mapping, build: Callable[[], Mapping[str, np.ndarray]],
                  required: Iterable[str] = (), *, what: str = "data") -> dict[str, np.ndarray]:
    """Arrays stored at ``path`` for ``params``; (re)built with ``build()`` and saved when the file is not usable.

    ``params`` is stored in the file and compared on load, so a stale file (other parameters, an older
    generator) is rebuilt rather than trusted. ``required`` names arrays the file must hold.
    """
    path = Path(path)
    text = params_json(params)
    required = tuple(required)
    if path.exists():
        try:
            return _read(path, text, required)
        except Exception as error:  # any unreadable file is rebuilt: truncated zip, bad CRC, wrong keys, ...
            print(f"liequiv: cache file {path} is unusable ({type(error).__name__}: {error}); regenerating {what}",
                  file=sys.stderr, flush=True)
    else:
        print(f"liequiv: cache file {path} not found; generating {what}", file=sys.stderr, flush=True)
    arrays = {name: np.asarray(value) for name, value in build().items()}
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"the generator of {what} returned no {missing} (it returned {sorted(arrays)})")
    try:
        _write(path, arrays, text)
    except OSError as error:  # a read-only cache still gives the data, just not cached
        print(f"liequiv: could not write cache file {path} ({error}); {what} will be generated again next time "
              "(set $LIEQUIV_CACHE to a writable directory)", file=sys.stderr, flush=True)
    return arrays
