"""The compile-on-first-use loader of the C++ kernels: build, cache, opt-out and failure fall back to None."""


import pytest
import torch

from liequiv import native


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIEQUIV_CACHE", str(tmp_path / "cache"))
    native._load.cache_clear()
    yield tmp_path / "cache" / "native"
    native._load.cache_clear()


@pytest.mark.skipif(native._compiler() is None, reason="no C++ compiler")
def test_builds_once_and_calls(tmp_path, cache):
    src = tmp_path / "add.cpp"
    src.write_text('extern "C" int add(int a, int b) { return a + b; }\n')
    lib = native.load(src)
    assert lib is not None and lib.add(2, 40) == 42
    built = sorted(cache.glob("add-*.so"))
    assert len(built) == 1
    native._load.cache_clear()
    assert native.load(src).add(1, 1) == 2  # from the cache: nothing new built
    assert sorted(cache.glob("add-*.so")) == built
    src.write_text('extern "C" int add(int a, int b) { return a + b + 1; }\n')  # new source text, new library
    native._load.cache_clear()
    assert native.load(src).add(1, 1) == 3


def test_disabled_by_environment(tmp_path, cache, monkeypatch):
    src = tmp_path / "one.cpp"
    src.write_text('extern "C" int one() { return 1; }\n')
    monkeypatch.setenv("LIEQUIV_NATIVE", "0")
    assert not native.enabled()
    assert native.load(src) is None
    assert not cache.exists()


@pytest.mark.skipif(native._compiler() is None, reason="no C++ compiler")
def test_broken_source_warns_and_falls_back(tmp_path, cache):
    src = tmp_path / "broken.cpp"
    src.write_text("this is not C++\n")
    with pytest.warns(UserWarning, match="could not build broken.cpp"):
        assert native.load(src) is None
    assert not list(cache.glob("*.so")) and not list(cache.glob("*.tmp"))


def test_no_compiler_warns(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(native, "_compiler", lambda: None)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert native.load(tmp_path / "x.cpp") is None


def test_ptr_needs_contiguous_cpu_tensor():
    t = torch.arange(6.0).reshape(2, 3)
    assert native.ptr(t) == t.data_ptr()
    with pytest.raises(ValueError, match="contiguous CPU"):
        native.ptr(t.T)


@pytest.mark.skipif(native._compiler() is None, reason="no C++ compiler")
def test_a_changed_header_rebuilds(tmp_path, cache):
    (tmp_path / "value.h").write_text("#define VALUE 1\n")
    src = tmp_path / "value.cpp"
    src.write_text('#include "value.h"\nextern "C" int value() { return VALUE; }\n')
    assert native.load(src).value() == 1
    (tmp_path / "value.h").write_text("#define VALUE 2\n")
    native._load.cache_clear()
    assert native.load(src).value() == 2
