"""``import liequiv`` exposes every subpackage, loading each on first use."""

import subprocess
import sys

import pytest

import liequiv


def test_subpackages_load_lazily():
    code = ("import sys, liequiv; names = liequiv.__all__; "
            "assert not [n for n in names if f'liequiv.{n}' in sys.modules], 'imported eagerly'; "
            "irreps = liequiv.o3.Irreps('2x1o'); assert irreps.dim == 6; "
            "assert 'liequiv.o3' in sys.modules and 'liequiv.models' not in sys.modules; "
            "print(sorted(n for n in names if getattr(liequiv, n).__name__ == f'liequiv.{n}'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(liequiv.__all__))


def test_every_subpackage_is_listed_and_unknown_names_fail():
    from pathlib import Path

    root = Path(liequiv.__file__).parent
    packages = {p.parent.name for p in root.glob("*/__init__.py")}
    assert packages == set(liequiv.__all__)
    assert set(liequiv.__all__) <= set(dir(liequiv))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        liequiv.nope  # noqa: B018
