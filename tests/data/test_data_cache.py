"""The cache of generated arrays: reuse, rebuild of stale or incomplete files, and unwritable directories."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from liequiv.data.cache import PARAMS_KEY, cache_root, cached_arrays, params_hash, params_json


class Builder:
    """A generator that counts its calls and returns ``{"a": [0, 1, 2] + offset, "b": ...}``."""

    def __init__(self, offset: float = 0.0, names: tuple[str, ...] = ("a", "b")) -> None:
        self.calls, self.offset, self.names = 0, offset, names

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {name: np.arange(3.0) + self.offset + i for i, name in enumerate(self.names)}


def test_params_hash_is_of_the_canonical_json() -> None:
    assert params_json({"b": 2, "a": (1, 0.5)}) == '{"a":[1,0.5],"b":2}'
    assert params_hash({"b": 2, "a": 1}) == hashlib.sha256(b'{"a":1,"b":2}').hexdigest()[:16]
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1}) != params_hash({"a": 1, "b": 3})


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIEQUIV_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env" and cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("LIEQUIV_CACHE")
    assert cache_root() == Path.home() / ".cache" / "liequiv"


def test_built_once_then_read(tmp_path: Path, capsys) -> None:
    path, build = tmp_path / "sub" / "x.npz", Builder()
    first = cached_arrays(path, {"n": 3}, build, ("a", "b"), what="the test arrays")
    assert "not found; generating the test arrays" in capsys.readouterr().err
    again = cached_arrays(path, {"n": 3}, build, ("a", "b"))
    assert build.calls == 1 and capsys.readouterr().err == ""
    np.testing.assert_array_equal(again["a"], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(again["b"], first["b"])
    assert sorted(again) == ["a", "b"]  # the stored parameters are not handed out
    assert not [p for p in path.parent.iterdir() if p.name != "x.npz"]  # no temporary file left


def test_stale_parameters_are_rebuilt(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.npz"
    cached_arrays(path, {"n": 3}, Builder(), ("a",))
    capsys.readouterr()
    newer = Builder(offset=10.0)
    arrays = cached_arrays(path, {"n": 4}, newer, ("a",))
    assert newer.calls == 1 and "written for other parameters" in capsys.readouterr().err
    np.testing.assert_array_equal(arrays["a"], [10.0, 11.0, 12.0])
    with np.load(path) as stored:  # the file now holds the new parameters and arrays
        assert str(stored[PARAMS_KEY]) == params_json({"n": 4})
        np.testing.assert_array_equal(stored["a"], arrays["a"])


def test_missing_arrays_are_rebuilt(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.npz"
    cached_arrays(path, {"n": 3}, Builder(names=("a",)), ("a",))
    capsys.readouterr()
    full = Builder()
    arrays = cached_arrays(path, {"n": 3}, full, ("a", "b"))
    assert full.calls == 1 and "lacks ['b']" in capsys.readouterr().err and sorted(arrays) == ["a", "b"]
    cached_arrays(path, {"n": 3}, full, ("a", "b"))
    assert full.calls == 1  # the rebuilt file is complete


def test_a_generator_missing_a_required_array_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"the generator of the test arrays returned no \['c'\]"):
        cached_arrays(tmp_path / "x.npz", {"n": 3}, Builder(), ("a", "c"), what="the test arrays")
    assert not (tmp_path / "x.npz").exists()


def test_unwritable_directory_still_gives_the_data(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")  # a file where the cache directory should be: unwritable even for root
    path, build = blocker / "x.npz", Builder()
    arrays = cached_arrays(path, {"n": 3}, build, ("a",), what="the test arrays")
    np.testing.assert_array_equal(arrays["a"], [0.0, 1.0, 2.0])
    err = capsys.readouterr().err
    assert f"could not write cache file {path}" in err and "set $LIEQUIV_CACHE to a writable directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_directory"]
